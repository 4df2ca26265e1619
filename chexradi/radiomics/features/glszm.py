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

The formulas are shared with GLDM (``p_j = p_s``); each is in the docstring of its
function in :mod:`~chexradi.radiomics.features.zones`, under the name mapped to it in ``FUNCS``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..kernels.glszm import glszm_matrix
from . import zones
from .base import ROI, select_features

__all__ = ["CLASS_NAME", "FEATURES", "FUNCS", "compute", "matrix"]

CLASS_NAME = "glszm"


def matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P, ivector, jvector)``: the GLSZM with empty rows and columns deleted, gray levels and zone sizes."""
    key = "glszm"
    if key not in roi._cache:
        P, sizes = glszm_matrix(roi.binned, roi.mask, roi.plane_axis, neighbours=roi.neighbourhood((1,)))
        # Every gray level present has at least one zone: empty rows are exactly the absent levels.
        present = np.flatnonzero(P.sum(1))
        roi._cache[key] = (P[present], (present + 1).astype(np.float64), sizes)
    return roi._cache[key]


def _zone_percentage(c: zones.Marginals) -> float:
    r"""Zone Percentage: :math:`N_z / N_p`, :math:`N_p = \sum_j j\,p_s(j)` (1 if 0)."""
    npix = np.sum(c.pj * c.j)
    return c.Nz / (npix if npix != 0 else 1.0)


#: Feature name -> the function of :mod:`~chexradi.radiomics.features.zones` (or this module) that computes it.
FUNCS: dict[str, Callable[[zones.Marginals], float]] = {
    "SmallAreaEmphasis": zones.small_emphasis,
    "LargeAreaEmphasis": zones.large_emphasis,
    "GrayLevelNonUniformity": zones.gray_nonuniformity,
    "GrayLevelNonUniformityNormalized": zones.gray_nonuniformity_normalized,
    "SizeZoneNonUniformity": zones.size_nonuniformity,
    "SizeZoneNonUniformityNormalized": zones.size_nonuniformity_normalized,
    "ZonePercentage": _zone_percentage,
    "GrayLevelVariance": zones.gray_variance,
    "ZoneVariance": zones.size_variance,
    "ZoneEntropy": zones.entropy,
    "LowGrayLevelZoneEmphasis": zones.low_gray_emphasis,
    "HighGrayLevelZoneEmphasis": zones.high_gray_emphasis,
    "SmallAreaLowGrayLevelEmphasis": zones.small_low_gray_emphasis,
    "SmallAreaHighGrayLevelEmphasis": zones.small_high_gray_emphasis,
    "LargeAreaLowGrayLevelEmphasis": zones.large_low_gray_emphasis,
    "LargeAreaHighGrayLevelEmphasis": zones.large_high_gray_emphasis,
}

#: Feature name -> deprecated? (GLSZM has no deprecated feature.)
FEATURES: dict[str, bool] = {name: False for name in FUNCS}


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """GLSZM features ``names`` of ``roi`` (bare names -> float).

    Raises
    ------
    ValueError
        for an unknown feature name, or an ROI whose bounding box admits no
        neighbour (PyRadiomics fails there too).
    """
    wanted = select_features("GLSZM", FEATURES, FUNCS, names)
    if not wanted:
        return {}
    return zones.evaluate(zones.Marginals(*matrix(roi)), FUNCS, wanted)
