"""Guidance: per-image vectors (radiomics first, report text later) -> what the model trains on.

The guidance stage is an interface: a guidance source gives one float vector per
image (``(N, D)``, NaN where a value or a whole row is missing); this module
knows nothing about where the vectors come from. It provides

- :class:`Standardizer` — per-column z-scores fitted on the training split,
  non-finite values counted and set to the mean, constant columns reported;
- :class:`GuidanceDataset` — adds ``item[key]`` (``(D,)`` float32) and
  ``item[key + "_valid"]`` (bool) to the items of an image dataset;
- :class:`RadiomicsGuidance` — an objective for :func:`chexradi.train.fit`:
  image head + fused (image ‖ guidance) head + an alignment term (NT-Xent or MSE)
  between the image embedding and the guidance embedding;
- :func:`nt_xent` — the SimCLR contrastive loss over paired embeddings.

Only torch and numpy are imported; the class is named after its first source
but works for any fixed-length vector.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from .train.objectives import _check_weights, masked_bce_with_logits
from .names import ALIGNMENTS

logger = logging.getLogger("chexradi.guidance")

__all__ = ["Standardizer", "GuidanceDataset", "RadiomicsGuidance", "nt_xent", "ALIGNMENTS", "MODES"]

#: Values of ``RadiomicsGuidance(alignment=...)``.
#: Values of ``RadiomicsGuidance.mode``: which logits :meth:`RadiomicsGuidance.logits` returns.
MODES = ("fused", "image")


# --------------------------------------------------------------------------- standardisation

def _as_matrix(x: Any, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an (N, D) array of numbers: {exc}") from exc
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (N, D) array (one row per image, one column per feature), "
                         f"got shape {a.shape}; reshape a single vector to (1, D)")
    return a


class Standardizer:
    """Per-column z-scores ``(x - mean) / std``, fitted on the training split's vectors.

    ``mean_j`` and ``std_j`` (population, ``ddof=0``) are computed over the finite
    values of column ``j`` only. :meth:`transform` maps a non-finite value (NaN,
    inf) to 0, i.e. to the column mean, and counts it. A *constant* column (std
    0, or no finite value in the training split) carries no information: it is
    kept, so ``D`` never depends on the data, but always set to 0, and reported
    in :attr:`constant` (its column index) and in the log.

    Attributes
    ----------
    mean, std:
        ``(D,)`` float64 after :meth:`fit` (std of a constant column is stored as 1).
    constant:
        ``(D,)`` bool, the constant columns.
    n_nonfinite:
        Number of non-finite values replaced by the last :meth:`transform` call.
    n_nonfinite_per_column:
        ``(D,)`` int64, the same per column.
    """

    def __init__(self) -> None:
        self.mean: Optional[np.ndarray] = None
        self.std: Optional[np.ndarray] = None
        self.constant: Optional[np.ndarray] = None
        self.n_nonfinite = 0
        self.n_nonfinite_per_column: Optional[np.ndarray] = None

    @property
    def dim(self) -> int:
        """``D``, the number of columns it was fitted on."""
        self._check_fitted()
        assert self.mean is not None
        return int(self.mean.shape[0])

    def fit(self, x: Any) -> "Standardizer":
        """Fit mean and std per column on ``x`` ``(N, D)`` (N >= 1); returns self.

        Raises
        ------
        ValueError
            ``x`` is not a 2-D numeric array or has no rows / columns.
        """
        a = _as_matrix(x, "x")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"x must have at least one row and one column to fit on, got shape {a.shape}")
        finite = np.isfinite(a)
        count = finite.sum(axis=0)
        filled = np.where(finite, a, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), 0.0)
            var = np.where(finite, (a - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
        std = np.sqrt(var)
        constant = (count == 0) | ~(std > 0)
        self.mean = mean
        self.std = np.where(constant, 1.0, std)
        self.constant = constant
        if constant.any():
            logger.info("Standardizer: %d of %d columns are constant or have no finite value in the "
                        "training vectors and are set to 0: %s", int(constant.sum()), a.shape[1],
                        np.flatnonzero(constant).tolist())
        return self

    def transform(self, x: Any) -> np.ndarray:
        """``(x - mean) / std`` as ``(N, D)`` float32; non-finite values and constant columns -> 0.

        Sets :attr:`n_nonfinite` and :attr:`n_nonfinite_per_column` for this call.

        Raises
        ------
        ValueError
            Not fitted, or ``x`` is not ``(N, D)`` with the fitted ``D``.
        """
        self._check_fitted()
        assert self.mean is not None and self.std is not None and self.constant is not None
        a = _as_matrix(x, "x")
        if a.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x has {a.shape[1]} columns but the Standardizer was fitted on "
                             f"{self.mean.shape[0]}; pass vectors of the same features in the same order")
        finite = np.isfinite(a)
        self.n_nonfinite_per_column = (~finite).sum(axis=0).astype(np.int64)
        self.n_nonfinite = int(self.n_nonfinite_per_column.sum())
        with np.errstate(invalid="ignore", over="ignore"):
            z = (np.where(finite, a, self.mean) - self.mean) / self.std
        z[:, self.constant] = 0.0
        z[~np.isfinite(z)] = 0.0  # overflow of huge finite values is not expected; keep the output finite
        return z.astype(np.float32)

    def fit_transform(self, x: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same ``x``."""
        return self.fit(x).transform(x)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: ``{"mean": [...], "std": [...], "constant": [...]}``."""
        self._check_fitted()
        assert self.mean is not None and self.std is not None and self.constant is not None
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "constant": [bool(v) for v in self.constant]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Standardizer":
        """A fitted Standardizer from :meth:`state_dict`'s output.

        Raises
        ------
        ValueError
            Keys missing, lengths that differ, non-finite means, or std <= 0.
        """
        if not isinstance(state, Mapping) or not {"mean", "std", "constant"} <= set(state):
            raise ValueError("state must be a dict with 'mean', 'std' and 'constant' "
                             "(from Standardizer.state_dict())")
        mean = np.asarray(state["mean"], dtype=np.float64)
        std = np.asarray(state["std"], dtype=np.float64)
        constant = np.asarray(state["constant"], dtype=bool)
        if mean.ndim != 1 or mean.shape != std.shape or mean.shape != constant.shape or mean.size == 0:
            raise ValueError(f"state 'mean', 'std' and 'constant' must be lists of one equal length >= 1, "
                             f"got {mean.shape}, {std.shape}, {constant.shape}")
        if not np.isfinite(mean).all() or not np.isfinite(std).all() or (std <= 0).any():
            raise ValueError("state holds non-finite means or a std that is not positive; "
                             "it was not written by Standardizer.state_dict()")
        s = cls()
        s.mean, s.std, s.constant = mean, std, constant
        return s

    def _check_fitted(self) -> None:
        if self.mean is None:
            raise ValueError("the Standardizer is not fitted; call fit(train_vectors) first "
                             "(or Standardizer.from_state(state))")

    def __repr__(self) -> str:
        if self.mean is None:
            return "Standardizer(unfitted)"
        assert self.constant is not None
        return f"Standardizer(dim={self.dim}, constant={int(self.constant.sum())})"


# --------------------------------------------------------------------------- dataset

class GuidanceDataset(Dataset):
    """An image dataset whose items also carry a guidance vector.

    Item ``i`` of ``base`` (a dict, or an ``(image, target)`` tuple, turned into
    ``{"image", "target", "index"}``) gets ``item[key] = vectors[j]`` (``(D,)``
    float32) and ``item[key + "_valid"]`` (a bool scalar tensor), where ``j`` is
    the item's ``"index"`` when it has one and ``i`` otherwise. Every item has
    the ``_valid`` key (so batches collate); it is False for a missing row: all
    values non-finite (e.g. a case whose mask was empty) or ``valid[j]`` False,
    and then the vector is all zeros. Remaining non-finite values in a valid row
    become 0 (standardise first so that 0 means "the mean").

    Parameters
    ----------
    base:
        A map-style dataset.
    vectors:
        ``(N, D)`` numbers, one row per ``index`` of ``base``.
    key:
        Item key of the vector.
    valid:
        Optional ``(N,)`` bools, combined (and) with the all-non-finite rule.
    standardizer:
        Optional fitted :class:`Standardizer`: ``vectors`` are raw and are
        transformed here (validity is decided on the raw rows).

    Raises
    ------
    ValueError
        ``vectors`` not 2-D, a ``valid`` of another length, a key clash, a
        standardizer of another ``D``, or (when items are read) an index outside
        the rows.
    """

    def __init__(self, base: Any, vectors: Any, *, key: str = "guidance", valid: Optional[Any] = None,
                 standardizer: Optional[Standardizer] = None) -> None:
        if not hasattr(base, "__getitem__"):
            raise ValueError(f"base must be a map-style dataset, got {type(base).__name__}")
        if not isinstance(key, str) or not key or key in ("image", "target", "index"):
            raise ValueError(f"key must be a non-empty string other than 'image', 'target', 'index'; got {key!r}")
        raw = _as_matrix(vectors, "vectors")
        ok = np.isfinite(raw).any(axis=1)
        if valid is not None:
            v = np.asarray(valid, dtype=bool).reshape(-1)
            if v.shape[0] != raw.shape[0]:
                raise ValueError(f"valid has {v.shape[0]} values but vectors has {raw.shape[0]} rows")
            ok &= v
        if standardizer is not None:
            vec = standardizer.transform(raw)
        else:
            vec = np.where(np.isfinite(raw), raw, 0.0).astype(np.float32)
        vec[~ok] = 0.0
        n = _dataset_length(base)
        if n is not None and n > raw.shape[0]:
            logger.warning("GuidanceDataset: base has %d items but vectors only %d rows; items whose index "
                           "is beyond the rows will fail", n, raw.shape[0])
        self.base = base
        self.key = key
        self.vectors = torch.from_numpy(np.ascontiguousarray(vec, dtype=np.float32))
        self.valid = torch.from_numpy(ok)
        if not ok.all():
            logger.info("GuidanceDataset: %d of %d guidance rows are missing (all non-finite or marked "
                        "invalid); their vectors are zeros and '%s_valid' is False", int((~ok).sum()), len(ok), key)

    @property
    def dim(self) -> int:
        """``D``."""
        return int(self.vectors.shape[1])

    @property
    def targets(self) -> Any:
        """The base dataset's targets when it has them (``class_weights="balanced"`` reads them)."""
        return getattr(self.base, "targets", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.base[i]
        if isinstance(item, Mapping):
            d = dict(item)
        elif isinstance(item, (tuple, list)) and len(item) in (1, 2):
            d = {"image": item[0], "index": int(i)}
            if len(item) == 2:
                d["target"] = item[1]
        else:
            raise ValueError(f"base item {i} must be a dict or an (image, target) tuple, got {type(item).__name__}")
        if self.key in d or self.key + "_valid" in d:
            raise ValueError(f"base item {i} already has a {self.key!r} key; pick another key")
        j = int(d.get("index", i))
        if not 0 <= j < self.vectors.shape[0]:
            raise ValueError(f"item {i} has index {j} but vectors has {self.vectors.shape[0]} rows; "
                             f"give one vector row per image of the base dataset")
        d[self.key] = self.vectors[j]
        d[self.key + "_valid"] = self.valid[j]
        return d


def _dataset_length(ds: Any) -> Optional[int]:
    try:
        return len(ds)
    except TypeError:
        return None


# --------------------------------------------------------------------------- losses

def nt_xent(z1: Tensor, z2: Tensor, *, temperature: float = 0.1, valid: Optional[Tensor] = None) -> Tensor:
    """NT-Xent (SimCLR) loss over ``B`` pairs ``(z1_i, z2_i)``.

    With ``u`` the ``2B`` rows of ``[z1; z2]`` scaled to unit length,
    ``s_ab = u_a . u_b / temperature`` and ``p(a)`` the partner of ``a`` (``i`` and
    ``B + i``)::

        loss = 1/(2B) * sum_a -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) )

    The positives of an anchor are its own pair; every other row of both views
    is a negative. The loss is symmetric in ``z1``, ``z2``. Rows where ``valid``
    is False are removed before anything is computed (neither anchors nor
    negatives); with no valid row the loss is 0 (with a zero gradient), and with
    one valid pair it is 0 (no negatives). Computed in float32.

    Parameters
    ----------
    z1, z2:
        ``(B, P)`` embeddings of the two views (image, guidance).
    temperature:
        Positive divisor of the cosine similarities.
    valid:
        Optional ``(B,)`` bools.

    Raises
    ------
    ValueError
        Shapes that differ or are not 2-D, a temperature <= 0, a bad ``valid``.
    """
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must both be (B, P), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    if valid is not None:
        valid = valid.to(device=z1.device).reshape(-1).bool()
        if valid.shape[0] != z1.shape[0]:
            raise ValueError(f"valid has {valid.shape[0]} values for {z1.shape[0]} pairs")
        if not bool(valid.all()):
            if not bool(valid.any()):
                return (z1.float().sum() + z2.float().sum()) * 0.0
            z1, z2 = z1[valid], z2[valid]
    b = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    s = (u @ u.t()) / float(temperature)
    s = s.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=s.device), float("-inf"))
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(s.device)
    return F.cross_entropy(s, partner)


