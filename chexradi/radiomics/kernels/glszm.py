"""Gray Level Size Zone Matrix kernel (PyRadiomics' ``calculate_glszm`` + ``fill_glszm``).

A zone is a connected set of ROI voxels sharing one gray level. Connectivity is
the infinity-norm distance 1 (26-connected in 3-D, 8-connected in 2-D); with
``force2D`` no neighbour is taken along the out-of-plane axis, so zones never
span slices.

:func:`zones_by_runs` finds the zones as connected components of runs along x:
the runs of a row are joined to the touching runs of one gray level in the rows
before it by a union-find, one union per touching pair of runs instead of a test
per voxel and neighbour. :func:`glszm_matrix` uses it where the ROI's runs are
long enough for that to pay (:func:`runs_pay`: smooth images such as
radiographs), else the flood fill.

:func:`glszm_zones` (noisy images, the voxel-based kernels' small boxes) flood-fills
a *padded label array*: the discretized gray levels inside
the mask, 0 elsewhere, with a border of zeros wide enough that every neighbour
offset stays inside the array. Neighbours then are plain flat-index offsets and
need no bounds checks (see :func:`padded_labels` and :func:`flat_offsets`).

Also home of the helpers the GLDM and NGTDM kernels share (:func:`neighbourhood`,
:func:`padded_labels`, :func:`flat_offsets`, :func:`shift_bounds`).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numba
import numpy as np

from .angles import generate_angles

__all__ = ["padded_labels", "flat_offsets", "neighbour_angles", "neighbourhood", "shift_bounds", "glszm_matrix",
           "glszm_zones", "zones_by_runs", "connected_rows", "mean_run_length", "runs_pay"]


def padded_labels(binned: np.ndarray, mask: np.ndarray, pad: int, force2D_dimension: Optional[int]) -> np.ndarray:
    """Gray levels inside ``mask`` (0 outside), zero-padded by ``pad`` on every axis but the force2D one.

    Returns a C-contiguous int32 3-D array.
    """
    if binned.ndim != 3 or binned.shape != mask.shape:
        raise ValueError(f"binned {binned.shape} and mask {mask.shape} must be 3-D arrays of one shape (z, y, x).")
    widths = tuple(0 if ax == force2D_dimension else int(pad) for ax in range(3))
    shape = tuple(s + 2 * w for s, w in zip(binned.shape, widths))
    out = np.zeros(shape, dtype=np.int32)
    inner = tuple(slice(w, w + s) for w, s in zip(widths, binned.shape))
    np.multiply(binned, mask, out=out[inner], casting="unsafe")
    return out


def flat_offsets(angles: np.ndarray, padded_shape: Sequence[int]) -> np.ndarray:
    """Flat-index offsets (int64) of the ``(Na, 3)`` angles in a C-ordered array of ``padded_shape``."""
    strides = np.array([padded_shape[1] * padded_shape[2], padded_shape[2], 1], dtype=np.int64)
    return np.ascontiguousarray(np.asarray(angles, dtype=np.int64).reshape(-1, 3) @ strides)


def neighbour_angles(shape: Sequence[int], distances: Sequence[int], force2D_dimension: Optional[int]) -> np.ndarray:
    """PyRadiomics' bidirectional angles at ``distances`` for a box of ``shape`` (``generate_angles``).

    Raises ``ValueError`` when the box admits no angle (PyRadiomics fails with "Error getting angle count"
    there), e.g. a single voxel.
    """
    angles = generate_angles(shape, distances, bidirectional=True, force2D_dimension=force2D_dimension)
    if len(angles) == 0:
        raise ValueError(
            f"the ROI's bounding box {tuple(shape)} admits no neighbour at distances {list(distances)}"
            + (f" in-plane (force2Ddimension={force2D_dimension})" if force2D_dimension is not None else "")
            + "; PyRadiomics fails here too. Use a mask with more than one voxel per plane or drop force2D."
        )
    return angles


def neighbourhood(
    binned: np.ndarray,
    mask: np.ndarray,
    distances: Sequence[int],
    force2D_dimension: Optional[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Padded flat labels and flat neighbour offsets for bidirectional angles at ``distances``.

    The angles are PyRadiomics' (:func:`neighbour_angles`, which raises ``ValueError`` when the box admits
    none).
    """
    angles = neighbour_angles(binned.shape, distances, force2D_dimension)
    pad = int(np.abs(angles).max())
    lab = padded_labels(binned, mask, pad, force2D_dimension)
    return lab.ravel(), flat_offsets(angles, lab.shape)


@numba.njit(cache=True, nogil=True)
def shift_bounds(n: int, offsets: np.ndarray) -> tuple[int, int]:
    """Range ``[lo, hi)`` of flat indices ``i`` for which every ``i + offset`` lies in ``[0, n)``.

    In a padded label array every ROI voxel lies in this range.
    """
    lo = 0
    hi = n
    for a in range(offsets.shape[0]):
        o = offsets[a]
        if o < 0 and -o > lo:
            lo = -o
        if o > 0 and n - o < hi:
            hi = n - o
    return lo, max(hi, lo)


