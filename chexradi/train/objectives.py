"""What :func:`~chexradi.train.fit` minimises: the :class:`Objective` protocol and the default BCE.

See the :mod:`chexradi.train` docstring for the full protocol (optional methods,
what a batch holds).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional, Protocol, Union, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: ``class_weights="balanced"`` clips ``neg / pos`` to this range: a class is never
#: down-weighted below 1, and a class with (almost) no positives gets at most 100.
BALANCED_CLIP = (1.0, 100.0)


@runtime_checkable
class Objective(Protocol):
    """What :func:`fit` trains: see :mod:`chexradi.train` for the optional methods."""

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Scalar training loss of ``batch`` and the ``(B, K)`` logits it used."""
        ...

    def logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        """``(B, K)`` logits for evaluation."""
        ...


def masked_bce_with_logits(logits: Tensor, targets: Tensor, *, pos_weight: Optional[Tensor] = None) -> Tensor:
    """Binary cross-entropy with logits, averaged over the known (non-NaN) targets.

    ``loss = sum_{n,k known} l_nk / #known`` with
    ``l_nk = -(w_k y_nk log s(x_nk) + (1 - y_nk) log(1 - s(x_nk)))``, ``s`` the
    sigmoid and ``w_k`` the ``pos_weight`` of class ``k`` (1 when None). Unknown
    targets contribute neither to the sum nor to the count; with no known target
    the loss is 0 (and so is its gradient).

    Raises
    ------
    ValueError
        ``logits`` and ``targets`` differ in shape, or ``pos_weight`` is not ``(K,)``.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(targets.shape)} must have the same "
                         f"shape (B, K); check that the targets have one column per model class")
    logits = logits.float()
    targets = targets.to(device=logits.device, dtype=torch.float32)
    known = ~torch.isnan(targets)
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
        if pos_weight.shape != logits.shape[-1:]:
            raise ValueError(f"pos_weight has shape {tuple(pos_weight.shape)}, "
                             f"expected ({logits.shape[-1]},)")
    per = F.binary_cross_entropy_with_logits(logits, torch.where(known, targets, torch.zeros_like(targets)),
                                             pos_weight=pos_weight, reduction="none")
    return (per * known).sum() / known.sum().clamp(min=1)


def balanced_pos_weight(targets: Any, *, clip: tuple[float, float] = BALANCED_CLIP) -> Tensor:
    """``class_weights="balanced"``: ``pos_weight_k = neg_k / pos_k`` clipped to ``clip``.

    ``pos_k`` / ``neg_k`` count the targets equal to 1 / 0 in column ``k`` (NaN =
    unknown is not counted). A class without positives gets ``clip[1]``.

    Returns
    -------
    torch.Tensor
        ``(K,)`` float32.

    Raises
    ------
    ValueError
        ``targets`` is not 2-D, or ``clip`` is not ``0 < low <= high``.
    """
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"targets must be an (N, K) matrix to compute balanced class weights, "
                         f"got shape {t.shape}")
    low, high = (float(c) for c in clip)
    if not 0 < low <= high:
        raise ValueError(f"clip must satisfy 0 < low <= high, got {clip!r}")
    pos = np.sum(t == 1, axis=0).astype(np.float64)
    neg = np.sum(t == 0, axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pos > 0, neg / np.maximum(pos, 1), high)
    return torch.as_tensor(np.clip(ratio, low, high), dtype=torch.float32)


class BCEObjective:
    """Multi-label binary cross-entropy over the model's logits, NaN targets masked out.

    Parameters
    ----------
    pos_weight:
        Optional ``(K,)`` positive-class weights (:func:`balanced_pos_weight`, or
        your own); see :func:`masked_bce_with_logits`.

    Raises
    ------
    ValueError
        ``pos_weight`` is not a 1-D sequence of positive finite numbers.
    """

    def __init__(self, pos_weight: Optional[Any] = None) -> None:
        self.pos_weight = None if pos_weight is None else _check_weights(pos_weight, "pos_weight")

    def logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model(batch["image"])

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        logits = self.logits(model, batch)
        return masked_bce_with_logits(logits, batch["target"], pos_weight=self.pos_weight), logits

    def state_dict(self) -> dict[str, Any]:
        return {"pos_weight": None if self.pos_weight is None else self.pos_weight.detach().cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pw = state.get("pos_weight")
        self.pos_weight = None if pw is None else _check_weights(pw, "pos_weight")

    def __repr__(self) -> str:
        pw = None if self.pos_weight is None else [round(float(w), 4) for w in self.pos_weight]
        return f"BCEObjective(pos_weight={pw})"


def _check_weights(weights: Any, name: str, num_classes: Optional[int] = None) -> Tensor:
    try:
        w = torch.as_tensor(np.asarray(weights.detach().cpu() if isinstance(weights, Tensor) else weights,
                                       dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of K positive numbers: {exc}") from exc
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a 1-D sequence of K positive numbers, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"{name} must hold positive finite numbers, got {w.tolist()}")
    if num_classes is not None and w.numel() != num_classes:
        raise ValueError(f"{name} has {w.numel()} values but the model has {num_classes} classes; "
                         f"give one weight per class")
    return w


def _class_weights_setting(class_weights: Any, num_classes: Optional[int]) -> Union[None, str, list[float]]:
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"unknown class_weights {class_weights!r}; use None, 'balanced' "
                             f"(neg/pos per class from the training targets) or K positive numbers")
        return "balanced"
    return [float(w) for w in _check_weights(class_weights, "class_weights", num_classes)]


def class_pos_weight(class_weights: Any, train: Any, num_classes: Optional[int] = None) -> Optional[Tensor]:
    """The ``(K,)`` positive-class weights a ``class_weights`` setting asks for, or None.

    ``class_weights`` is None, ``"balanced"`` (:func:`balanced_pos_weight` of ``train``'s
    targets: its ``targets`` attribute, else one pass over it) or K positive numbers.

    Raises
    ------
    ValueError
        An unknown setting, weights that are not positive, or a count other than ``num_classes``.
    """
    setting = _class_weights_setting(class_weights, num_classes)
    if setting is None:
        return None
    if setting == "balanced":
        from .data import _training_targets

        pos_weight = balanced_pos_weight(_training_targets(train))
        if num_classes is not None and pos_weight.numel() != num_classes:
            raise ValueError(f"the training targets have {pos_weight.numel()} columns but the model has "
                             f"{num_classes} classes")
        logging.getLogger("chexradi.train").info("class_weights='balanced': pos_weight %s",
                                                 [round(float(w), 3) for w in pos_weight])
        return pos_weight
    return torch.tensor(setting, dtype=torch.float32)
