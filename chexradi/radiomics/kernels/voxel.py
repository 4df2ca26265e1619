"""Numba kernels for voxel-based feature maps: a feature class in the kernel around every ROI voxel.

PyRadiomics' voxel-based extraction computes, for every ROI voxel ``c``, the class's matrix on the box
``[c - r, c + r]`` (``r`` = ``kernelRadius``; one voxel thick along the force2D axis) clipped to the image,
counting only the voxels of the class's mask (the ROI with ``maskedKernel``, every voxel without), and the
features of that matrix. The drivers below do this for a batch of centres in parallel (``numba.prange``).
Each centre's box is copied into a fixed array of side ``2r + 1`` whose voxels beyond the image are outside
the mask: for every matrix that is the same as clipping the box, because a neighbour or a run stops at
both. The matrices then come from the same kernels as the segment-based classes
(:func:`~.glcm.glcm_counts`, :func:`~.glrlm.glrlm_counts`, :func:`~.glszm.glszm_zones`,
:func:`~.gldm.gldm_counts`, :func:`~.ngtdm.ngtdm_sums`) and the features from the same one-pass kernels
(:func:`~.glcm.glcm_plain_features`, :func:`~.glrlm.glrlm_features`, :func:`~.zones.zone_features`)
where those exist. Each kernel's matrices hold the gray levels present in that kernel only: PyRadiomics
keeps the levels of the whole ROI, those absent from a kernel as rows of zeros, and leaving them out drops
only exact zeros from sequential sums (features that use the largest level ``Ng`` take the ROI's).

First order follows PyRadiomics' numpy calls on the ``(voxels, kernel)`` array value for value: the kernel
voxels in PyRadiomics' offset order, NaN outside the mask, and numpy's pairwise summation
(:func:`~.firstorder.pairwise_sum`) for every ``nansum``/``nanmean``, so that e.g. the variance of a flat kernel is the
same tiny number (or 0) as PyRadiomics' and Skewness/Kurtosis take the same branch.
"""
from __future__ import annotations

import numba
import numpy as np

from .firstorder import pairwise_sum
from .glcm import MCC_NEAR_ZERO, PLAIN_FEATURES, glcm_counts, glcm_plain_features
from .glrlm import GLRLM_FEATURES, glrlm_counts, glrlm_features, run_marginals
from .glszm import glszm_zones
from .gldm import gldm_counts
from .ngtdm import ngtdm_sums
from .zones import zone_features

__all__ = ["FIRSTORDER_COLUMNS", "GLCM_COLUMNS", "GLRLM_COLUMNS", "ZONE_COLUMNS", "NGTDM_COLUMNS",
           "kernel_box", "firstorder_voxels", "glcm_voxels",
           "glcm_voxel_probabilities", "glrlm_voxels", "glszm_voxels", "gldm_voxels", "ngtdm_voxels"]

#: Columns of :func:`firstorder_voxels`' result.
FIRSTORDER_COLUMNS = ("Energy", "TotalEnergy", "Entropy", "Minimum", "10Percentile", "90Percentile", "Maximum",
                      "Mean", "Median", "InterquartileRange", "Range", "MeanAbsoluteDeviation",
                      "RobustMeanAbsoluteDeviation", "RootMeanSquared", "StandardDeviation", "Skewness", "Kurtosis",
                      "Variance", "Uniformity")
#: Columns of :func:`glcm_voxels`' feature result (JointAverage and MCC are returned apart).
GLCM_COLUMNS = PLAIN_FEATURES + ("ClusterShade", "Correlation", "JointEntropy", "Imc1", "Imc2")
_INVERSE_VARIANCE = PLAIN_FEATURES.index("InverseVariance")

#: Columns of :func:`glrlm_voxels`' result.
GLRLM_COLUMNS = GLRLM_FEATURES
#: Columns of :func:`glszm_voxels` / :func:`gldm_voxels`: :func:`~.zones.zone_features`' 15, then Nz / Np.
ZONE_COLUMNS = ("small", "large", "gray_nu", "gray_nu_norm", "size_nu", "size_nu_norm", "gray_var", "size_var",
                "entropy", "low_gray", "high_gray", "small_low", "small_high", "large_low", "large_high",
                "percentage")
_N_ZONE = len(ZONE_COLUMNS) - 1  # zone_features' results; the last column is GLSZM's ZonePercentage

#: Columns of :func:`ngtdm_voxels`' result.
NGTDM_COLUMNS = ("Coarseness", "Contrast", "Busyness", "Complexity", "Strength")


