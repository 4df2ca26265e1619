"""Per-column z-scores of guidance vectors, fitted on the training split (:class:`Standardizer`)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
from torch import Tensor

logger = logging.getLogger("chexradi.guidance")

__all__ = ["Standardizer", "as_matrix"]


def as_matrix(x: Any, name: str) -> np.ndarray:
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
        a = as_matrix(x, "x")
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
        a = as_matrix(x, "x")
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
