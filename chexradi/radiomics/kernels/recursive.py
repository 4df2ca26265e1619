"""Deriche's recursive Gaussian along one axis, as ITK's ``RecursiveGaussianImageFilter`` computes it.

ITK (and so SimpleITK's ``LaplacianRecursiveGaussianImageFilter``, which PyRadiomics' LoG image type calls)
filters every line of the image along one axis with a fourth-order causal and anti-causal recursion whose
coefficients approximate a Gaussian (order 0) or its second derivative (order 2) of ``sigma`` (mm) on the
axis' spacing (Deriche 1993, with Farneback and Westin's normalisation). The signal is assumed constant
beyond both ends of a line. :func:`coefficients` computes the twenty coefficients with ITK's formulas
and :func:`filter_lines` runs the recursion with ITK's order of operations in double precision (each
sum left to right, the recurrence subtracted as one sum, causal plus anti-causal), storing each value in
the output array's type, so that the values equal ITK's, bit for bit where the output is double and
after the same rounding where it is float (checked on x86-64; a build of ITK that fuses multiply-adds,
as an arm64 compiler may, would differ in the last bits).

:func:`filter_lines` computes only the positions ``[lo, hi)`` of each line: the causal pass runs from
the start to ``hi``, the anti-causal pass from the end down to ``lo``, and the values there are the
whole line's (each recursion value depends only on the ones before it). A caller that needs a box of
the filtered image filters the lines through that box only (:mod:`chexradi.radiomics.filters`).
Single-threaded, like the other segment kernels: parallelise across cases.
"""
from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["coefficients", "filter_lines", "accumulate_scaled"]

# Deriche's exponential series for the Gaussian (index 0) and its first and second derivatives, as ITK's
# RecursiveGaussianImageFilter::SetUp lists them.
_A1 = (1.3530, -0.6724, -1.3563)
_B1 = (1.8151, -3.4327, 5.2318)
_W1, _L1 = 0.6681, -1.3932
_A2 = (-0.3531, 0.6724, 0.3446)
_B2 = (0.0902, 0.6100, -2.2355)
_W2, _L2 = 2.0787, -1.3732


def _d_coefficients(sigmad: float) -> tuple[float, float, float, float, float, float, float]:
    cos1, cos2 = math.cos(_W1 / sigmad), math.cos(_W2 / sigmad)
    exp1, exp2 = math.exp(_L1 / sigmad), math.exp(_L2 / sigmad)
    d4 = exp1 * exp1 * exp2 * exp2
    d3 = -2 * cos1 * exp1 * exp2 * exp2
    d3 += -2 * cos2 * exp2 * exp1 * exp1
    d2 = 4 * cos2 * cos1 * exp1 * exp2
    d2 += exp1 * exp1 + exp2 * exp2
    d1 = -2 * (exp2 * cos2 + exp1 * cos1)
    sd = 1.0 + d1 + d2 + d3 + d4
    dd = d1 + 2 * d2 + 3 * d3 + 4 * d4
    ed = d1 + 4 * d2 + 9 * d3 + 16 * d4
    return d1, d2, d3, d4, sd, dd, ed


def _n_coefficients(sigmad: float, k: int) -> tuple[float, ...]:
    a1, b1, a2, b2 = _A1[k], _B1[k], _A2[k], _B2[k]
    sin1, sin2 = math.sin(_W1 / sigmad), math.sin(_W2 / sigmad)
    cos1, cos2 = math.cos(_W1 / sigmad), math.cos(_W2 / sigmad)
    exp1, exp2 = math.exp(_L1 / sigmad), math.exp(_L2 / sigmad)
    n0 = a1 + a2
    n1 = exp2 * (b2 * sin2 - (a2 + 2 * a1) * cos2)
    n1 += exp1 * (b1 * sin1 - (a1 + 2 * a2) * cos1)
    n2 = (a1 + a2) * cos2 * cos1
    n2 -= b1 * cos2 * sin1 + b2 * cos1 * sin2
    n2 *= 2 * exp1 * exp2
    n2 += a2 * exp1 * exp1 + a1 * exp2 * exp2
    n3 = exp2 * exp1 * exp1 * (b2 * sin2 - a2 * cos2)
    n3 += exp1 * exp2 * exp2 * (b1 * sin1 - a1 * cos1)
    sn = n0 + n1 + n2 + n3
    dn = n1 + 2 * n2 + 3 * n3
    en = n1 + 4 * n2 + 9 * n3
    return n0, n1, n2, n3, sn, dn, en


