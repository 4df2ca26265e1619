"""The real PyRadiomics as a second engine, for parity checks and for what the numba engine does not compute.

PyRadiomics is imported lazily: install it with ``pip install pyradiomics-bhklab``
(import name ``radiomics``) or ``pip install "chexradi[pyradiomics]"``.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np

from ..about import install_hint

__all__ = ["require_pyradiomics", "to_sitk", "run_feature_class", "legacy_sph_harm"]


def legacy_sph_harm(m: int, n: int, theta: Any, phi: Any) -> np.ndarray:
    """SciPy's ``sph_harm(m, n, theta, phi)`` as it was until SciPy 1.17 removed it: ``theta`` the azimuth,
    ``phi`` the polar angle, the Condon-Shortley phase, built as SciPy built it from ``lpmv`` and ``poch``.

    PyRadiomics' LBP3D filter imports it; :func:`require_pyradiomics` puts it back into
    ``scipy.special`` where it is missing, so that ``engine="pyradiomics"`` computes LBP3D (PyRadiomics
    otherwise logs a warning and yields no LBP3D image).
    """
    from scipy.special import lpmv, poch

    x = np.cos(np.asarray(phi, dtype=np.float64))
    mp = abs(int(m))
    val = lpmv(mp, n, x).astype(np.complex128)
    if m < 0:
        val = val * ((-1) ** mp * poch(n + mp + 1, -2 * mp))
    val = val * np.sqrt((2 * n + 1) / 4.0 / np.pi)
    val = val * np.sqrt(poch(n + m + 1, -2 * m))
    return val * np.exp(1j * m * np.asarray(theta, dtype=np.float64))


def require_pyradiomics():
    """Import and return the ``radiomics`` package, with an install hint if missing."""
    try:
        import radiomics  # noqa: F401
        from radiomics import featureextractor  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"engine='pyradiomics' needs PyRadiomics: {install_hint('pyradiomics')} "
            "(or pip install pyradiomics-bhklab)."
        ) from exc
    import scipy.special

    if not hasattr(scipy.special, "sph_harm"):  # SciPy >= 1.17; PyRadiomics' LBP3D imports it
        scipy.special.sph_harm = legacy_sph_harm
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
    return {k: float(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------------
# PyRadiomics' test cases and baseline CSVs (baseline_<class>.csv: one row per feature, one
# column per case/configuration, settings in the diagnostics_Configuration_Settings row).
# ------------------------------------------------------------------------------------------
BASELINE_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape", "shape2D")


def read_baseline(cases_dir, class_name: str) -> dict[str, dict[str, str]]:
    """{column: {row name: value}} of ``<cases_dir>/baseline/baseline_<class>.csv``."""
    import csv
    from pathlib import Path

    path = Path(cases_dir) / "baseline" / f"baseline_{class_name}.csv"
    with path.open() as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    out: dict[str, dict[str, str]] = {h: {} for h in header[1:]}
    for row in rows[1:]:
        for h, v in zip(header[1:], row[1:]):
            out[h][row[0]] = v
    return out


def baseline_columns(cases_dir) -> list[tuple[str, str]]:
    """(class, column) for every baseline column whose case image is in ``cases_dir``."""
    from pathlib import Path

    cases_dir = Path(cases_dir)
    if not (cases_dir / "baseline").is_dir():
        return []
    out = []
    for cls in BASELINE_CLASSES:
        for col in read_baseline(cases_dir, cls):
            if (cases_dir / f"{col.split('_')[0]}_image.nrrd").exists():
                out.append((cls, col))
    return out


def baseline_settings(cases_dir, class_name: str, column: str) -> dict[str, Any]:
    """The settings of a baseline column (``additionalInfo`` dropped: bookkeeping only)."""
    import ast

    cfg = ast.literal_eval(read_baseline(cases_dir, class_name)[column]["diagnostics_Configuration_Settings"])
    return {k: v for k, v in cfg.items() if k != "additionalInfo"}


def baseline_inputs(cases_dir, class_name: str, column: str):
    """(image, mask) SimpleITK images for a baseline column.

    The shape2D baselines use a one-slice mask in its own geometry, put back on the image grid
    with ``correctMask``; it is rebuilt from the 3-D label at the slice the baseline names.
    """
    import ast
    from pathlib import Path

    import SimpleITK as sitk

    cases_dir = Path(cases_dir)
    case = column.split("_")[0]
    image = sitk.ReadImage(str(cases_dir / f"{case}_image.nrrd"))
    mask = sitk.ReadImage(str(cases_dir / f"{case}_label.nrrd"))
    if class_name == "shape2D":
        col = read_baseline(cases_dir, class_name)[column]
        z = int(round(ast.literal_eval(col["diagnostics_Mask-corrected_CenterOfMassIndex"])[2]))
        arr = sitk.GetArrayFromImage(mask)[z:z + 1]
        if int((arr == 1).sum()) != int(col["diagnostics_Mask-original_VoxelNum"]):
            raise ValueError(f"cannot rebuild the shape2D mask of {column}: slice {z} has {(arr == 1).sum()} voxels")
        single = sitk.GetImageFromArray(arr)
        single.SetSpacing(mask.GetSpacing())
        single.SetDirection(mask.GetDirection())
        single.SetOrigin(mask.TransformIndexToPhysicalPoint((0, 0, z)))
        mask = single
    return image, mask
