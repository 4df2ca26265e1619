r"""Gray Level Size Zone Matrix (GLSZM) features, PyRadiomics' ``glszm`` class.

A zone is a connected set of ROI voxels with one gray level (26-connected in
3-D, 8-connected in 2-D / ``force2D``). ``P(i, j)`` counts zones of gray level
``i`` and size ``j``. As in PyRadiomics, rows of gray levels absent from the ROI
and columns of zone sizes that never occur are deleted, ``i`` runs over the gray
levels present and ``j`` over the zone sizes present. Let

- :math:`N_z = \sum_{i,j} P(i,j)` the number of zones (1 if 0),
- :math:`N_p = \sum_{i,j} j\,P(i,j)` the number of voxels (1 if 0),
- :math:`p(i,j) = P(i,j) / N_z`,
- :math:`p_s(j) = \sum_i P(i,j)`, :math:`p_g(i) = \sum_j P(i,j)`.

Each feature's formula is in the docstring of its function below.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..kernels.glszm import glszm_matrix
from .base import ROI, select_features

__all__ = ["CLASS_NAME", "FEATURES", "compute", "matrix"]

CLASS_NAME = "glszm"

_EPS = np.spacing(1)


def matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, ivector, jvector)``: the GLSZM with empty rows and columns deleted, gray levels and zone sizes."""
    key = "glszm"
    if key not in roi._cache:
        P, sizes = glszm_matrix(roi.binned, roi.mask, roi.plane_axis)
        # Every gray level present has at least one zone: empty rows are exactly the absent levels.
        present = np.flatnonzero(P.sum(1))
        roi._cache[key] = (P[present], (present + 1).astype(np.float64), sizes)
    return roi._cache[key]


class _Coefficients:
    def __init__(self, roi: ROI) -> None:
        P, ivector, jvector = matrix(roi)
        self.P = P
        self.i = ivector
        self.j = jvector
        self.ps = P.sum(0)
        self.pg = P.sum(1)
        nz = P.sum()
        self.Nz = nz if nz != 0 else 1.0
        npix = np.sum(self.ps * jvector)
        self.Np = npix if npix != 0 else 1.0


def _sae(c: _Coefficients) -> float:
    r"""Small Area Emphasis: :math:`\sum_j p_s(j) / j^2 / N_z`."""
    return np.sum(c.ps / c.j**2) / c.Nz


def _lae(c: _Coefficients) -> float:
    r"""Large Area Emphasis: :math:`\sum_j p_s(j)\,j^2 / N_z`."""
    return np.sum(c.ps * c.j**2) / c.Nz


def _gln(c: _Coefficients) -> float:
    r"""Gray Level Non-Uniformity: :math:`\sum_i p_g(i)^2 / N_z`."""
    return np.sum(c.pg**2) / c.Nz


def _glnn(c: _Coefficients) -> float:
    r"""Gray Level Non-Uniformity Normalized: :math:`\sum_i p_g(i)^2 / N_z^2`."""
    return np.sum(c.pg**2) / c.Nz**2


def _szn(c: _Coefficients) -> float:
    r"""Size-Zone Non-Uniformity: :math:`\sum_j p_s(j)^2 / N_z`."""
    return np.sum(c.ps**2) / c.Nz


def _sznn(c: _Coefficients) -> float:
    r"""Size-Zone Non-Uniformity Normalized: :math:`\sum_j p_s(j)^2 / N_z^2`."""
    return np.sum(c.ps**2) / c.Nz**2


def _zp(c: _Coefficients) -> float:
    r"""Zone Percentage: :math:`N_z / N_p`."""
    return c.Nz / c.Np


def _glv(c: _Coefficients) -> float:
    r"""Gray Level Variance: :math:`\sum_i \frac{p_g(i)}{N_z}(i-\mu)^2`, :math:`\mu = \sum_i \frac{p_g(i)}{N_z} i`."""
    pg = c.pg / c.Nz
    mu = np.sum(pg * c.i)
    return np.sum(pg * (c.i - mu) ** 2)


