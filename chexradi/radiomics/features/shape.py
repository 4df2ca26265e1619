r"""3-D shape features (PyRadiomics' ``shape``), from a Numba marching-cubes kernel.

The mask (cropped to the ROI) is padded by one voxel of background on every side, as
PyRadiomics pads it, and walked with marching cubes (:mod:`chexradi.radiomics.kernels.shape3d`):
the same triangle table, the same arithmetic, so the mesh volume and surface area are
PyRadiomics' numbers; the four maximum diameters are found on the convex hulls of the
mesh vertices instead of over every pair of them (same values, O(hull^2) instead of
O(vertices^2)). The axis features use the eigenvalues of the covariance of the physical
voxel coordinates, computed as PyRadiomics computes them.

Let :math:`V` be the mesh volume, :math:`A` the surface area, :math:`N_v` the number of
voxels and :math:`\lambda_{least} \le \lambda_{minor} \le \lambda_{major}` the eigenvalues.

==============================  ==================================================================
Feature                         Formula
==============================  ==================================================================
MeshVolume                      :math:`V = \sum_i \frac{O a_i \cdot (O b_i \times O c_i)}{6}` (signed)
VoxelVolume                     :math:`N_v \, s_z s_x s_y`
SurfaceArea                     :math:`A = \sum_i \frac{1}{2} |a_i b_i \times a_i c_i|`
SurfaceVolumeRatio              :math:`A / V`
Sphericity                      :math:`\sqrt[3]{36 \pi V^2} / A`
Compactness1 (deprecated)       :math:`V / (A^{3/2} \sqrt{\pi})`
Compactness2 (deprecated)       :math:`36 \pi V^2 / A^3`
SphericalDisproportion (depr.)  :math:`A / \sqrt[3]{36 \pi V^2}`
Maximum3DDiameter               largest distance between two mesh vertices
Maximum2DDiameterSlice          ... between two vertices of the same axial slice (equal z)
Maximum2DDiameterColumn         ... of the same coronal plane (equal y)
Maximum2DDiameterRow            ... of the same sagittal plane (equal x)
MajorAxisLength                 :math:`4\sqrt{\lambda_{major}}`
MinorAxisLength                 :math:`4\sqrt{\lambda_{minor}}`
LeastAxisLength                 :math:`4\sqrt{\lambda_{least}}`
Elongation                      :math:`\sqrt{\lambda_{minor} / \lambda_{major}}`
Flatness                        :math:`\sqrt{\lambda_{least} / \lambda_{major}}`
==============================  ==================================================================

Eigenvalues in :math:`(-10^{-10}, 0)` are rounded to 0 and a negative one gives NaN for the
features that use it, as in PyRadiomics. Parity with PyRadiomics' ``RadiomicsShape`` (relative
1e-6) is tested on PyRadiomics' cases, random volumes, anisotropic spacing, one-voxel, thin and
border-touching masks (``tests/test_shape.py``).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..kernels.shape3d import shape3d_coefficients
from .base import ROI

__all__ = ["CLASS_NAME", "FEATURES", "compute"]

CLASS_NAME = "shape"

#: Feature name -> deprecated? (same set and flags as PyRadiomics' RadiomicsShape)
FEATURES: dict[str, bool] = {
    "MeshVolume": False,
    "VoxelVolume": False,
    "SurfaceArea": False,
    "SurfaceVolumeRatio": False,
    "Sphericity": False,
    "Compactness1": True,
    "Compactness2": True,
    "SphericalDisproportion": True,
    "Maximum3DDiameter": False,
    "Maximum2DDiameterSlice": False,
    "Maximum2DDiameterColumn": False,
    "Maximum2DDiameterRow": False,
    "MajorAxisLength": False,
    "MinorAxisLength": False,
    "LeastAxisLength": False,
    "Elongation": False,
    "Flatness": False,
}


def eigenvalues(mask: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Sorted eigenvalues of the covariance of the physical voxel coordinates, as PyRadiomics computes them.

    The coordinates are those of the mask padded by one voxel (PyRadiomics' array), scaled by
    the spacing, centred, divided by the square root of the voxel count; eigenvalues in
    (-1e-10, 0) become 0. The array is what ``numpy.linalg.eigvals`` returns, complex when
    LAPACK gives a pair of complex roots (rounding noise around a zero eigenvalue of a flat or
    linear ROI), and is sorted as numpy sorts it, so that the axis features below are
    PyRadiomics' numbers even there.
    """
    coords = np.array(np.nonzero(mask), dtype="int").transpose((1, 0)) + 1
    n = coords.shape[0]
    phys = coords * np.asarray(spacing, dtype=np.float64)[None, :]
    phys -= np.mean(phys, axis=0)
    phys /= np.sqrt(n)
    cov = np.dot(phys.T.copy(), phys)
    ev = np.linalg.eigvals(cov)
    ev[(ev < 0) & (ev > -1e-10)] = 0
    ev.sort()
    return ev


