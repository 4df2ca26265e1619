"""Numba kernels for the first-order statistics (PyRadiomics' ``firstorder``), bit for bit numpy's.

- :func:`pairwise_sum`: ``numpy.sum`` of a float64 array with numpy's pairwise summation, bit for bit
  (the voxel-based first-order maps use it too);
- :func:`level_counts`: how many voxels hold each gray level of a discretized box;
- :func:`counted_order_statistics`: order statistics of whole-number values over a modest range by
  counting, no sort;
- :func:`moments`: the sums behind Energy, Mean, MeanAbsoluteDeviation, Variance, Skewness and
  Kurtosis, each one ``numpy.mean`` of the same elementwise terms numpy's code makes;
- :func:`robust_mad`: RobustMeanAbsoluteDeviation over the values between two percentiles.

Each replaces a chain of numpy calls (each a pass over the ROI's values with a temporary) by one or two
passes, with the same arithmetic per value and numpy's summation order, so the results are numpy's.
Single-threaded: parallelise across cases.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["pairwise_sum", "level_counts", "counted_order_statistics", "moments", "robust_mad"]

_BLOCK = 128  # numpy's PW_BLOCKSIZE


@numba.njit(cache=True, nogil=True)
def _pairwise_leaf(a, lo, n):
    """numpy's ``pairwise_sum`` for ``n <= 128`` values: a plain loop under 8, else 8 accumulators."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
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
    n = a.shape[0]
    if n <= _BLOCK:
        return 0.0 + _pairwise_leaf(a, 0, n)
    plan = _pairwise_plan(n)
    vals = np.empty(64)
    nv = 0
    for r in range(plan.shape[0]):
        if plan[r, 0] >= 0:
            vals[nv] = _pairwise_leaf(a, plan[r, 0], plan[r, 1])
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
def _moment_leaf(x, lo, n, mean, out):
    """The four moment terms of ``x[lo:lo + n]`` (``n <= 128``), each summed as :func:`_pairwise_leaf` sums
    (a plain loop under 8 values, else 8 interleaved accumulators combined pairwise, then the rest): keep the
    two in step, ``tests/test_firstorder.py`` compares the results with numpy's by ==."""
    if n < 8:
        for k in range(4):
            out[k] = 0.0
        for i in range(lo, lo + n):
            d = x[i] - mean
            d2 = d * d
            out[0] += abs(d)
            out[1] += d2
            out[2] += d2 * d
            out[3] += d2 * d2
        return
    r = np.empty((4, 8))
    for j in range(8):
        d = x[lo + j] - mean
        d2 = d * d
        r[0, j] = abs(d)
        r[1, j] = d2
        r[2, j] = d2 * d
        r[3, j] = d2 * d2
    i = 8
    stop = n - (n % 8)
    while i < stop:
        for j in range(8):
            d = x[lo + i + j] - mean
            d2 = d * d
            r[0, j] += abs(d)
            r[1, j] += d2
            r[2, j] += d2 * d
            r[3, j] += d2 * d2
        i += 8
    for k in range(4):
        out[k] = ((r[k, 0] + r[k, 1]) + (r[k, 2] + r[k, 3])) + ((r[k, 4] + r[k, 5]) + (r[k, 6] + r[k, 7]))
    while i < n:
        d = x[lo + i] - mean
        d2 = d * d
        out[0] += abs(d)
        out[1] += d2
        out[2] += d2 * d
        out[3] += d2 * d2
        i += 1


@numba.njit(cache=True, nogil=True)
def _central_sums(x, mean):
    """numpy's pairwise sums of ``|d|``, ``d*d``, ``d*d*d`` and ``d*d*(d*d)`` with ``d = x - mean``, without
    the four temporaries: :func:`pairwise_sum`'s tree, four sums per node."""
    n = x.shape[0]
    res = np.zeros(4)
    if n <= _BLOCK:
        _moment_leaf(x, 0, n, mean, res)
        return res
    plan = _pairwise_plan(n)
    vals = np.empty((64, 4))
    nv = 0
    for r in range(plan.shape[0]):
        if plan[r, 0] >= 0:
            _moment_leaf(x, plan[r, 0], plan[r, 1], mean, vals[nv])
            nv += 1
        else:
            for k in range(4):
                vals[nv - 2, k] = vals[nv - 2, k] + vals[nv - 1, k]
            nv -= 1
    return vals[0]


@numba.njit(cache=True, nogil=True)
def moments(x, shift):
    """numpy's ``sum((x + shift)**2)`` (as ``xs * xs``), ``mean(x)``, and, with ``d = x - mean``,
    ``mean(|d|)``, ``mean(d*d)``, ``mean(d*d*d)`` and ``mean(d*d*(d*d))``, each term formed as numpy's
    code forms it and summed in numpy's pairwise order."""
    n = x.size
    t = np.empty(n)
    for i in range(n):
        xs = x[i] + shift if shift != 0 else x[i]
        t[i] = xs * xs
    energy = pairwise_sum(t)
    mean = pairwise_sum(x) / n
    c = _central_sums(x, mean)
    return energy, mean, (0.0 + c[0]) / n, (0.0 + c[1]) / n, (0.0 + c[2]) / n, (0.0 + c[3]) / n


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
    mean = pairwise_sum(s) / m
    for i in range(m):
        s[i] = abs(s[i] - mean)
    return pairwise_sum(s) / m
