"""Gray Level Size Zone Matrix kernel (PyRadiomics' ``calculate_glszm`` + ``fill_glszm``).

A zone is a connected set of ROI voxels sharing one gray level. Connectivity is
the infinity-norm distance 1 (26-connected in 3-D, 8-connected in 2-D); with
``force2D`` no neighbour is taken along the out-of-plane axis, so zones never
span slices.

The kernels work on a *padded label array*: the discretized gray levels inside
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

__all__ = ["padded_labels", "flat_offsets", "neighbourhood", "shift_bounds", "glszm_matrix", "glszm_zones"]


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


def neighbourhood(
    binned: np.ndarray,
    mask: np.ndarray,
    distances: Sequence[int],
    force2D_dimension: Optional[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Padded flat labels and flat neighbour offsets for bidirectional angles at ``distances``.

    The angles are PyRadiomics' (``generate_angles`` on the cropped box). Raises
    ``ValueError`` when the box admits no angle (PyRadiomics fails with
    "Error getting angle count" there), e.g. a single voxel.
    """
    angles = generate_angles(binned.shape, distances, bidirectional=True, force2D_dimension=force2D_dimension)
    if len(angles) == 0:
        raise ValueError(
            f"the ROI's bounding box {tuple(binned.shape)} admits no neighbour at distances {list(distances)}"
            + (f" in-plane (force2Ddimension={force2D_dimension})" if force2D_dimension is not None else "")
            + "; PyRadiomics fails here too. Use a mask with more than one voxel per plane or drop force2D."
        )
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
    """
    labels, offsets = neighbours or neighbourhood(binned, mask, (1,), force2D_dimension)
    zone_gl, zone_size = glszm_zones(labels, offsets, int(np.count_nonzero(mask)))
    return _fill(zone_gl, zone_size, int(labels.max()))