def compute(roi: ROI, names: Optional[Sequence[str]] = None) -> dict[str, float]:
    """3-D shape features of ``roi``.

    Parameters
    ----------
    roi : ROI
        The cropped ROI of a 3-D input; only ``roi.mask`` and ``roi.spacing`` are used.
    names : sequence of str, optional
        Feature names; default every non-deprecated feature.

    Returns
    -------
    dict mapping each requested name to a float.

    Raises
    ------
    ValueError
        For an unknown feature name or a 2-D input (use ``shape2D``).
    """
    if names is None:
        names = [n for n, dep in FEATURES.items() if not dep]
    names = list(names)
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"Unknown shape feature(s) {unknown}; valid names: {sorted(FEATURES)}.")
    if roi.ndim != 3:
        raise ValueError("3-D shape features need a 3-D image; for a 2-D image use the 'shape2D' class.")
    if not names:
        return {}
    mask = np.ascontiguousarray(np.asarray(roi.mask) != 0)
    sz, sy, sx = (float(s) for s in roi.spacing)
    area, volume, d_slice, d_col, d_row, d_3d = shape3d_coefficients(mask, sz, sy, sx)
    ev = eigenvalues(mask, (sz, sy, sx))
    n = int(mask.sum())
    least, minor, major = ev[0], ev[1], ev[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        sphere = (36 * np.pi * volume ** 2) ** (1.0 / 3.0)
        values = {
            "MeshVolume": volume,
            "VoxelVolume": n * (sz * sx * sy),
            "SurfaceArea": area,
            "SurfaceVolumeRatio": _div(area, volume),
            "Sphericity": _div(sphere, area),
            "Compactness1": _div(volume, area ** (3.0 / 2.0) * np.sqrt(np.pi)),
            "Compactness2": _div((36.0 * np.pi) * (volume ** 2.0), area ** 3.0),
            "SphericalDisproportion": _div(area, sphere),
            "Maximum3DDiameter": d_3d,
            "Maximum2DDiameterSlice": d_slice,
            "Maximum2DDiameterColumn": d_col,
            "Maximum2DDiameterRow": d_row,
            "MajorAxisLength": _axis(major),
            "MinorAxisLength": _axis(minor),
            "LeastAxisLength": _axis(least),
            "Elongation": _div_sqrt(minor, major),
            "Flatness": _div_sqrt(least, major),
        }
    return {k: float(np.real(values[k])) for k in names}


def _axis(ev) -> float:
    """4 sqrt(eigenvalue), NaN for a negative one (numpy arithmetic: the real part when it is complex)."""
    return math.nan if ev < 0 else np.sqrt(ev) * 4


def _div(a: float, b: float) -> float:
    """a / b in float64 (b is never 0 here: a non-empty mask has a positive mesh volume and area)."""
    return float(np.float64(a) / np.float64(b))


def _div_sqrt(a, b):
    """sqrt(a / b), NaN when either eigenvalue is negative (PyRadiomics' Elongation and Flatness)."""
    if a < 0 or b < 0:
        return math.nan
    return np.sqrt(a / b)