@numba.njit(cache=True, nogil=True)
def glszm_zones(labels: np.ndarray, offsets: np.ndarray, n_vox: int) -> tuple[np.ndarray, np.ndarray]:
    """Gray level and size of every zone, in raster order of each zone's first voxel.

    ``labels`` is the flat padded label array (not modified: the fill works on
    a copy, zeroing voxels as they join a zone); ``n_vox`` the number of ROI
    voxels (bounds the stack and the zone count). Iterative depth-first flood
    fill with an explicit stack, as PyRadiomics' C code does.
    """
    lab = labels.copy()
    n = lab.shape[0]
    n_off = offsets.shape[0]
    cap = max(n_vox, 1)
    stack = np.empty(cap, dtype=np.int64)
    zone_gl = np.empty(cap, dtype=np.int32)
    zone_size = np.empty(cap, dtype=np.int64)
    nz = 0
    for i in range(n):
        gl = lab[i]
        if gl <= 0:
            continue
        lab[i] = 0
        stack[0] = i
        top = 1
        size = 0
        while top > 0:
            top -= 1
            k = stack[top]
            size += 1
            for a in range(n_off):
                j = k + offsets[a]
                if lab[j] == gl:
                    lab[j] = 0
                    stack[top] = j
                    top += 1
        zone_gl[nz] = gl
        zone_size[nz] = size
        nz += 1
    return zone_gl[:nz], zone_size[:nz]


@numba.njit(cache=True, nogil=True)
def _root(parent: np.ndarray, i: int) -> int:
    r = i
    while parent[r] != r:
        r = parent[r]
    while parent[i] != r:  # path compression
        nxt = parent[i]
        parent[i] = r
        i = nxt
    return r


