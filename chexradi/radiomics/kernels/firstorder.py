"""Numba kernels for the first-order statistics (PyRadiomics' ``firstorder``), bit for bit numpy's.

- :func:`pairwise_sum`: ``numpy.sum`` of a float64 array with numpy's pairwise summation, bit for bit
  (the voxel-based first-order maps use it too);
- :func:`level_counts`: how many voxels hold each gray level of a discretized box;
- :func:`counted_order_statistics`: order statistics of whole-number values over a modest range by
  counting, no sort;
- :func:`moments`: the sums behind Energy, Mean, MeanAbsoluteDeviation, Variance, Skewness and
  Kurtosis, each one ``numpy.mean`` of the same elementwise terms numpy's code makes;
- :func:`robust_mad`: RobustMeanAbsoluteDeviation over the values between two percentiles.

Each replaces a chain of numpy calls (each a pass over the ROI's values with a temporary) by passes
without temporaries (one per sum: numpy's pairwise tree over terms formed as numpy forms them, see
``_term``), with the same arithmetic per value and numpy's summation order, so the results are numpy's.
Single-threaded: parallelise across cases.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["pairwise_sum", "level_counts", "counted_order_statistics", "moments", "robust_mad"]

_BLOCK = 128  # numpy's PW_BLOCKSIZE


# The terms the sums below add, formed as numpy's expressions form them (d = v - m): v, (v + m) * (v + m),
# |d|, d * d, d * d * d (as d2 * d) and d * d * (d * d).
PLAIN, SHIFTED_SQUARE, ABS, SQUARE, CUBE, FOURTH = 0, 1, 2, 3, 4, 5


@numba.njit(cache=True, nogil=True, inline="always")
def _term(v, m, kind):
    if kind == PLAIN:
        return v
    if kind == SHIFTED_SQUARE:
        xs = v + m
        return xs * xs
    d = v - m
    if kind == ABS:
        return abs(d)
    d2 = d * d
    if kind == SQUARE:
        return d2
    if kind == CUBE:
        return d2 * d
    return d2 * d2


@numba.njit(cache=True, nogil=True)
def _pairwise_leaf(a, lo, n, m, kind):
    """numpy's ``pairwise_sum`` of the terms of ``a[lo:lo + n]`` for ``n <= 128``: a plain loop under 8,
    else 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += _term(a[i], m, kind)
        return res
    r0 = _term(a[lo], m, kind)
    r1 = _term(a[lo + 1], m, kind)
    r2 = _term(a[lo + 2], m, kind)
    r3 = _term(a[lo + 3], m, kind)
    r4 = _term(a[lo + 4], m, kind)
    r5 = _term(a[lo + 5], m, kind)
    r6 = _term(a[lo + 6], m, kind)
    r7 = _term(a[lo + 7], m, kind)
    i = 8
    stop = n - (n % 8)
    while i < stop:
        r0 += _term(a[lo + i], m, kind)
        r1 += _term(a[lo + i + 1], m, kind)
        r2 += _term(a[lo + i + 2], m, kind)
        r3 += _term(a[lo + i + 3], m, kind)
        r4 += _term(a[lo + i + 4], m, kind)
        r5 += _term(a[lo + i + 5], m, kind)
        r6 += _term(a[lo + i + 6], m, kind)
        r7 += _term(a[lo + i + 7], m, kind)
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += _term(a[lo + i], m, kind)
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def _pairwise_plan(n):
    """numpy's recursive pairwise summation of ``n > 128`` values (halves rounded down to a multiple of 8,
    leaves of at most 128) as a postfix program, made with an explicit stack (numba cannot reload a cached
    recursive function): a row ``(lo, m)`` pushes the sum of the leaf ``[lo, lo + m)``, a row ``(-1, 0)``
    replaces the top two sums by their sum (left + right)."""
    plan = np.empty((4 * (n // 64) + 4, 2), np.int64)  # leaves hold at least 64 values
    f_lo = np.empty(64, np.int64)
    f_n = np.empty(64, np.int64)
    f_state = np.empty(64, np.int64)
    f_lo[0] = 0
    f_n[0] = n
    f_state[0] = 0
    top = 1
    rows = 0
    while top > 0:
        t = top - 1
        m = f_n[t]
        if m <= _BLOCK:
            plan[rows, 0] = f_lo[t]
            plan[rows, 1] = m
            rows += 1
            top -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if f_state[t] == 0:
            f_state[t] = 1
            f_lo[top] = f_lo[t]
            f_n[top] = n2
            f_state[top] = 0
            top += 1
        elif f_state[t] == 1:
            f_state[t] = 2
            f_lo[top] = f_lo[t] + n2
            f_n[top] = m - n2
            f_state[top] = 0
            top += 1
        else:
            plan[rows, 0] = -1
            plan[rows, 1] = 0
            rows += 1
            top -= 1
    return plan[:rows]


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a):
    """``numpy.sum`` of a 1-D float64 array, bit for bit (numpy's pairwise summation)."""
    return _terms_sum(a, 0.0, PLAIN, _plan(a.shape[0]))


_NO_PLAN = np.empty((0, 2), np.int64)


@numba.njit(cache=True, nogil=True)
def _plan(n):
    """:func:`_pairwise_plan` of ``n`` values, for :func:`_terms_sum` (none needed up to 128 values)."""
    return _pairwise_plan(n) if n > _BLOCK else _NO_PLAN


@numba.njit(cache=True, nogil=True)
def _terms_sum(a, m, kind, plan):
    """numpy's ``sum`` of the array of terms ``kind`` of ``a`` (see :func:`_term`) without making that array:
    its pairwise tree (``plan``: :func:`_pairwise_plan` of ``a.shape[0]``, unused up to 128 values)."""
    n = a.shape[0]
    if n <= _BLOCK:
        return 0.0 + _pairwise_leaf(a, 0, n, m, kind)
    vals = np.empty(64)
    nv = 0
    for r in range(plan.shape[0]):
        if plan[r, 0] >= 0:
            vals[nv] = _pairwise_leaf(a, plan[r, 0], plan[r, 1], m, kind)
            nv += 1
        else:
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
    return 0.0 + vals[0]


@numba.njit(cache=True, nogil=True)
def _count(values, offset, top):
    """``numpy.bincount(values - offset)`` (``top`` the largest shifted value) with four interleaved counters,
    so that a run of equal values does not chain every increment on the one before."""
    c = np.zeros((4, top + 1), np.int64)
    n = values.size
    stop = n - n % 4
    for i in range(0, stop, 4):
        c[0, np.int64(values[i] - offset)] += 1
        c[1, np.int64(values[i + 1] - offset)] += 1
        c[2, np.int64(values[i + 2] - offset)] += 1
        c[3, np.int64(values[i + 3] - offset)] += 1
    for i in range(stop, n):
        c[0, np.int64(values[i] - offset)] += 1
    out = np.empty(top + 1, np.int64)
    for k in range(top + 1):
        out[k] = (c[0, k] + c[1, k]) + (c[2, k] + c[3, k])
    return out


@numba.njit(cache=True, nogil=True)
def level_counts(binned):
    """``numpy.bincount`` of a flat array of non-negative gray levels (0: outside the ROI)."""
    top = 0
    for i in range(binned.size):
        top = max(top, binned[i])
    return _count(binned, 0, top)


@numba.njit(cache=True, nogil=True)
def counted_order_statistics(x, kth, max_span):
    """The ``kth`` smallest values (``kth`` sorted) of ``x`` when every ``x - min(x)`` is a whole number and
    ``max(x) - min(x) <= max_span``: counted, exactly. Returns ``(True, values)``, or ``(False, empty)``
    when the values do not qualify (then partition them)."""
    n = x.size
    mn = x[0]
    mx = x[0]
    whole = True
    for i in range(n):
        v = x[i]
        mn = min(mn, v)
        mx = max(mx, v)
    out = np.empty(kth.size)
    if not (mx - mn <= max_span):
        return False, out[:0]
    for i in range(n):
        d = x[i] - mn
        whole &= np.float64(np.int64(d)) == d
    if not whole:
        return False, out[:0]
    counts = _count(x, mn, np.int64(mx - mn))
    cum = 0
    p = 0
    for k in range(kth.size):
        while cum + counts[p] <= kth[k]:  # the first value whose cumulative count exceeds k
            cum += counts[p]
            p += 1
        out[k] = mn + p
    return True, out


@numba.njit(cache=True, nogil=True)
def moments(x, shift):
    """numpy's ``sum((x + shift)**2)`` (as ``xs * xs``), ``mean(x)``, and, with ``d = x - mean``,
    ``mean(|d|)``, ``mean(d*d)``, ``mean(d*d*d)`` and ``mean(d*d*(d*d))``, each term formed as numpy's
    code forms it and summed in numpy's pairwise order, one vectorised pass per sum without temporaries."""
    n = x.size
    plan = _plan(n)
    energy = _terms_sum(x, shift, SHIFTED_SQUARE, plan)
    mean = _terms_sum(x, 0.0, PLAIN, plan) / n
    return (energy, mean, _terms_sum(x, mean, ABS, plan) / n, _terms_sum(x, mean, SQUARE, plan) / n,
            _terms_sum(x, mean, CUBE, plan) / n, _terms_sum(x, mean, FOURTH, plan) / n)


@numba.njit(cache=True, nogil=True)
def robust_mad(x, lo, hi):
    """numpy's ``mean(|s - mean(s)|)`` of ``s = x[(x >= lo) & (x <= hi)]``; NaN when ``s`` is empty."""
    s = np.empty(x.size)
    m = 0
    for i in range(x.size):
        s[m] = x[i]
        m += (x[i] >= lo) & (x[i] <= hi)
    if m == 0:
        return np.nan
    s = s[:m]
    plan = _plan(m)
    mean = _terms_sum(s, 0.0, PLAIN, plan) / m
    return _terms_sum(s, mean, ABS, plan) / m