@numba.njit(cache=True, nogil=True)
def _nanmean_terms(x, cnt):
    """``numpy.nanmean`` of ``x`` whose non-NaN count is ``cnt`` (NaN replaced by 0, pairwise sum)."""
    n = x.shape[0]
    y = np.empty(n)
    for k in range(n):
        y[k] = 0.0 if np.isnan(x[k]) else x[k]
    return pairwise_sum(y) / cnt


@numba.njit(cache=True, nogil=True)
def _extent(n, axis, collapse, r):
    return 1 if (axis == collapse or n == 1) else 2 * r + 1


@numba.njit(cache=True, nogil=True)
def kernel_box(binned, mask, cz, cy, cx, r, collapse):
    """The kernel around ``(cz, cy, cx)`` as two arrays of side ``2r + 1`` (1 along ``collapse`` and along an
    axis the image does not extend in): gray levels (0 outside) and the mask (False beyond the image)."""
    nz, ny, nx = binned.shape
    ez = _extent(nz, 0, collapse, r)
    ey = _extent(ny, 1, collapse, r)
    ex = _extent(nx, 2, collapse, r)
    oz = cz - ez // 2
    oy = cy - ey // 2
    ox = cx - ex // 2
    kb = np.zeros((ez, ey, ex), np.int32)
    km = np.zeros((ez, ey, ex), np.bool_)
    for a in range(ez):
        z = oz + a
        if z < 0 or z >= nz:
            continue
        for b in range(ey):
            y = oy + b
            if y < 0 or y >= ny:
                continue
            for c in range(ex):
                x = ox + c
                if x < 0 or x >= nx:
                    continue
                if mask[z, y, x]:
                    kb[a, b, c] = binned[z, y, x]
                    km[a, b, c] = True
    return kb, km


@numba.njit(cache=True, nogil=True)
def _padding(ez, ey, ex, pad):
    """The padding of a kernel of shape ``(ez, ey, ex)`` by ``pad`` along every axis it extends in, and the
    padded shape: ``(pz, py, px, sz, sy, sx)``."""
    pz = pad if ez > 1 else 0
    py = pad if ey > 1 else 0
    px = pad if ex > 1 else 0
    return pz, py, px, ez + 2 * pz, ey + 2 * py, ex + 2 * px


@numba.njit(cache=True, nogil=True)
def _padded_flat(kb, km, pad):
    """Gray levels of the kernel inside its mask (0 elsewhere), zero-padded by ``pad`` along every axis the
    kernel extends in, flattened; and the padded shape."""
    ez, ey, ex = kb.shape
    pz, py, px, sz, sy, sx = _padding(ez, ey, ex, pad)
    lab = np.zeros(sz * sy * sx, np.int32)
    for a in range(ez):
        for b in range(ey):
            for c in range(ex):
                if km[a, b, c]:
                    lab[((a + pz) * sy + (b + py)) * sx + (c + px)] = kb[a, b, c]
    return lab, sz, sy, sx


@numba.njit(cache=True, nogil=True)
def _flat_offsets(angles, sy, sx):
    out = np.empty(angles.shape[0], np.int64)
    for a in range(angles.shape[0]):
        out[a] = (angles[a, 0] * sy + angles[a, 1]) * sx + angles[a, 2]
    return out


@numba.njit(cache=True, nogil=True)
def _kernel_shape(shape, collapse, r):
    return (_extent(shape[0], 0, collapse, r), _extent(shape[1], 1, collapse, r), _extent(shape[2], 2, collapse, r))


@numba.njit(cache=True, nogil=True)
def _local_levels(kb, km, ng):
    """The gray levels present in a kernel: a lookup table level -> row (-1 when absent; ``ng + 1`` entries),
    their values (ascending, float64) and their number. Rows of levels absent from a kernel are zero in
    PyRadiomics' matrices; leaving them out drops only exact zeros from every sum, so no value changes."""
    lut = np.full(ng + 1, -1, np.int64)
    ez, ey, ex = kb.shape
    for a in range(ez):
        for b in range(ey):
            for c in range(ex):
                if km[a, b, c]:
                    lut[kb[a, b, c]] = 0
    vals, m = _rank_marked(lut)
    return lut, vals, m


@numba.njit(cache=True, nogil=True)
def _rank_marked(lut):
    """Renumber the entries of ``lut`` (indices 1 and up) marked 0 as 0, 1, ... in index order (the others
    stay -1); returns the marked indices as float64 and their number."""
    m = 0
    for g in range(1, lut.shape[0]):
        if lut[g] == 0:
            m += 1
    vals = np.empty(m)
    k = 0
    for g in range(1, lut.shape[0]):
        if lut[g] == 0:
            lut[g] = k
            vals[k] = g
            k += 1
    return vals, m


