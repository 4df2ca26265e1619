"""Neighbouring Gray Tone Difference Matrix kernel (PyRadiomics' ``calculate_ngtdm``).

For every ROI voxel of gray level ``i`` the neighbourhood average ``A`` is the
mean gray level of the ROI voxels at the bidirectional angles (infinity-norm
``distances``, in-plane only with ``force2D``). Then ``n_i += 1`` and
``s_i += |i - A|``; a voxel without any ROI neighbour still counts in ``n_i``
with a difference of 0 (PyRadiomics' behaviour). Voxels are visited in raster
order and the differences summed in that order, as in PyRadiomics' C code, so
``s_i`` is bit-identical to PyRadiomics'.

The padded array is processed in cache-sized blocks: per angle a branch-free
(SIMD) pass accumulates each voxel's neighbour count and gray-level sum (exact
integers), then the block's differences are added in raster order.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numba
import numpy as np

from .glszm import neighbourhood, shift_bounds

__all__ = ["ngtdm_sums", "ngtdm_matrix"]

_BLOCK = 2048  # voxels per pass: the block's counts and sums stay in the L1 cache


@numba.njit(cache=True, nogil=True)
def ngtdm_sums(labels: np.ndarray, offsets: np.ndarray, ng: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, s)``: float64 ``(ng,)`` voxel counts and summed absolute differences per gray level.

    Each ``s[i]`` adds its voxels' differences in raster order, as PyRadiomics' C code does. The
    neighbours' gray levels are summed in int32 when no sum can overflow it (half the memory traffic),
    else in int64.
    """
    if offsets.shape[0] * ng < 2 ** 31:
        return _sums(labels, offsets, ng, np.empty(_BLOCK, dtype=np.int32))
    return _sums(labels, offsets, ng, np.empty(_BLOCK, dtype=np.int64))


@numba.njit(cache=True, nogil=True)
def _sums(labels, offsets, ng, tot):
    n = labels.shape[0]
    n_off = offsets.shape[0]
    lo, hi = shift_bounds(n, offsets)
    n_i = np.zeros(ng, dtype=np.int64)
    s_i = np.zeros(ng, dtype=np.float64)
    cnt = np.empty(_BLOCK, dtype=np.int32)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        cc = cnt[:m]
        tt = tot[:m]
        cc[:] = 0
        tt[:] = 0
        for a in range(n_off):
            nb = labels[start + offsets[a]:start + offsets[a] + m]
            for k in range(m):
                g2 = nb[k]
                cc[k] += np.int32(g2 > 0)
                tt[k] += g2
        for k in range(m):
            gl = labels[start + k]
            if gl > 0:
                n_i[gl - 1] += 1
                if cc[k] > 0:
                    s_i[gl - 1] += abs(gl - tt[k] / cc[k])
    return n_i.astype(np.float64), s_i


def ngtdm_matrix(
    binned: np.ndarray,
    mask: np.ndarray,
    *,
    distances: Sequence[int] = (1,),
    force2D_dimension: Optional[int] = None,
    neighbours: Optional[tuple[np.ndarray, np.ndarray]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NGTDM columns ``n_i`` and ``s_i`` for gray levels ``1..Ng``, ``Ng`` the largest in the ROI (empty levels
    included). ``neighbours``: :func:`~.glszm.neighbourhood`'s result for these arguments, when the caller has it."""
    labels, offsets = neighbours or neighbourhood(binned, mask, distances, force2D_dimension)
    return ngtdm_sums(labels, offsets, int(labels.max()))
