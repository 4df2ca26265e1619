r"""Gray Level Dependence Matrix (GLDM) features, PyRadiomics' ``gldm`` class.

A neighbour (bidirectional angles at ``distances``, default ``[1]``; in-plane
only with ``force2D``) of a voxel with gray level ``i`` is *dependent* when it
is in the ROI and its gray level ``k`` satisfies :math:`|i-k| \le \alpha`
(``gldm_a``, default 0). ``P(i, j)`` counts voxels of gray level ``i`` with
``j - 1`` dependent neighbours (PyRadiomics' dependence sizes start at 1). Rows
of absent gray levels and columns of absent dependence sizes are deleted. Let

- :math:`N_z = \sum_{i,j} P(i,j)` (equals the number of ROI voxels; 1 if 0),
- :math:`p(i,j) = P(i,j) / N_z`,
- :math:`p_d(j) = \sum_i P(i,j)`, :math:`p_g(i) = \sum_j P(i,j)`.

``GrayLevelNonUniformityNormalized`` and ``DependencePercentage`` are
deprecated in PyRadiomics and *no value is calculated* for them there (the
feature is absent from its output even when enabled); :func:`compute` does the
same: it leaves them out of the returned dict.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..kernels.gldm import gldm_matrix
from .base import ROI, select_features

__all__ = ["CLASS_NAME", "FEATURES", "compute", "matrix"]

CLASS_NAME = "gldm"

_EPS = np.spacing(1)


def _settings(roi: ROI) -> tuple[tuple[int, ...], float]:
    distances = tuple(int(d) for d in np.atleast_1d(roi.settings.get("distances", [1])))
    alpha = roi.settings.get("gldm_a", 0)
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"gldm_a must be a number, got {alpha!r}; e.g. gldm_a=0.") from None
    return distances, alpha


def matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, ivector, jvector)``: the GLDM with empty rows and columns deleted, gray levels and dependence sizes."""
    distances, alpha = _settings(roi)
    key = ("gldm", distances, alpha)
    if key not in roi._cache:
        P = gldm_matrix(roi.binned, roi.mask, distances=distances, alpha=alpha,
                        force2D_dimension=roi.plane_axis)
        # Row sums count the voxels of each level: empty rows are exactly the absent levels.
        present = np.flatnonzero(P.sum(1))
        P = P[present]
        keep = P.sum(0) != 0
        jvector = np.arange(1, P.shape[1] + 1, dtype=np.float64)[keep]
        roi._cache[key] = (P[:, keep], (present + 1).astype(np.float64), jvector)
    return roi._cache[key]


class _Coefficients:
    def __init__(self, roi: ROI) -> None:
        P, ivector, jvector = matrix(roi)
        self.P = P
        self.i = ivector
        self.j = jvector
        self.pd = P.sum(0)
        self.pg = P.sum(1)
        nz = self.pd.sum()
        self.Nz = nz if nz != 0 else 1.0


def _sde(c: _Coefficients) -> float:
    r"""Small Dependence Emphasis: :math:`\sum_j p_d(j) / j^2 / N_z`."""
    return np.sum(c.pd / c.j**2) / c.Nz


def _lde(c: _Coefficients) -> float:
    r"""Large Dependence Emphasis: :math:`\sum_j p_d(j)\,j^2 / N_z`."""
    return np.sum(c.pd * c.j**2) / c.Nz


def _gln(c: _Coefficients) -> float:
    r"""Gray Level Non-Uniformity: :math:`\sum_i p_g(i)^2 / N_z`."""
    return np.sum(c.pg**2) / c.Nz


def _dn(c: _Coefficients) -> float:
    r"""Dependence Non-Uniformity: :math:`\sum_j p_d(j)^2 / N_z`."""
    return np.sum(c.pd**2) / c.Nz


def _dnn(c: _Coefficients) -> float:
    r"""Dependence Non-Uniformity Normalized: :math:`\sum_j p_d(j)^2 / N_z^2`."""
    return np.sum(c.pd**2) / c.Nz**2