@numba.njit(cache=True, nogil=True)
def _nanmean_rows(per_angle, out, v):
    """``out[v, k] = nanmean(per_angle[k, :])`` (NaN when every angle is NaN)."""
    for k in range(per_angle.shape[0]):
        s = 0.0
        c = 0
        for a in range(per_angle.shape[1]):
            x = per_angle[k, a]
            if not np.isnan(x):
                s += x
                c += 1
        out[v, k] = s / c if c > 0 else np.nan


# --------------------------------------------------------------------------- first order


@numba.njit(cache=True, nogil=True)
def _lerp(a, b, t):
    diff = b - a
    if t >= 0.5:
        return b - diff * (1 - t)
    return a + diff * t


@numba.njit(cache=True, nogil=True)
def _percentile(s, n, q):
    """numpy's ``linear`` percentile of the ``n`` sorted values ``s`` (``q`` a fraction)."""
    v = (n - 1) * q
    lo = int(np.floor(v))
    if lo >= n - 1:
        return s[n - 1]
    return _lerp(s[lo], s[lo + 1], v - lo)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def firstorder_voxels(image, binned, centres, offsets, lut, ng, shift, volume, eps):
    """Every first-order feature (:data:`FIRSTORDER_COLUMNS`) of the kernel of each centre.

    ``image`` float64 ``(z, y, x)`` holds NaN outside the mask; ``binned`` the gray levels (0 outside the
    mask); ``offsets`` ``(Nk, 3)`` the kernel in PyRadiomics' order (its angles, then the centre);
    ``lut`` maps a gray level to its bin among the ``ng`` levels of the whole mask; ``volume`` is the voxel
    volume.
    """
    nv = centres.shape[0]
    nk = offsets.shape[0]
    nz, ny, nx = image.shape
    out = np.full((nv, len(FIRSTORDER_COLUMNS)), np.nan)
    qs = np.array([0.1, 0.25, 0.75, 0.9])
    for v in numba.prange(nv):
        x = np.full(nk, np.nan)
        lv = np.zeros(nk, np.int64)
        for k in range(nk):
            z = centres[v, 0] + offsets[k, 0]
            y = centres[v, 1] + offsets[k, 1]
            w = centres[v, 2] + offsets[k, 2]
            if 0 <= z < nz and 0 <= y < ny and 0 <= w < nx:
                x[k] = image[z, y, w]
                lv[k] = binned[z, y, w]
        cnt = 0
        for k in range(nk):
            if not np.isnan(x[k]):
                cnt += 1
        sq = np.empty(nk)
        for k in range(nk):
            sq[k] = (x[k] + shift) ** 2
        energy = _nanmean_terms(sq, 1)
        out[v, 0] = energy
        out[v, 1] = energy * volume
        # histogram over the mask's gray levels, normalised by the kernel's voxel count
        hist = np.zeros(ng)
        for k in range(nk):
            if lv[k] > 0:
                hist[lut[lv[k]]] += 1.0
        tot = pairwise_sum(hist)
        if tot == 0:
            tot = 1.0
        ent = np.empty(ng)
        uni = np.empty(ng)
        for g in range(ng):
            p = hist[g] / tot
            ent[g] = p * np.log2(p + eps)
            uni[g] = p ** 2
        out[v, 2] = -1.0 * pairwise_sum(ent)
        out[v, 18] = pairwise_sum(uni)
        if cnt == 0:
            continue
        s = np.empty(cnt)
        j = 0
        for k in range(nk):
            if not np.isnan(x[k]):
                s[j] = x[k]
                j += 1
        s.sort()
        p10 = _percentile(s, cnt, qs[0])
        p25 = _percentile(s, cnt, qs[1])
        p75 = _percentile(s, cnt, qs[2])
        p90 = _percentile(s, cnt, qs[3])
        out[v, 3] = s[0]
        out[v, 4] = p10
        out[v, 5] = p90
        out[v, 6] = s[cnt - 1]
        h = cnt // 2
        lo = h if cnt % 2 == 1 else h - 1
        out[v, 8] = (s[lo] + s[h]) / 2.0
        out[v, 9] = p75 - p25
        out[v, 10] = s[cnt - 1] - s[0]
        mean = _nanmean_terms(x, cnt)
        out[v, 7] = mean
        d = np.empty(nk)
        for k in range(nk):
            d[k] = abs(x[k] - mean)
        out[v, 11] = _nanmean_terms(d, cnt)
        # robust MAD: the values within [P10, P90], around their own mean
        rb = np.full(nk, np.nan)
        rc = 0
        for k in range(nk):
            if not np.isnan(x[k]) and not (x[k] - p10 < 0 or x[k] - p90 > 0):
                rb[k] = x[k]
                rc += 1
        if rc > 0:
            rmean = _nanmean_terms(rb, rc)
            for k in range(nk):
                d[k] = abs(rb[k] - rmean)
            out[v, 12] = _nanmean_terms(d, rc)
        out[v, 13] = np.sqrt(energy / cnt)
        # nanstd: deviations from the pairwise mean, NaN set to 0, squared, summed pairwise
        for k in range(nk):
            dk = 0.0 if np.isnan(x[k]) else x[k] - mean
            d[k] = dk * dk
        std = np.sqrt(pairwise_sum(d) / cnt)
        out[v, 14] = std
        out[v, 17] = std ** 2
        m = np.empty(nk)
        for k in range(nk):
            m[k] = (x[k] - mean) ** 2.0
        m2 = _nanmean_terms(m, cnt)
        for k in range(nk):
            m[k] = (x[k] - mean) ** 3.0
        m3 = _nanmean_terms(m, cnt)
        for k in range(nk):
            m[k] = (x[k] - mean) ** 4.0
        m4 = _nanmean_terms(m, cnt)
        if m2 == 0:
            m2 = 1.0
        out[v, 15] = m3 / m2 ** 1.5
        out[v, 16] = m4 / m2 ** 2.0
    return out