def coefficients(sigma: float, spacing: float, order: int, normalize_across_scale: bool = True) -> np.ndarray:
    """The recursion's coefficients for a Gaussian of ``sigma`` (mm) along an axis of ``spacing`` (mm).

    ``order`` 0 (the Gaussian) or 2 (its second derivative, in the axis' pixel units, times ``sigma**2``
    when ``normalize_across_scale``). Returns ``[N0..N3, D1..D4, M1..M4, BN1..BN4, BM1..BM4]`` (float64).
    """
    if not (sigma > 0 and spacing > 0):
        raise ValueError(f"recursive Gaussian: sigma ({sigma}) and spacing ({spacing}) must be > 0")
    sigmad = sigma / spacing
    d1, d2, d3, d4, sd, dd, ed = _d_coefficients(sigmad)
    if order == 0:
        n0, n1, n2, n3, sn, _, _ = _n_coefficients(sigmad, 0)
        alpha0 = 2 * sn / sd - n0
        n0, n1, n2, n3 = (n * (1.0 / alpha0) for n in (n0, n1, n2, n3))
    elif order == 2:
        scale = sigma * sigma if normalize_across_scale else 1.0
        n0_0, n1_0, n2_0, n3_0, sn0, dn0, en0 = _n_coefficients(sigmad, 0)
        n0_2, n1_2, n2_2, n3_2, sn2, dn2, en2 = _n_coefficients(sigmad, 2)
        beta = -(2 * sn2 - sd * n0_2) / (2 * sn0 - sd * n0_0)
        n0, n1, n2, n3 = n0_2 + beta * n0_0, n1_2 + beta * n1_0, n2_2 + beta * n2_0, n3_2 + beta * n3_0
        sn, dn, en = sn2 + beta * sn0, dn2 + beta * dn0, en2 + beta * en0
        alpha2 = en * sd * sd - ed * sn * sd - 2 * dn * dd * sd + 2 * dd * dd * sn
        alpha2 /= sd * sd * sd
        n0, n1, n2, n3 = (n * (scale / alpha2) for n in (n0, n1, n2, n3))
    else:
        raise ValueError(f"recursive Gaussian: order must be 0 or 2, got {order}")
    # symmetric kernels (orders 0 and 2): the anti-causal coefficients and the edge-extension ones
    m1, m2, m3, m4 = n1 - d1 * n0, n2 - d2 * n0, n3 - d3 * n0, -d4 * n0
    sn = n0 + n1 + n2 + n3
    sm = m1 + m2 + m3 + m4
    sd = 1.0 + d1 + d2 + d3 + d4
    bn = [d * sn / sd for d in (d1, d2, d3, d4)]
    bm = [d * sm / sd for d in (d1, d2, d3, d4)]
    return np.array([n0, n1, n2, n3, d1, d2, d3, d4, m1, m2, m3, m4, *bn, *bm], dtype=np.float64)


_CHUNK = 32  # lines filtered together (the inner, vectorised loop)


