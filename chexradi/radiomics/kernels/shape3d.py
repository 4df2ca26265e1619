"""Numba kernel for 3-D shape: marching cubes (mesh volume, surface area, the four maximum diameters).

This reproduces PyRadiomics' C routine ``calculate_coefficients`` (``cshape.c``) on the
mask padded with one voxel of background on every side, as ``RadiomicsShape`` pads it:

* A 2x2x2 cube walks over the padded mask (numpy order z, y, x). Its corners
  ``p0 .. p7`` are (0,0,0), (0,0,1), (0,1,1), (0,1,0), (1,0,0), (1,0,1), (1,1,1),
  (1,1,0) relative to the cube's origin and give an 8-bit index. An index with ``p7``
  set is complemented (the surface is the same, its orientation flips, so the volume
  term changes sign), which leaves 128 cases.
* Each case is a list of oriented triangles between the midpoints of the cube's 12
  edges (the mask is binary, so the surface crosses an edge at its middle): the
  classic marching-cubes triangle table of Lorensen & Cline (1987) as Paul Bourke
  published it, in the corner and edge numbering above, so that the triangulation of
  the ambiguous cases, and with it the surface area, is PyRadiomics'.
* Surface area = the sum of the triangles' areas; mesh volume = the sum of the signed
  volumes of the tetrahedra (origin, triangle) / 6. Same arithmetic as the C code.
* Diameters. PyRadiomics compares every pair of mesh vertices (the midpoints of the
  edges where the mask changes), O(n^2) in the number of vertices: on a CT lung that
  is most of its run time. The farthest pair of a point set is a pair of vertices of
  its convex hull, so this kernel keeps, per line of vertices, only the two extreme
  ones, builds the convex hull of each plane exactly on the integer half-voxel grid
  (monotone chain), and compares hull vertices only:

  - ``Maximum2DDiameterSlice`` (equal z), ``...Column`` (equal y) and ``...Row``
    (equal x): the farthest pair within each plane's hull;
  - ``Maximum3DDiameter``: a vertex of the 3-D hull is a vertex of the hull of every
    plane through it, so the candidates are the vertices that are on their slice's,
    their column plane's and their row plane's hull at once; they are compared
    pairwise.

  The physical coordinates ``(index + offset) * spacing`` and the squared distances
  are computed with the same float expressions as the C code, so the maxima are the
  same numbers.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .hull import hull_of_lines as _hull, max_squared_distance as _plane_diameter

__all__ = ["shape3d_coefficients", "TRIANGLES", "EDGE_MIDPOINTS"]

# One line per cube index 0..127: the triangles' edge numbers, three per triangle ("-": none).
_TABLE = """
    -
    0 8 3
    1 9 0
    1 8 3 1 9 8
    1 2 10
    0 8 3 1 2 10
    9 2 10 0 2 9
    2 8 3 2 10 8 10 9 8
    11 2 3
    11 2 0 0 8 11
    1 9 0 11 2 3
    11 2 1 1 9 11 9 8 11
    3 10 1 11 10 3
    10 1 0 0 8 10 8 11 10
    9 0 3 3 11 9 11 10 9
    9 8 10 11 10 8
    4 7 8
    0 4 3 4 7 3
    1 9 0 4 7 8
    1 9 4 1 4 7 1 7 3
    1 2 10 4 7 8
    3 4 7 3 0 4 1 2 10
    9 2 10 9 0 2 4 7 8
    2 10 9 2 9 7 2 7 3 4 7 9
    4 7 8 11 2 3
    11 4 7 11 2 4 2 0 4
    1 9 0 4 7 8 11 2 3
    4 7 11 9 4 11 11 2 9 1 9 2
    3 10 1 11 10 3 4 7 8
    11 10 1 1 4 11 1 0 4 4 7 11
    4 7 8 9 0 3 3 11 9 11 10 9
    4 7 11 4 11 9 9 11 10
    9 5 4
    9 5 4 0 8 3
    0 5 4 0 1 5
    8 5 4 8 3 5 3 1 5
    1 2 10 9 5 4
    0 8 3 1 2 10 9 5 4
    2 10 5 5 4 2 2 4 0
    2 10 5 3 2 5 3 5 4 8 3 4
    9 5 4 11 2 3
    11 2 0 0 8 11 9 5 4
    0 5 4 0 1 5 11 2 3
    2 1 5 2 5 8 11 2 8 5 4 8
    3 10 1 11 10 3 9 5 4
    5 4 9 10 1 0 0 8 10 8 11 10
    5 4 0 5 0 11 10 5 11 11 0 3
    5 4 8 10 5 8 11 10 8
    7 8 9 5 7 9
    3 0 9 5 3 9 3 5 7
    7 8 0 0 1 7 7 1 5
    1 5 7 1 7 3
    7 8 9 5 7 9 1 2 10
    1 2 10 3 0 9 3 9 5 3 5 7
    0 2 8 8 2 5 8 5 7 2 10 5
    2 10 5 2 5 3 3 5 7
    5 7 9 7 8 9 11 2 3
    5 7 9 9 7 2 2 0 9 11 2 7
    11 2 3 0 1 8 1 7 8 1 5 7
    2 1 11 1 7 11 1 5 7
    7 8 9 5 7 9 3 10 1 11 10 3
    5 7 0 5 0 9 7 11 0 10 1 0 11 10 0
    11 10 0 0 3 11 10 5 0 0 7 8 5 7 0
    11 10 5 5 7 11
    6 5 10
    0 8 3 6 5 10
    1 9 0 6 5 10
    1 8 3 1 9 8 6 5 10
    1 6 5 1 2 6
    1 6 5 1 2 6 0 8 3
    9 6 5 9 0 6 0 2 6
    5 9 8 5 8 2 5 2 6 8 3 2
    11 2 3 6 5 10
    11 2 0 0 8 11 6 5 10
    1 9 0 11 2 3 6 5 10
    11 2 1 1 9 11 9 8 11 6 5 10
    6 3 11 6 5 3 5 1 3
    0 8 11 0 11 5 0 5 1 5 11 6
    6 3 11 0 3 6 0 6 5 0 5 9
    6 5 9 6 9 11 11 9 8
    4 7 8 6 5 10
    0 4 3 4 7 3 6 5 10
    1 9 0 4 7 8 6 5 10
    1 9 4 1 4 7 1 7 3 6 5 10
    4 7 8 1 6 5 1 2 6
    0 4 3 4 7 3 1 6 5 1 2 6
    4 7 8 9 6 5 9 0 6 0 2 6
    7 3 9 4 7 9 3 2 9 5 9 6 2 6 9
    11 2 3 4 7 8 6 5 10
    11 4 7 11 2 4 2 0 4 6 5 10
    1 9 0 11 2 3 4 7 8 6 5 10
    4 7 11 9 4 11 11 2 9 1 9 2 6 5 10
    4 7 8 6 3 11 6 5 3 5 1 3
    5 1 11 5 11 6 1 0 11 4 7 11 0 4 11
    4 7 8 6 3 11 0 3 6 0 6 5 0 5 9
    6 5 9 6 9 11 4 7 9 7 11 9
    10 4 9 6 4 10
    10 4 9 6 4 10 0 8 3
    0 1 10 10 6 0 6 4 0
    1 8 3 1 6 8 8 6 4 6 1 10
    1 4 9 1 2 4 2 6 4
    1 4 9 1 2 4 2 6 4 0 8 3
    0 2 4 4 2 6
    8 3 2 8 2 4 4 2 6
    11 2 3 10 4 9 6 4 10
    11 2 0 0 8 11 10 4 9 6 4 10
    11 2 3 0 1 10 10 6 0 6 4 0
    6 4 1 6 1 10 1 4 8 11 2 1 1 8 11
    9 6 4 3 6 9 1 3 9 11 6 3
    1 8 11 0 8 1 11 6 1 1 4 9 6 4 1
    6 3 11 0 3 6 6 4 0
    8 6 4 6 8 11
    6 7 10 7 8 10 8 9 10
    6 7 10 0 10 7 0 9 10 0 7 3
    6 7 10 1 10 7 1 7 8 0 1 8
    6 7 10 1 10 7 1 7 3
    1 2 6 1 6 8 1 8 9 6 7 8
    2 6 9 1 2 9 6 7 9 3 0 9 7 3 9
    0 7 8 7 0 6 6 0 2
    2 7 3 2 6 7
    11 2 3 6 7 10 7 8 10 8 9 10
    2 0 7 11 2 7 0 9 7 6 7 10 9 10 7
    6 7 10 1 10 7 1 7 8 0 1 8 11 2 3
    11 2 1 1 7 11 10 6 1 1 6 7
    8 9 6 6 7 8 1 6 9 11 6 3 1 3 6
    0 9 1 6 7 11
    0 7 8 7 0 6 0 3 11 11 6 0
    6 7 11