# --------------------------------------------------------------------------- GLCM


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _glcm_normalised(counts, symmetric, weights):
    """PyRadiomics' ``P_glcm`` of one kernel: symmetrised, angles merged with ``weights`` (when given), each
    angle divided by its sum (NaN for an angle without a pair)."""
    n = counts.shape[0]
    na = counts.shape[2]
    p = counts.copy()
    if symmetric:
        for i in range(n):
            for j in range(n):
                for a in range(na):
                    p[i, j, a] = counts[i, j, a] + counts[j, i, a]
    if weights.shape[0] > 0:
        q = np.zeros((n, n, 1))
        for i in range(n):
            for j in range(n):
                s = 0.0
                for a in range(na):
                    s += p[i, j, a] * weights[a]
                q[i, j, 0] = s
        p = q
    na = p.shape[2]
    for a in range(na):
        tot = 0.0
        for i in range(n):
            for j in range(n):
                tot += p[i, j, a]
        if tot == 0:
            tot = np.nan
        for i in range(n):
            for j in range(n):
                p[i, j, a] /= tot
    return p


@numba.njit(cache=True, nogil=True)
def glcm_voxel_probabilities(binned, mask, centre, r, collapse, angles, lut, n_levels, symmetric, weights):
    """The normalised ``P_glcm`` ``(Ng, Ng, Na)`` of one centre's kernel (for the caller's MCC fallback)."""
    kb, km = kernel_box(binned, mask, centre[0], centre[1], centre[2], r, collapse)
    return _glcm_normalised(glcm_counts(kb, km, angles, lut, n_levels), symmetric, weights)


