r"""Gray Level Run Length Matrix (GLRLM) features, PyRadiomics' ``glrlm`` class.

Matrix
------
For every angle :math:`\theta` (the 13 unit offsets in 3-D, 4 in 2-D or with
``force2D``; one of each ``(o, -o)`` pair; ``distances`` is not used),
:math:`P(i,j|\theta)` counts the runs of gray level :math:`i` and length
:math:`j`: maximal sequences of consecutive ROI voxels of the same gray level
along :math:`\theta` (see :mod:`chexradi.radiomics.kernels.glrlm`). Then, as
PyRadiomics does:

1. the matrix has :math:`\max(\text{box shape})` run-length columns; rows of
   gray levels absent from the ROI are deleted (:math:`i` keeps its gray-level
   *value*);
2. an angle along which no line holds two ROI voxels is emptied;
3. with ``weightingNorm`` the angles are merged, :math:`P = \sum_\theta w_\theta
   P_\theta`, :math:`w` the length of the angle scaled by the voxel spacing in
   the ``manhattan``, ``euclidean`` or ``infinity`` norm (``no_weighting``: 1);
4. angles without any run are dropped (when more than one matrix is left);
5. run-length columns empty in every angle are deleted (:math:`j` keeps its
   run-length value).

Let :math:`N_r(\theta) = \sum_{i,j} P(i,j|\theta)` (the number of runs, NaN when
0), :math:`p(i,j|\theta) = P(i,j|\theta)/N_r(\theta)`,
:math:`p_g(i) = \sum_j P(i,j)`, :math:`p_r(j) = \sum_i P(i,j)`,
:math:`N_p(\theta) = \sum_j j\,p_r(j)` and :math:`\epsilon` = ``numpy.spacing(1)``.
Every feature is computed per angle and averaged over angles with ``nanmean``;
its formula is in the docstring of its ``_<feature>`` function. :func:`compute`
evaluates all of them in one compiled pass
(:func:`~chexradi.radiomics.kernels.glrlm.glrlm_features`); the numpy functions are
the reference it is tested against. GLRLM has no deprecated feature.
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable, Optional, Sequence

import numpy as np

from ..kernels.angles import generate_angles
from ..kernels.glrlm import GLRLM_FEATURES, glrlm_features, run_marginals
from .base import ROI, nanmean, select_features

__all__ = ["CLASS_NAME", "FEATURES", "angle_weights", "compute", "matrices", "run_angles", "run_matrix"]

CLASS_NAME = "glrlm"

_EPS = np.spacing(1)
_NORMS = ("manhattan", "euclidean", "infinity", "no_weighting")


def run_angles(roi: ROI) -> np.ndarray:
    """GLRLM's angles for ``roi``: one of each pair of unit offsets in the ROI's plane, ``(Na, 3)`` int64 (may be
    empty)."""
    return generate_angles(roi.binned.shape, (1,), bidirectional=False, force2D_dimension=roi.plane_axis)


def matrices(roi: ROI) -> tuple[np.ndarray, np.ndarray]:
    """Raw run-length counts of ``roi`` (before weighting and deletions).

    Returns
    -------
    counts : float64 array ``(Ng', Nr, Na)``; row ``k`` is gray level
        ``roi.grey_levels[k]``, column ``r`` run length ``r + 1``,
        ``Nr = max(roi.binned.shape)``.
    angles : int64 array ``(Na, 3)``, offsets in numpy order ``(z, y, x)``.
    """
    angles = run_angles(roi)
    if len(angles) == 0:  # PyRadiomics fails as well ("Error getting angle count")
        raise ValueError(
            f"GLRLM: the ROI's bounding box {tuple(roi.binned.shape)} (z, y, x) admits no direction "
            f"(force2D axis: {roi.plane_axis}); the ROI must extend along an in-plane axis."
        )
    runs, _, lone = roi.line_counts(angles)  # GLCM's pairs come from the same walk when it shares it
    counts = runs.astype(np.float64)
    counts[:, :, lone] = 0  # no line holds two ROI voxels: PyRadiomics empties the angle
    return counts, angles


def angle_weights(angles: np.ndarray, spacing: Sequence[float], norm: str) -> np.ndarray:
    """PyRadiomics' GLRLM angle weights: the length of the scaled angle."""
    spacing = np.asarray(spacing, dtype=np.float64)
    w = np.empty(len(angles))
    for k, a in enumerate(angles):
        d = np.abs(a) * spacing
        if norm == "infinity":
            w[k] = max(d)
        elif norm == "euclidean":
            w[k] = np.sqrt(np.sum(d ** 2))
        elif norm == "manhattan":
            w[k] = np.sum(d)
        else:  # no_weighting
            w[k] = 1
    return w


def run_matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray]:
    """PyRadiomics' ``P_glrlm`` before the deletion of empty run lengths, and ``N_r``.

    Returns ``P`` of shape ``(1, Ng', Nr, Na')`` (weighted/merged, empty angles
    dropped) and ``Nr`` of shape ``(1, Na')`` (NaN for an empty lone matrix).
    """
    p, nr, _ = _run_matrix(roi)
    return p, nr


