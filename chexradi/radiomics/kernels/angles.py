"""Neighbour offsets ("angles") for the texture matrices, in PyRadiomics' order.

An angle is an offset vector in numpy order ``(z, y, x)``. For each requested
distance ``d`` (infinity norm), every offset with ``max |o_i| == d`` is an angle,
except offsets that move along the out-of-plane axis when ``force2D`` is set or
that are at least as long as the ROI's bounding box in some axis. Without
``bidirectional`` only one of each ``(o, -o)`` pair is kept (the first half of
the generation order), which is what GLCM/GLRLM use; GLSZM, GLDM and NGTDM use
all neighbours (``bidirectional=True``).

The generation order matches PyRadiomics' C ``build_angles`` so that per-angle
results line up with PyRadiomics' (e.g. the 13 3-D angles start at (1, 1, 1)).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

__all__ = ["generate_angles"]


def generate_angles(
    size: Sequence[int],
    distances: Sequence[int] = (1,),
    *,
    bidirectional: bool = False,
    force2D_dimension: Optional[int] = None,
) -> np.ndarray:
    """Angles for a bounding box of ``size`` (numpy order), shape ``(Na, ndim)`` int64.

    Parameters
    ----------
    size : bounding-box size per axis (numpy order).
    distances : infinity-norm distances (each >= 1).
    bidirectional : keep both ``o`` and ``-o``.
    force2D_dimension : axis that angles must not move along (``force2D``), or None.
    """
    dists = tuple(int(d) for d in distances)
    if not dists or min(dists) < 1:
        raise ValueError(f"distances must be integers >= 1, got {list(distances)!r}; e.g. distances=[1].")
    return _angles(tuple(int(s) for s in size), dists, bool(bidirectional),
                   -1 if force2D_dimension is None else int(force2D_dimension)).copy()


@lru_cache(maxsize=256)
def _angles(size: tuple[int, ...], dists: tuple[int, ...], bidirectional: bool, f2d: int) -> np.ndarray:
    nd = len(size)
    max_d = max(dists)
    n_off = 2 * max_d + 1
    dist_set = set(dists)
    # Count as PyRadiomics does (get_angle_count) so that the half kept when
    # not bidirectional is the same half.
    na = 0
    for d in dists:
        a, b = 1, 1
        for i in range(nd):
            if i == f2d:
                continue
            if d < size[i]:
                a *= 2 * d + 1
                b *= 2 * d - 1
            else:
                a *= 2 * (size[i] - 1) + 1
                b *= 2 * (size[i] - 1) + 1
        na += a - b
    if not bidirectional:
        na //= 2
    strides = [n_off ** (nd - 1 - i) for i in range(nd)]
    out: list[tuple[int, ...]] = []
    idx = 0
    total = n_off ** nd
    while len(out) < na and idx < total:
        offs = []
        a_dist = 0
        for i in range(nd):
            o = max_d - (idx // strides[i]) % n_off
            if (i == f2d and o != 0) or o >= size[i] or o <= -size[i]:
                a_dist = -1
                break
            offs.append(o)
            a_dist = max(a_dist, abs(o))
        idx += 1
        if a_dist >= 1 and a_dist in dist_set:
            out.append(tuple(offs))
    arr = np.array(out, dtype=np.int64).reshape(len(out), nd)
    arr.setflags(write=False)
    return arr