@numba.njit(cache=True, nogil=True)
def zones_by_runs(lab: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gray level and size of every zone, as :func:`glszm_zones`, from runs along x.

    ``lab`` is the 3-D ``(z, y, x)`` int32 array of gray levels (0 outside the ROI), ``rows`` the
    ``(R, 2)`` offsets ``(dz, dy)`` of the rows a row is connected to that come before it in raster
    order; two runs of those rows touch when their x extents, widened by one voxel, overlap (x is
    always a connected axis). The runs of each row are joined to the touching runs of the same gray
    level in those rows with a union-find whose root is the zone's first run, so the zones come out
    in raster order of their first voxel in ``lab``, like the flood fill's (on an array whose y and x
    axes were swapped, that is another order: the matrix does not depend on it). A zone costs one
    union per touching pair of runs instead of a test per voxel and neighbour.
    """
    nz, ny, nx = lab.shape
    # at most one run of the outside before, between and after the ROI's runs in each row: memory in
    # proportion to the ROI (pages past the runs found are never touched)
    cap = 2 * np.count_nonzero(lab) + nz * ny
    start = np.empty(cap, np.int64)
    end = np.empty(cap, np.int64)
    level = np.empty(cap, np.int32)
    first = np.empty(nz * ny + 1, np.int64)
    n = 0
    for z in range(nz):
        for y in range(ny):
            n0 = n
            first[z * ny + y] = n0
            prev = -1
            for x in range(nx):  # every run of the row, the outside (0) included, without branches
                g = lab[z, y, x]
                start[n] = x
                level[n] = g
                n += np.int64(g != prev)
                prev = g
            for i in range(n0, n - 1):
                end[i] = start[i + 1]
            if n > n0:
                end[n - 1] = nx
    first[nz * ny] = n
    parent = np.arange(n)
    for z in range(nz):
        for y in range(ny):
            c0 = first[z * ny + y]
            c1 = first[z * ny + y + 1]
            if c0 == c1:
                continue
            for r in range(rows.shape[0]):
                z2 = z + rows[r, 0]
                y2 = y + rows[r, 1]
                if z2 < 0 or y2 < 0 or y2 >= ny:
                    continue
                p0 = first[z2 * ny + y2]
                p1 = first[z2 * ny + y2 + 1]
                j0 = p0
                for i in range(c0, c1):
                    if level[i] <= 0:
                        continue
                    while j0 < p1 and end[j0] < start[i]:
                        j0 += 1  # ends before the voxel left of run i: touches neither it nor later runs
                    j = j0
                    while j < p1 and start[j] <= end[i]:
                        if level[j] == level[i]:
                            a = _root(parent, i)
                            b = _root(parent, j)
                            if a < b:
                                parent[b] = a
                            elif b < a:
                                parent[a] = b
                        j += 1
    size = np.zeros(n, np.int64)
    m = 0
    for i in range(n):
        size[_root(parent, i)] += end[i] - start[i]
        m += np.int64(parent[i] == i and level[i] > 0)
    zone_gl = np.empty(m, np.int32)
    zone_size = np.empty(m, np.int64)
    m = 0
    for i in range(n):
        if parent[i] == i and level[i] > 0:
            zone_gl[m] = level[i]
            zone_size[m] = size[i]
            m += 1
    return zone_gl, zone_size


def connected_rows(force2D_dimension: Optional[int]) -> tuple[bool, np.ndarray]:
    """``(swap, rows)`` for :func:`zones_by_runs`: whether the label array's y and x axes must be swapped
    first (when zones may not extend along x), and the ``(dz, dy)`` offsets of the earlier rows a row
    touches with 26-connectivity (8 in-plane), none along ``force2D_dimension``."""
    axis = force2D_dimension
    swap = axis == 2
    if swap:
        axis = 1
    rows = [(dz, dy) for dz in (-1, 0) for dy in (-1, 0, 1) if (dz, dy) < (0, 0)
            and not (axis == 0 and dz != 0) and not (axis == 1 and dy != 0)]
    return swap, np.array(rows, dtype=np.int64).reshape(-1, 2)


@numba.njit(cache=True, nogil=True)
def _fill(zone_gl: np.ndarray, zone_size: np.ndarray, ng: int) -> tuple[np.ndarray, np.ndarray]:
    max_size = 0
    for s in zone_size:
        if s > max_size:
            max_size = s
    col = np.full(max_size + 1, -1, dtype=np.int64)
    for s in zone_size:
        col[s] = 0
    ns = 0
    for s in range(max_size + 1):
        if col[s] == 0:
            col[s] = ns
            ns += 1
    sizes = np.empty(ns, dtype=np.float64)
    for s in range(max_size + 1):
        if col[s] >= 0:
            sizes[col[s]] = s
    P = np.zeros((ng, ns), dtype=np.float64)
    for z in range(zone_gl.shape[0]):
        P[zone_gl[z] - 1, col[zone_size[z]]] += 1.0
    return P, sizes


@numba.njit(cache=True, nogil=True)
def mean_run_length(lab: np.ndarray) -> float:
    """The mean number of voxels per run along x of the ROI voxels (label > 0) of a 3-D label array."""
    nz, ny, nx = lab.shape
    voxels = 0
    runs = 0
    for z in range(nz):
        for y in range(ny):
            prev = 0
            for x in range(nx):
                g = lab[z, y, x]
                voxels += np.int64(g > 0)
                runs += np.int64((g > 0) & (g != prev))
                prev = g
    return voxels / max(runs, 1)


def runs_pay(lab: np.ndarray, rows: np.ndarray) -> bool:
    """Whether :func:`zones_by_runs` beats the flood fill on ``lab``: when the ROI's runs along x are long
    enough, on average at least 1.75 + (rows joined) / 4 voxels (2 in-plane, 2.75 in 3-D). Measured on
    Gaussian-smoothed noise in 10 levels, 400 x 400 and 8 x 200 x 200 (docs/benchmarks.md), the two
    break even near 2.0 and 2.7; the zones are the same either way."""
    return mean_run_length(lab) >= 1.75 + len(rows) / 4


def glszm_matrix(
    binned: np.ndarray,
    mask: np.ndarray,
    force2D_dimension: Optional[int] = None,
    neighbours: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The GLSZM with only the zone sizes that occur.

    Parameters
    ----------
    binned : int 3-D ``(z, y, x)`` 1-based gray levels (0 outside the ROI).
    mask : bool 3-D, True inside the ROI.
    force2D_dimension : axis zones must not extend along, or None (3-D connectivity).
    neighbours : :func:`neighbourhood`'s result at distance 1 for these arguments, when the caller has it.

    Returns
    -------
    P : float64 ``(Ng, Ns)``, ``Ng`` the largest gray level in the ROI; ``P[i - 1, k]`` counts
        zones of gray level ``i`` and size ``sizes[k]`` (rows of absent levels are 0).
    sizes : float64 ``(Ns,)`` the zone sizes present, ascending (PyRadiomics' ``jvector``
        after deleting empty columns).

    The zones come from :func:`zones_by_runs` where the ROI's runs are long enough for it to be the faster
    (:func:`runs_pay`), else from the flood fill (:func:`glszm_zones`).
    """
    neighbour_angles(binned.shape, (1,), force2D_dimension)  # raises where PyRadiomics fails (no angle)
    lab = np.multiply(binned, mask, dtype=np.int32, casting="unsafe")
    swap, rows = connected_rows(force2D_dimension)
    if swap:
        lab = np.ascontiguousarray(lab.transpose(0, 2, 1))
    if runs_pay(lab, rows):
        zone_gl, zone_size = zones_by_runs(lab, rows)
    else:
        del lab
        labels, offsets = neighbours or neighbourhood(binned, mask, (1,), force2D_dimension)
        zone_gl, zone_size = glszm_zones(labels, offsets, int(np.count_nonzero(mask)))
    return _fill(zone_gl, zone_size, int(zone_gl.max()) if len(zone_gl) else 0)  # the largest level in the ROI
