r"""2-D shape features (PyRadiomics' ``shape2D``), from a Numba marching-squares kernel.

The mask must be truly 2-D: a 2-D input image, or a 3-D one with ``force2D``
whose cropped mask has size 1 along ``force2Ddimension``. The mask is padded
by one pixel of background on every side (virtually) before marching squares,
as PyRadiomics does; see :mod:`chexradi.radiomics.kernels.shape2d`.

Let :math:`N_p` be the number of pixels, :math:`A` the mesh surface,
:math:`P` the perimeter, and :math:`\lambda_{major} \ge \lambda_{minor}` the
eigenvalues of the covariance matrix of the physical pixel-centre coordinates
(:math:`\frac{1}{N_p}\sum (\mathbf{r}_k - \bar{\mathbf{r}})(\mathbf{r}_k - \bar{\mathbf{r}})^T`).

==============================  =====================================================================
Feature                         Formula
==============================  =====================================================================
MeshSurface                     :math:`A = \frac{1}{2}\sum_i (a_i \times b_i)` over the mesh segments
                                :math:`(a_i, b_i)` (signed triangles with the origin)
PixelSurface                    :math:`N_p \, s_y s_x`
Perimeter                       :math:`P = \sum_i \lVert a_i - b_i \rVert`
PerimeterSurfaceRatio           :math:`P / A`
Sphericity                      :math:`2\sqrt{\pi A} / P`
SphericalDisproportion (depr.)  :math:`P / (2\sqrt{\pi A})`
MaximumDiameter                 largest distance between two mesh vertices
MajorAxisLength                 :math:`4\sqrt{\lambda_{major}}`
MinorAxisLength                 :math:`4\sqrt{\lambda_{minor}}`
Elongation                      :math:`\sqrt{\lambda_{minor} / \lambda_{major}}`
==============================  =====================================================================

Eigenvalues in :math:`(-10^{-10}, 0)` are rounded to 0 and a negative
eigenvalue gives NaN for the axis features, as in PyRadiomics.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..kernels.shape2d import shape2d_coefficients
from .base import ROI

__all__ = ["CLASS_NAME", "FEATURES", "compute", "planar_mask"]

CLASS_NAME = "shape2D"

#: Feature name -> deprecated? (same set and flags as PyRadiomics' RadiomicsShape2D)
FEATURES: dict[str, bool] = {
    "MeshSurface": False,
    "PixelSurface": False,
    "Perimeter": False,
    "PerimeterSurfaceRatio": False,
    "Sphericity": False,
    "SphericalDisproportion": True,
    "MaximumDiameter": False,
    "MajorAxisLength": False,
    "MinorAxisLength": False,
    "Elongation": False,
}


def planar_mask(roi: ROI) -> tuple[np.ndarray, float, float]:
    """The ROI's mask squeezed to 2-D, with its in-plane spacing ``(sy, sx)``.

    Raises
    ------
    ValueError
        When the ROI is 3-D without ``force2D``, or when the cropped mask spans
        more than one slice along the ``force2Ddimension`` axis.
    """
    axis = roi.force2D_dimension
    if axis is None:
        raise ValueError(
            "shape2D needs a 2-D mask: pass a 2-D image, or set force2D=True (and force2Ddimension to the "
            "out-of-plane axis) for a single-slice 3-D mask; use the 'shape' class for 3-D shape."
        )
    if axis not in (0, 1, 2):
        raise ValueError(f"force2Ddimension must be 0, 1 or 2, got {axis!r}.")
    if roi.mask.shape[axis] != 1:
        raise ValueError(
            f"shape2D: the mask spans {roi.mask.shape[axis]} slices along force2Ddimension={axis}; "
            "2-D shape needs a single-slice mask (select one slice, or set force2Ddimension to the axis of size 1)."
        )
    mask2 = np.ascontiguousarray(np.squeeze(roi.mask, axis=axis), dtype=bool)
    sp = [float(s) for i, s in enumerate(roi.spacing) if i != axis]
    return mask2, sp[0], sp[1]


def compute(roi: ROI, names: Optional[Sequence[str]] = None) -> dict[str, float]:
    """2-D shape features of ``roi``.

    Parameters
    ----------
    roi : ROI
        The cropped ROI; only ``roi.mask``, ``roi.spacing`` and the force2D settings are used.
    names : sequence of str, optional
        Feature names; default every non-deprecated feature.

    Returns
    -------
    dict mapping each requested name to a float.

    Raises
    ------
    ValueError
        For an unknown feature name, or a mask that is not 2-D (see :func:`planar_mask`).
    """
    if names is None:
        names = [n for n, dep in FEATURES.items() if not dep]
    names = list(names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"Unknown shape2D feature(s) {unknown}; valid names: {sorted(FEATURES)}.")
    mask2, sy, sx = planar_mask(roi)
    if not names:
        return {}
    perimeter, surface, diameter, n, c_yy, c_xx, c_yx = shape2d_coefficients(mask2, sy, sx)

    ev = np.linalg.eigvals(np.array([[c_yy, c_yx], [c_yx, c_xx]]))
    ev = np.real(ev)
    ev[(ev < 0) & (ev > -1e-10)] = 0.0
    ev.sort()
    lmin, lmaj = float(ev[0]), float(ev[1])

    sphericity = (2 * math.sqrt(math.pi * surface)) / perimeter if perimeter else math.nan
    values = {
        "MeshSurface": surface,
        "PixelSurface": n * (sx * sy),
        "Perimeter": perimeter,
        "PerimeterSurfaceRatio": perimeter / surface if surface else math.nan,
        "Sphericity": sphericity,
        "SphericalDisproportion": 1.0 / sphericity if sphericity else math.nan,
        "MaximumDiameter": diameter,
        "MajorAxisLength": math.sqrt(lmaj) * 4 if lmaj >= 0 else math.nan,
        "MinorAxisLength": math.sqrt(lmin) * 4 if lmin >= 0 else math.nan,
        "Elongation": math.sqrt(lmin / lmaj) if (lmin >= 0 and lmaj > 0) else math.nan,
    }
    return {k: float(values[k]) for k in names}
