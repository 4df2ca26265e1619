r"""Neighbouring Gray Tone Difference Matrix (NGTDM) features, PyRadiomics' ``ngtdm`` class.

For each ROI voxel of gray level ``i``, :math:`\bar A` is the mean gray level of
its ROI neighbours (bidirectional angles at ``distances``, default ``[1]``;
in-plane only with ``force2D``). Per gray level, :math:`n_i` counts the voxels
and :math:`s_i = \sum |i - \bar A|`; a voxel with no ROI neighbour counts in
:math:`n_i` with a difference of 0 (PyRadiomics' C code does this, so
:math:`N_{v,p} = N_p`). Gray levels with :math:`n_i = 0` are deleted. Let

- :math:`N_{v,p} = \sum_i n_i`, :math:`p_i = n_i / N_{v,p}`,
- :math:`N_{g,p}` the number of gray levels with :math:`p_i \ne 0`,
- ``i`` and ``j`` run over the gray levels present (their values, not their ranks).

Each feature's formula, with its special cases, is in its function's docstring.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..kernels.ngtdm import ngtdm_matrix
from .base import ROI, select_features

__all__ = ["CLASS_NAME", "FEATURES", "compute", "matrix"]

CLASS_NAME = "ngtdm"


def matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n_i, s_i, ivector)`` for the gray levels present (rows with ``n_i == 0`` deleted)."""
    distances = tuple(int(d) for d in np.atleast_1d(roi.settings.get("distances", [1])))
    key = ("ngtdm", distances)
    if key not in roi._cache:
        n, s = ngtdm_matrix(roi.binned, roi.mask, distances=distances,
                            force2D_dimension=roi.plane_axis, neighbours=roi.neighbourhood(distances))
        keep = n != 0
        ivector = np.arange(1, n.shape[0] + 1, dtype=np.float64)[keep]
        roi._cache[key] = (n[keep], s[keep], ivector)
    return roi._cache[key]


class _Coefficients:
    def __init__(self, roi: ROI) -> None:
        n, s, ivector = matrix(roi)
        self.Nvp = n.sum()
        self.p = n / self.Nvp
        self.s = s
        self.i = ivector
        self.Ngp = int(np.count_nonzero(n))


def _coarseness(c: _Coefficients) -> float:
    r"""Coarseness: :math:`1 / \sum_i p_i s_i`; :math:`10^6` when the sum is 0 (homogeneous ROI)."""
    total = np.sum(c.p * c.s)
    return 1e6 if total == 0 else 1.0 / total


def _contrast(c: _Coefficients) -> float:
    r"""Contrast: :math:`\frac{1}{N_{g,p}(N_{g,p}-1)}\sum_{i,j} p_i p_j (i-j)^2 \cdot \frac{1}{N_{v,p}}\sum_i s_i`;
    0 when :math:`N_{g,p} = 1`."""
    div = c.Ngp * (c.Ngp - 1)
    if div == 0:
        return 0.0
    d2 = (c.i[:, None] - c.i[None, :]) ** 2
    return np.sum(c.p[:, None] * c.p[None, :] * d2) * np.sum(c.s) / c.Nvp / div


def _busyness(c: _Coefficients) -> float:
    r"""Busyness: :math:`\sum_i p_i s_i \,/\, \sum_{i,j} |i p_i - j p_j|`; 0 when the denominator is 0."""
    ip = c.i * c.p
    denom = np.sum(np.abs(ip[:, None] - ip[None, :]))
    if denom == 0:
        return 0.0
    return np.sum(c.p * c.s) / denom


def _complexity(c: _Coefficients) -> float:
    r"""Complexity: :math:`\frac{1}{N_{v,p}}\sum_{i,j} |i-j| \frac{p_i s_i + p_j s_j}{p_i + p_j}`."""
    ps = c.p * c.s
    num = ps[:, None] + ps[None, :]
    den = c.p[:, None] + c.p[None, :]
    return np.sum(np.abs(c.i[:, None] - c.i[None, :]) * num / den) / c.Nvp


def _strength(c: _Coefficients) -> float:
    r"""Strength: :math:`\sum_{i,j} (p_i + p_j)(i-j)^2 \,/\, \sum_i s_i`; 0 when :math:`\sum_i s_i = 0`."""
    total_s = np.sum(c.s)
    if total_s == 0:
        return 0.0
    return np.sum((c.p[:, None] + c.p[None, :]) * (c.i[:, None] - c.i[None, :]) ** 2) / total_s


_FUNCS: dict[str, Callable[[_Coefficients], float]] = {
    "Coarseness": _coarseness,
    "Contrast": _contrast,
    "Busyness": _busyness,
    "Complexity": _complexity,
    "Strength": _strength,
}

#: Feature name -> deprecated? (NGTDM has no deprecated feature.)
FEATURES: dict[str, bool] = {name: False for name in _FUNCS}


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """NGTDM features ``names`` of ``roi`` (bare names -> float).

    Raises
    ------
    ValueError
        for an unknown feature name, or an ROI whose bounding box admits no
        neighbour (PyRadiomics fails there too).
    """
    wanted = select_features("NGTDM", FEATURES, _FUNCS, names)
    if not wanted:
        return {}
    c = _Coefficients(roi)
    return {n: float(_FUNCS[n](c)) for n in wanted}
