"""The real PyRadiomics as a second engine, for parity checks and for what we delegate (3-D shape).

PyRadiomics is imported lazily: install it with ``pip install pyradiomics-bhklab``
(import name ``radiomics``) or ``pip install chexradi[pyradiomics]``.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["require_pyradiomics", "to_sitk", "run_feature_class"]


def require_pyradiomics():
    """Import and return the ``radiomics`` package, with an install hint if missing."""
    try:
        import radiomics  # noqa: F401
        from radiomics import featureextractor  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "engine='pyradiomics' needs PyRadiomics: pip install pyradiomics-bhklab "
            "(or pip install 'chexradi[pyradiomics]')."
        ) from exc
    # PyRadiomics logs every step at INFO on its own logger; keep it at WARNING unless the user changed it.
    rlog = logging.getLogger("radiomics")
    if rlog.level == logging.NOTSET or rlog.level < logging.WARNING:
        rlog.setLevel(logging.WARNING)
    return radiomics


def to_sitk(array: np.ndarray, spacing: Optional[Sequence[float]] = None):
    """A SimpleITK image from a numpy array; ``spacing`` in numpy order (reversed for ITK)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.asarray(array))
    if spacing is not None:
        img.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing))))
    return img


def run_feature_class(
    class_name: str,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Optional[Sequence[float]] = None,
    settings: Optional[dict[str, Any]] = None,
    names: Optional[Sequence[str]] = None,
) -> dict[str, float]:
    """Run one PyRadiomics feature class on numpy arrays, cropped as ``execute()`` crops.

    ``image``/``mask`` in numpy order (2-D or 3-D); ``mask`` holds ``label``
    (default 1) inside the ROI. Returns bare feature names -> float.
    """
    require_pyradiomics()
    import SimpleITK as sitk
    from radiomics import featureextractor, imageoperations

    settings = dict(settings or {})
    label = int(settings.get("label", 1))
    img = to_sitk(np.asarray(image, dtype=np.float64), spacing)
    msk = to_sitk(np.asarray(mask).astype(np.uint32) * (label if np.asarray(mask).dtype == bool else 1), spacing)
    bb, corrected = imageoperations.checkMask(img, msk, **settings)
    if corrected is not None:
        msk = corrected
    if bb is None:
        raise ValueError("PyRadiomics rejected the mask (checkMask returned no bounding box).")
    cimg, cmsk = imageoperations.cropToTumorMask(img, msk, bb)
    cls = featureextractor.getFeatureClasses()[class_name]
    fc = cls(cimg, cmsk, **settings)
    if names:
        for n in names:
            fc.enableFeatureByName(n)
    out = fc.execute()
    _ = sitk  # keep import for clarity of dependency
    return {k: float(v) for k, v in out.items()}