def _run_matrix(roi: ROI) -> tuple[np.ndarray, np.ndarray, Optional[tuple[np.ndarray, np.ndarray]]]:
    """:func:`run_matrix` and, for unweighted counts, the marginals ``p_r`` ``(1, Nr, Na')`` and ``p_g``
    ``(1, Ng', Na')`` from the same compiled pass as ``N_r`` (exact sums of whole numbers); None when
    weighted (numpy's reductions then, in numpy's order)."""
    norm = roi.settings.get("weightingNorm", None)
    if norm is not None and norm not in _NORMS:
        raise ValueError(f"weightingNorm must be None or one of {', '.join(_NORMS)}; got {norm!r}.")
    counts, angles = matrices(roi)
    p = counts[None]
    margins = None
    if norm is not None:
        w = angle_weights(angles, roi.spacing, norm)
        p = np.sum(p * w[None, None, None, :], 3, keepdims=True)
        nr = np.sum(p, (1, 2))
    else:
        runs, pr, pg = run_marginals(counts)
        nr = runs[None]
        margins = (pr[None], pg[None])
    if p.shape[3] > 1:
        empty = np.flatnonzero(np.sum(nr, 0) == 0)
        if len(empty):
            p = np.delete(p, empty, 3)
            nr = np.delete(nr, empty, 1)
            if margins is not None:
                margins = (np.delete(margins[0], empty, 2), np.delete(margins[1], empty, 2))
    nr[nr == 0] = np.nan
    return p, nr, margins


class _Coefficients:
    """PyRadiomics' GLRLM coefficients (layout ``(1, Ng, Nr, Na)``)."""

    def __init__(self, roi: ROI):
        p, self.Nr, margins = _run_matrix(roi)
        if margins is None:
            pr = np.sum(p, 1)  # (1, Nr, Na)
            self.pg = np.sum(p, 2)  # (1, Ng, Na)
        else:
            pr, self.pg = margins
        self.ivector = roi.grey_levels.astype(float)
        jvector = np.arange(1, p.shape[2] + 1, dtype=np.float64)
        empty = np.flatnonzero(np.sum(pr, (0, 2)) == 0)
        self.P = np.delete(p, empty, 2)
        self.jvector = np.delete(jvector, empty)
        self.pr = np.delete(pr, empty, 1)
        self.i2 = self.ivector[None, :, None] ** 2
        self.j2 = self.jvector[None, :, None] ** 2

    @cached_property
    def i4sq(self):
        return self.ivector[None, :, None, None] ** 2

    @cached_property
    def j4sq(self):
        return self.jvector[None, None, :, None] ** 2


def _sre(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} \frac{P(i,j)}{j^2}`"""
    return nanmean(np.sum((c.pr / c.j2), 1) / c.Nr, 1)


def _lre(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\,j^2`"""
    return nanmean(np.sum((c.pr * c.j2), 1) / c.Nr, 1)


def _gln(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_i p_g(i)^2`"""
    return nanmean(np.sum((c.pg ** 2), 1) / c.Nr, 1)


def _glnn(c: _Coefficients):
    r""":math:`\frac{1}{N_r^2}\sum_i p_g(i)^2`"""
    return nanmean(np.sum(c.pg ** 2, 1) / (c.Nr ** 2), 1)


