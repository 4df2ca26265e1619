"""Numba kernel for 2-D shape: marching squares (perimeter, mesh surface, maximum diameter) and pixel moments.

This reproduces PyRadiomics' C routine ``calculate_coefficients2D`` (``cshape.c``)
on the mask padded with one row/column of zeros on every side, as
``RadiomicsShape2D`` pads it. Written from the algorithm, not translated:

* A 2x2 square walks over the padded mask; its corners ``p0 = (y, x)``,
  ``p1 = (y, x+1)``, ``p2 = (y+1, x+1)``, ``p3 = (y+1, x)`` give a 4-bit index.
  Each index maps to 0, 1 or 2 oriented line segments between the edge
  midpoints ``v0 = (0, .5)``, ``v1 = (.5, 1)``, ``v2 = (1, .5)``, ``v3 = (.5, 0)``
  (relative to ``(y, x)``, scaled by the pixel spacing).
* Perimeter = sum of the segment lengths. Mesh surface = half the sum of the
  cross products ``a_y b_x - b_y a_x`` of the segment end points (signed
  triangle areas with the origin; the orientation of the table makes the
  outside cancel). Segments are visited in the same row-major order as the C
  code, with the same arithmetic.
* Maximum diameter = largest distance between two mesh vertices (all edge
  midpoints where the mask changes). PyRadiomics compares all pairs; the
  farthest pair always lies on the convex hull, so we keep per row of
  vertices only the leftmost and rightmost one, build the hull exactly on the
  integer half-pixel grid (monotone chain), and compare the hull vertices
  pairwise with the same float expression as the C code.

The same pass collects, per row and per column of the mask, the pixel counts
and coordinate sums, from which the centred second moments (the covariance
matrix PyRadiomics feeds to ``eigvals`` for the axis features) follow in
O(rows + columns).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .hull import hull_of_lines, max_squared_distance

__all__ = ["shape2d_coefficients"]

# Line table: for square index 0..15, up to two segments (start vertex, end vertex), -1 = none.
_LINES = np.array(
    [
        [-1, -1, -1, -1],
        [3, 0, -1, -1],
        [0, 1, -1, -1],
        [3, 1, -1, -1],
        [1, 2, -1, -1],
        [1, 2, 3, 0],
        [0, 2, -1, -1],
        [3, 2, -1, -1],
        [2, 3, -1, -1],
        [2, 0, -1, -1],
        [0, 1, 2, 3],
        [2, 1, -1, -1],
        [1, 3, -1, -1],
        [1, 0, -1, -1],
        [0, 3, -1, -1],
        [-1, -1, -1, -1],
    ],
    dtype=np.int64,
)
# Edge midpoints (dy, dx) relative to the square's upper-left corner.
_VERTS = np.array([[0.0, 0.5], [0.5, 1.0], [1.0, 0.5], [0.5, 0.0]])


@njit(cache=True, nogil=True)
def _diameter(rmin, rmax, sy, sx):
    """Max vertex distance from per-row extreme vertices (half-pixel integer coords)."""
    n = rmin.shape[0]
    hr = np.empty(2 * n + 1, np.int64)
    hc = np.empty(2 * n + 1, np.int64)
    k = hull_of_lines(rmin, rmax, 0, n - 1, hr, hc)
    return np.sqrt(max_squared_distance(hr, hc, k, sy, sx))


@njit(cache=True, nogil=True)
def shape2d_coefficients(mask, sy, sx):
    """Perimeter, mesh surface, maximum diameter and pixel moments of a 2-D boolean mask.

    Parameters
    ----------
    mask : 2-D bool array (y, x), not padded (the kernel pads by one virtually).
    sy, sx : pixel spacing along y and x.

    Returns
    -------
    (perimeter, surface, diameter, n_pixels, c_yy, c_xx, c_yx) where ``c_..`` are the
    centred second moments of the physical pixel-centre coordinates divided by
    ``n_pixels`` (the covariance matrix PyRadiomics uses for the axis lengths).
    """
    h, w = mask.shape
    H = h + 2
    W = w + 2
    pad = np.zeros((H, W), np.uint8)
    for y in range(h):
        for x in range(w):
            pad[y + 1, x + 1] = mask[y, x]
    perimeter = 0.0
    surface = 0.0
    # extreme vertices per half-pixel row (vertex rows 0 .. 2H)
    nvr = 2 * H + 1
    rmin = np.full(nvr, 1 << 60, np.int64)
    rmax = np.full(nvr, -1, np.int64)
    for iy in range(H - 1):
        for ix in range(W - 1):
            p0 = pad[iy, ix]
            p1 = pad[iy, ix + 1]
            p2 = pad[iy + 1, ix + 1]
            p3 = pad[iy + 1, ix]
            sq = p0 | (p1 << 1) | (p2 << 2) | (p3 << 3)
            if sq == 0 or sq == 15:
                continue
            for t in range(2):
                v0 = _LINES[sq, 2 * t]
                if v0 < 0:
                    break
                v1 = _LINES[sq, 2 * t + 1]
                a0 = (iy + _VERTS[v0, 0]) * sy
                a1 = (ix + _VERTS[v0, 1]) * sx
                b0 = (iy + _VERTS[v1, 0]) * sy
                b1 = (ix + _VERTS[v1, 1]) * sx
                surface += (a0 * b1) - (b0 * a1)
                d0 = a0 - b0
                d1 = a1 - b1
                perimeter += np.sqrt(d0 * d0 + d1 * d1)
            # vertices on the left edge (p0-p3) and bottom edge (p3-p2), as the C code stores them
            if p0 != p3:
                r = 2 * iy + 1
                c = 2 * ix
                if c < rmin[r]:
                    rmin[r] = c
                if c > rmax[r]:
                    rmax[r] = c
            if p3 != p2:
                r = 2 * iy + 2
                c = 2 * ix + 1
                if c < rmin[r]:
                    rmin[r] = c
                if c > rmax[r]:
                    rmax[r] = c
    surface = surface / 2.0
    diameter = _diameter(rmin, rmax, sy, sx)

    # moments: per-row counts / x sums and per-column counts (exact integers)
    rn = np.zeros(h, np.int64)
    rsx = np.zeros(h, np.int64)
    cn = np.zeros(w, np.int64)
    n = 0
    sum_y = 0
    sum_x = 0
    for y in range(h):
        row_n = 0
        row_x = 0
        for x in range(w):  # without branches: exact integer sums
            v = np.int64(mask[y, x])
            row_n += v
            row_x += v * x
            cn[x] += v
        rn[y] = row_n
        rsx[y] = row_x
        n += rn[y]
        sum_y += rn[y] * y
        sum_x += rsx[y]
    c_yy = 0.0
    c_xx = 0.0
    c_yx = 0.0
    if n > 0:
        my = sum_y / n
        mx = sum_x / n
        for y in range(h):
            if rn[y] > 0:
                dy = y - my
                c_yy += rn[y] * dy * dy
                c_yx += dy * (rsx[y] - rn[y] * mx)
        for x in range(w):
            if cn[x] > 0:
                dx = x - mx
                c_xx += cn[x] * dx * dx
        c_yy = c_yy * sy * sy / n
        c_xx = c_xx * sx * sx / n
        c_yx = c_yx * sy * sx / n
    return perimeter, surface, diameter, n, c_yy, c_xx, c_yx
