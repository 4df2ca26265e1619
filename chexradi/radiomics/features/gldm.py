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

The formulas are shared with GLSZM (``p_j = p_d``); each is in the docstring of its
function in :mod:`~chexradi.radiomics.features.zones`, under the name mapped to it in ``FUNCS``.

``GrayLevelNonUniformityNormalized`` and ``DependencePercentage`` are
deprecated in PyRadiomics and *no value is calculated* for them there (the
feature is absent from its output even when enabled); :func:`compute` does the
same: it leaves them out of the returned dict.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..kernels.gldm import gldm_matrix
from . import zones
from .base import ROI, select_features

__all__ = ["CLASS_NAME", "FEATURES", "FUNCS", "compute", "matrix"]

CLASS_NAME = "gldm"


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
                        force2D_dimension=roi.plane_axis, neighbours=roi.neighbourhood(distances))
        # Row sums count the voxels of each level: empty rows are exactly the absent levels.
        present = np.flatnonzero(P.sum(1))
        P = P[present]
        keep = P.sum(0) != 0
        jvector = np.arange(1, P.shape[1] + 1, dtype=np.float64)[keep]
        roi._cache[key] = (P[:, keep], (present + 1).astype(np.float64), jvector)
    return roi._cache[key]


#: Feature name -> the function of :mod:`~chexradi.radiomics.features.zones` (or this module) that computes it.
FUNCS: dict[str, Callable[[zones.Marginals], float]] = {
    "SmallDependenceEmphasis": zones.small_emphasis,
    "LargeDependenceEmphasis": zones.large_emphasis,
    "GrayLevelNonUniformity": zones.gray_nonuniformity,
    "DependenceNonUniformity": zones.size_nonuniformity,
    "DependenceNonUniformityNormalized": zones.size_nonuniformity_normalized,
    "GrayLevelVariance": zones.gray_variance,
    "DependenceVariance": zones.size_variance,
    "DependenceEntropy": zones.entropy,
    "LowGrayLevelEmphasis": zones.low_gray_emphasis,
    "HighGrayLevelEmphasis": zones.high_gray_emphasis,
    "SmallDependenceLowGrayLevelEmphasis": zones.small_low_gray_emphasis,
    "SmallDependenceHighGrayLevelEmphasis": zones.small_high_gray_emphasis,
    "LargeDependenceLowGrayLevelEmphasis": zones.large_low_gray_emphasis,
    "LargeDependenceHighGrayLevelEmphasis": zones.large_high_gray_emphasis,
}

#: Deprecated in PyRadiomics: GLNN equals first-order Uniformity, DependencePercentage is always 1.
_DEPRECATED = ("GrayLevelNonUniformityNormalized", "DependencePercentage")

#: Feature name -> deprecated?
FEATURES: dict[str, bool] = {**{name: False for name in FUNCS}, **{name: True for name in _DEPRECATED}}


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
    wanted = select_features("GLDM", FEATURES, FUNCS, names)
    if not wanted:
        return {}
    return zones.evaluate(zones.Marginals(*matrix(roi)), FUNCS, wanted)
