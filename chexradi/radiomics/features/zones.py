r"""Features shared by the zone-style matrices: GLSZM (zone sizes) and GLDM (dependence sizes).

Both classes reduce to one matrix ``P(i, j)``: rows are the gray levels present
(``i``), columns the sizes present (``j``: zone size for GLSZM, dependence size
for GLDM). PyRadiomics computes the same formulas on both, under different
names (Small Area Emphasis / Small Dependence Emphasis, ...). With

- :math:`N_z = \sum_{i,j} P(i,j)` (1 if 0),
- :math:`p(i,j) = P(i,j) / N_z`,
- :math:`p_j(j) = \sum_i P(i,j)` (PyRadiomics' ``ps`` / ``pd``), :math:`p_g(i) = \sum_j P(i,j)`,

each function below takes the :class:`Marginals` of a matrix and returns one
feature value; its formula is in its docstring. The class modules map their
feature names onto these functions and evaluate them with :func:`compiled`, one
compiled pass for all of them (they are sums of terms of one sign, so only
rounding differs from the numpy expressions here).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Marginals", "COMPILED", "compiled", "evaluate"]

_EPS = np.spacing(1)


class Marginals:
    """``P``, ``i``, ``j``, the marginals ``pg`` (over ``j``) and ``pj`` (over ``i``), and ``Nz``."""

    def __init__(self, P: np.ndarray, ivector: np.ndarray, jvector: np.ndarray) -> None:
        self.P = P
        self.i = ivector
        self.j = jvector
        self.pj = P.sum(0)
        self.pg = P.sum(1)
        nz = P.sum()
        self.Nz = nz if nz != 0 else 1.0


def small_emphasis(c: Marginals) -> float:
    r""":math:`\sum_j p_j(j) / j^2 / N_z`."""
    return np.sum(c.pj / c.j**2) / c.Nz


def large_emphasis(c: Marginals) -> float:
    r""":math:`\sum_j p_j(j)\,j^2 / N_z`."""
    return np.sum(c.pj * c.j**2) / c.Nz


def gray_nonuniformity(c: Marginals) -> float:
    r""":math:`\sum_i p_g(i)^2 / N_z`."""
    return np.sum(c.pg**2) / c.Nz


def gray_nonuniformity_normalized(c: Marginals) -> float:
    r""":math:`\sum_i p_g(i)^2 / N_z^2`."""
    return np.sum(c.pg**2) / c.Nz**2


def size_nonuniformity(c: Marginals) -> float:
    r""":math:`\sum_j p_j(j)^2 / N_z`."""
    return np.sum(c.pj**2) / c.Nz


def size_nonuniformity_normalized(c: Marginals) -> float:
    r""":math:`\sum_j p_j(j)^2 / N_z^2`."""
    return np.sum(c.pj**2) / c.Nz**2


def gray_variance(c: Marginals) -> float:
    r""":math:`\sum_i \frac{p_g(i)}{N_z}(i-\mu)^2`, :math:`\mu = \sum_i \frac{p_g(i)}{N_z} i`."""
    pg = c.pg / c.Nz
    mu = np.sum(pg * c.i)
    return np.sum(pg * (c.i - mu) ** 2)


def size_variance(c: Marginals) -> float:
    r""":math:`\sum_j \frac{p_j(j)}{N_z}(j-\mu)^2`, :math:`\mu = \sum_j \frac{p_j(j)}{N_z} j`."""
    pj = c.pj / c.Nz
    mu = np.sum(pj * c.j)
    return np.sum(pj * (c.j - mu) ** 2)


def entropy(c: Marginals) -> float:
    r""":math:`-\sum_{i,j} p(i,j)\log_2(p(i,j)+\epsilon)`, :math:`\epsilon` = ``numpy.spacing(1)``."""
    p = c.P / c.Nz
    return -np.sum(p * np.log2(p + _EPS))


def low_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_i p_g(i) / i^2 / N_z`."""
    return np.sum(c.pg / c.i**2) / c.Nz


def high_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_i p_g(i)\,i^2 / N_z`."""
    return np.sum(c.pg * c.i**2) / c.Nz


def small_low_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_{i,j} \frac{P(i,j)}{i^2 j^2} / N_z`."""
    return np.sum(c.P / (c.i[:, None] ** 2 * c.j[None, :] ** 2)) / c.Nz


def small_high_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_{i,j} \frac{P(i,j)\,i^2}{j^2} / N_z`."""
    return np.sum(c.P * c.i[:, None] ** 2 / c.j[None, :] ** 2) / c.Nz


def large_low_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_{i,j} \frac{P(i,j)\,j^2}{i^2} / N_z`."""
    return np.sum(c.P * c.j[None, :] ** 2 / c.i[:, None] ** 2) / c.Nz


def large_high_gray_emphasis(c: Marginals) -> float:
    r""":math:`\sum_{i,j} P(i,j)\,i^2 j^2 / N_z`."""
    return np.sum(c.P * c.i[:, None] ** 2 * c.j[None, :] ** 2) / c.Nz


#: The functions :func:`compiled` evaluates in one pass, in the kernel's order.
COMPILED = (small_emphasis, large_emphasis, gray_nonuniformity, gray_nonuniformity_normalized, size_nonuniformity,
            size_nonuniformity_normalized, gray_variance, size_variance, entropy, low_gray_emphasis,
            high_gray_emphasis, small_low_gray_emphasis, small_high_gray_emphasis, large_low_gray_emphasis,
            large_high_gray_emphasis)


def compiled(c: Marginals) -> dict:
    """Every function of :data:`COMPILED` -> its value, from one compiled pass
    (:func:`~chexradi.radiomics.kernels.zones.zone_features`); the numpy functions above are the reference
    it is tested against."""
    from ..kernels.zones import zone_features

    f64 = (lambda a: np.ascontiguousarray(a, dtype=np.float64))
    vals = zone_features(f64(c.P), f64(c.pg), f64(c.pj), f64(c.i), f64(c.j), float(c.Nz), _EPS)
    return {f: float(v) for f, v in zip(COMPILED, vals)}


def evaluate(c: Marginals, funcs: dict, names: Sequence[str]) -> dict[str, float]:
    """``names`` (mapped to functions by ``funcs``) -> values: :func:`compiled` for the shared features, the
    numpy function for any other (GLSZM's ZonePercentage)."""
    fast = compiled(c)
    return {n: fast[funcs[n]] if funcs[n] in fast else float(funcs[n](c)) for n in names}
