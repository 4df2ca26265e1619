"""Numba kernel for the features shared by GLSZM and GLDM (:mod:`chexradi.radiomics.features.zones`).

``zone_features`` computes the 15 shared features of one ``P(i, j)`` matrix in one pass
(GLRLM's kernel uses it too, per angle: its formulas are the same with runs for zones),
PyRadiomics' formulas term for term. Every sum is of terms of one sign, so the summation
order (different from numpy's pairwise sums) changes values only by rounding.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["zone_features"]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def zone_features(p, pg, pj, iv, jv, nz, eps):
    """``(15,)``: small, large emphasis; gray, size non-uniformity and their normalised forms;
    gray, size variance; entropy; low, high gray emphasis; small-low, small-high, large-low,
    large-high gray emphasis (the order of ``features.zones.COMPILED``).

    ``p`` ``(Ng, Ns)`` is the matrix, ``pg``/``pj`` its marginals over sizes and over gray
    levels as the caller's numpy computed them (so that, e.g., a flat ROI's gray variance is 0
    exactly, as in numpy), ``iv``/``jv`` the gray levels and sizes, ``nz`` the number of zones.
    """
    ng = p.shape[0]
    ns = p.shape[1]
    ent = 0.0
    slg = 0.0
    shg = 0.0
    llg = 0.0
    lhg = 0.0
    for i in range(ng):
        i2 = iv[i] * iv[i]
        for j in range(ns):
            v = p[i, j]
            j2 = jv[j] * jv[j]
            q = v / nz
            ent += q * np.log2(q + eps)
            slg += v / (i2 * j2)
            shg += v * i2 / j2
            llg += v * j2 / i2
            lhg += v * (i2 * j2)
    small = 0.0
    large = 0.0
    snu = 0.0
    mu_j = 0.0
    for j in range(ns):
        j2 = jv[j] * jv[j]
        small += pj[j] / j2
        large += pj[j] * j2
        snu += pj[j] * pj[j]
        mu_j += (pj[j] / nz) * jv[j]
    gnu = 0.0
    low = 0.0
    high = 0.0
    mu_i = 0.0
    for i in range(ng):
        i2 = iv[i] * iv[i]
        gnu += pg[i] * pg[i]
        low += pg[i] / i2
        high += pg[i] * i2
        mu_i += (pg[i] / nz) * iv[i]
    gvar = 0.0
    for i in range(ng):
        gvar += (pg[i] / nz) * (iv[i] - mu_i) * (iv[i] - mu_i)
    svar = 0.0
    for j in range(ns):
        svar += (pj[j] / nz) * (jv[j] - mu_j) * (jv[j] - mu_j)
    out = np.empty(15)
    out[0] = small / nz
    out[1] = large / nz
    out[2] = gnu / nz
    out[3] = gnu / (nz * nz)
    out[4] = snu / nz
    out[5] = snu / (nz * nz)
    out[6] = gvar
    out[7] = svar
    out[8] = -ent
    out[9] = low / nz
    out[10] = high / nz
    out[11] = slg / nz
    out[12] = shg / nz
    out[13] = llg / nz
    out[14] = lhg / nz
    return out
