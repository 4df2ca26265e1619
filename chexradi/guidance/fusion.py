"""Fusing a fixed-length guidance vector with the image embedding: :class:`RadiomicsGuidance`.

The vector's objective terms (a fused image + vector head and an alignment between the two
embeddings), usable alone as an objective for :func:`chexradi.train.fit` or as one source's
part of a :class:`~chexradi.guidance.objective.GuidedObjective`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..names import ALIGNMENTS
from ..train.objectives import _check_weights, masked_bce_with_logits
from .losses import masked_mse, nt_xent

__all__ = ["RadiomicsGuidance", "MODES"]

#: Values of ``RadiomicsGuidance.mode`` — which logits :meth:`RadiomicsGuidance.logits` returns.
MODES = ("fused", "image")


class RadiomicsGuidance(nn.Module):
    """Objective for :func:`chexradi.train.fit`: image head + fused head + embedding alignment.

    For a batch with images ``x`` and guidance vectors ``g`` (``batch[key]``,
    ``(B, D)``, standardised; ``batch[key + "_valid"]`` optional)::

        e   = model.embed_features(model.forward_features(x))    # (B, C) image embedding
        r   = mlp(g)                                              # (B, hidden) guidance embedding
        y_i = model.forward_head(e)                               # image-only logits, the model's own head
        y_f = fused(concat(e, r))                                 # fused logits, Linear(C + hidden, K)
        loss = BCE(y_i) + [fuse] BCE(y_f) + align_weight * align

    ``mlp`` is ``Linear(D, hidden) -> LayerNorm -> ReLU -> Dropout -> Linear(hidden,
    hidden) -> LayerNorm -> ReLU``. LayerNorm, not BatchNorm: it does not depend
    on the batch (the last training batch may hold a single image, and a
    validation image's logits do not depend on its neighbours).

    ``align`` is, for ``alignment="ntxent"``, :func:`nt_xent` between
    ``proj_img(e)`` and ``proj_rad(r)`` (two ``Linear -> ReLU -> Linear`` heads
    to ``proj_dim``), the pairs of one image being positives; for ``"mse"`` the
    mean squared error between ``Linear(C, D)(e)`` and ``g`` (the image embedding
    predicts the standardised vector); for None it is 0. Invalid rows (missing
    vectors) are left out of the alignment. They still pass through the fused
    head with their zero vector (= the training mean once standardised).

    Which logits are evaluated: :meth:`loss` returns the fused logits when
    ``fuse`` and the image logits otherwise; :meth:`logits` (what ``fit`` uses
    for validation loss and AUC, hence model selection) returns the logits of
    :attr:`mode`: ``"fused"`` (default when ``fuse``) or ``"image"`` (the
    model's own forward, usable without guidance vectors, e.g. on new images).
    Set ``objective.mode`` (or pass ``mode=`` to :meth:`logits`) to evaluate
    each head.

    Parameters
    ----------
    num_features:
        ``C``, the model's embedding size (``model.num_features``).
    guidance_dim:
        ``D``, the length of the guidance vectors.
    num_classes:
        ``K``.
    hidden, proj_dim:
        Width of the guidance MLP and of the NT-Xent projections.
    alignment:
        ``"ntxent"``, ``"mse"`` or None.
    align_weight, temperature:
        Weight of the alignment term; NT-Xent temperature.
    fuse:
        Train (and allow evaluating) the fused head.
    pos_weight:
        Optional ``(K,)`` positive-class weights for both BCE terms.
    key:
        Batch key of the vectors (``GuidanceDataset(key=...)``).
    dropout:
        Dropout in the guidance MLP.
    mode:
        ``"fused"`` / ``"image"``; default ``"fused"`` when ``fuse`` else ``"image"``.

    Attributes
    ----------
    last_terms:
        The detached float terms of the last :meth:`loss` call: ``bce_image``,
        ``bce_fused`` (0 without ``fuse``), ``align`` (unweighted; 0 without
        alignment) and ``loss``.

    Raises
    ------
    ValueError
        Non-positive sizes, an unknown ``alignment`` / ``mode``, ``mode="fused"``
        without ``fuse``, negative ``align_weight``, ``temperature <= 0``, bad
        ``pos_weight``.
    """

    def __init__(self, num_features: int, guidance_dim: int, num_classes: int, *, hidden: int = 256,
                 proj_dim: int = 128, alignment: Optional[str] = "ntxent", align_weight: float = 0.5,
                 temperature: float = 0.1, fuse: bool = True, pos_weight: Optional[Any] = None,
                 key: str = "guidance", dropout: float = 0.1, mode: Optional[str] = None) -> None:
        super().__init__()
        for name, v in (("num_features", num_features), ("guidance_dim", guidance_dim),
                        ("num_classes", num_classes), ("hidden", hidden), ("proj_dim", proj_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        if not float(align_weight) >= 0:
            raise ValueError(f"align_weight must be >= 0, got {align_weight!r}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.num_features, self.guidance_dim, self.num_classes = int(num_features), int(guidance_dim), int(num_classes)
        self.alignment, self.align_weight, self.temperature = alignment, float(align_weight), float(temperature)
        self.fuse, self.key = bool(fuse), key
        self.mlp = nn.Sequential(
            nn.Linear(self.guidance_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True))
        self.fused_head = nn.Linear(self.num_features + hidden, self.num_classes) if self.fuse else None
        self.proj_image: Optional[nn.Module] = None
        self.proj_guidance: Optional[nn.Module] = None
        self.predictor: Optional[nn.Module] = None
        if alignment == "ntxent":
            self.proj_image = nn.Sequential(nn.Linear(self.num_features, proj_dim), nn.ReLU(inplace=True),
                                            nn.Linear(proj_dim, proj_dim))
            self.proj_guidance = nn.Sequential(nn.Linear(hidden, proj_dim), nn.ReLU(inplace=True),
                                               nn.Linear(proj_dim, proj_dim))
        elif alignment == "mse":
            self.predictor = nn.Linear(self.num_features, self.guidance_dim)
        pw = None if pos_weight is None else _check_weights(pos_weight, "pos_weight", self.num_classes)
        self.register_buffer("pos_weight", pw)
        self._mode = "image"
        self.mode = mode if mode is not None else ("fused" if self.fuse else "image")
        self.last_terms: dict[str, float] = {}

    @property
    def mode(self) -> str:
        """``"fused"`` or ``"image"`` — the logits :meth:`logits` returns."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self._mode = self._check_mode(value)

    def _check_mode(self, value: Any) -> str:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}")
        if value == "fused" and not self.fuse:
            raise ValueError("mode='fused' needs fuse=True (this objective has no fused head); use mode='image'")
        return str(value)

    def _vectors(self, batch: Mapping[str, Any], like: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, D)`` finite float32 vectors and ``(B,)`` validity from the batch."""
        if self.key not in batch:
            raise ValueError(f"the batch has no {self.key!r} guidance vectors (keys: {sorted(map(str, batch))}); "
                             f"wrap the dataset in chexradi.guidance.GuidanceDataset(..., key={self.key!r}), "
                             f"or evaluate the image head with mode='image'")
        g = torch.as_tensor(batch[self.key]).to(device=like.device, dtype=torch.float32)
        b = like.shape[0]
        if g.dim() != 2 or g.shape[0] != b or g.shape[1] != self.guidance_dim:
            raise ValueError(f"batch[{self.key!r}] has shape {tuple(g.shape)}, expected ({b}, {self.guidance_dim})")
        finite = torch.isfinite(g)
        valid = finite.any(dim=1)
        vk = self.key + "_valid"
        if vk in batch:
            valid = valid & torch.as_tensor(batch[vk]).to(device=like.device).reshape(-1).bool()
        g = torch.where(finite & valid[:, None], g, torch.zeros_like(g))
        return g, valid

    def _fused(self, emb: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
        r = self.mlp(g)
        assert self.fused_head is not None
        return self.fused_head(torch.cat([emb, r.to(emb.dtype)], dim=1)), r

    # -- as one source's part of a GuidedObjective ----------------------------------------------
    @property
    def heads(self) -> tuple[str, ...]:
        """The heads this module adds to the image head — ``("fused",)`` with ``fuse``, else none."""
        return ("fused",) if self.fuse else ()

    def head_logits(self, head: str, features: Any, batch: Mapping[str, Any]) -> Tensor:
        """``(B, K)`` logits of one of :attr:`heads` from the image embedding (``features.emb``, an
        :class:`~chexradi.guidance.objective.ImageFeatures`) and the batch's vectors."""
        if head not in self.heads:
            raise ValueError(f"this guidance has no {head!r} head (heads: {', '.join(self.heads) or 'none'})")
        emb = features.emb
        g, _ = self._vectors(batch, emb)
        return self._fused(emb, g)[0]

    def terms(self, features: Any, batch: Mapping[str, Any], target: Tensor
              ) -> tuple[list[Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """This module's training terms for a batch's image embedding (``features.emb``): the tensors added to
        the loss, in order (``bce_fused`` with ``fuse``, then ``align_weight * align`` with an alignment), the
        logits of its heads, and the named (unweighted) terms."""
        emb = features.emb
        g, valid = self._vectors(batch, emb)
        zero = emb.new_zeros((), dtype=torch.float32)
        added: list[Tensor] = []
        heads: dict[str, Tensor] = {}
        bce_fused = zero
        r: Optional[Tensor] = None
        if self.fuse:
            fused_logits, r = self._fused(emb, g)
            bce_fused = masked_bce_with_logits(fused_logits, target, pos_weight=self.pos_weight)
            added.append(bce_fused)
            heads["fused"] = fused_logits
        align = zero
        if self.alignment == "ntxent":
            assert self.proj_image is not None and self.proj_guidance is not None
            if r is None:
                r = self.mlp(g)
            align = nt_xent(self.proj_image(emb), self.proj_guidance(r), temperature=self.temperature, valid=valid)
        elif self.alignment == "mse":
            assert self.predictor is not None
            align = masked_mse(self.predictor(emb), g, valid)
        if self.alignment is not None:
            added.append(self.align_weight * align)
        return added, heads, {"bce_fused": bce_fused, "align": align}

    # -- as an objective of its own -----------------------------------------------------------------
    def logits(self, model: nn.Module, batch: Mapping[str, Any], *, mode: Optional[str] = None,
               head: Optional[str] = None) -> Tensor:
        """``(B, K)`` logits of ``head`` (or ``mode``; default :attr:`mode`).

        ``"image"`` is ``model(batch["image"])`` and needs no guidance vector;
        ``"fused"`` needs ``batch[key]``.

        Raises
        ------
        ValueError
            ``"fused"`` without guidance vectors in the batch (or without a fused head).
        """
        chosen = head if head is not None else mode
        m = self._mode if chosen is None else self._check_mode(chosen)
        x = batch["image"]
        if m == "image":
            return model(x)
        from .objective import image_features

        return self.head_logits(m, image_features(model, x), batch)

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Scalar loss and the logits it used (fused when ``fuse``, else image); see the class docstring."""
        from .objective import IMAGE_HEAD, guided_loss

        total, logits, named = guided_loss(model, batch, {"": self}, pos_weight=self.pos_weight)
        self.last_terms = named
        return total, logits.get("fused", logits[IMAGE_HEAD])

    def extra_repr(self) -> str:
        return (f"C={self.num_features}, D={self.guidance_dim}, K={self.num_classes}, alignment={self.alignment!r}, "
                f"align_weight={self.align_weight}, fuse={self.fuse}, mode={self._mode!r}, key={self.key!r}")
