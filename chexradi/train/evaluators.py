"""What :func:`~chexradi.train.fit` computes on the validation set, and what it selects the best epoch by.

An *evaluator* is any object with

``required_keys``
    the item keys validation batches must carry (``("image", "target")`` for a
    classifier; a report generator may need ``("image", "tokens")``);
``step(model, objective, batch) -> piece``
    called under ``torch.no_grad()`` in eval mode for every validation batch (a
    dict of tensors on the device); returns what ``finish`` needs, on the CPU
    and picklable (a distributed run gathers the pieces of every rank, in item
    order);
``finish(pieces) -> Evaluation``
    the epoch's metrics and the score the best epoch is selected by (higher is
    better). :func:`checked_evaluation` is what fit makes of it: the score must be
    finite, the metrics' names must not be keys fit writes itself
    (:data:`RESERVED_KEYS`), and their values are written as JSON (NumPy and
    0-d torch numbers as floats, NaN/inf as null).

Two ship here: :class:`ClassifierEvaluator` (the default: masked BCE, AUC per class,
selection on the mean AUC) and :class:`LossEvaluator` (the objective's own loss,
selection on ``-val_loss``: a text encoder, a report generator before it can be
scored on text). A text score (BLEU, CIDEr) plugs in the same way.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from .. import metrics
from .checkpoints import _json_float
from .data import _batch_len
from .objectives import masked_bce_with_logits

__all__ = ["Evaluation", "Evaluator", "ClassifierEvaluator", "LossEvaluator", "check_evaluator",
           "checked_evaluation", "RESERVED_KEYS"]

#: The keys of an epoch's history record that :func:`~chexradi.train.fit` writes itself; no metric may use them.
RESERVED_KEYS = frozenset({"epoch", "train_loss", "score", "criterion", "improved", "lr", "steps", "seconds"})


@dataclass
class Evaluation:
    """One epoch's validation.

    Attributes
    ----------
    metrics:
        JSON-able values recorded in the epoch's history under these keys, in this
        order (e.g. ``val_loss``, ``val_auc``, ``val_mean_auc``). NaN is recorded as
        null.
    score:
        What the best epoch is selected by; higher is better; finite.
    criterion:
        The name of ``score`` (``"val_mean_auc"``, ``"-val_loss"``, ...).
    summary:
        One line for the log (``"val loss 0.41, val mean AUC 0.83"``).
    warning:
        Said once per run when set (e.g. the mean AUC is undefined, so the score
        fell back on the loss).
    """

    metrics: dict[str, Any]
    score: float
    criterion: str
    summary: str = ""
    warning: Optional[str] = None


@runtime_checkable
class Evaluator(Protocol):
    """Validation for :func:`~chexradi.train.fit`; see the module docstring."""

    required_keys: Sequence[str]

    def step(self, model: nn.Module, objective: Any, batch: dict[str, Any]) -> Any:
        ...

    def finish(self, pieces: list[Any]) -> Evaluation:
        ...


def check_evaluator(evaluator: Any) -> None:
    """Refuse an object that is not an evaluator, naming what it lacks."""
    missing = [m for m in ("step", "finish") if not callable(getattr(evaluator, m, None))]
    keys = getattr(evaluator, "required_keys", None)
    if (missing or not isinstance(keys, (tuple, list))
            or not all(isinstance(k, str) for k in keys)):
        raise ValueError(f"evaluator must have required_keys (a tuple of item keys), step(model, objective, "
                         f"batch) and finish(pieces) -> Evaluation (see chexradi.train.evaluators); "
                         f"{type(evaluator).__name__} lacks {missing or ['required_keys']}")


def _json_value(value: Any, where: str) -> Any:
    """``value`` as JSON: numbers as Python floats/ints (NaN/inf as None), lists/tuples/arrays as lists, dicts with
    string keys; anything else refused, naming ``where``."""
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) or (isinstance(value, Tensor) and value.dim() == 0):
        return _json_float(float(value))
    if isinstance(value, (np.ndarray, Tensor)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_value(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"{where} is a {type(value).__name__}, which the history (JSON) cannot hold; return numbers, "
                     f"strings, lists or dicts of them")


def checked_evaluation(ev: Any, evaluator: Any) -> Evaluation:
    """``ev`` as :func:`~chexradi.train.fit` records it: an :class:`Evaluation` with a finite score and JSON-able
    metrics (NaN as None) under names of their own.

    Raises
    ------
    ValueError
        ``finish`` did not return an Evaluation, a metric uses a reserved key (:data:`RESERVED_KEYS`) or
        cannot be written as JSON.
    FloatingPointError
        The score is not finite (nothing could be selected by it).
    """
    who = type(evaluator).__name__
    if not isinstance(ev, Evaluation):
        raise ValueError(f"{who}.finish must return a chexradi.train.Evaluation, got {type(ev).__name__}")
    if not isinstance(ev.metrics, dict):
        raise ValueError(f"{who}.finish: Evaluation.metrics must be a dict, got {type(ev.metrics).__name__}")
    clash = sorted(RESERVED_KEYS.intersection(ev.metrics))
    if clash:
        raise ValueError(f"{who}.finish: metric name(s) {clash} are keys fit writes itself "
                         f"({', '.join(sorted(RESERVED_KEYS))}); name the metrics otherwise (e.g. 'val_...')")
    try:
        score = float(ev.score)
    except (TypeError, ValueError):
        raise ValueError(f"{who}.finish: Evaluation.score must be a number, got {ev.score!r}") from None
    if not math.isfinite(score):
        raise FloatingPointError(f"{who}: the validation score ({ev.criterion}) is {score}; no epoch can be "
                                 f"selected by it (check the validation data and the evaluator)")
    metrics = {str(k): _json_value(v, f"{who} metric {k!r}") for k, v in ev.metrics.items()}
    return Evaluation(metrics=metrics, score=score, criterion=str(ev.criterion), summary=str(ev.summary or ""),
                      warning=ev.warning)


@dataclass
class ClassifierEvaluator:
    """Multi-label classification: validation loss, AUC per class, selection on their mean.

    The loss is the unweighted masked BCE of the objective's logits over every
    known (non-NaN) target, so it compares across objectives and class weights.
    The score is the mean over the classes whose AUC is defined (both labels
    present), on sigmoid outputs; when no class has both labels it is
    ``-val_loss``, with a warning.

    Parameters
    ----------
    head:
        The objective head to evaluate (passed as ``objective.logits(model, batch,
        head=...)``); None for the objective's default.
    required_keys:
        The item keys the objective's logits read, ``"target"`` among them (a
        classifier of report tokens: ``("tokens", "target")``).
    """

    head: Optional[str] = None
    required_keys: tuple[str, ...] = ("image", "target")

    def __post_init__(self) -> None:
        self.required_keys = tuple(self.required_keys)
        if "target" not in self.required_keys:
            raise ValueError(f"ClassifierEvaluator scores targets: required_keys must include 'target', "
                             f"got {self.required_keys}")

    def step(self, model: nn.Module, objective: Any, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        logits = (objective.logits(model, batch) if self.head is None
                  else objective.logits(model, batch, head=self.head))
        return logits.float().cpu(), batch["target"].float().cpu()

    def finish(self, pieces: list[Any]) -> Evaluation:
        if not pieces:
            raise ValueError("val gave no batches; pass a non-empty validation set")
        logits_t = torch.cat([p[0] for p in pieces])
        targets_t = torch.cat([p[1] for p in pieces])
        if logits_t.shape != targets_t.shape:
            raise ValueError(f"val targets {tuple(targets_t.shape)} do not match the logits "
                             f"{tuple(logits_t.shape)}; give one target per model class")
        if torch.isnan(targets_t).all():
            raise ValueError("val has no known (non-NaN) targets; model selection needs labelled "
                             "validation images")
        loss = float(masked_bce_with_logits(logits_t, targets_t))
        probs = 1.0 / (1.0 + np.exp(-logits_t.numpy().astype(np.float64)))
        aucs = metrics.auc_per_class(targets_t.numpy(), probs)
        mean = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        record = {"val_loss": _json_float(loss), "val_auc": [_json_float(a) for a in aucs],
                  "val_mean_auc": _json_float(mean)}
        summary = f"val loss {loss:.4f}, val mean AUC {'n/a' if not math.isfinite(mean) else f'{mean:.4f}'}"
        if math.isfinite(mean):
            return Evaluation(record, mean, "val_mean_auc", summary)
        return Evaluation(record, -loss, "-val_loss", summary,
                          warning="validation mean AUC is undefined (every class has a single label in val); "
                                  "selecting the model on -val_loss instead")


@dataclass
class LossEvaluator:
    """The objective's own loss on the validation set; selection on ``-val_loss``.

    ``val_loss`` is the mean of ``objective.loss(model, batch)[0]`` over the
    batches, each weighted by its number of items (the first dimension of its
    first required key), so a short last batch counts for what it holds.

    Parameters
    ----------
    required_keys:
        The item keys the objective's loss reads (default ``("image", "target")``).
    """

    required_keys: tuple[str, ...] = ("image", "target")

    def __post_init__(self) -> None:
        self.required_keys = tuple(self.required_keys)
        if not self.required_keys:
            raise ValueError("LossEvaluator needs at least one required key (the first one counts the items)")

    def step(self, model: nn.Module, objective: Any, batch: dict[str, Any]) -> tuple[float, int]:
        loss, _ = objective.loss(model, batch)
        n = _batch_len(batch, self.required_keys)
        return float(loss.detach().double()) * n, n

    def finish(self, pieces: list[Any]) -> Evaluation:
        if not pieces:
            raise ValueError("val gave no batches; pass a non-empty validation set")
        total = sum(p[0] for p in pieces)
        n = sum(p[1] for p in pieces)
        loss = total / n if n else float("nan")
        if not math.isfinite(loss):
            raise FloatingPointError(f"the validation loss is {loss}; lower lr or check the inputs for NaN/inf")
        return Evaluation({"val_loss": loss}, -loss, "-val_loss", f"val loss {loss:.4f}")
