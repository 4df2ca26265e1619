r"""First-order statistics of the gray values inside the ROI (PyRadiomics' ``firstorder``).

Let :math:`\mathbf{X}` be the :math:`N_p` gray values inside the mask, :math:`c`
the ``voxelArrayShift`` setting (default 0), :math:`\bar X` their mean and
:math:`p(i)` the normalised histogram of the discretized values (``binWidth`` /
``binCount``, see :mod:`chexradi.radiomics.discretize`), over the
:math:`N_g` bins that are present.

==============================  =====================================================================
Feature                         Formula
==============================  =====================================================================
Energy                          :math:`\sum_i (X_i + c)^2`
TotalEnergy                     :math:`V_{voxel} \sum_i (X_i + c)^2`, :math:`V_{voxel}` = product of the
                                input's own spacing (2 values for a 2-D image, 3 for a 3-D image)
Entropy                         :math:`-\sum_i p(i) \log_2(p(i) + \epsilon)`, :math:`\epsilon` = ``np.spacing(1)``
Minimum, Maximum, Range         :math:`\min X`, :math:`\max X`, :math:`\max X - \min X`
10Percentile, 90Percentile      :math:`P_{10}`, :math:`P_{90}` (numpy ``linear`` percentiles)
Median, InterquartileRange      :math:`P_{50}`, :math:`P_{75} - P_{25}`
Mean                            :math:`\bar X = \frac{1}{N_p}\sum_i X_i`
MeanAbsoluteDeviation           :math:`\frac{1}{N_p}\sum_i |X_i - \bar X|`
RobustMeanAbsoluteDeviation     the same over :math:`X_{10-90} = \{X_i : P_{10} \le X_i \le P_{90}\}`,
                                around the mean of that subset
RootMeanSquared                 :math:`\sqrt{\frac{1}{N_p}\sum_i (X_i + c)^2}`
Variance                        :math:`\mu_2 = \frac{1}{N_p}\sum_i (X_i - \bar X)^2`
StandardDeviation (deprecated)  :math:`\sqrt{\mu_2}`
Skewness                        :math:`\mu_3 / \mu_2^{3/2}` (0 for a flat region)
Kurtosis                        :math:`\mu_4 / \mu_2^{2}` (0 for a flat region; not the excess kurtosis)
Uniformity                      :math:`\sum_i p(i)^2`
==============================  =====================================================================

with :math:`\mu_k = \frac{1}{N_p}\sum_i (X_i - \bar X)^k`. Percentiles use
numpy's default ``linear`` method (Hyndman & Fan type 7): virtual index
:math:`v = (N_p - 1) q`, linear interpolation between the sorted values at
``floor(v)`` and ``floor(v) + 1``, in the same floating-point form as numpy.

Implementation: the values are taken once in PyRadiomics' order, and the
compiled passes of :mod:`chexradi.radiomics.kernels.firstorder` form each term as
the numpy expressions ``sum(x * x)``, ``mean(|d|)``, ``mean(d * d)``,
``mean(d * d * d)``, ``mean(d * d * (d * d))`` (``d = x - mean(x)``) do and sum it in
numpy's pairwise order, so each equals that expression bit for bit, without its
temporaries (PyRadiomics writes ``numpy.power(d, 3)``, which can differ in the last
bit). The order statistics the percentiles need are counted for
whole-number values over a modest range (8/16-bit radiographs, CT), else taken
from one ``np.partition``; either replaces PyRadiomics' separate
``nanpercentile``/``nanmedian`` calls. The histogram of gray levels is the ROI's
(:attr:`ROI.level_counts`, shared with the texture classes' gray levels).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..kernels.firstorder import counted_order_statistics, moments, robust_mad
from .base import ROI

__all__ = ["CLASS_NAME", "FEATURES", "compute", "percentiles"]

CLASS_NAME = "firstorder"

#: Feature name -> deprecated? (same set and flags as PyRadiomics' RadiomicsFirstOrder)
FEATURES: dict[str, bool] = {
    "Energy": False,
    "TotalEnergy": False,
    "Entropy": False,
    "Minimum": False,
    "10Percentile": False,
    "90Percentile": False,
    "Maximum": False,
    "Mean": False,
    "Median": False,
    "InterquartileRange": False,
    "Range": False,
    "MeanAbsoluteDeviation": False,
    "RobustMeanAbsoluteDeviation": False,
    "RootMeanSquared": False,
    "StandardDeviation": True,
    "Skewness": False,
    "Kurtosis": False,
    "Variance": False,
    "Uniformity": False,
}

_EPS = float(np.spacing(1))


def _order_indices(n: int, qs: Sequence[float]) -> list[tuple[int, int, float]]:
    """(previous index, next index, gamma) of numpy's linear percentile for each q in [0, 1]."""
    out = []
    for q in qs:
        v = (n - 1) * q
        if v >= n - 1:
            out.append((n - 1, n - 1, v - math.floor(v)))
        else:
            lo = int(math.floor(v))
            out.append((lo, lo + 1, v - lo))
    return out


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp`` (the form changes at t >= 0.5 for monotonicity)."""
    diff = b - a
    if t >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


def percentiles(values: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Linear percentiles of ``values`` (``qs`` in percent), as ``numpy.percentile``.

    One ``np.partition`` call at all the order statistics needed; the
    interpolation reproduces numpy's arithmetic. ``values`` is not modified.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    n = values.size
    if n == 0:
        raise ValueError("percentiles: no values; the ROI is empty.")
    fracs = [float(np.true_divide(q, 100)) for q in qs]
    idx = _order_indices(n, fracs)
    kth = sorted({i for lo, hi, _ in idx for i in (lo, hi)})
    part = np.partition(values, kth)
    return [_lerp(float(part[lo]), float(part[hi]), g) for lo, hi, g in idx]


class _OrderStats(dict):
    """k -> k-th smallest value, for the k that were asked for; ``size`` is the number of values."""

    size: int


def _order_statistics(x: np.ndarray, kth: Sequence[int]) -> "_OrderStats | np.ndarray":
    """The k-th smallest values of ``x`` for every k in ``kth`` (sorted).

    Whole-number values over a modest range (8/16-bit radiographs, CT) are
    counted (:func:`~chexradi.radiomics.kernels.firstorder.counted_order_statistics`:
    exact, no sort); anything else uses one ``np.partition``. Either result is
    indexed as ``part[k]``.
    """
    n = x.size
    ok, values = counted_order_statistics(x, np.asarray(kth, dtype=np.int64), max(65536.0, 4.0 * n))
    if ok:
        out = _OrderStats((int(k), float(v)) for k, v in zip(kth, values))
        out.size = n
        return out
    return np.partition(x, kth)


def _median(part: "_OrderStats | np.ndarray") -> float:
    """Median from the middle order statistics (numpy's ``median``)."""
    n = part.size
    k = n // 2
    if n % 2:
        return float(part[k])
    return float(np.mean(np.array([part[k - 1], part[k]])))


def compute(roi: ROI, names: Optional[Sequence[str]] = None) -> dict[str, float]:
    """First-order features of ``roi``.

    Parameters
    ----------
    roi : ROI
        The cropped, discretized ROI (see :func:`chexradi.radiomics.preprocess.roi_from_arrays`).
        Uses ``roi.image``/``roi.mask`` for the gray values, ``roi.binned`` for
        Entropy/Uniformity, ``roi.spacing`` and ``roi.ndim`` for TotalEnergy, and the
        setting ``voxelArrayShift`` (default 0).
    names : sequence of str, optional
        Feature names (bare, e.g. ``"Mean"``). Default: every non-deprecated feature.

    Returns
    -------
    dict mapping each requested name to a float.

    Raises
    ------
    ValueError
        For an unknown feature name or an empty ROI.
    """
    if names is None:
        names = [n for n, dep in FEATURES.items() if not dep]
    names = list(names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"Unknown firstorder feature(s) {unknown}; valid names: {sorted(FEATURES)}.")
    if not names:
        return {}

    mask = roi.mask if roi.mask.dtype == bool else roi.mask != 0
    x = np.ascontiguousarray(roi.image[mask], dtype=np.float64)  # C order = PyRadiomics' imageArray[maskArray] order
    n = x.size
    if n == 0:
        raise ValueError("firstorder: the mask selects no voxel; check the mask and `label`.")
    want = set(names)
    out: dict[str, float] = {}
    shift = roi.settings.get("voxelArrayShift", 0)

    # --- magnitude features --------------------------------------------------
    energy, mean, mad, m2, m3, m4 = moments(x, float(shift))
    if want & {"Energy", "TotalEnergy", "RootMeanSquared"}:
        out["Energy"] = energy
        if "TotalEnergy" in want:
            # PyRadiomics: numpy.multiply.reduce(inputImage.GetSpacing()) (ITK order, input's own dimensions)
            sp = tuple(roi.spacing[-int(roi.ndim):])[::-1]
            out["TotalEnergy"] = energy * float(np.multiply.reduce(np.asarray(sp, dtype=np.float64)))
        out["RootMeanSquared"] = math.sqrt(energy / float(n))

    # --- histogram features ------------------------------------------------------
    if want & {"Entropy", "Uniformity"}:
        counts = roi.level_counts[1:]
        counts = counts[counts > 0]
        p = counts / float(n)
        out["Entropy"] = float(-1.0 * np.sum(p * np.log2(p + _EPS)))
        out["Uniformity"] = float(np.sum(p**2))

    # --- order statistics: one partition for everything -------------------------
    order_names = {"Minimum", "Maximum", "Range", "10Percentile", "90Percentile", "Median",
                   "InterquartileRange", "RobustMeanAbsoluteDeviation"}
    if want & order_names:
        qs = (0.1, 0.25, 0.75, 0.9)
        idx = _order_indices(n, qs)
        kth = {0, n - 1, (n - 1) // 2, n // 2}
        kth.update(i for lo, hi, _ in idx for i in (lo, hi))
        part = _order_statistics(x, sorted(kth))
        p10, p25, p75, p90 = (_lerp(float(part[lo]), float(part[hi]), g) for lo, hi, g in idx)
        mn = float(part[0])
        mx = float(part[n - 1])
        out["Minimum"] = mn
        out["Maximum"] = mx
        out["Range"] = mx - mn
        out["10Percentile"] = p10
        out["90Percentile"] = p90
        out["InterquartileRange"] = p75 - p25
        out["Median"] = _median(part)
        if "RobustMeanAbsoluteDeviation" in want:
            # NaN when nothing lies between the interpolated P10 and P90 (two distinct values), as PyRadiomics
            out["RobustMeanAbsoluteDeviation"] = float(robust_mad(x, p10, p90))

    # --- moments (computed above with Energy: numpy's terms and pairwise sums) --------
    out["Mean"] = mean
    out["MeanAbsoluteDeviation"] = mad
    out["Variance"] = m2
    out["StandardDeviation"] = math.sqrt(m2)
    out["Skewness"] = 0.0 if m2 == 0 else m3 / m2**1.5
    out["Kurtosis"] = 0.0 if m2 == 0 else m4 / m2**2.0
    return {k: out[k] for k in names}
