"""Gray Level Dependence Matrix kernel (PyRadiomics' ``calculate_gldm``).

For every ROI voxel of gray level ``i``, count its *dependent* neighbours: ROI
voxels at one of the bidirectional angles (infinity-norm ``distances``,
in-plane only with ``force2D``) whose gray level ``j`` satisfies
``|i - j| <= alpha``. ``P[i, d]`` counts voxels of level ``i`` with ``d``
dependent neighbours (``d = 0 .. Na``). Neighbours outside the ROI or the
bounding box do not count.

The padded array is processed in blocks of voxels that stay in cache: for each
angle a branch-free (SIMD) pass adds the block's dependence flags, then the
block is histogrammed. Temporary memory is one block, whatever the ROI size.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numba
import numpy as np

from .glszm import neighbourhood, shift_bounds

__all__ = ["gldm_counts", "gldm_matrix"]

_BLOCK = 2048  # voxels per pass: the block's dependence counts stay in the L1 cache


@numba.njit(cache=True, nogil=True)
def gldm_counts(labels: np.ndarray, offsets: np.ndarray, ng: int, alpha: int) -> np.ndarray:
    """``(ng, Na + 1)`` float64 counts of (gray level, number of dependent neighbours).

    ``labels``: flat padded label array (0 outside the ROI, every ROI voxel's
    neighbours inside the array); ``offsets``: flat neighbour offsets (``Na``
    of them); ``alpha``: integer dependence cut-off (gray levels are integers).
    """
    n = labels.shape[0]
    n_off = offsets.shape[0]
    lo, hi = shift_bounds(n, offsets)
    counts = np.zeros((ng, n_off + 1), dtype=np.int64)
    dep = np.empty(_BLOCK, dtype=np.int32)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        d = dep[:m]
        d[:] = 0
        c = labels[start:start + m]
        for a in range(n_off):
            nb = labels[start + offsets[a]:start + offsets[a] + m]
            if alpha == 0:
                for k in range(m):
                    d[k] += np.int32(nb[k] == c[k])
            else:
                for k in range(m):
                    g2 = nb[k]
                    d[k] += np.int32((g2 > 0) & (abs(c[k] - g2) <= alpha))
        for k in range(m):
            gl = c[k]
            if gl > 0:
                counts[gl - 1, d[k]] += 1
    return counts.astype(np.float64)


def gldm_matrix(
    binned: np.ndarray,
    mask: np.ndarray,
    *,
    distances: Sequence[int] = (1,),
    alpha: float = 0,
    force2D_dimension: Optional[int] = None,
    neighbours: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> np.ndarray:
    """The GLDM, ``(Ng, Na + 1)``: column ``d`` holds voxels with ``d`` dependent neighbours.

    ``Ng`` is the largest gray level in the ROI (rows of absent levels are 0).

    PyRadiomics' dependence size is ``d + 1`` (its ``jvector`` starts at 1).
    Gray-level differences are integers, so ``|i - j| <= alpha`` is evaluated as
    ``|i - j| <= floor(alpha)``. ``neighbours``: :func:`~.glszm.neighbourhood`'s result for these
    arguments, when the caller has it already.
    """
    labels, offsets = neighbours or neighbourhood(binned, mask, distances, force2D_dimension)
    a = math.floor(float(alpha))
    a = int(min(max(a, -1), 2**31 - 1))
    return gldm_counts(labels, offsets, int(labels.max()), a)
