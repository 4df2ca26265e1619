r"""Gray Level Co-occurrence Matrix (GLCM) features, PyRadiomics' ``glcm`` class.

Matrix
------
For every angle :math:`\theta` (offsets of infinity-norm length in ``distances``,
default ``[1]``, one of each ``(o, -o)`` pair; in-plane only with ``force2D``),
:math:`P(i,j|\theta)` counts the ROI voxels of gray level :math:`i` whose
neighbour at offset :math:`\theta` is in the ROI with gray level :math:`j`.
Then, as PyRadiomics does:

1. rows and columns of gray levels absent from the ROI are deleted
   (:math:`i, j` keep their gray-level *values*; :math:`N_g` is the largest gray
   level present, not the number of levels);
2. with ``symmetricalGLCM`` (default True) :math:`P \leftarrow P + P^T` per angle;
3. with ``weightingNorm`` the angles are merged, :math:`P = \sum_\theta w_\theta
   P_\theta` with :math:`w = e^{-\|d\|^2}`, :math:`d` the angle scaled by the voxel
   spacing, in the ``manhattan``, ``euclidean`` or ``infinity`` norm
   (``no_weighting``: :math:`w = 1`);
4. angles without any pair are dropped (when more than one matrix is left);
   a single empty matrix gives NaN features;
5. :math:`p(i,j) = P(i,j) / \sum P`.

Every feature is computed per angle and averaged over angles with ``nanmean``
(``JointAverage`` with a plain mean). Notation (per angle), with
:math:`\epsilon` = ``numpy.spacing(1)``:

- :math:`p_x(i) = \sum_j p(i,j)`, :math:`p_y(j) = \sum_i p(i,j)`
- :math:`\mu_x = \sum_{i,j} p(i,j)\,i`, :math:`\mu_y = \sum_{i,j} p(i,j)\,j`
- :math:`\sigma_x^2 = \sum_{i,j} p(i,j)(i-\mu_x)^2`, :math:`\sigma_y^2 = \sum_{i,j} p(i,j)(j-\mu_y)^2`
- :math:`p_{x+y}(k) = \sum_{i+j=k} p(i,j)`, :math:`k = 2 \dots 2N_g`
- :math:`p_{x-y}(k) = \sum_{|i-j|=k} p(i,j)`, :math:`k = 0 \dots N_g-1`
- :math:`HX = -\sum_i p_x \log_2(p_x+\epsilon)`, :math:`HY = -\sum_j p_y \log_2(p_y+\epsilon)`
- :math:`HXY = -\sum_{i,j} p \log_2(p+\epsilon)`
- :math:`HXY1 = -\sum_{i,j} p \log_2(p_x p_y+\epsilon)`,
  :math:`HXY2 = -\sum_{i,j} p_x p_y \log_2(p_x p_y+\epsilon)`

The formula of each feature is in the docstring of its ``_<Feature>`` function.
The deprecated features (``Dissimilarity`` = DifferenceAverage, ``Homogeneity1``
= Id, ``Homogeneity2`` = Idm, ``SumVariance`` = ClusterTendency) are accepted
by :func:`compute` and, as in PyRadiomics (which calculates no value for them),
left out of its result.

To give PyRadiomics' numbers to the last bit wherever a threshold is involved
(``Correlation``'s :math:`\sigma_x\sigma_y = 0`, ``Imc2``'s :math:`HXY2 = HXY`), the
coefficients use PyRadiomics' array layout ``(1, Ng, Ng, Na)`` and the same numpy
reductions; so do ``Imc1``, ``JointEntropy``, ``JointAverage`` and ``ClusterShade``
(whose signed terms cancel). The other 17 features, sums of terms of one sign, come from
one compiled pass (:func:`~chexradi.radiomics.kernels.glcm.glcm_plain_features`) and agree
with PyRadiomics to rounding. ``MCC`` takes its eigenvalues from a symmetric problem
(``_mcc_symmetric``; the same values to rounding, about 3x faster) except where the
square root of a possibly negative eigenvalue makes PyRadiomics' own routine decide
(``_mcc``).
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable, Optional, Sequence

import numpy as np

from ..kernels.angles import generate_angles
from ..kernels.glcm import MCC_NEAR_ZERO, PLAIN_FEATURES, glcm_plain_features, mcc_q
from .base import ROI, nanmean, select_features
from .glrlm import run_angles

__all__ = ["CLASS_NAME", "FEATURES", "angle_weights", "compute", "matrices", "plane_axis", "probabilities"]

CLASS_NAME = "glcm"

_EPS = np.spacing(1)
_NORMS = ("manhattan", "euclidean", "infinity", "no_weighting")


# --------------------------------------------------------------------------- matrices


def plane_axis(roi: ROI) -> Optional[int]:
    """Axis that angles must not move along (see :attr:`ROI.plane_axis`)."""
    return roi.plane_axis


def matrices(roi: ROI) -> tuple[np.ndarray, np.ndarray]:
    """Raw (asymmetric, unweighted) co-occurrence counts of ``roi``.

    Returns
    -------
    counts : float64 array ``(Ng', Ng', Na)``; row/column ``k`` is gray level
        ``roi.grey_levels[k]``; ``counts[i, j, a]`` counts voxels of level ``i``
        whose neighbour at ``angles[a]`` is in the ROI with level ``j``.
    angles : int64 array ``(Na, 3)``, offsets in numpy order ``(z, y, x)``.

    Raises
    ------
    ValueError
        when the ROI's bounding box admits no angle at the requested
        ``distances`` (PyRadiomics fails there too, "Error getting angle count").
    """
    distances = roi.settings.get("distances", [1])
    if distances is None:
        distances = [1]
    if np.isscalar(distances):
        distances = [distances]
    angles = generate_angles(roi.binned.shape, distances, bidirectional=False, force2D_dimension=plane_axis(roi))
    if len(angles) == 0:
        raise ValueError(
            f"GLCM: no neighbour offset at distances {list(distances)} fits in the ROI's bounding box "
            f"{tuple(roi.binned.shape)} (z, y, x); use a smaller distance or a larger mask."
        )
    # the pairs come from GLRLM's walk along these lines when GLRLM will walk them on this ROI
    shared = "glrlm" in roi.classes and np.array_equal(angles, run_angles(roi))
    return roi.pair_counts(angles, shared=shared).astype(np.float64), angles


def angle_weights(angles: np.ndarray, spacing: Sequence[float], norm: str) -> np.ndarray:
    """PyRadiomics' GLCM distance weights :math:`e^{-\\|d\\|^2}` per angle."""
    spacing = np.asarray(spacing, dtype=np.float64)
    w = np.empty(len(angles))
    for k, a in enumerate(angles):
        d = np.abs(a) * spacing
        if norm == "infinity":
            w[k] = np.exp(-max(d) ** 2)
        elif norm == "euclidean":
            w[k] = np.exp(-np.sum(d ** 2))
        elif norm == "manhattan":
            w[k] = np.exp(-np.sum(d) ** 2)
        else:  # no_weighting
            w[k] = 1
    return w


