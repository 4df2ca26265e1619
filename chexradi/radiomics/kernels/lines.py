"""Numba kernel for what GLCM and GLRLM both count along lines: runs and neighbour pairs.

For an angle ``o`` the cropped box is cut into lines parallel to ``o``; a
*segment* is a maximal sequence of consecutive ROI voxels on a line, a *run* a
maximal sequence of consecutive voxels of one gray level within a segment. Every
ROI voxel lies in exactly one run per angle, so one walk along the segments gives

* the run-length counts ``R[g, n - 1, a]`` (GLRLM's matrix before PyRadiomics'
  deletions), and
* the co-occurrence counts ``P[i, j, a]`` of pairs ``(v, v + o)`` of ROI voxels
  (GLCM's asymmetric matrix): a pair of different levels is a run's last voxel
  and the next run's first, counted where a run ends inside its segment; a pair
  of equal levels lies inside a run, so ``P[g, g, a] = sum_n (n - 1) R[g, n - 1, a]``.

The walk is branch-free inside a segment (the run length, the end test and the
store of a pair's flat index are arithmetic); following each run from its first
voxel (:func:`.glrlm.glrlm_counts`) mispredicts a branch at every run. Both
matrices from one walk take 0.57 ms on the 512 x 512 radiograph against 0.95 +
0.40 ms for :func:`.glrlm.glrlm_counts` and :func:`.glcm.glcm_counts` (kept for
GLCM alone, the voxel-based kernels' small boxes and as the reference in the
tests); see docs/benchmarks.md for noisy 3-D images. Counts are integers, so the
matrices are those two kernels' exactly.

Single-threaded: parallelise across cases.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import uint64

from .glcm import OUTSIDE_BOX, levels_for_angles

__all__ = ["line_counts", "line_holds_two"]


#: Pair codes held before they are added to the co-occurrence counts: memory bounded whatever the ROI's size.
_CODES = 1 << 16


@numba.njit(cache=True, nogil=True)
def _segment(lev, q, o, runs, n_levels, codes, k, cg, cn):
    """Walk the segment that starts at flat index ``q`` along ``o``: add its runs to ``runs`` (flat
    ``(Nr, Ng)``: the runs of length 1 of every level side by side, the common case on noisy images) and
    append to ``codes`` from position ``k`` the flat index ``i * cg + j * cn`` of each pair
    ``(i, j)`` of different levels into the co-occurrence counts (``cg = cn = 0``: no pairs kept). Returns
    ``(k, segment length)``. Indices are unsigned so that numba adds no wrap-around test; the run length and
    the end test are arithmetic, without branches."""
    q0 = q
    keep = np.int64(cg != 0)
    g = np.int64(lev[uint64(q)])
    n = 1  # length of the current run so far
    while g >= 0:
        nxt = np.int64(lev[uint64(q + o)])
        end = np.int64(nxt != g)
        runs[uint64((n - 1) * n_levels + g)] += end
        codes[uint64(k)] = g * cg + nxt * cn  # kept only when the run ends on another ROI voxel
        k += end & np.int64(nxt >= 0) & keep
        n = (n & (end - 1)) + 1  # 1 after a run's end, else one more
        g = nxt
        q += o
    length = (q - q0) // o
    return k, length


@numba.njit(cache=True, nogil=True)
def line_holds_two(lev, shape, pad, box, o):
    """Whether some line along flat offset ``o`` holds two ROI voxels (not necessarily adjacent) in the
    padded flat levels ``lev`` (``-1`` outside the mask, ``-2`` outside the box) of padded ``shape`` for
    a ``box``-shaped array padded by ``pad`` voxels per axis."""
    sy = shape[2]
    sz = shape[1] * shape[2]
    for z in range(box[0]):
        for y in range(box[1]):
            base = (z + pad[0]) * sz + (y + pad[1]) * sy + pad[2]
            for x in range(box[2]):
                f = base + x
                if lev[f] < 0:
                    continue
                q = f + o
                while lev[q] != OUTSIDE_BOX:
                    if lev[q] >= 0:
                        return True
                    q += o
    return False


@numba.njit(cache=True, nogil=True)
def line_counts(binned, mask, angles, lut, n_levels, with_pairs):
    """Run-length and (``with_pairs``) co-occurrence counts for every angle, from one walk per angle.

    Parameters
    ----------
    binned : int32 array (z, y, x), 1-based gray levels inside the mask.
    mask : bool array (z, y, x).
    angles : int64 array (Na, 3) of offsets in numpy order (any length; one of each ``(o, -o)`` pair
        or both).
    lut : int64 array, ``lut[g]`` = row of gray level ``g`` (-1 when absent).
    n_levels : number of gray levels present (rows of the matrices).
    with_pairs : count the pairs too (GLCM's matrix, ``Na * Ng**2`` counts); else ``pairs`` is empty.

    Returns
    -------
    runs : int64 array (n_levels, Nr, Na), ``Nr = max(binned.shape)``: ``runs[i, n - 1, a]`` counts the runs
        of level ``i`` and length ``n`` along ``angles[a]``, as :func:`.glrlm.glrlm_counts` before its rule
        for lone angles.
    pairs : int64 array (n_levels, n_levels, Na), or (0, 0, Na) without ``with_pairs``: ``pairs[i, j, a]``
        counts ROI voxels of level ``i`` whose neighbour at ``angles[a]`` is in the ROI with level ``j``, as
        :func:`.glcm.glcm_counts`.
    lone : bool array (Na): no line along ``angles[a]`` holds two ROI voxels.

    Memory: the padded levels (4 bytes per box voxel), a flag byte per box voxel, the first voxels of
    the segments (8 bytes each) and the matrices.
    """
    nz, ny, nx = binned.shape
    na = angles.shape[0]
    lev, shape, pad = levels_for_angles(binned, mask, lut, angles)
    sy = shape[2]
    sz = shape[1] * shape[2]
    n_runs = max(nz, max(ny, nx))
    lo = pad[0] * sz + pad[1] * sy + pad[2]  # the box's first and last voxel + 1 in the padded array
    span = (pad[0] + nz - 1) * sz + (pad[1] + ny - 1) * sy + pad[2] + nx - lo
    runs = np.zeros((na, n_runs * n_levels), np.int64)
    ng = n_levels if with_pairs else 0
    pairs = np.zeros((na, ng * ng), np.int64)
    longest = np.zeros(na, np.int64)
    codes = np.empty(_CODES + n_runs + 1, np.int64)  # room for one more segment when _CODES are held
    flags = np.empty(span, np.uint8)
    offsets = np.empty(na, np.int64)
    for a in range(na):
        offsets[a] = abs(angles[a, 0] * sz + angles[a, 1] * sy + angles[a, 2])  # lines walked forwards
    for a0 in range(0, na, 8):
        a1 = min(na, a0 + 8)
        # bit a - a0 of flags[f]: voxel lo + f starts a segment along angle a (a vectorised pass per angle),
        # then the voxels that start any, in raster order
        flags[:] = 0
        here = lev[lo:lo + span]
        for a in range(a0, a1):
            before = lev[lo - offsets[a]:lo - offsets[a] + span]
            bit = np.uint8(1 << (a - a0))
            for f in range(span):
                flags[f] |= bit & -np.uint8((here[f] >= 0) & (before[f] < 0))
        starts = np.empty(np.count_nonzero(flags) + 1, np.int64)  # + 1: the slot written after the last start
        n_starts = 0
        for f in range(span):
            starts[n_starts] = f
            n_starts += np.int64(flags[f] != 0)
        for a in range(a0, a1):
            o = offsets[a]
            bit = np.uint8(1 << (a - a0))
            r = runs[a]
            p = pairs[a]
            # a pair (i, j) is p[i * Ng + j]; walked the other way it is (j, i)
            forward = angles[a, 0] * sz + angles[a, 1] * sy + angles[a, 2] > 0
            cg = ng if forward else min(ng, 1)
            cn = 1 if forward and with_pairs else ng
            k = 0
            for i in range(n_starts):
                f = starts[i]
                if flags[f] & bit:
                    k, length = _segment(lev, lo + f, o, r, n_levels, codes, k, cg, cn)
                    longest[a] = max(longest[a], length)
                    if k >= _CODES:
                        for c in range(k):
                            p[codes[c]] += 1
                        k = 0
            for c in range(k):
                p[codes[c]] += 1
            for g in range(ng):  # the pairs inside the runs: sum over runs of (length - 1)
                t = 0
                for n in range(1, n_runs):
                    t += n * r[n * n_levels + g]
                p[g * ng + g] = t
    lone = np.zeros(na, np.bool_)
    box = np.array([nz, ny, nx], np.int64)
    for a in range(na):
        lone[a] = longest[a] < 2 and not line_holds_two(lev, shape, pad, box, offsets[a])
    return (runs.reshape((na, n_runs, n_levels)).transpose(2, 1, 0).copy(),
            pairs.reshape((na, ng, ng)).transpose(1, 2, 0).copy(), lone)