"""


def _triangles() -> np.ndarray:
    rows = [line.split() for line in _TABLE.strip("\n").split("\n")]
    out = np.full((128, 16), -1, np.int64)
    for i, row in enumerate(rows):
        if row != ["-"]:
            out[i, :len(row)] = [int(v) for v in row]
    return out


#: Triangles per cube index (128 x 16) — edge numbers, three per triangle, -1 after the last.
TRIANGLES = _triangles()
#: Edge midpoints (dz, dy, dx) relative to the cube's origin — edges p0p1, p1p2, p2p3, p3p0, p4p5, p5p6,
#: p6p7, p7p4, p0p4, p1p5, p2p6, p3p7.
EDGE_MIDPOINTS = np.array([[0, 0, .5], [0, .5, 1], [0, 1, .5], [0, .5, 0], [1, 0, .5], [1, .5, 1],
                           [1, 1, .5], [1, .5, 0], [.5, 0, 0], [.5, 0, 1], [.5, 1, 1], [.5, 1, 0]])
_CORNERS = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1], [1, 1, 0]],
                    np.int64)
_BIG = 1 << 60


@njit(cache=True, nogil=True)
def _add(v, a, b, lo, hi):
    if v < lo[a, b]:
        lo[a, b] = v
    if v > hi[a, b]:
        hi[a, b] = v


@njit(cache=True, nogil=True)
def shape3d_coefficients(mask, sz, sy, sx):
    """Surface area, mesh volume and the maximum diameters of a 3-D boolean mask.

    Parameters
    ----------
    mask : 3-D bool array (z, y, x), not padded (the kernel pads by one voxel).
    sz, sy, sx : voxel spacing along z, y and x.

    Returns
    -------
    (surface_area, volume, d_slice, d_column, d_row, d_3d): the diameters are
    PyRadiomics' Maximum2DDiameterSlice (vertices of equal z), Column (equal y), Row
    (equal x) and Maximum3DDiameter.
    """
    nz, ny, nx = mask.shape
    pz, py, px = nz + 2, ny + 2, nx + 2
    pad = np.zeros((pz, py, px), np.uint8)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    pad[z + 1, y + 1, x + 1] = 1
    hz, hy, hx = 2 * pz + 1, 2 * py + 1, 2 * px + 1
    # extreme vertices (half-voxel units) per line: per slice (z) and row y, the smallest / largest x;
    # per column plane (y) and z, the x; per row plane (x) and z, the y
    s_lo = np.full((hz, hy), _BIG, np.int64)
    s_hi = np.full((hz, hy), -1, np.int64)
    c_lo = np.full((hy, hz), _BIG, np.int64)
    c_hi = np.full((hy, hz), -1, np.int64)
    r_lo = np.full((hx, hz), _BIG, np.int64)
    r_hi = np.full((hx, hz), -1, np.int64)
    area = 0.0
    volume = 0.0
    a = np.empty(3)
    b = np.empty(3)
    c = np.empty(3)
    sp = np.array([sz, sy, sx])
    for iz in range(pz - 1):
        for iy in range(py - 1):
            for ix in range(px - 1):
                cube = 0
                for k in range(8):
                    if pad[iz + _CORNERS[k, 0], iy + _CORNERS[k, 1], ix + _CORNERS[k, 2]]:
                        cube |= 1 << k
                sign = 1.0
                if cube & 0x80:
                    cube ^= 0xFF
                    sign = -1.0
                # the vertices on the three edges at p7 (p6p7, p7p4, p3p7): each grid edge is visited once
                if cube & 64:
                    vz, vy, vx = 2 * iz + 2, 2 * iy + 2, 2 * ix + 1
                    _add(vx, vz, vy, s_lo, s_hi)
                    _add(vx, vy, vz, c_lo, c_hi)
                    _add(vy, vx, vz, r_lo, r_hi)
                if cube & 16:
                    vz, vy, vx = 2 * iz + 2, 2 * iy + 1, 2 * ix
                    _add(vx, vz, vy, s_lo, s_hi)
                    _add(vx, vy, vz, c_lo, c_hi)
                    _add(vy, vx, vz, r_lo, r_hi)
                if cube & 8:
                    vz, vy, vx = 2 * iz + 1, 2 * iy + 2, 2 * ix
                    _add(vx, vz, vy, s_lo, s_hi)
                    _add(vx, vy, vz, c_lo, c_hi)
                    _add(vy, vx, vz, r_lo, r_hi)
                if cube == 0:
                    continue
                t = 0
                while t < 5 and TRIANGLES[cube, 3 * t] >= 0:
                    e0 = TRIANGLES[cube, 3 * t]
                    e1 = TRIANGLES[cube, 3 * t + 1]
                    e2 = TRIANGLES[cube, 3 * t + 2]
                    a[0] = iz
                    a[1] = iy
                    a[2] = ix
                    b[0] = iz
                    b[1] = iy
                    b[2] = ix
                    c[0] = iz
                    c[1] = iy
                    c[2] = ix
                    for d in range(3):
                        a[d] += EDGE_MIDPOINTS[e0, d]
                        b[d] += EDGE_MIDPOINTS[e1, d]
                        c[d] += EDGE_MIDPOINTS[e2, d]
                        a[d] *= sp[d]
                        b[d] *= sp[d]
                        c[d] *= sp[d]
                    ab0 = a[1] * b[2] - b[1] * a[2]
                    ab1 = a[2] * b[0] - b[2] * a[0]
                    ab2 = a[0] * b[1] - b[0] * a[1]
                    volume += sign * (ab0 * c[0] + ab1 * c[1] + ab2 * c[2])
                    for d in range(3):
                        a[d] -= c[d]
                        b[d] -= c[d]
                    ab0 = a[1] * b[2] - b[1] * a[2]
                    ab1 = a[2] * b[0] - b[2] * a[0]
                    ab2 = a[0] * b[1] - b[0] * a[1]
                    area += 0.5 * np.sqrt(ab0 * ab0 + ab1 * ab1 + ab2 * ab2)
                    t += 1
    volume = volume / 6.0

    # plane hulls and diameters; the slice hulls' vertices are the 3-D candidates
    buf_r = np.empty(2 * max(hx, hy, hz) + 2, np.int64)
    buf_c = np.empty(2 * max(hx, hy, hz) + 2, np.int64)
    d_slice = 0.0
    cand_list = []
    for z in range(hz):
        k = _hull(s_lo[z], s_hi[z], 0, hy - 1, buf_r, buf_c)
        if k:
            d = _plane_diameter(buf_r, buf_c, k, sy, sx)
            if d > d_slice:
                d_slice = d
            for i in range(k):
                cand_list.append((z * hy + buf_r[i]) * hx + buf_c[i])
    d_col = 0.0
    col_keys = []
    for y in range(hy):
        k = _hull(c_lo[y], c_hi[y], 0, hz - 1, buf_r, buf_c)
        if k:
            d = _plane_diameter(buf_r, buf_c, k, sz, sx)
            if d > d_col:
                d_col = d
            for i in range(k):
                col_keys.append((buf_r[i] * hy + y) * hx + buf_c[i])
    d_row = 0.0
    row_keys = []
    for x in range(hx):
        k = _hull(r_lo[x], r_hi[x], 0, hz - 1, buf_r, buf_c)
        if k:
            d = _plane_diameter(buf_r, buf_c, k, sz, sy)
            if d > d_row:
                d_row = d
            for i in range(k):
                row_keys.append((buf_r[i] * hy + buf_c[i]) * hx + x)
    ck = np.empty(len(col_keys), np.int64)
    for i in range(len(col_keys)):
        ck[i] = col_keys[i]
    ck.sort()
    rk = np.empty(len(row_keys), np.int64)
    for i in range(len(row_keys)):
        rk[i] = row_keys[i]
    rk.sort()
    n = 0
    cz = np.empty(len(cand_list), np.float64)
    cy = np.empty(len(cand_list), np.float64)
    cx = np.empty(len(cand_list), np.float64)
    for key in cand_list:
        i = np.searchsorted(ck, key)
        j = np.searchsorted(rk, key)
        if i < ck.shape[0] and ck[i] == key and j < rk.shape[0] and rk[j] == key:
            vx = key % hx
            vy = (key // hx) % hy
            vz = key // (hx * hy)
            cz[n] = (vz * 0.5) * sz
            cy[n] = (vy * 0.5) * sy
            cx[n] = (vx * 0.5) * sx
            n += 1
    d3 = 0.0
    for i in range(n):
        for j in range(i):
            d0 = cz[i] - cz[j]
            d1 = cy[i] - cy[j]
            d2 = cx[i] - cx[j]
            d0 *= d0
            d1 *= d1
            d2 *= d2
            dist = d0 + d1 + d2
            if dist > d3:
                d3 = dist
    return area, volume, np.sqrt(d_slice), np.sqrt(d_col), np.sqrt(d_row), np.sqrt(d3)
