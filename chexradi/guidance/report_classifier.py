"""The text teachers' report branches alone: report -> labels, to show they read real radiology language.

A text teacher is only as good as what its report branch understands. These are the two branches
as stand-alone classifiers (registered models of the ``"text_encoder"`` family, so
:func:`chexradi.train.fit` trains them, resumes them and checkpoints them like any chexradi model):

``report_lstm``
    TandemNet's branch: :class:`~chexradi.guidance.tandem.SentenceEncoder` (word LSTM; the state
    at each sentence end), then TandemNet's text attention on its own (a softmax over the sentences
    of ``u . tanh(W s)``, dropout 0.5) and a linear layer.
``report_transformer``
    VKD's branch: :class:`~chexradi.guidance.variational.ReportEncoder` (token embeddings,
    one transformer encoder layer, mean over tokens), then a linear layer.

:class:`ReportDataset` gives ``{"tokens", "target", "index"}`` items from texts, labels and a
:class:`~chexradi.reports.tokenizer.Tokenizer`; :class:`ReportObjective` is the masked BCE of
``model(tokens)`` (``required_keys = ("tokens", "target")``); :func:`pad_tokens` batches the
sequences. ``examples/text_branch_iu.py`` trains both on the real IU X-ray reports (R2Gen's split,
the human indexers' MeSH terms as labels) and reports the held-out AUC (docs/text-guidance.md).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..nn.registry import register_model
from .tandem import SentenceEncoder
from .text import pad_tokens
from .variational import ReportEncoder

__all__ = ["ReportDataset", "ReportObjective", "report_lstm", "report_transformer", "pad_tokens"]


class _ReportLSTM(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, *, pad_id: int, stop_id: int, ignore_ids: Sequence[int],
                 embed_dim: int, hidden: int, dim: int, dropout: float, max_sentences: int) -> None:
        super().__init__()
        self.encoder = SentenceEncoder(vocab_size, pad_id=pad_id, stop_id=stop_id, embed_dim=embed_dim, hidden=hidden,
                                       max_sentences=max_sentences, ignore_ids=tuple(ignore_ids))
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, dim)
        self.score = nn.Linear(dim, 1)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        s, valid = self.encoder(tokens)
        s = torch.tanh(self.proj(self.drop(s)))
        e = self.score(s).squeeze(-1).masked_fill(~valid, float("-inf"))
        alpha = torch.softmax(e, dim=1).nan_to_num(0.0)  # a report without a sentence: no context (zeros)
        return self.out(self.drop((alpha.unsqueeze(-1) * s).sum(1)))


class _ReportTransformer(nn.Module):
    def __init__(self, vocab_size: int, num_classes: int, *, pad_id: int, dim: int, heads: int, dropout: float,
                 max_length: int) -> None:
        super().__init__()
        self.encoder = ReportEncoder(vocab_size, pad_id=pad_id, dim=dim, heads=heads, ff=2 * dim, dropout=dropout,
                                     max_length=max_length)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.out(self.encoder(tokens))


@register_model(family="text_encoder")
def report_lstm(vocab_size: int = 1000, num_classes: int = 14, pad_id: int = 0, stop_id: int = 4,
                ignore_ids: Sequence[int] = (1, 2), embed_dim: int = 128, hidden: int = 256, dim: int = 256,
                dropout: float = 0.5, max_sentences: int = 16, class_names: Optional[Sequence[str]] = None) -> nn.Module:
    """TandemNet's report branch as a report classifier (see the module docstring)."""
    model = _ReportLSTM(vocab_size, num_classes, pad_id=pad_id, stop_id=stop_id, ignore_ids=ignore_ids,
                        embed_dim=embed_dim, hidden=hidden, dim=dim, dropout=dropout, max_sentences=max_sentences)
    model.config = {"name": "report_lstm", "vocab_size": vocab_size, "num_classes": num_classes, "pad_id": pad_id,
                    "stop_id": stop_id, "ignore_ids": list(ignore_ids), "embed_dim": embed_dim, "hidden": hidden,
                    "dim": dim, "dropout": dropout, "max_sentences": max_sentences,
                    "class_names": list(class_names) if class_names else None}
    return model


@register_model(family="text_encoder")
def report_transformer(vocab_size: int = 1000, num_classes: int = 14, pad_id: int = 0, dim: int = 256, heads: int = 4,
                       dropout: float = 0.1, max_length: int = 128,
                       class_names: Optional[Sequence[str]] = None) -> nn.Module:
    """VKD's report branch as a report classifier (see the module docstring)."""
    model = _ReportTransformer(vocab_size, num_classes, pad_id=pad_id, dim=dim, heads=heads, dropout=dropout,
                               max_length=max_length)
    model.config = {"name": "report_transformer", "vocab_size": vocab_size, "num_classes": num_classes,
                    "pad_id": pad_id, "dim": dim, "heads": heads, "dropout": dropout, "max_length": max_length,
                    "class_names": list(class_names) if class_names else None}
    return model


class ReportDataset(Dataset):
    """Reports as ``{"tokens": (L,) long, "target": (K,) float (NaN unknown), "index"}`` items.

    Raises
    ------
    ValueError
        ``labels`` not ``(len(texts), K)``.
    """

    def __init__(self, texts: Sequence[str], labels: Any, tokenizer: Any) -> None:
        y = np.asarray(labels, np.float32)
        if y.ndim != 2 or y.shape[0] != len(texts):
            raise ValueError(f"labels must be (N, K) with N = {len(texts)} reports, got shape {y.shape}")
        self.ids = [np.asarray(tokenizer.encode(t), np.int64) for t in texts]
        self.y = y

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def targets(self) -> np.ndarray:
        return self.y

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"tokens": torch.from_numpy(self.ids[i].copy()), "target": torch.from_numpy(self.y[i].copy()),
                "index": int(i)}


class ReportObjective:
    """Masked BCE of ``model(batch["tokens"])`` (an objective for :func:`chexradi.train.fit`)."""

    required_keys = ("tokens", "target")

    def __init__(self, pos_weight: Optional[Tensor] = None) -> None:
        self.pos_weight = pos_weight

    def logits(self, model: nn.Module, batch: Mapping[str, Any], **_: Any) -> Tensor:
        return model(batch["tokens"])

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        from ..train.objectives import masked_bce_with_logits

        logits = self.logits(model, batch)
        return masked_bce_with_logits(logits, batch["target"], pos_weight=self.pos_weight), logits