@numba.njit(cache=True, nogil=True)
def _marginals(p, a, px, py):
    """``px[i] = sum_j p[i, j, a]`` and ``py[j] = sum_i p[i, j, a]``, each summed in index order (numpy's order
    for PyRadiomics' ``P.sum(2)`` / ``P.sum(1)``)."""
    n = p.shape[0]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += p[i, j, a]
        px[i] = s
    for j in range(n):
        s = 0.0
        for i in range(n):
            s += p[i, j, a]
        py[j] = s


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _glcm_extra(p, levels, eps, out_row, ux_row):
    """ClusterShade, Correlation, JointEntropy, Imc1, Imc2 per angle (``out_row`` ``(5, Na)``), and the
    joint average per angle (``ux_row``), as PyRadiomics' numpy expressions."""
    n = p.shape[0]
    na = p.shape[2]
    px = np.empty(n)
    py = np.empty(n)
    for a in range(na):
        ux = 0.0
        uy = 0.0
        for i in range(n):
            for j in range(n):
                ux += levels[i] * p[i, j, a]
                uy += levels[j] * p[i, j, a]
        _marginals(p, a, px, py)
        shade = 0.0
        vx = 0.0
        vy = 0.0
        corm = 0.0
        hxy = 0.0
        hxy1 = 0.0
        hxy2 = 0.0
        for i in range(n):
            for j in range(n):
                v = p[i, j, a]
                c = levels[i] + levels[j] - ux - uy
                shade += v * (c * c * c)
                vx += v * ((levels[i] - ux) ** 2)
                vy += v * ((levels[j] - uy) ** 2)
                corm += v * (levels[i] - ux) * (levels[j] - uy)
                hxy += v * np.log2(v + eps)
                q = px[i] * py[j]
                hxy1 += v * np.log2(q + eps)
                hxy2 += q * np.log2(q + eps)
        hxy = -hxy
        hxy1 = -hxy1
        hxy2 = -hxy2
        hx = 0.0
        hy = 0.0
        for i in range(n):
            hx += px[i] * np.log2(px[i] + eps)
            hy += py[i] * np.log2(py[i] + eps)
        hx = -hx
        hy = -hy
        sig = (vx ** 0.5) * (vy ** 0.5)
        corr = corm / (sig + eps)
        if sig == 0:
            corr = 1.0
        # numpy.fmax: the non-NaN one when only one is NaN
        if np.isnan(hx):
            div = hy
        elif np.isnan(hy):
            div = hx
        else:
            div = max(hx, hy)
        imc1 = hxy - hxy1
        if div == 0:
            imc1 = 0.0
        else:
            imc1 = imc1 / div
        imc2 = (1 - np.e ** (-2 * (hxy2 - hxy))) ** 0.5
        if hxy2 == hxy:
            imc2 = 0.0
        out_row[0, a] = shade
        out_row[1, a] = corr
        out_row[2, a] = hxy
        out_row[3, a] = imc1
        out_row[4, a] = imc2
        ux_row[a] = ux


@numba.njit(cache=True, nogil=True)
def _tridiagonal(a, n, v, pvec, w, d, e):
    """Householder reduction of the symmetric leading ``n x n`` block of ``a`` (overwritten) to a tridiagonal
    matrix: its diagonal into ``d[:n]``, its off-diagonal into ``e[:n]`` (``e[n - 1] = 0``); ``v``, ``pvec``
    and ``w`` are work space of ``n`` or more."""
    for k in range(n - 2):
        t = n - k - 1
        alpha = 0.0
        for i in range(t):
            v[i] = a[k + 1 + i, k]
            alpha += v[i] * v[i]
        alpha = np.sqrt(alpha)
        if alpha == 0.0:
            continue
        if v[0] > 0:
            alpha = -alpha
        v[0] -= alpha
        vv = 0.0
        for i in range(t):
            vv += v[i] * v[i]
        if vv == 0.0:
            continue
        beta = 2.0 / vv
        pv = 0.0
        for i in range(t):
            acc = 0.0
            for j in range(t):
                acc += a[k + 1 + i, k + 1 + j] * v[j]
            pvec[i] = beta * acc
            pv += pvec[i] * v[i]
        c = 0.5 * beta * pv
        for i in range(t):
            w[i] = pvec[i] - c * v[i]
        for i in range(t):
            for j in range(t):
                a[k + 1 + i, k + 1 + j] -= v[i] * w[j] + w[i] * v[j]
        a[k + 1, k] = alpha
    for i in range(n):
        d[i] = a[i, i]
        e[i] = a[i + 1, i] if i < n - 1 else 0.0


@numba.njit(cache=True, nogil=True)
def _kth_eigenvalue(d, e, n, k):
    """The ``k``-th smallest (1-based) eigenvalue of the symmetric tridiagonal matrix ``(d[:n], e[:n])`` by
    bisection on its Sturm sequence, to a few ulp of the matrix's scale."""
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        r = abs(e[i]) + (abs(e[i - 1]) if i > 0 else 0.0)
        lo = min(lo, d[i] - r)
        hi = max(hi, d[i] + r)
    scale = max(abs(lo), abs(hi), 1e-300)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if hi - lo <= 4e-16 * scale or mid == lo or mid == hi:
            break
        cnt = 0  # eigenvalues below mid
        q = d[0] - mid
        if q == 0.0:
            q = -1e-300
        if q < 0:
            cnt += 1
        for i in range(1, n):
            q = d[i] - mid - e[i - 1] * e[i - 1] / q
            if q == 0.0:
                q = -1e-300
            if q < 0:
                cnt += 1
        if cnt >= k:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@numba.njit(cache=True, nogil=True)
