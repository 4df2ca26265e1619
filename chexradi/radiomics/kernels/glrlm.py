"""Numba kernel for the gray level run length matrix (GLRLM).

For every angle ``a = (dz, dy, dx)`` the cropped box is cut into lines parallel
to ``a``. Along a line, a run is a maximal sequence of consecutive ROI voxels
with the same gray level; a voxel outside the mask or a change of gray level
ends it. ``P[level, length - 1, a]`` counts the runs.

This is PyRadiomics' C ``calculate_glrlm`` including its quirk for angles that
cannot hold a run: when no line of angle ``a`` contains more than one ROI voxel
(e.g. a one-slice ROI seen along z), the whole angle is zeroed so that
PyRadiomics' feature code later drops it as empty.

One pass over the ROI voxels handles all angles: a voxel starts a run along
``a`` when its predecessor ``v - a`` does not hold the same gray level (the box
is padded with ``-2`` and non-ROI voxels hold ``-1``, so no bounds checks are
needed); the run is then followed forward. ``glrlm_features`` computes all 16
features from the matrix in one pass. Single-threaded: parallelise across cases.
"""
from __future__ import annotations

import numba
import numpy as np

from .glcm import padded_levels
from .lines import line_holds_two
from .zones import zone_features

__all__ = ["glrlm_counts", "glrlm_features", "run_marginals", "GLRLM_FEATURES"]


@numba.njit(cache=True, nogil=True)
def glrlm_counts(binned, mask, angles, lut, n_levels, n_runs):
    """Run-length counts for every angle.

    Parameters
    ----------
    binned : int32 array (z, y, x), 1-based gray levels inside the mask.
    mask : bool array (z, y, x).
    angles : int64 array (Na, 3) of offsets with components in {-1, 0, 1}.
    lut : int64 array, ``lut[g]`` = row of gray level ``g`` (-1 when absent).
    n_levels : number of gray levels present (rows of the matrix).
    n_runs : number of run-length columns (PyRadiomics: the largest box side).

    Returns
    -------
    float64 array (n_levels, n_runs, Na).
    """
    nz, ny, nx = binned.shape
    na = angles.shape[0]
    pz = 1 if nz > 1 else 0  # |offset| <= 1; an axis of size 1 never moves
    py = 1 if ny > 1 else 0
    px = 1 if nx > 1 else 0
    lev, shape = padded_levels(binned, mask, lut, pz, py, px)
    sy = shape[2]
    sz = shape[1] * shape[2]
    offsets = np.empty(na, np.int64)
    for a in range(na):
        offsets[a] = angles[a, 0] * sz + angles[a, 1] * sy + angles[a, 2]
    counts = np.zeros(n_levels * n_runs * na, np.int64)
    multi = np.zeros(na, np.bool_)
    for z in range(nz):
        for y in range(ny):
            base = (z + pz) * sz + (y + py) * sy + px
            for x in range(nx):
                f = base + x
                g = lev[f]
                if g < 0:
                    continue
                row = g * n_runs * na
                for a in range(na):
                    o = offsets[a]
                    if lev[f - o] == g:
                        continue  # not the first voxel of its run along a
                    n = 1
                    q = f + o
                    while lev[q] == g:
                        n += 1
                        q += o
                    counts[row + (n - 1) * na + a] += 1
                    if n > 1:
                        multi[a] = True
    pads = np.array([pz, py, px], np.int64)
    box = np.array([nz, ny, nx], np.int64)
    for a in range(na):
        # Only runs of length 1 along a: PyRadiomics keeps them only if some line
        # of this angle holds at least two ROI voxels (not necessarily adjacent).
        if not multi[a] and not line_holds_two(lev, shape, pads, box, offsets[a]):
            for g in range(n_levels):
                counts[g * n_runs * na + a] = 0
    return counts.reshape((n_levels, n_runs, na)).astype(np.float64)


@numba.njit(cache=True, nogil=True)
def run_marginals(p):
    """``(N_r, p_r, p_g)`` of a run matrix ``p`` ``(Ng, Nr, Na)``: per angle the number of runs ``(Na,)``,
    the run-length marginal ``(Nr, Na)`` and the gray-level marginal ``(Ng, Na)``, each summed in the
    row-major order of ``p``, in one pass. For a matrix of whole numbers (unweighted counts) every sum is
    exact, so these are numpy's ``sum`` over the same axes bit for bit, without its strided reductions."""
    ng, nr, na = p.shape
    runs = np.zeros(na)
    pr = np.zeros((nr, na))
    pg = np.zeros((ng, na))
    for i in range(ng):
        for j in range(nr):
            for a in range(na):
                v = p[i, j, a]
                runs[a] += v
                pr[j, a] += v
                pg[i, a] += v
    return runs, pr, pg


#: Rows of :func:`glrlm_features`' result, in order.
GLRLM_FEATURES = ("ShortRunEmphasis", "LongRunEmphasis", "GrayLevelNonUniformity",
                  "GrayLevelNonUniformityNormalized", "RunLengthNonUniformity", "RunLengthNonUniformityNormalized",
                  "RunPercentage", "GrayLevelVariance", "RunVariance", "RunEntropy", "LowGrayLevelRunEmphasis",
                  "HighGrayLevelRunEmphasis", "ShortRunLowGrayLevelEmphasis", "ShortRunHighGrayLevelEmphasis",
                  "LongRunLowGrayLevelEmphasis", "LongRunHighGrayLevelEmphasis")


@numba.njit(cache=True, nogil=True, error_model="numpy")  # x / 0 gives inf or NaN, as in numpy
def glrlm_features(p, pr, pg, nr, iv, jv, eps):
    """Every GLRLM feature per angle, PyRadiomics' formulas term for term.

    ``p`` ``(Ng', Nr', Na)`` is the run matrix without empty run lengths, ``pr``
    ``(Nr', Na)`` and ``pg`` ``(Ng', Na)`` its marginals, ``nr`` ``(Na)`` the number of runs
    (NaN for a lone empty matrix), ``iv``/``jv`` the gray levels and run lengths. Per angle,
    15 features are GLSZM's and GLDM's formulas on that angle's matrix
    (:func:`~chexradi.radiomics.kernels.zones.zone_features`, with ``N_r`` for ``N_z``);
    RunPercentage is ``N_r / sum_j j p_r(j)``. Returns ``(len(GLRLM_FEATURES), Na)``. Every
    sum is of terms of one sign, so the summation order changes values only by rounding;
    NaN and empty sums behave as in numpy.
    """
    na = p.shape[2]
    out = np.empty((16, na), np.float64)
    for a in range(na):
        z = zone_features(np.ascontiguousarray(p[:, :, a]), pg[:, a], pr[:, a], iv, jv, nr[a], eps)
        npx = 0.0
        for j in range(pr.shape[0]):
            npx += pr[j, a] * jv[j]
        out[:6, a] = z[:6]
        out[6, a] = nr[a] / npx
        out[7:, a] = z[6:]
    return out