def _rln(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_j p_r(j)^2`"""
    return nanmean(np.sum((c.pr ** 2), 1) / c.Nr, 1)


def _rlnn(c: _Coefficients):
    r""":math:`\frac{1}{N_r^2}\sum_j p_r(j)^2`"""
    return nanmean(np.sum((c.pr ** 2), 1) / c.Nr ** 2, 1)


def _rp(c: _Coefficients):
    r""":math:`\frac{N_r}{N_p}`, :math:`N_p = \sum_j j\,p_r(j)` (with weighting, :math:`N_p` is
    weighted too)."""
    np_ = np.sum(c.pr * c.jvector[None, :, None], 1)
    return nanmean(c.Nr / np_, 1)


def _glv(c: _Coefficients):
    r""":math:`\sum_{i,j} p(i,j)(i-\mu)^2`, :math:`\mu = \sum_{i,j} p(i,j)\,i`"""
    pg = c.pg / c.Nr[:, None, :]
    u_i = np.sum(pg * c.ivector[None, :, None], 1, keepdims=True)
    return nanmean(np.sum(pg * (c.ivector[None, :, None] - u_i) ** 2, 1), 1)


def _rv(c: _Coefficients):
    r""":math:`\sum_{i,j} p(i,j)(j-\mu)^2`, :math:`\mu = \sum_{i,j} p(i,j)\,j`"""
    pr = c.pr / c.Nr[:, None, :]
    u_j = np.sum(pr * c.jvector[None, :, None], 1, keepdims=True)
    return nanmean(np.sum(pr * (c.jvector[None, :, None] - u_j) ** 2, 1), 1)


def _re(c: _Coefficients):
    r""":math:`-\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`"""
    p = c.P / c.Nr[:, None, None, :]
    return nanmean(-np.sum(p * np.log2(p + _EPS), (1, 2)), 1)


def _lglre(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} \frac{P(i,j)}{i^2}`"""
    return nanmean(np.sum((c.pg / c.i2), 1) / c.Nr, 1)


def _hglre(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\,i^2`"""
    return nanmean(np.sum((c.pg * c.i2), 1) / c.Nr, 1)


def _srlgle(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} \frac{P(i,j)}{i^2 j^2}`"""
    return nanmean(np.sum((c.P / (c.i4sq * c.j4sq)), (1, 2)) / c.Nr, 1)


def _srhgle(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} \frac{P(i,j)\,i^2}{j^2}`"""
    return nanmean(np.sum((c.P * c.i4sq / c.j4sq), (1, 2)) / c.Nr, 1)


def _lrlgle(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} \frac{P(i,j)\,j^2}{i^2}`"""
    return nanmean(np.sum((c.P * c.j4sq / c.i4sq), (1, 2)) / c.Nr, 1)


def _lrhgle(c: _Coefficients):
    r""":math:`\frac{1}{N_r}\sum_{i,j} P(i,j)\,i^2 j^2`"""
    return nanmean(np.sum((c.P * (c.j4sq * c.i4sq)), (1, 2)) / c.Nr, 1)


_FUNCS: dict[str, Callable[[_Coefficients], np.ndarray]] = {
    "ShortRunEmphasis": _sre,
    "LongRunEmphasis": _lre,
    "GrayLevelNonUniformity": _gln,
    "GrayLevelNonUniformityNormalized": _glnn,
    "RunLengthNonUniformity": _rln,
    "RunLengthNonUniformityNormalized": _rlnn,
    "RunPercentage": _rp,
    "GrayLevelVariance": _glv,
    "RunVariance": _rv,
    "RunEntropy": _re,
    "LowGrayLevelRunEmphasis": _lglre,
    "HighGrayLevelRunEmphasis": _hglre,
    "ShortRunLowGrayLevelEmphasis": _srlgle,
    "ShortRunHighGrayLevelEmphasis": _srhgle,
    "LongRunLowGrayLevelEmphasis": _lrlgle,
    "LongRunHighGrayLevelEmphasis": _lrhgle,
}

#: Feature name -> its row in :func:`~chexradi.radiomics.kernels.glrlm.glrlm_features`' result.
_INDEX = {name: k for k, name in enumerate(GLRLM_FEATURES)}

#: Feature name -> deprecated? (same set and flags as PyRadiomics' RadiomicsGLRLM — none deprecated)
FEATURES: dict[str, bool] = {name: False for name in sorted(_FUNCS)}


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """GLRLM features ``names`` of ``roi`` (bare names -> float).

    Raises
    ------
    ValueError
        for an unknown feature name, an unknown ``weightingNorm`` or an ROI
        whose bounding box admits no direction, e.g. one voxel (PyRadiomics
        fails there too).
    """
    wanted = select_features("GLRLM", FEATURES, _FUNCS, names)
    if not wanted:
        return {}
    c = _Coefficients(roi)
    with np.errstate(divide="ignore", invalid="ignore"):
        # one compiled pass for all 16 (sums of one-signed terms; numpy's definitions above agree to rounding)
        per_angle = glrlm_features(np.ascontiguousarray(c.P[0]), np.ascontiguousarray(c.pr[0]),
                                   np.ascontiguousarray(c.pg[0]), np.ascontiguousarray(c.Nr[0], dtype=np.float64),
                                   c.ivector, c.jvector, _EPS)
        means = nanmean(per_angle, 1)
    return {n: float(means[_INDEX[n]]) for n in wanted}
