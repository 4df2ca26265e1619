"""Numba kernels shared by 2-D and 3-D shape: exact convex hulls of mesh vertices and their diameter.

The vertices of a marching-squares / marching-cubes mesh of a binary mask lie on the half-voxel
grid. The farthest pair of a point set is a pair of vertices of its convex hull, and the hull of a
set is the hull of the two extreme points of each of its lines, so a shape kernel keeps, per grid
line, only the smallest and largest coordinate (``lo``, ``hi``), builds the hull exactly in
integers (monotone chain: no rounding can drop an extreme point) and compares hull vertices only.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["hull_of_lines", "max_squared_distance"]


@njit(cache=True, nogil=True)
def _cross(oy, ox, ay, ax, by, bx):
    return (ay - oy) * (bx - ox) - (ax - ox) * (by - oy)


@njit(cache=True, nogil=True)
def hull_of_lines(lo, hi, row_min, row_max, out_r, out_c):
    """Convex hull (monotone chain, exact integers) of the points (r, lo[r]) and (r, hi[r]) for r in
    [row_min, row_max] where lo[r] <= hi[r]; its vertices go to out_r / out_c; returns their count."""
    n = 0
    for r in range(row_min, row_max + 1):
        if lo[r] <= hi[r]:
            n += 2 if hi[r] != lo[r] else 1
    if n == 0:
        return 0
    pr = np.empty(n, np.int64)
    pc = np.empty(n, np.int64)
    m = 0
    for r in range(row_min, row_max + 1):
        if lo[r] <= hi[r]:
            pr[m] = r
            pc[m] = lo[r]
            m += 1
            if hi[r] != lo[r]:
                pr[m] = r
                pc[m] = hi[r]
                m += 1
    hr = np.empty(2 * m + 1, np.int64)
    hc = np.empty(2 * m + 1, np.int64)
    k = 0
    for i in range(m):  # lower chain
        while k >= 2 and _cross(hr[k - 2], hc[k - 2], hr[k - 1], hc[k - 1], pr[i], pc[i]) <= 0:
            k -= 1
        hr[k] = pr[i]
        hc[k] = pc[i]
        k += 1
    t = k + 1
    for i in range(m - 2, -1, -1):  # upper chain
        while k >= t and _cross(hr[k - 2], hc[k - 2], hr[k - 1], hc[k - 1], pr[i], pc[i]) <= 0:
            k -= 1
        hr[k] = pr[i]
        hc[k] = pc[i]
        k += 1
    if k > 1:
        k -= 1  # the last point repeats the first
    for i in range(k):
        out_r[i] = hr[i]
        out_c[i] = hc[i]
    return k


@njit(cache=True, nogil=True)
def max_squared_distance(hr, hc, k, s_r, s_c):
    """Largest squared distance between the first k points (half-voxel coordinates, scaled by s_r / s_c).

    Computed as PyRadiomics' C code computes a distance, the sum of the squared coordinate
    differences; the zero term of the coordinate two points of a plane share is added first here
    (in C it comes wherever that coordinate is), which changes nothing: adding 0 is exact.
    """
    best = 0.0
    for i in range(k):
        ai = (hr[i] * 0.5) * s_r
        bi = (hc[i] * 0.5) * s_c
        for j in range(i):
            d0 = ai - (hr[j] * 0.5) * s_r
            d1 = bi - (hc[j] * 0.5) * s_c
            d0 *= d0
            d1 *= d1
            dist = 0.0 + d0 + d1
            if dist > best:
                best = dist
    return best