def _weighting_norm(roi: ROI) -> Optional[str]:
    norm = roi.settings.get("weightingNorm", None)
    if norm is not None and norm not in _NORMS:
        raise ValueError(
            f"weightingNorm must be None or one of {', '.join(_NORMS)}; got {norm!r}."
        )
    return norm


def probabilities(roi: ROI) -> np.ndarray:
    """PyRadiomics' normalised ``P_glcm``: shape ``(1, Ng', Ng', Na')``.

    Symmetrised (``symmetricalGLCM``), weighted and merged (``weightingNorm``),
    empty angles dropped, each angle divided by its sum (NaN when a lone matrix
    is empty).
    """
    norm = _weighting_norm(roi)
    counts, angles = matrices(roi)
    # PyRadiomics drops the gray levels absent from the ROI with two np.delete calls (axis 1, then axis 2). With
    # 0 or >= 2 levels to drop, np.delete indexes with a boolean mask, which leaves axis 2 outermost in memory;
    # with exactly 1 it slices into a C-ordered array. The values are the same, but numpy's reductions over
    # (1, 2) add in memory order, so the layout decides the last bit of e.g. HXY -- and Imc2 tests HXY2 == HXY
    # (found by tests/test_fuzz.py). Same layout, same bits.
    if roi.ng - len(roi.grey_levels) == 1:
        p = np.ascontiguousarray(counts[None])
    else:
        p = np.delete(np.ascontiguousarray(counts[None]), np.empty(0, dtype=np.intp), 2)
    if roi.settings.get("symmetricalGLCM", True):
        p += np.transpose(p, (0, 2, 1, 3)).copy()
    if norm is not None:
        w = angle_weights(angles, roi.spacing, norm)
        p = np.sum(p * w[None, None, None, :], 3, keepdims=True)
    total = np.sum(p, (1, 2))
    if p.shape[3] > 1:
        empty = np.flatnonzero(np.sum(total, 0) == 0)
        if len(empty):
            p = np.delete(p, empty, 3)
            total = np.delete(total, empty, 1)
    total[total == 0] = np.nan
    p /= total[:, None, None, :]
    return p