def _masked_mse(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error over the valid rows (all columns); 0 with none."""
    per = ((pred.float() - target.float()) ** 2).mean(dim=1)
    w = valid.float()
    return (per * w).sum() / w.sum().clamp(min=1)


# --------------------------------------------------------------------------- the objective

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
        """``"fused"`` or ``"image"``: the logits :meth:`logits` returns."""
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

    def logits(self, model: nn.Module, batch: Mapping[str, Any], *, mode: Optional[str] = None) -> Tensor:
        """``(B, K)`` logits of ``mode`` (default :attr:`mode`).

        ``"image"`` is ``model(batch["image"])`` and needs no guidance vector;
        ``"fused"`` needs ``batch[key]``.

        Raises
        ------
        ValueError
            ``"fused"`` without guidance vectors in the batch (or without a fused head).
        """
        m = self._mode if mode is None else self._check_mode(mode)
        x = batch["image"]
        if m == "image":
            return model(x)
        emb = model.embed_features(model.forward_features(x))
        g, _ = self._vectors(batch, emb)
        return self._fused(emb, g)[0]

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Scalar loss and the logits it used (fused when ``fuse``, else image); see the class docstring."""
        emb = model.embed_features(model.forward_features(batch["image"]))
        g, valid = self._vectors(batch, emb)
        target = batch["target"]
        image_logits = model.forward_head(emb)
        bce_image = masked_bce_with_logits(image_logits, target, pos_weight=self.pos_weight)
        total = bce_image
        zero = bce_image.new_zeros(())
        bce_fused, fused_logits = zero, None
        r: Optional[Tensor] = None
        if self.fuse:
            fused_logits, r = self._fused(emb, g)
            bce_fused = masked_bce_with_logits(fused_logits, target, pos_weight=self.pos_weight)
            total = total + bce_fused
        align = zero
        if self.alignment == "ntxent":
            assert self.proj_image is not None and self.proj_guidance is not None
            if r is None:
                r = self.mlp(g)
            align = nt_xent(self.proj_image(emb), self.proj_guidance(r), temperature=self.temperature, valid=valid)
        elif self.alignment == "mse":
            assert self.predictor is not None
            align = _masked_mse(self.predictor(emb), g, valid)
        if self.alignment is not None:
            total = total + self.align_weight * align
        self.last_terms = {"bce_image": float(bce_image.detach()), "bce_fused": float(bce_fused.detach()),
                           "align": float(align.detach()), "loss": float(total.detach())}
        return total, (fused_logits if fused_logits is not None else image_logits)

    def extra_repr(self) -> str:
        return (f"C={self.num_features}, D={self.guidance_dim}, K={self.num_classes}, alignment={self.alignment!r}, "
                f"align_weight={self.align_weight}, fuse={self.fuse}, mode={self._mode!r}, key={self.key!r}")