@numba.njit(cache=True, nogil=True)
def filter_lines(src, c, lo, hi, out):
    """Filter the lines ``src[p, :, q]`` of a 3-D array (``(P, n, Q)``, any real type, ``n >= 4``) with the
    coefficients ``c`` of :func:`coefficients`, writing positions ``[lo, hi)`` of each to
    ``out[p, :, q]`` (``(P, hi - lo, Q)``), each value cast to ``out``'s type."""
    n0, n1, n2, n3, d1, d2, d3, d4 = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    m1, m2, m3, m4 = c[8], c[9], c[10], c[11]
    bn1, bn2, bn3, bn4, bm1, bm2, bm3, bm4 = c[12], c[13], c[14], c[15], c[16], c[17], c[18], c[19]
    P, n, Q = src.shape
    lines = P * Q
    x = np.empty((n, _CHUNK))
    s1 = np.empty((max(hi, 4), _CHUNK))
    s2 = np.empty((n, _CHUNK))
    for t0 in range(0, lines, _CHUNK):
        m = min(_CHUNK, lines - t0)
        for k in range(m):
            p, q = (t0 + k) // Q, (t0 + k) % Q
            for i in range(n):
                x[i, k] = src[p, i, q]
        # causal pass, positions 0 .. hi - 1; the first value is assumed to extend to infinity
        for k in range(m):
            v = x[0, k]
            s1[0, k] = v * n0 + v * n1 + v * n2 + v * n3
            s1[0, k] -= v * bn1 + v * bn2 + v * bn3 + v * bn4
            s1[1, k] = x[1, k] * n0 + v * n1 + v * n2 + v * n3
            s1[1, k] -= s1[0, k] * d1 + v * bn2 + v * bn3 + v * bn4
            s1[2, k] = x[2, k] * n0 + x[1, k] * n1 + v * n2 + v * n3
            s1[2, k] -= s1[1, k] * d1 + s1[0, k] * d2 + v * bn3 + v * bn4
            s1[3, k] = x[3, k] * n0 + x[2, k] * n1 + x[1, k] * n2 + v * n3
            s1[3, k] -= s1[2, k] * d1 + s1[1, k] * d2 + s1[0, k] * d3 + v * bn4
        for i in range(4, hi):
            for k in range(m):
                s1[i, k] = x[i, k] * n0 + x[i - 1, k] * n1 + x[i - 2, k] * n2 + x[i - 3, k] * n3
                s1[i, k] -= s1[i - 1, k] * d1 + s1[i - 2, k] * d2 + s1[i - 3, k] * d3 + s1[i - 4, k] * d4
        # anti-causal pass, positions n - 1 down to lo; the last value is assumed to extend to infinity
        for k in range(m):
            w = x[n - 1, k]
            s2[n - 1, k] = w * m1 + w * m2 + w * m3 + w * m4
            s2[n - 1, k] -= w * bm1 + w * bm2 + w * bm3 + w * bm4
            s2[n - 2, k] = x[n - 1, k] * m1 + w * m2 + w * m3 + w * m4
            s2[n - 2, k] -= s2[n - 1, k] * d1 + w * bm2 + w * bm3 + w * bm4
            s2[n - 3, k] = x[n - 2, k] * m1 + x[n - 1, k] * m2 + w * m3 + w * m4
            s2[n - 3, k] -= s2[n - 2, k] * d1 + s2[n - 1, k] * d2 + w * bm3 + w * bm4
            s2[n - 4, k] = x[n - 3, k] * m1 + x[n - 2, k] * m2 + x[n - 1, k] * m3 + w * m4
            s2[n - 4, k] -= s2[n - 3, k] * d1 + s2[n - 2, k] * d2 + s2[n - 1, k] * d3 + w * bm4
        for i in range(n - 4, lo, -1):
            for k in range(m):
                s2[i - 1, k] = x[i, k] * m1 + x[i + 1, k] * m2 + x[i + 2, k] * m3 + x[i + 3, k] * m4
                s2[i - 1, k] -= s2[i, k] * d1 + s2[i + 1, k] * d2 + s2[i + 2, k] * d3 + s2[i + 3, k] * d4
        for k in range(m):
            p, q = (t0 + k) // Q, (t0 + k) % Q
            for i in range(lo, hi):
                out[p, i - lo, q] = s1[i, k] + s2[i, k]
    return out


@numba.njit(cache=True, nogil=True)
def accumulate_scaled(acc, term, scale):
    """``acc = acc + term * scale`` element by element in double precision, stored in ``acc``'s type
    (ITK's Laplacian adds each axis' second derivative this way); flat contiguous arrays."""
    for i in range(acc.size):
        acc[i] = np.float64(acc[i]) + np.float64(term[i]) * scale
    return acc