def _zv(c: _Coefficients) -> float:
    r"""Zone Variance: :math:`\sum_j \frac{p_s(j)}{N_z}(j-\mu)^2`, :math:`\mu = \sum_j \frac{p_s(j)}{N_z} j`."""
    ps = c.ps / c.Nz
    mu = np.sum(ps * c.j)
    return np.sum(ps * (c.j - mu) ** 2)


def _ze(c: _Coefficients) -> float:
    r"""Zone Entropy: :math:`-\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`, :math:`\epsilon` = ``numpy.spacing(1)``."""
    p = c.P / c.Nz
    return -np.sum(p * np.log2(p + _EPS))


def _lglze(c: _Coefficients) -> float:
    r"""Low Gray Level Zone Emphasis: :math:`\sum_i p_g(i) / i^2 / N_z`."""
    return np.sum(c.pg / c.i**2) / c.Nz


def _hglze(c: _Coefficients) -> float:
    r"""High Gray Level Zone Emphasis: :math:`\sum_i p_g(i)\,i^2 / N_z`."""
    return np.sum(c.pg * c.i**2) / c.Nz


def _salgle(c: _Coefficients) -> float:
    r"""Small Area Low Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)}{i^2 j^2} / N_z`."""
    return np.sum(c.P / (c.i[:, None] ** 2 * c.j[None, :] ** 2)) / c.Nz


def _sahgle(c: _Coefficients) -> float:
    r"""Small Area High Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)\,i^2}{j^2} / N_z`."""
    return np.sum(c.P * c.i[:, None] ** 2 / c.j[None, :] ** 2) / c.Nz


def _lalgle(c: _Coefficients) -> float:
    r"""Large Area Low Gray Level Emphasis: :math:`\sum_{i,j} \frac{P(i,j)\,j^2}{i^2} / N_z`."""
    return np.sum(c.P * c.j[None, :] ** 2 / c.i[:, None] ** 2) / c.Nz


def _lahgle(c: _Coefficients) -> float:
    r"""Large Area High Gray Level Emphasis: :math:`\sum_{i,j} P(i,j)\,i^2 j^2 / N_z`."""
    return np.sum(c.P * c.i[:, None] ** 2 * c.j[None, :] ** 2) / c.Nz


_FUNCS: dict[str, Callable[[_Coefficients], float]] = {
    "SmallAreaEmphasis": _sae,
    "LargeAreaEmphasis": _lae,
    "GrayLevelNonUniformity": _gln,
    "GrayLevelNonUniformityNormalized": _glnn,
    "SizeZoneNonUniformity": _szn,
    "SizeZoneNonUniformityNormalized": _sznn,
    "ZonePercentage": _zp,
    "GrayLevelVariance": _glv,
    "ZoneVariance": _zv,
    "ZoneEntropy": _ze,
    "LowGrayLevelZoneEmphasis": _lglze,
    "HighGrayLevelZoneEmphasis": _hglze,
    "SmallAreaLowGrayLevelEmphasis": _salgle,
    "SmallAreaHighGrayLevelEmphasis": _sahgle,
    "LargeAreaLowGrayLevelEmphasis": _lalgle,
    "LargeAreaHighGrayLevelEmphasis": _lahgle,
}

#: Feature name -> deprecated? (GLSZM has no deprecated feature.)
FEATURES: dict[str, bool] = {name: False for name in _FUNCS}


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """GLSZM features ``names`` of ``roi`` (bare names -> float).

    Raises
    ------
    ValueError
        for an unknown feature name, or an ROI whose bounding box admits no
        neighbour (PyRadiomics fails there too).
    """
    wanted = select_features("GLSZM", FEATURES, _FUNCS, names)
    if not wanted:
        return {}
    c = _Coefficients(roi)
    return {n: float(_FUNCS[n](c)) for n in wanted}
