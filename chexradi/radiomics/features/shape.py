"""3-D shape features (PyRadiomics' ``shape``): delegated to PyRadiomics' ``RadiomicsShape``.

Why delegate: 3-D shape comes from PyRadiomics' marching-cubes C code (a
256-entry triangle table, signed tetrahedron volumes, and the three families of
maximum diameters), and is computed once per ROI on the mask only, so it is not
on the hot path of chest-radiograph work (2-D images use ``shape2D``, which has
its own Numba kernel). Running PyRadiomics' own class guarantees identical
numbers until a native kernel replaces it.

The cropped ``roi.mask`` / ``roi.image`` are turned into SimpleITK images with
the ROI spacing (numpy order, reversed to ITK order by
:func:`chexradi.radiomics.reference.to_sitk`); the mask is written with label 1.
PyRadiomics is needed: ``pip install pyradiomics-bhklab``.

Features (see PyRadiomics' documentation for the formulas): MeshVolume,
VoxelVolume, SurfaceArea, SurfaceVolumeRatio, Sphericity, Compactness1/2 and
SphericalDisproportion (deprecated), Maximum3DDiameter,
Maximum2DDiameterSlice/Column/Row, MajorAxisLength, MinorAxisLength,
LeastAxisLength, Elongation, Flatness.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..reference import require_pyradiomics, to_sitk
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

# Settings that must not reach RadiomicsShape: the mask is rewritten with label 1 here.
_DROP = ("label",)


def compute(roi: ROI, names: Optional[Sequence[str]] = None) -> dict[str, float]:
    """3-D shape features of ``roi``, computed by PyRadiomics' ``RadiomicsShape``.

    Parameters
    ----------
    roi : ROI
        The cropped ROI of a 3-D input.
    names : sequence of str, optional
        Feature names; default every non-deprecated feature.

    Returns
    -------
    dict mapping each requested name to a float.

    Raises
    ------
    ValueError
        For an unknown feature name or a 2-D input (use ``shape2D``).
    ImportError
        When PyRadiomics is not installed (``pip install pyradiomics-bhklab``).
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
    require_pyradiomics()
    from radiomics.shape import RadiomicsShape

    settings = {k: v for k, v in roi.settings.items() if k not in _DROP}
    img = to_sitk(np.asarray(roi.image, dtype=np.float64), roi.spacing)
    msk = to_sitk((np.asarray(roi.mask) != 0).astype(np.uint8), roi.spacing)
    fc = RadiomicsShape(img, msk, label=1, **settings)
    # Enable exactly the requested names (deprecated ones included) without PyRadiomics' per-call log lines.
    fc.enabledFeatures = {n: True for n in names}
    values = fc.execute()
    return {n: float(values[n]) for n in names}