# --------------------------------------------------------------------------- helpers


class _Coefficients:
    """Per-angle quantities shared by the features, computed on first use."""

    def __init__(self, roi: ROI):
        self.roi = roi
        self.P = probabilities(roi)
        self.Ng = roi.ng
        levels = roi.grey_levels.astype(float)
        self.i, self.j = np.meshgrid(levels, levels, indexing="ij", sparse=True)
        self.i4 = self.i[None, :, :, None]
        self.j4 = self.j[None, :, :, None]
        self.kSum = np.arange(2, (self.Ng * 2) + 1, dtype=float)
        self.kDiff = np.arange(0, self.Ng, dtype=float)

    @cached_property
    def px(self):
        return self.P.sum(2, keepdims=True)

    @cached_property
    def py(self):
        return self.P.sum(1, keepdims=True)

    @cached_property
    def ux(self):
        return np.sum(self.i4 * self.P, (1, 2), keepdims=True)

    @cached_property
    def uy(self):
        return np.sum(self.j4 * self.P, (1, 2), keepdims=True)

    @cached_property
    def plain(self) -> dict[str, np.ndarray]:
        """The features without a threshold (:data:`PLAIN_FEATURES`), averaged over angles, from one kernel."""
        per_angle = glcm_plain_features(np.ascontiguousarray(self.P[0]), self.roi.grey_levels.astype(np.float64),
                                        int(self.Ng), _EPS)
        means = nanmean(per_angle, 1)
        return {name: means[k:k + 1] for k, name in enumerate(PLAIN_FEATURES)}

    def _binned_sum(self, index: np.ndarray, n: int) -> np.ndarray:
        """``out[0, k, a] = sum_{index[i, j] == k} P[0, i, j, a]`` (summed in row-major order)."""
        na = self.P.shape[3]
        flat = (index.astype(np.intp)[:, :, None] * na + np.arange(na)).ravel()
        out = np.bincount(flat, weights=self.P.ravel(), minlength=n * na)
        return out.reshape(n, na)[None]

    @cached_property
    def pxAddy(self):
        return self._binned_sum(self.i + self.j - 2, 2 * self.Ng - 1)

    @cached_property
    def pxSuby(self):
        return self._binned_sum(np.abs(self.i - self.j), self.Ng)

    @cached_property
    def HXY(self):
        return (-1) * np.sum(self.P * np.log2(self.P + _EPS), (1, 2))

    @cached_property
    def HX(self):
        return (-1) * np.sum(self.px * np.log2(self.px + _EPS), (1, 2))

    @cached_property
    def HY(self):
        return (-1) * np.sum(self.py * np.log2(self.py + _EPS), (1, 2))

    @cached_property
    def pxpy(self):
        return self.px * self.py

    @cached_property
    def HXY1(self):
        return (-1) * np.sum(self.P * np.log2(self.pxpy + _EPS), (1, 2))

    @cached_property
    def HXY2(self):
        return (-1) * np.sum(self.pxpy * np.log2(self.pxpy + _EPS), (1, 2))

    @cached_property
    def centred_sum(self):
        """:math:`i + j - \\mu_x - \\mu_y`, shape ``(1, Ng, Ng, Na)``."""
        return (self.i + self.j)[None, :, :, None] - self.ux - self.uy

    @cached_property
    def centred_sum2(self):
        return self.centred_sum ** 2

    @cached_property
    def var_x(self):
        """:math:`\\sigma_x^2`, shape ``(1, 1, 1, Na)``."""
        return np.sum(self.P * ((self.i4 - self.ux) ** 2), (1, 2), keepdims=True)

    @cached_property
    def var_y(self):
        return np.sum(self.P * ((self.j4 - self.uy) ** 2), (1, 2), keepdims=True)

    @cached_property
    def diff_average(self):
        return np.sum(self.kDiff[None, :, None] * self.pxSuby, 1, keepdims=True)

    @cached_property
    def sum_average(self):
        return np.sum(self.kSum[None, :, None] * self.pxAddy, 1, keepdims=True)


