"""What report generation minimises and what it is selected by, for :func:`chexradi.train.fit`.

:class:`ReportObjective`
    Teacher forcing: the cross-entropy of every next word of the reference report (``<pad>``
    not counted; ``label_smoothing`` optional), plus, when the model is conditioned on labels
    and fine-tunes its encoder, ``label_weight`` times the masked BCE of the encoder's label
    logits against the study's labels (the classifier keeps predicting the labels it is
    conditioned on). ``logits`` are the encoder's label logits (what a chexradi objective
    gives for evaluation).
:class:`ReportEvaluator`
    Validation: the mean word cross-entropy (``val_loss``) and the reports decoded greedily,
    scored with BLEU-1..4, ROUGE-L and CIDEr (:func:`chexradi.metrics.text_scores`; METEOR is
    left to the final evaluation, it starts Java). The epoch is selected by ``select``:
    ``"BLEU_4"`` (default), ``"CIDEr"``, ``"ROUGE_L"`` or ``"loss"`` (``-val_loss``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from torch import Tensor, nn
from torch.nn import functional as F

from ..names import REPORTGEN_SELECT
from ..train.evaluators import Evaluation
from ..train.objectives import masked_bce_with_logits
from .data import STUDY_KEYS
from .decode import greedy_decode

__all__ = ["ReportObjective", "ReportEvaluator", "SELECT", "word_loss"]

#: What the best epoch can be selected by.
SELECT = REPORTGEN_SELECT


def word_loss(logits: Tensor, tokens: Tensor, pad_id: int, *, label_smoothing: float = 0.0,
              reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``tokens[:, 1:]`` under next-word ``logits`` ``(B, L-1, V)``, ``<pad>`` ignored."""
    target = tokens[:, 1:]
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=pad_id,
                           label_smoothing=label_smoothing, reduction=reduction)


class ReportObjective:
    """See the module docstring.

    Parameters
    ----------
    pad_id:
        The tokenizer's ``<pad>`` id.
    label_weight:
        Weight of the label BCE (used only with label conditioning and a fine-tuned encoder whose classes
        are the data's).
    label_smoothing:
        Of the word cross-entropy.
    """

    required_keys = STUDY_KEYS

    def __init__(self, pad_id: int = 0, *, label_weight: float = 1.0, label_smoothing: float = 0.0) -> None:
        if not math.isfinite(float(label_weight)) or float(label_weight) < 0:
            raise ValueError(f"label_weight must be a number >= 0, got {label_weight!r}")
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.pad_id = int(pad_id)
        self.label_weight = float(label_weight)
        self.label_smoothing = float(label_smoothing)

    def _label_term(self, model: nn.Module, label_logits: Tensor, batch: dict[str, Any]) -> Optional[Tensor]:
        if not (getattr(model, "label_conditioning", False) and not getattr(model, "freeze_encoder", True)
                and self.label_weight > 0 and "target" in batch):
            return None
        target = batch["target"]
        if target.shape != label_logits.shape:
            return None  # the encoder's classes are not the data's: no label term
        return self.label_weight * masked_bce_with_logits(label_logits, target)

    def logits(self, model: nn.Module, batch: dict[str, Any], **_: Any) -> Tensor:
        return model.encode(batch["images"], batch.get("views"))["logits"]

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        word_logits, label_logits = model(batch["images"], batch["tokens"], batch.get("views"))
        loss = word_loss(word_logits, batch["tokens"], self.pad_id, label_smoothing=self.label_smoothing)
        extra = self._label_term(model, label_logits, batch)
        return (loss if extra is None else loss + extra), label_logits

    def state_dict(self) -> dict[str, Any]:
        return {"pad_id": self.pad_id, "label_weight": self.label_weight, "label_smoothing": self.label_smoothing}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pad_id = int(state["pad_id"])
        self.label_weight = float(state["label_weight"])
        self.label_smoothing = float(state["label_smoothing"])


@dataclass
class ReportEvaluator:
    """See the module docstring. ``tokenizer`` decodes the ids; ``max_length`` bounds the greedy decoding."""

    tokenizer: Any
    select: str = "BLEU_4"
    max_length: int = 60
    required_keys: tuple[str, ...] = STUDY_KEYS

    def __post_init__(self) -> None:
        if self.select not in SELECT:
            raise ValueError(f"select must be one of {', '.join(SELECT)}, got {self.select!r}")

    def step(self, model: nn.Module, objective: Any, batch: dict[str, Any]) -> tuple[float, int, list, list]:
        tokens = batch["tokens"]
        enc = model.encode(batch["images"], batch.get("views"))
        word_logits = model.teacher_forcing(enc, tokens)
        total = float(word_loss(word_logits, tokens, self.tokenizer.pad_id, reduction="sum").double())
        n_words = int((tokens[:, 1:] != self.tokenizer.pad_id).sum())
        refs = tokens.cpu().tolist()  # decoded in finish, which drops <pad>
        hyps: list[list[int]] = []
        if self.select != "loss":
            dec = greedy_decode(model.step, model.initial_state(enc), tokens.shape[0], bos_id=self.tokenizer.bos_id,
                                eos_id=self.tokenizer.eos_id, max_length=self.max_length, device=tokens.device)
            hyps = dec.ids
        return total, n_words, refs, hyps

    def finish(self, pieces: list[Any]) -> Evaluation:
        if not pieces:
            raise ValueError("val gave no batches; pass a non-empty validation set")
        total = sum(p[0] for p in pieces)
        n = sum(p[1] for p in pieces)
        loss = total / max(n, 1)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the validation loss is {loss}; lower lr or check the inputs for NaN/inf")
        record: dict[str, Any] = {"val_loss": loss}
        if self.select == "loss":
            return Evaluation(record, -loss, "-val_loss", f"val word loss {loss:.4f}")
        from ..metrics.text import text_scores

        refs = [self.tokenizer.decode(r) for p in pieces for r in p[2]]
        hyps = [self.tokenizer.decode(h) for p in pieces for h in p[3]]
        scores = text_scores(refs, hyps, meteor=False).scores
        for k in ("BLEU_1", "BLEU_4", "ROUGE_L", "CIDEr"):
            record[f"val_{k}"] = scores[k]
        score = float(scores[self.select])
        return Evaluation(record, score, f"val_{self.select}",
                          f"val word loss {loss:.4f}, greedy BLEU-4 {scores['BLEU_4']:.4f}, "
                          f"CIDEr {scores['CIDEr']:.4f}")
