"""An image dataset whose items also carry a guidance vector (:class:`GuidanceDataset`)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .standardize import Standardizer, as_matrix

logger = logging.getLogger("chexradi.guidance")

__all__ = ["GuidanceDataset"]


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
        raw = as_matrix(vectors, "vectors")
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