# --------------------------------------------------------------------------- features


def _autocorrelation(c: _Coefficients):
    r""":math:`\sum_{i,j} p(i,j)\,i\,j`"""
    return nanmean(np.sum(c.P * (c.i * c.j)[None, :, :, None], (1, 2)), 1)


def _joint_average(c: _Coefficients):
    r""":math:`\mu_x = \sum_{i,j} p(i,j)\,i` (plain mean over angles)."""
    if c.ux.shape[3] == 0:  # every angle empty: numpy's mean of nothing, without its warning
        return np.array([np.nan])
    return c.ux.mean((1, 2, 3))


def _cluster_prominence(c: _Coefficients):
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^4 p(i,j)`"""
    return nanmean(np.sum(c.P * (c.centred_sum2 * c.centred_sum2), (1, 2)), 1)


def _cluster_shade(c: _Coefficients):
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^3 p(i,j)`"""
    return nanmean(np.sum(c.P * (c.centred_sum2 * c.centred_sum), (1, 2)), 1)


def _cluster_tendency(c: _Coefficients):
    r""":math:`\sum_{i,j} (i+j-\mu_x-\mu_y)^2 p(i,j)`"""
    return nanmean(np.sum(c.P * c.centred_sum2, (1, 2)), 1)


def _contrast(c: _Coefficients):
    r""":math:`\sum_{i,j} (i-j)^2 p(i,j)`"""
    return nanmean(np.sum(c.P * (np.abs(c.i - c.j)[None, :, :, None] ** 2), (1, 2)), 1)


def _correlation(c: _Coefficients):
    r""":math:`\frac{\sum_{i,j} p(i,j)(i-\mu_x)(j-\mu_y)}{\sigma_x\sigma_y + \epsilon}`; 1 for an
    angle where :math:`\sigma_x\sigma_y = 0` (flat region)."""
    sigx = c.var_x ** 0.5
    sigy = c.var_y ** 0.5
    corm = np.sum(c.P * (c.i4 - c.ux) * (c.j4 - c.uy), (1, 2), keepdims=True)
    corr = corm / (sigx * sigy + _EPS)
    corr[sigx * sigy == 0] = 1
    return nanmean(corr, (1, 2, 3))


def _difference_average(c: _Coefficients):
    r""":math:`DA = \sum_{k=0}^{N_g-1} k\,p_{x-y}(k)`"""
    return nanmean(c.diff_average[:, 0, :], 1)


def _difference_entropy(c: _Coefficients):
    r""":math:`-\sum_{k=0}^{N_g-1} p_{x-y}(k)\log_2(p_{x-y}(k)+\epsilon)`"""
    return nanmean((-1) * np.sum(c.pxSuby * np.log2(c.pxSuby + _EPS), 1), 1)


def _difference_variance(c: _Coefficients):
    r""":math:`\sum_{k=0}^{N_g-1} (k-DA)^2 p_{x-y}(k)`"""
    return nanmean(np.sum(c.pxSuby * ((c.kDiff[None, :, None] - c.diff_average) ** 2), 1), 1)


def _joint_energy(c: _Coefficients):
    r""":math:`\sum_{i,j} p(i,j)^2`"""
    return nanmean(np.sum(c.P ** 2, (1, 2)), 1)


def _joint_entropy(c: _Coefficients):
    r""":math:`HXY = -\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`"""
    return nanmean(c.HXY, 1)


def _imc1(c: _Coefficients):
    r""":math:`\frac{HXY - HXY1}{\max(HX, HY)}`; 0 for an angle where :math:`\max(HX, HY) = 0`."""
    div = np.fmax(c.HX, c.HY)
    imc1 = c.HXY - c.HXY1
    nz = div != 0
    imc1[nz] /= div[nz]
    imc1[div == 0] = 0
    return nanmean(imc1, 1)


def _imc2(c: _Coefficients):
    r""":math:`\sqrt{1 - e^{-2(HXY2 - HXY)}}`; 0 for an angle where :math:`HXY2 = HXY`
    (NaN, ignored by the mean, where rounding makes :math:`HXY > HXY2`)."""
    imc2 = (1 - np.e ** (-2 * (c.HXY2 - c.HXY))) ** 0.5
    imc2[c.HXY2 == c.HXY] = 0
    return nanmean(imc2, 1)


def _idm(c: _Coefficients):
    r""":math:`\sum_{k=0}^{N_g-1} \frac{p_{x-y}(k)}{1+k^2}`"""
    return nanmean(np.sum(c.pxSuby / (1 + (c.kDiff[None, :, None] ** 2)), 1), 1)


def _mcc_q(c: _Coefficients) -> np.ndarray:
    """MCC's matrix :math:`Q` per angle, ``(Na, Ng, Ng)`` (:func:`~chexradi.radiomics.kernels.glcm.mcc_q`)."""
    return mcc_q(np.ascontiguousarray(c.P[0]), np.ascontiguousarray(c.px[0, :, 0, :]),
                 np.ascontiguousarray(c.py[0, 0, :, :]), _EPS)


