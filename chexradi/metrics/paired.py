"""Paired comparisons of models scored on the same cases: DeLong's test and a paired bootstrap.

DeLong's test (DeLong, DeLong & Clarke-Pearson, Biometrics 1988) compares correlated ROC AUCs
measured on the same cases. Each AUC is a two-sample U-statistic; every case gets a
*structural component* -- for a positive ``x_i``, ``V10(x_i)``, the fraction of negatives it
outranks (ties 1/2); for a negative ``y_j``, ``V01(y_j)``, the fraction of positives that
outrank it -- and the (co)variance of the AUCs is estimated from those components:

.. math::

    S = \\frac{S_{10}}{m} + \\frac{S_{01}}{n},

with ``S10`` / ``S01`` the sample covariance matrices (over the ``m`` positives / ``n``
negatives) of the models' components. The components are computed with midranks, the fast
algorithm of Sun & Xu (IEEE Signal Processing Letters, 2014): with ``T_Z`` the midranks of a
model's scores over all cases, ``T_X`` over the positives and ``T_Y`` over the negatives,
``V10 = (T_Z - T_X) / n`` on the positives, ``V01 = 1 - (T_Z - T_Y) / m`` on the negatives,
and ``AUC = (sum T_Z[positives] - m (m + 1) / 2) / (m n)``: O(N log N) instead of O(mn).

Written per case, ``S`` is a sum of products of per-case terms
``psi_i = (V10(x_i) - AUC) / sqrt(m (m - 1))`` (positives) and
``(V01(y_j) - AUC) / sqrt(n (n - 1))`` (negatives): ``Var(sum_r w_r AUC_r) =
sum_i (sum_r w_r psi_ri)^2`` reproduces DeLong's variance exactly for any contrast ``w`` of
models scored on one label. :func:`delong_contrast` uses the same sum when the AUCs belong to
different labels of a multi-label problem (each label its own positives and negatives, the
cases shared), which gives DeLong-type confidence intervals for a difference in *mean* AUC
over classes; the bootstrap (:func:`paired_bootstrap`) checks it.

The paired bootstrap resamples cases with replacement, the same indices for every model, and
recomputes any statistic (a difference in mean AUC, in localisation accuracy): percentile
confidence interval, bootstrap standard error, and a two-sided p-value from the share of
replicates on the other side of 0 (add-one, so never 0).

This module imports numpy and scipy only; never torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

__all__ = ["DeLongResult", "delong", "delong_contrast", "auc_ci", "auc_components", "fast_auc",
           "BootstrapResult", "paired_bootstrap", "bootstrap_indices", "summarize_bootstrap"]


def _z(level: float) -> float:
    from scipy.stats import norm

    if not (isinstance(level, (int, float)) and not isinstance(level, bool) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must be a confidence level in (0, 1), e.g. 0.95, got {level!r}")
    return float(norm.ppf(0.5 + float(level) / 2.0))


def _labels(y_true: Any, name: str) -> np.ndarray:
    try:
        y = np.asarray(y_true, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y_true must be a 1-D array of 0/1 labels: {exc}") from None
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D (one label per case), got shape {y.shape}")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"y_true must hold 0 and 1 only, found {np.unique(y[bad])[:5].tolist()}; drop unknown "
                         f"labels (NaN) from the cases first")
    m = int((y == 1).sum())
    if m < 2 or y.size - m < 2:
        which, have = ("positive", m) if m < 2 else ("negative", y.size - m)
        raise ValueError(f"{name} has {'no' if have == 0 else 'only one'} {which} case among its {y.size}: DeLong's "
                         f"variance needs at least two positive and two negative cases; leave this class out of the "
                         f"comparison (or use a test set with more {which} cases)")
    return y


def _scores(scores: Any, n: int, what: str) -> np.ndarray:
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a 1-D array of scores: {exc}") from None
    if s.ndim != 1 or s.size != n:
        raise ValueError(f"{what} must be 1-D with one score per case ({n}), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{what} has {int((~np.isfinite(s)).sum())} NaN/inf score(s); scores must be finite")
    return s


def auc_components(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, np.ndarray]:
    """The AUC of ``scores`` for the 0/1 ``y_true`` and each case's scaled DeLong component ``psi`` (see the
    module docstring): ``sum(psi ** 2)`` is DeLong's variance of the AUC. Inputs are not checked (at least two
    positive and two negative cases)."""
    from scipy.stats import rankdata

    pos = y_true == 1
    m, n = int(pos.sum()), int((~pos).sum())
    x, yneg = scores[pos], scores[~pos]
    tz = rankdata(np.concatenate([x, yneg]))
    tx, ty = rankdata(x), rankdata(yneg)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    psi = np.empty(y_true.size)
    psi[pos] = (v10 - auc) / math.sqrt(m * (m - 1))
    psi[~pos] = (v01 - auc) / math.sqrt(n * (n - 1))
    return float(auc), psi


def fast_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The Mann-Whitney AUC (ties count 1/2; equal to scikit-learn's ``roc_auc_score``) by midranks;
    NaN when ``y_true`` lacks positives or negatives. Inputs are not checked."""
    from scipy.stats import rankdata

    pos = y_true == 1
    m = int(pos.sum())
    n = y_true.size - m
    if m == 0 or n == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[pos].sum() - m * (m + 1) / 2.0) / (m * n))


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of ``AUC_a - AUC_b`` on the same cases.

    Attributes
    ----------
    auc_a, auc_b : float
        The two AUCs.
    difference : float
        ``auc_a - auc_b``.
    ci : tuple of float
        Its confidence interval at ``level`` (normal approximation).
    p_value : float
        Two-sided, for "no difference".
    se, z : float
        Standard error of the difference and ``difference / se``.
    n_positives, n_negatives : int
        The cases.
    level : float
        Confidence level of ``ci``.
    """

    auc_a: float
    auc_b: float
    difference: float
    ci: tuple[float, float]
    p_value: float
    se: float
    z: float
    n_positives: int
    n_negatives: int
    level: float


def _test(diff: float, var: float, level: float) -> tuple[tuple[float, float], float, float, float]:
    from scipy.stats import norm

    se = math.sqrt(max(var, 0.0))
    z_crit = _z(level)
    if se == 0.0:  # identical component sums: no sampling variation of the difference
        return (diff, diff), (1.0 if diff == 0.0 else 0.0), 0.0, (0.0 if diff == 0.0 else math.copysign(math.inf, diff))
    z = diff / se
    return (diff - z_crit * se, diff + z_crit * se), float(2.0 * norm.sf(abs(z))), se, z


def delong(y_true: Any, scores_a: Any, scores_b: Any, *, level: float = 0.95, name: str = "y_true") -> DeLongResult:
    """DeLong's test for two correlated ROC AUCs on the same cases (fast algorithm of Sun & Xu, 2014).

    Parameters
    ----------
    y_true:
        ``(N,)`` labels, 0 or 1.
    scores_a, scores_b:
        ``(N,)`` finite scores of the two models on the same cases (higher = more likely
        positive; only their order matters).
    level:
        Confidence level of the interval (default 0.95).
    name:
        What the labels are (a class name), used in error messages.

    Returns
    -------
    DeLongResult
        ``auc_a``, ``auc_b``, ``difference`` (a - b), ``ci``, ``p_value`` (two-sided), ...

    Raises
    ------
    ValueError
        Labels other than 0/1, no positive or no negative case (named by ``name``), scores
        of another length or not finite, a level outside (0, 1).
    """
    y = _labels(y_true, name)
    a = _scores(scores_a, y.size, "scores_a")
    b = _scores(scores_b, y.size, "scores_b")
    auc_a, psi_a = auc_components(y, a)
    auc_b, psi_b = auc_components(y, b)
    diff = auc_a - auc_b
    ci, p, se, z = _test(diff, float(((psi_a - psi_b) ** 2).sum()), level)
    m = int((y == 1).sum())
    return DeLongResult(auc_a=auc_a, auc_b=auc_b, difference=diff, ci=ci, p_value=p, se=se, z=z, n_positives=m,
                        n_negatives=int(y.size - m), level=float(level))


def auc_ci(y_true: Any, scores: Any, *, level: float = 0.95, name: str = "y_true") -> tuple[float, tuple[float, float], float]:
    """An AUC with DeLong's confidence interval: ``(auc, (low, high), se)``, the interval clipped to [0, 1].

    Raises
    ------
    ValueError
        As :func:`delong`.
    """
    y = _labels(y_true, name)
    s = _scores(scores, y.size, "scores")
    auc, psi = auc_components(y, s)
    se = float(math.sqrt((psi ** 2).sum()))
    z = _z(level)
    return auc, (max(0.0, auc - z * se), min(1.0, auc + z * se)), se


def delong_contrast(y_true: Any, scores: Any, weights: Any, *, level: float = 0.95,
                    names: Optional[Sequence[str]] = None) -> tuple[float, tuple[float, float], float, float]:
    """DeLong's test of a linear combination of AUCs of several models and classes on the same cases.

    Parameters
    ----------
    y_true:
        ``(N, K)`` labels 0 / 1 (NaN = unknown: that case is left out of that class).
    scores:
        ``(R, N, K)`` scores of ``R`` models.
    weights:
        ``(R, K)``: the contrast ``sum_rk w_rk AUC_rk``; e.g. the difference in mean AUC over
        ``K`` classes between model 0 and model 1 is ``[[1/K] * K, [-1/K] * K]``.
    level:
        Confidence level.
    names:
        ``K`` class names for error messages.

    Returns
    -------
    tuple
        ``(estimate, (low, high), p_value, se)``.

    Raises
    ------
    ValueError
        Shapes that do not agree, a class with a non-zero weight and no positive or no
        negative known case (named).
    """
    t = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if t.ndim != 2 or s.ndim != 3 or s.shape[1:] != t.shape or w.shape != (s.shape[0], t.shape[1]):
        raise ValueError(f"y_true (N, K), scores (R, N, K) and weights (R, K) must agree; got {t.shape}, "
                         f"{s.shape} and {w.shape}")
    names = list(names) if names is not None else [f"class_{k}" for k in range(t.shape[1])]
    est, total = 0.0, np.zeros(t.shape[0])
    for k in range(t.shape[1]):
        if not w[:, k].any():
            continue
        known = ~np.isnan(t[:, k])
        y = _labels(t[known, k], f"class {names[k]!r}")
        for r in range(s.shape[0]):
            if w[r, k] == 0.0:
                continue
            sc = _scores(s[r, known, k], y.size, f"scores of model {r}, class {names[k]!r}")
            auc, psi = auc_components(y, sc)
            est += w[r, k] * auc
            total[known] += w[r, k] * psi
    ci, p, se, _ = _test(est, float((total ** 2).sum()), level)
    return est, ci, p, se


@dataclass(frozen=True)
class BootstrapResult:
    """A statistic of paired cases with its bootstrap distribution.

    Attributes
    ----------
    estimate : float
        The statistic on all cases.
    ci : tuple of float
        Percentile interval of the replicates at ``level``.
    se : float
        Standard deviation of the replicates.
    p_value : float
        Two-sided: ``2 (k + 1) / (n_valid + 1)``, at most 1, with ``k`` the smaller of the
        numbers of replicates at or below and at or above 0 (the add-one estimate, which is
        never 0: with every replicate on one side it is ``2 / (n_valid + 1)``).
    n_resamples, n_valid : int
        Replicates drawn, and those where the statistic was defined (finite).
    level : float
        Confidence level.
    """

    estimate: float
    ci: tuple[float, float]
    se: float
    p_value: float
    n_resamples: int
    n_valid: int
    level: float


def paired_bootstrap(statistic: Callable[[np.ndarray], float], n: int, *, n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> BootstrapResult:
    """Resample ``n`` paired cases with replacement and recompute ``statistic`` on each resample.

    Parameters
    ----------
    statistic:
        ``statistic(indices) -> float``: the statistic computed on the cases ``indices``
        (an int array of length ``n``; ``numpy.arange(n)`` is the data itself). Every model
        is evaluated on the same indices, which is what makes the comparison paired. A
        replicate where it is not finite (e.g. a resample without a positive case) is left
        out and counted.
    n:
        Number of cases.
    n_resamples:
        Replicates (default 2000).
    seed:
        Seed of the resampling (the same seed gives the same interval).
    level:
        Confidence level of the percentile interval.

    Returns
    -------
    BootstrapResult

    Raises
    ------
    ValueError
        ``n`` < 2, ``n_resamples`` < 10, a level outside (0, 1), a statistic that is not
        finite on the data itself, or fewer than half the replicates valid.
    """
    _z(level)
    est = float(statistic(np.arange(n)))
    reps = np.array([statistic(idx) for idx in bootstrap_indices(n, n_resamples=n_resamples, seed=seed)],
                    dtype=np.float64)
    return summarize_bootstrap(est, reps, level=level)


def bootstrap_indices(n: int, *, n_resamples: int = 2000, seed: int = 0) -> Iterator[np.ndarray]:
    """The resamples :func:`paired_bootstrap` draws: ``n_resamples`` arrays of ``n`` case indices drawn with
    replacement from a generator seeded with ``seed`` (for statistics computed several at a time).

    Raises
    ------
    ValueError
        ``n`` < 2 or ``n_resamples`` < 10.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be the number of cases, >= 2, got {n!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 10:
        raise ValueError(f"n_resamples must be an integer >= 10 (2000 is usual), got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    for _ in range(int(n_resamples)):
        yield rng.integers(0, n, size=int(n))


def summarize_bootstrap(estimate: float, replicates: Any, *, level: float = 0.95) -> BootstrapResult:
    """A :class:`BootstrapResult` from a statistic's value on the data and its replicates (non-finite ones are
    left out and counted).

    Raises
    ------
    ValueError
        A level outside (0, 1), an estimate that is not finite, or fewer than half the replicates finite.
    """
    _z(level)
    est = float(estimate)
    reps = np.asarray(replicates, dtype=np.float64).ravel()
    if not math.isfinite(est):
        raise ValueError("the statistic is not finite on the data itself; check that every class compared has "
                         "positive and negative cases")
    ok = reps[np.isfinite(reps)]
    if ok.size < max(2, reps.size / 2):
        raise ValueError(f"the statistic was undefined on {reps.size - ok.size} of {reps.size} resamples "
                         f"(classes with too few positive or negative cases); compare on more cases")
    alpha = 1.0 - float(level)
    lo, hi = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0])
    k = min(int((ok <= 0).sum()), int((ok >= 0).sum()))
    p = min(1.0, 2.0 * (k + 1) / (ok.size + 1))
    return BootstrapResult(estimate=est, ci=(float(lo), float(hi)), se=float(ok.std(ddof=1)), p_value=p,
                           n_resamples=int(reps.size), n_valid=int(ok.size), level=float(level))