def _glv(c: _Coefficients) -> float:
    r"""Gray Level Variance: :math:`\sum_i \frac{p_g(i)}{N_z}(i-\mu)^2`, :math:`\mu = \sum_i \frac{p_g(i)}{N_z} i`."""
    pg = c.pg / c.Nz
    mu = np.sum(pg * c.i)
    return np.sum(pg * (c.i - mu) ** 2)


def _dv(c: _Coefficients) -> float:
    r"""Dependence Variance: :math:`\sum_j \frac{p_d(j)}{N_z}(j-\mu)^2`, :math:`\mu = \sum_j \frac{p_d(j)}{N_z} j`."""
    pd = c.pd / c.Nz
    mu = np.sum(pd * c.j)
    return np.sum(pd * (c.j - mu) ** 2)


def _de(c: _Coefficients) -> float:
    r"""Dependence Entropy: :math:`-\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`, :math:`\epsilon` = ``numpy.spacing(1)``."""
    p = c.P / c.Nz
    return -np.sum(p * np.log2(p + _EPS))


def _lgle(c: _Coefficients) -> float:
    r"""Low Gray Level Emphasis: :math:`\sum_i p_g(i) / i^2 / N_z`."""
    return np.sum(c.pg / c.i**2) / c.Nz


def _hgle(c: _Coefficients) -> float:
    r"""High Gray Level Emphasis: :math:`\sum_i p_g(i)\,i^2 / N_z`."""
    return np.sum(c.pg * c.i**2) / c.Nz


def _sdlgle(c: _Coefficients) -> float:
    r"""Small Dependence Low Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)}{i^2 j^2} / N_z`."""
    return np.sum(c.P / (c.i[:, None] ** 2 * c.j[None, :] ** 2)) / c.Nz


def _sdhgle(c: _Coefficients) -> float:
    r"""Small Dependence High Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)\,i^2}{j^2} / N_z`."""
    return np.sum(c.P * c.i[:, None] ** 2 / c.j[None, :] ** 2) / c.Nz


def _ldlgle(c: _Coefficients) -> float:
    r"""Large Dependence Low Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)\,j^2}{i^2} / N_z`."""
    return np.sum(c.P * c.j[None, :] ** 2 / c.i[:, None] ** 2) / c.Nz


def _ldhgle(c: _Coefficients) -> float:
    r"""Large Dependence High Gray Level Emphasis: :math:`\sum_{i,j} P(i,j)\,i^2 j^2 / N_z`."""
    return np.sum(c.P * c.j[None, :] ** 2 * c.i[:, None] ** 2) / c.Nz


_FUNCS: dict[str, Callable[[_Coefficients], float]] = {
    "SmallDependenceEmphasis": _sde,
    "LargeDependenceEmphasis": _lde,
    "GrayLevelNonUniformity": _gln,
    "DependenceNonUniformity": _dn,
    "DependenceNonUniformityNormalized": _dnn,
    "GrayLevelVariance": _glv,
    "DependenceVariance": _dv,
    "DependenceEntropy": _de,
    "LowGrayLevelEmphasis": _lgle,
    "HighGrayLevelEmphasis": _hgle,
    "SmallDependenceLowGrayLevelEmphasis": _sdlgle,
    "SmallDependenceHighGrayLevelEmphasis": _sdhgle,
    "LargeDependenceLowGrayLevelEmphasis": _ldlgle,
    "LargeDependenceHighGrayLevelEmphasis": _ldhgle,
}

#: Deprecated in PyRadiomics: GLNN equals first-order Uniformity, DependencePercentage is always 1.
_DEPRECATED = ("GrayLevelNonUniformityNormalized", "DependencePercentage")

#: Feature name -> deprecated?
FEATURES: dict[str, bool] = {**{name: False for name in _FUNCS}, **{name: True for name in _DEPRECATED}}


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """GLDM features ``names`` of ``roi`` (bare names -> float).

    Deprecated names are accepted and, as in PyRadiomics, produce no value
    (they are absent from the result).

    Raises
    ------
    ValueError
        for an unknown feature name, a non-numeric ``gldm_a``, or an ROI whose
        bounding box admits no neighbour (PyRadiomics fails there too).
    """
    wanted = select_features("GLDM", FEATURES, _FUNCS, names)
    if not wanted:
        return {}
    c = _Coefficients(roi)
    return {n: float(_FUNCS[n](c)) for n in wanted}