def _mcc(c: _Coefficients, q: Optional[np.ndarray] = None):
    r""":math:`\sqrt{\lambda_2}`, :math:`\lambda_2` the second largest eigenvalue of
    :math:`Q(i,j) = \sum_k \frac{p(i,k)p(j,k)}{p_x(i)p_y(k)+\epsilon}`; 1 when the ROI
    has a single gray level; NaN when the matrix holds NaN (PyRadiomics' eigenvalue
    routine fails there). ``q``: :func:`_mcc_q`, when the caller has it."""
    if q is None:
        q = _mcc_q(c)
    if not np.all(np.isfinite(q)):
        return np.array([np.nan])
    ev = np.linalg.eigvals(q[None])
    ev.sort()
    if ev.shape[2] < 2:
        return np.array([1.0])
    return nanmean(np.sqrt(ev[:, :, -2]), 1).real


#: Below this second eigenvalue :func:`_mcc_symmetric` hands over to :func:`_mcc`: near zero, whether
#: PyRadiomics' general eigenvalue routine returns a tiny negative (NaN, dropped from the mean), a tiny
#: complex (real part 0) or a tiny positive value is a matter of rounding that only the same routine repeats.
_MCC_SYMMETRIC_MIN = MCC_NEAR_ZERO


def _mcc_symmetric(c: _Coefficients):
    r"""MCC as :func:`_mcc`, from a symmetric eigenvalue problem (about 3x faster).

    :math:`Q = D_x^{-1} P D_y^{-1} P^T` (with :math:`\epsilon` in the denominators) is similar,
    through :math:`D_x^{1/2}`, to the symmetric :math:`D_x^{-1/2} P D_y^{-1} P^T D_x^{-1/2}`; the
    :math:`\epsilon` terms make the transformed :math:`Q` symmetric only to about
    :math:`\epsilon / (p_x p_y)`, and that skew part moves its eigenvalues only at second order. So
    the symmetric part of :math:`D_x^{1/2} Q D_x^{-1/2}` has :math:`Q`'s eigenvalues to rounding, and
    ``eigvalsh`` finds them. A matrix holding NaN gives NaN, as in :func:`_mcc`; a second
    eigenvalue under :data:`_MCC_SYMMETRIC_MIN` at any angle sends the ROI to :func:`_mcc`.
    """
    q = _mcc_q(c)
    if not np.all(np.isfinite(q)):
        return np.array([np.nan])
    if c.P.shape[1] < 2:
        return np.array([1.0])
    px = c.px[0, :, 0, :].T  # (Na, Ng)
    # a level without a pair at an angle (p_x(i) = 0; only without symmetricalGLCM) has a zero row and column
    # in Q: any scale keeps them zero
    d = np.sqrt(np.where(px > 0, px, 1.0))
    s = q * (d[:, :, None] / d[:, None, :])
    lam2 = np.linalg.eigvalsh(0.5 * (s + s.transpose(0, 2, 1)))[:, -2]
    if not np.all(lam2 >= _MCC_SYMMETRIC_MIN):
        return _mcc(c, q)
    return nanmean(np.sqrt(lam2)[None], 1)


def _idmn(c: _Coefficients):
    r""":math:`\sum_{k=0}^{N_g-1} \frac{p_{x-y}(k)}{1+k^2/N_g^2}`"""
    return nanmean(np.sum(c.pxSuby / (1 + ((c.kDiff[None, :, None] ** 2) / (c.Ng ** 2))), 1), 1)


def _id(c: _Coefficients):
    r""":math:`\sum_{k=0}^{N_g-1} \frac{p_{x-y}(k)}{1+k}`"""
    return nanmean(np.sum(c.pxSuby / (1 + c.kDiff[None, :, None]), 1), 1)