def _second_largest_into(s, n, v, pvec, w, d, e):
    """The second largest eigenvalue of the symmetric leading ``n x n`` block of ``s`` (``n >= 2``;
    overwritten): a closed form for ``n = 2``, else Householder tridiagonalisation and bisection."""
    if n == 2:
        return 0.5 * (s[0, 0] + s[1, 1]) - np.hypot(0.5 * (s[0, 0] - s[1, 1]), s[0, 1])
    _tridiagonal(s, n, v, pvec, w, d, e)
    return _kth_eigenvalue(d, e, n, n - 1)


@numba.njit(cache=True, nogil=True)
def _second_largest(s):
    """The second largest eigenvalue of the symmetric ``s`` (``n >= 2``; not modified)."""
    n = s.shape[0]
    return _second_largest_into(s.copy(), n, np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _mcc(p, n_levels):
    """MCC of one kernel as PyRadiomics computes it on its full ``(Ng, Ng)`` matrices (NaN angles, which
    the caller accounts for, left out).

    :math:`Q = D_x^{-1} P D_y^{-1} P^T` is similar to the symmetric :math:`A A^T`,
    :math:`A_{ik} = p_{ik} / \\sqrt{p_x(i) p_y(k)}` (PyRadiomics' :math:`\\epsilon` in the denominator moves
    its eigenvalues by about :math:`\\epsilon / (p_x p_y)`); its second eigenvalue comes from
    ``_second_largest``. The gray levels absent from the kernel add zero eigenvalues. Returns
    ``(value, near_zero)``: ``near_zero`` when a second eigenvalue lies within :data:`MCC_NEAR_ZERO` of 0,
    where the caller asks PyRadiomics' own routine."""
    n = p.shape[0]
    na = p.shape[2]
    tot = 0.0
    cnt = 0
    near = False
    px = np.empty(n)
    py = np.empty(n)
    act = np.empty(n, np.int64)
    cols = np.empty(n, np.int64)
    A = np.empty((n, n))
    S = np.empty((n, n))
    v = np.empty(n)
    pvec = np.empty(n)
    w = np.empty(n)
    d = np.empty(n)
    e = np.empty(n)
    for a in range(na):
        if np.isnan(p[0, 0, a]):
            continue
        _marginals(p, a, px, py)
        m = 0
        for i in range(n):
            if px[i] > 0:
                act[m] = i
                m += 1
        mc = 0
        for k in range(n):
            if py[k] > 0:
                cols[mc] = k
                mc += 1
        if m == 1:
            lam2 = 0.0  # Q = diag(q, 0, ...): the second eigenvalue is an exact 0
        else:
            for ii in range(m):
                i = act[ii]
                for kk in range(mc):
                    k = cols[kk]
                    A[ii, kk] = p[i, k, a] / np.sqrt(px[i] * py[k])
            for ii in range(m):
                for jj in range(ii + 1):
                    acc = 0.0
                    for kk in range(mc):
                        acc += A[ii, kk] * A[jj, kk]
                    S[ii, jj] = acc
                    S[jj, ii] = acc
            lam2 = _second_largest_into(S, m, v, pvec, w, d, e)
            if abs(lam2) < MCC_NEAR_ZERO:
                near = True
            if m < n_levels and lam2 < 0:
                lam2 = 0.0
        val = np.sqrt(lam2)
        if not np.isnan(val):
            tot += val
            cnt += 1
    if cnt == 0:
        return np.nan, near
    return tot / cnt, near


@numba.njit(parallel=True, cache=True, error_model="numpy")
def glcm_voxels(binned, mask, centres, r, collapse, angles, n_levels, ng, symmetric, weights, eps):
    """GLCM features of every centre's kernel (``n_levels`` gray levels in the whole mask, the largest ``ng``).

    Returns ``(features, ux, mcc, near_zero)``: ``features`` ``(N, len(GLCM_COLUMNS))`` averaged over the
    angles with ``nanmean``; ``ux`` ``(N, Na')`` the joint average per angle (NaN for an empty angle; the
    caller averages it over the angles PyRadiomics keeps for the batch); ``mcc`` ``(N,)`` and
    ``near_zero`` ``(N,)`` (see ``_mcc``).
    """
    nv = centres.shape[0]
    na_out = 1 if weights.shape[0] > 0 else angles.shape[0]
    nplain = len(PLAIN_FEATURES)
    feats = np.full((nv, nplain + 5), np.nan)
    ux = np.full((nv, na_out), np.nan)
    mcc = np.full(nv, np.nan)
    near = np.zeros(nv, np.bool_)
    for v in numba.prange(nv):
        kb, km = kernel_box(binned, mask, centres[v, 0], centres[v, 1], centres[v, 2], r, collapse)
        lut, levels, m = _local_levels(kb, km, ng)
        p = _glcm_normalised(glcm_counts(kb, km, angles, lut, m), symmetric, weights)
        per = np.empty((nplain + 5, na_out))
        per[:nplain] = glcm_plain_features(p, levels, ng, eps)
        if n_levels >= 2:
            # an empty angle is NaN in every p_{x-y}(k) bin that some pair of the mask's levels reaches; a kernel
            # with one level reaches k = 0 only, so its InverseVariance (k >= 1) would stay 0 where
            # PyRadiomics' full matrix gives NaN
            for a in range(na_out):
                if np.isnan(p[0, 0, a]):
                    per[_INVERSE_VARIANCE, a] = np.nan
        row = np.empty(na_out)
        _glcm_extra(p, levels, eps, per[nplain:], row)
        _nanmean_rows(per, feats, v)
        ux[v] = row
        mcc[v], near[v] = _mcc(p, n_levels)
    return feats, ux, mcc, near


# --------------------------------------------------------------------------- GLRLM


@numba.njit(parallel=True, cache=True, error_model="numpy")
def glrlm_voxels(binned, mask, centres, r, collapse, angles, ng, weights, eps):
    """GLRLM features (:data:`GLRLM_COLUMNS`) of every centre's kernel, averaged over angles with
    ``nanmean``; ``weights`` merges the angles (empty: no weighting)."""
    nv = centres.shape[0]
    out = np.full((nv, len(GLRLM_COLUMNS)), np.nan)
    for v in numba.prange(nv):
        kb, km = kernel_box(binned, mask, centres[v, 0], centres[v, 1], centres[v, 2], r, collapse)
        lut, levels, n_levels = _local_levels(kb, km, ng)
        n_runs = max(kb.shape[0], max(kb.shape[1], kb.shape[2]))
        p = glrlm_counts(kb, km, angles, lut, n_levels, n_runs)
        if weights.shape[0] > 0:
            q = np.zeros((n_levels, n_runs, 1))
            for i in range(n_levels):
                for j in range(n_runs):
                    s = 0.0
                    for a in range(angles.shape[0]):
                        s += p[i, j, a] * weights[a]
                    q[i, j, 0] = s
            p = q
        na = p.shape[2]
        nr, pr, pg = run_marginals(p)
        for a in range(na):
            if nr[a] == 0:
                nr[a] = np.nan
        jv = np.arange(1, n_runs + 1).astype(np.float64)
        _nanmean_rows(glrlm_features(p, pr, pg, nr, levels, jv, eps), out, v)
    return out


# --------------------------------------------------------------------------- GLSZM, GLDM


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _zone_row(P, levels, jv, eps, out, v):
    ng = P.shape[0]
    ns = P.shape[1]
    pg = np.zeros(ng)
    pj = np.zeros(ns)
    nz = 0.0
    for i in range(ng):
        for j in range(ns):
            pg[i] += P[i, j]
            pj[j] += P[i, j]
            nz += P[i, j]
    if nz == 0:
        nz = 1.0
    out[v, :_N_ZONE] = zone_features(P, pg, pj, levels, jv, nz, eps)
    npx = 0.0
    for j in range(ns):
        npx += pj[j] * jv[j]
    out[v, _N_ZONE] = nz / (npx if npx != 0 else 1.0)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def glszm_voxels(binned, mask, centres, r, collapse, shape, angles, ng, eps):
    """GLSZM features (:data:`ZONE_COLUMNS`, the last being ZonePercentage) of every centre's kernel;
    ``angles`` the bidirectional distance-1 neighbours, ``shape`` the cropped image's shape."""
    nv = centres.shape[0]
    out = np.full((nv, len(ZONE_COLUMNS)), np.nan)
    ez, ey, ex = _kernel_shape(shape, collapse, r)
    sy, sx = _padding(ez, ey, ex, 1)[4:]
    offsets = _flat_offsets(angles, sy, sx)
    for v in numba.prange(nv):
        kb, km = kernel_box(binned, mask, centres[v, 0], centres[v, 1], centres[v, 2], r, collapse)
        lab, _, _, _ = _padded_flat(kb, km, 1)
        nvox = 0
        for k in range(lab.shape[0]):
            if lab[k] > 0:
                nvox += 1
        zone_gl, zone_size = glszm_zones(lab, offsets, nvox)
        lut, levels, n_levels = _local_levels(kb, km, ng)
        # the zone sizes present, ascending (the columns PyRadiomics keeps, less its all-zero ones)
        col = np.full(nvox + 1, -1, np.int64)
        for z in range(zone_size.shape[0]):
            col[zone_size[z]] = 0
        jv, ns = _rank_marked(col)
        P = np.zeros((n_levels, ns))
        for z in range(zone_gl.shape[0]):
            P[lut[zone_gl[z]], col[zone_size[z]]] += 1.0
        _zone_row(P, levels, jv, eps, out, v)
    return out


@numba.njit(parallel=True, cache=True, error_model="numpy")
def gldm_voxels(binned, mask, centres, r, collapse, shape, angles, pad, ng, alpha, eps):
    """GLDM features (:data:`ZONE_COLUMNS`; the last is unused) of every centre's kernel; ``angles`` the
    bidirectional neighbours at ``distances``, ``pad`` their largest component."""
    nv = centres.shape[0]
    out = np.full((nv, len(ZONE_COLUMNS)), np.nan)
    ez, ey, ex = _kernel_shape(shape, collapse, r)
    sy, sx = _padding(ez, ey, ex, pad)[4:]
    offsets = _flat_offsets(angles, sy, sx)
    nd = angles.shape[0] + 1
    for v in numba.prange(nv):
        kb, km = kernel_box(binned, mask, centres[v, 0], centres[v, 1], centres[v, 2], r, collapse)
        lab, _, _, _ = _padded_flat(kb, km, pad)
        counts = gldm_counts(lab, offsets, ng, alpha)
        lut, levels, n_levels = _local_levels(kb, km, ng)
        P = np.zeros((n_levels, nd))
        for g in range(ng):
            row = lut[g + 1]
            if row >= 0:
                for j in range(nd):
                    P[row, j] = counts[g, j]
        jv = np.arange(1, nd + 1).astype(np.float64)
        _zone_row(P, levels, jv, eps, out, v)
    return out


# --------------------------------------------------------------------------- NGTDM


@numba.njit(parallel=True, cache=True, error_model="numpy")
def ngtdm_voxels(binned, mask, centres, r, collapse, shape, angles, pad, ng):
    """NGTDM features (:data:`NGTDM_COLUMNS`) of every centre's kernel (PyRadiomics' voxel-based formulas:
    the gray levels absent from a kernel take no part)."""
    nv = centres.shape[0]
    out = np.full((nv, len(NGTDM_COLUMNS)), np.nan)
    ez, ey, ex = _kernel_shape(shape, collapse, r)
    sy, sx = _padding(ez, ey, ex, pad)[4:]
    offsets = _flat_offsets(angles, sy, sx)
    for v in numba.prange(nv):
        kb, km = kernel_box(binned, mask, centres[v, 0], centres[v, 1], centres[v, 2], r, collapse)
        lab, _, _, _ = _padded_flat(kb, km, pad)
        n_i, s_i = ngtdm_sums(lab, offsets, ng)
        m = 0
        for g in range(ng):
            if n_i[g] > 0:
                m += 1
        iv = np.empty(m)
        n = np.empty(m)
        s = np.empty(m)
        k = 0
        for g in range(ng):
            if n_i[g] > 0:
                iv[k] = g + 1
                n[k] = n_i[g]
                s[k] = s_i[g]
                k += 1
        nvp = 0.0
        for k in range(m):
            nvp += n[k]
        p = n / nvp
        ps = 0.0
        ssum = 0.0
        for k in range(m):
            ps += p[k] * s[k]
            ssum += s[k]
        out[v, 0] = 1e6 if ps == 0 else 1.0 / ps
        div = m * (m - 1)
        acc = 0.0
        for a in range(m):
            for b in range(m):
                acc += p[a] * p[b] * (iv[a] - iv[b]) ** 2
        out[v, 1] = 0.0 if div == 0 else acc * ssum / nvp / div
        den = 0.0
        for a in range(m):
            for b in range(m):
                den += abs(iv[a] * p[a] - iv[b] * p[b])
        out[v, 2] = 0.0 if den == 0 else ps / den
        cx = 0.0
        for a in range(m):
            for b in range(m):
                cx += abs(iv[a] - iv[b]) * (p[a] * s[a] + p[b] * s[b]) / (p[a] + p[b])
        out[v, 3] = cx / nvp
        st = 0.0
        for a in range(m):
            for b in range(m):
                st += (p[a] + p[b]) * (iv[a] - iv[b]) ** 2
        out[v, 4] = 0.0 if ssum == 0 else st / ssum
    return out

