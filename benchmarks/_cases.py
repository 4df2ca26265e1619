"""Benchmark and parity inputs: real radiographs with generated lung-field masks, PyRadiomics'
brain1 case, and random 2-D cases. Real data under ../shared/data is used when present; the
radiograph from the registry package pydicom-data (RG1_UNCR.dcm) is always available."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CHEXRADI_SHARED_DATA", REPO.parent / "shared" / "data"))


def rg1_path() -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file("RG1_UNCR.dcm")
    if p is None:
        raise FileNotFoundError("RG1_UNCR.dcm not found: pip install pydicom-data")
    return Path(p)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize as sk_resize

    return sk_resize(image, (size, size), order=1, preserve_range=True, anti_aliasing=True)


def radiograph_case(path: Path, size: int, *, quantize8: bool = True):
    """(image sitk, mask sitk) for a radiograph resized to size x size with its lung-field mask."""
    from chexradi.data.lungs import lung_field_mask, read_radiograph

    image, _ = read_radiograph(path)
    if image.shape != (size, size):
        image = resize(image, size)
    if quantize8:  # a radiograph as an 8-bit PNG export (ChestX-ray14 style)
        lo, hi = np.percentile(image, [0.5, 99.5])
        image = np.clip((image - lo) / (hi - lo) * 255.0, 0, 255).round().astype(np.uint8)
    mask = lung_field_mask(image.astype(np.float64))
    return sitk.GetImageFromArray(image), sitk.GetImageFromArray(mask.astype(np.uint8))


def real_radiographs() -> Iterator[tuple[str, Path]]:
    folder = SHARED / "real-cxr"
    if folder.exists():
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm"):
                yield p.name, p
    yield "RG1_UNCR.dcm (pydicom-data)", rg1_path()


def brain1():
    d = SHARED / "pyradiomics-cases"
    if not (d / "brain1_image.nrrd").exists():
        return None
    return sitk.ReadImage(str(d / "brain1_image.nrrd")), sitk.ReadImage(str(d / "brain1_label.nrrd"))


def random_2d(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    from scipy.ndimage import gaussian_filter

    image = gaussian_filter(rng.normal(0, 1, (size, size)), 2.0)
    image = (image - image.min()) / np.ptp(image) * 255.0
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 / (0.4 * size) ** 2 + (xx - size / 2) ** 2 / (0.35 * size) ** 2) < 1
    return sitk.GetImageFromArray(image.round().astype(np.uint8)), sitk.GetImageFromArray(mask.astype(np.uint8))
