"""Numba kernels for the gray level co-occurrence matrix (GLCM).

``glcm_counts`` counts, for every angle ``a = (dz, dy, dx)``, the pairs of ROI
voxels ``(v, v + a)`` (both inside the mask and inside the cropped box) as
``P[level(v), level(v + a), a]``. This is the asymmetric matrix of PyRadiomics'
C ``calculate_glcm`` with the rows/columns of gray levels absent from the ROI
already removed (``lut`` maps a 1-based gray level to its row, -1 when absent).
The layout ``(Ng, Ng, Na)`` is PyRadiomics' layout, so later numpy reductions
run in the same order as PyRadiomics' and give the same floating-point values.

The box is first copied into a flat array of row indices padded with ``-2``
(outside the box; ``-1`` marks box voxels outside the mask), so that one pass
over the voxels reads every neighbour without bounds checks; the angles of one
voxel update different cells, which keeps the counting loop free of
store-to-load stalls.

``mcc_q`` builds PyRadiomics' ``Q`` matrix of the Maximal Correlation
Coefficient with the same operation order as PyRadiomics' numpy code (no
fast-math), i.e. bit-identical results, without its ``Ng**3`` temporaries.

``glcm_plain_features`` computes, in one pass, the 17 features that test no threshold and
sum terms of one sign, so a different summation order changes them only by rounding.

The kernels are single-threaded: parallelise across cases.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["glcm_counts", "mcc_q", "padded_levels", "levels_for_angles", "glcm_plain_features", "PLAIN_FEATURES",
           "MCC_NEAR_ZERO"]

#: MCC's second eigenvalue closer to 0 than this is left to PyRadiomics' own (general) eigenvalue routine, by
#: the segment-based GLCM and the voxel-based kernels alike: there, whether it comes out as a tiny negative
#: (NaN), a tiny complex or a tiny positive number is rounding that only that routine repeats.
MCC_NEAR_ZERO = 1e-6

OUTSIDE_BOX = -2
OUTSIDE_MASK = -1


@numba.njit(cache=True, nogil=True)
def padded_levels(binned, mask, lut, pad_z, pad_y, pad_x):
    """Flat ``int32`` array of row indices (``lut[binned]``) of the box padded by ``pad_*``.

    Returns ``(flat, shape)`` where ``flat`` holds ``-1`` for box voxels outside
    the mask and ``-2`` in the padding, and ``shape`` is the padded ``(z, y, x)`` shape.
    """
    nz, ny, nx = binned.shape
    pz = nz + 2 * pad_z
    py = ny + 2 * pad_y
    px = nx + 2 * pad_x
    flat = np.full(pz * py * px, OUTSIDE_BOX, np.int32)
    for z in range(nz):
        for y in range(ny):
            base = ((z + pad_z) * py + (y + pad_y)) * px + pad_x
            for x in range(nx):
                if mask[z, y, x]:
                    flat[base + x] = lut[binned[z, y, x]]
                else:
                    flat[base + x] = OUTSIDE_MASK
    return flat, (pz, py, px)


@numba.njit(cache=True, nogil=True)
def levels_for_angles(binned, mask, lut, angles):
    """:func:`padded_levels` padded by the largest ``|offset|`` per axis of the ``(Na, 3)`` angles, so that
    every neighbour lies in the array: ``(flat, padded shape, pad)``."""
    pad = np.zeros(3, np.int64)
    for a in range(angles.shape[0]):
        for d in range(3):
            pad[d] = max(pad[d], abs(angles[a, d]))
    lev, shape = padded_levels(binned, mask, lut, pad[0], pad[1], pad[2])
    return lev, shape, pad


@numba.njit(cache=True, nogil=True)
def glcm_counts(binned, mask, angles, lut, n_levels):
    """Asymmetric co-occurrence counts for every angle.

    Parameters
    ----------
    binned : int32 array (z, y, x), 1-based gray levels inside the mask.
    mask : bool array (z, y, x).
    angles : int64 array (Na, 3) of offsets in numpy order.
    lut : int64 array, ``lut[g]`` = row of gray level ``g`` (-1 when absent).
    n_levels : number of gray levels present (rows of the matrix).

    Returns
    -------
    float64 array (n_levels, n_levels, Na); ``P[i, j, a]`` counts voxels of level
    ``i`` whose neighbour at offset ``angles[a]`` is in the ROI with level ``j``.
    """
    nz, ny, nx = binned.shape
    na = angles.shape[0]
    lev, shape, pad = levels_for_angles(binned, mask, lut, angles)
    sy = shape[2]
    sz = shape[1] * shape[2]
    offsets = np.empty(na, np.int64)
    for a in range(na):
        offsets[a] = angles[a, 0] * sz + angles[a, 1] * sy + angles[a, 2]
    counts = np.zeros(n_levels * n_levels * na, np.int64)
    for z in range(nz):
        for y in range(ny):
            base = (z + pad[0]) * sz + (y + pad[1]) * sy + pad[2]
            for x in range(nx):
                f = base + x
                i = lev[f]
                if i < 0:
                    continue
                row = i * n_levels * na
                for a in range(na):
                    j = lev[f + offsets[a]]
                    if j >= 0:
                        counts[row + j * na + a] += 1
    return counts.reshape((n_levels, n_levels, na)).astype(np.float64)


@numba.njit(cache=True, nogil=True)
def mcc_q(p, px, py, eps):
    """``Q[a, i, j] = sum_k p[i, k, a] p[j, k, a] / (px[i, a] py[k, a] + eps)``.

    ``p`` is the normalised GLCM ``(Ng, Ng, Na)``, ``px``/``py`` its marginals
    ``(Ng, Na)``. The sum runs over ``k`` in increasing order, each term computed
    as ``(p * p) / (px * py + eps)`` like PyRadiomics. Returns ``(Na, Ng, Ng)``.
    """
    ng = p.shape[0]
    na = p.shape[2]
    q = np.zeros((na, ng, ng), np.float64)
    pt = np.empty((na, ng, ng), np.float64)  # pt[a, k, j] = p[j, k, a]
    for j in range(ng):
        for k in range(ng):
            for a in range(na):
                pt[a, k, j] = p[j, k, a]
    for a in range(na):
        for i in range(ng):
            for k in range(ng):
                pik = p[i, k, a]
                den = px[i, a] * py[k, a] + eps
                for j in range(ng):
                    q[a, i, j] += (pik * pt[a, k, j]) / den
    return q


#: Rows of :func:`glcm_plain_features`' result, in order.
PLAIN_FEATURES = ("Autocorrelation", "ClusterProminence", "ClusterTendency", "Contrast", "DifferenceAverage",
                  "DifferenceEntropy", "DifferenceVariance", "JointEnergy", "Idm", "Idmn", "Id", "Idn",
                  "InverseVariance", "MaximumProbability", "SumAverage", "SumEntropy", "SumSquares")


@numba.njit(cache=True, nogil=True, error_model="numpy")  # x / 0 gives inf or NaN, as in numpy
def glcm_plain_features(p, levels, ng, eps):
    """The GLCM features that involve no threshold, per angle, in one pass over ``p``.

    ``p`` is the normalised GLCM ``(Ng', Ng', Na)``, ``levels`` the gray level (value) of
    each row, ``ng`` the largest gray level. Returns ``(len(PLAIN_FEATURES), Na)``; NaN
    (a lone empty matrix) propagates as in numpy. Sums run in a different order
    from numpy's, so values agree with PyRadiomics to rounding (about 1e-15 relative):
    every sum here is of terms of one sign. The features that test a threshold or
    cancel (Correlation, Imc1, Imc2, MCC, ClusterShade, JointEntropy) stay in numpy.
    """
    n = p.shape[0]
    na = p.shape[2]
    out = np.empty((17, na), np.float64)
    px = np.empty(n)
    padd = np.empty(2 * ng - 1)
    psub = np.empty(ng)
    for a in range(na):
        # NaN (a lone empty matrix) flows through the sums as it does through numpy's: a bin of
        # p_{x-y} or p_{x+y} that no cell reaches stays 0, so e.g. InverseVariance can stay finite.
        ux = 0.0
        uy = 0.0
        auto = 0.0
        contrast = 0.0
        energy = 0.0
        pmax = -np.inf
        padd[:] = 0.0
        psub[:] = 0.0
        for i in range(n):
            li = levels[i]
            s = 0.0
            for j in range(n):
                v = p[i, j, a]
                lj = levels[j]
                s += v
                ux += v * li
                uy += v * lj
                auto += v * li * lj
                contrast += v * (li - lj) * (li - lj)
                energy += v * v
                if v > pmax or np.isnan(v):
                    pmax = v if not np.isnan(pmax) else pmax
                padd[int(li + lj) - 2] += v
                psub[int(abs(li - lj))] += v
            px[i] = s
        prom = 0.0
        tend = 0.0
        var_x = 0.0
        for i in range(n):
            li = levels[i]
            var_x += px[i] * (li - ux) * (li - ux)
            for j in range(n):
                c = levels[i] + levels[j] - ux - uy
                c2 = c * c
                tend += p[i, j, a] * c2
                prom += p[i, j, a] * c2 * c2
        da = 0.0
        dent = 0.0
        idm = 0.0
        idmn = 0.0
        idd = 0.0
        idn = 0.0
        iv = 0.0
        for k in range(ng):
            v = psub[k]
            da += k * v
            dent -= v * np.log2(v + eps)
            idm += v / (1.0 + k * k)
            idmn += v / (1.0 + (k * k) / (ng * ng))
            idd += v / (1.0 + k)
            idn += v / (1.0 + k / ng)
            if k >= 1:
                iv += v / (k * k)
        dvar = 0.0
        for k in range(ng):
            dvar += psub[k] * (k - da) * (k - da)
        sa = 0.0
        sent = 0.0
        for k in range(2 * ng - 1):
            v = padd[k]
            sa += (k + 2) * v
            sent -= v * np.log2(v + eps)
        out[0, a] = auto
        out[1, a] = prom
        out[2, a] = tend
        out[3, a] = contrast
        out[4, a] = da
        out[5, a] = dent
        out[6, a] = dvar
        out[7, a] = energy
        out[8, a] = idm
        out[9, a] = idmn
        out[10, a] = idd
        out[11, a] = idn
        out[12, a] = iv
        out[13, a] = pmax
        out[14, a] = sa
        out[15, a] = sent
        out[16, a] = var_x
    return out