def _idn(c: _Coefficients):
    r""":math:`\sum_{k=0}^{N_g-1} \frac{p_{x-y}(k)}{1+k/N_g}`"""
    return nanmean(np.sum(c.pxSuby / (1 + (c.kDiff[None, :, None] / c.Ng)), 1), 1)


def _inverse_variance(c: _Coefficients):
    r""":math:`\sum_{k=1}^{N_g-1} \frac{p_{x-y}(k)}{k^2}`"""
    return nanmean(np.sum(c.pxSuby[:, 1:, :] / c.kDiff[None, 1:, None] ** 2, 1), 1)


def _maximum_probability(c: _Coefficients):
    r""":math:`\max_{i,j} p(i,j)`"""
    return nanmean(np.amax(c.P, (1, 2)), 1)


def _sum_average(c: _Coefficients):
    r""":math:`\sum_{k=2}^{2N_g} k\,p_{x+y}(k)` (equals :math:`2\mu_x` when symmetrical)."""
    return nanmean(c.sum_average[:, 0, :], 1)


def _sum_entropy(c: _Coefficients):
    r""":math:`-\sum_{k=2}^{2N_g} p_{x+y}(k)\log_2(p_{x+y}(k)+\epsilon)`"""
    return nanmean((-1) * np.sum(c.pxAddy * np.log2(c.pxAddy + _EPS), 1), 1)


def _sum_squares(c: _Coefficients):
    r""":math:`\sum_{i,j} (i-\mu_x)^2 p(i,j)`"""
    return nanmean(c.var_x[:, 0, 0, :], 1)


_FUNCS: dict[str, Callable[[_Coefficients], np.ndarray]] = {
    "Autocorrelation": _autocorrelation,
    "JointAverage": _joint_average,
    "ClusterProminence": _cluster_prominence,
    "ClusterShade": _cluster_shade,
    "ClusterTendency": _cluster_tendency,
    "Contrast": _contrast,
    "Correlation": _correlation,
    "DifferenceAverage": _difference_average,
    "DifferenceEntropy": _difference_entropy,
    "DifferenceVariance": _difference_variance,
    "JointEnergy": _joint_energy,
    "JointEntropy": _joint_entropy,
    "Imc1": _imc1,
    "Imc2": _imc2,
    "Idm": _idm,
    "MCC": _mcc,
    "Idmn": _idmn,
    "Id": _id,
    "Idn": _idn,
    "InverseVariance": _inverse_variance,
    "MaximumProbability": _maximum_probability,
    "SumAverage": _sum_average,
    "SumEntropy": _sum_entropy,
    "SumSquares": _sum_squares,
}

#: Deprecated in PyRadiomics (no value calculated there): Dissimilarity = DifferenceAverage,
#: Homogeneity1 = Id, Homogeneity2 = Idm, SumVariance = ClusterTendency.
_DEPRECATED = ("Dissimilarity", "Homogeneity1", "Homogeneity2", "SumVariance")

#: Feature name -> deprecated? (same set and flags as PyRadiomics' RadiomicsGLCM)
FEATURES: dict[str, bool] = {
    **{name: False for name in sorted(_FUNCS)},
    **{name: True for name in _DEPRECATED},
}


def _plain(name: str) -> Callable[[_Coefficients], np.ndarray]:
    return lambda c: c.plain[name]


#: What :func:`compute` runs: the kernel for the threshold-free features, numpy (PyRadiomics'
#: reductions, to the bit) for those that test a threshold or cancel. ``_FUNCS`` keeps the numpy
#: definition of every feature, for reference and for the tests that compare the two.
_COMPUTE: dict[str, Callable[[_Coefficients], np.ndarray]] = {
    name: (_plain(name) if name in PLAIN_FEATURES else f) for name, f in _FUNCS.items()}
_COMPUTE["MCC"] = _mcc_symmetric


def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]:
    """GLCM features ``names`` of ``roi`` (bare names -> float).

    Deprecated names are accepted and, as in PyRadiomics, produce no value
    (they are absent from the result).

    Raises
    ------
    ValueError
        for an unknown feature name, an unknown ``weightingNorm``, or an ROI
        whose bounding box admits no angle at ``distances`` (PyRadiomics fails
        there too).
    """
    wanted = select_features("GLCM", FEATURES, _FUNCS, names)
    if not wanted:
        return {}
    c = _Coefficients(roi)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {n: float(np.squeeze(_COMPUTE[n](c)).real) for n in wanted}
