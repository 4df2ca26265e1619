"""Benchmark and parity inputs: real radiographs with generated lung-field masks, PyRadiomics'
brain1 case, random 2-D cases and a generated CT-like lung. Real data under ../shared/data is used when present; the
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


def ct_lung_images(n_slices: int, seed: int = 0, size: int = 512):
    """:func:`ct_lung` as SimpleITK (image, mask) on its grid (spacing set on both)."""
    image, mask, spacing = ct_lung(n_slices, seed, size)
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(tuple(reversed(spacing)))
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.CopyInformation(img)
    return img, msk


def ct_lung(n_slices: int, seed: int = 0, size: int = 512):
    """A generated CT-like lung: (image HU float64, mask, spacing) in numpy order, ``n_slices`` axial slices.

    The mask is one lung: an ellipsoidal half-chest whose outline is perturbed by low-frequency
    noise (a lobulated pleural surface) with its own thickness per slice, minus vessel-like
    tubes running through it, so that the surface is lung-like (concave parts, holes) rather
    than a smooth blob. Voxels 0.7 x 0.7 mm in-plane, 2.5 mm slices. About 26,000 ROI voxels per
    slice at 512 x 512 (six slices: ~2e5 voxels, 28: ~1e6).
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    z = np.arange(n_slices)[:, None, None]
    y = np.linspace(-1, 1, size)[None, :, None]
    x = np.linspace(-1, 1, size)[None, None, :]
    wobble = gaussian_filter(rng.normal(size=(n_slices, size, size)), (2, 24, 24))
    wobble /= np.abs(wobble).max()
    taper = 1.0 - 0.25 * (z / max(n_slices - 1, 1))
    r = ((y - 0.02) / (0.62 * taper)) ** 2 + ((x + 0.42) / (0.36 * taper)) ** 2
    mask = r + 0.35 * wobble < 1.0
    vessels = gaussian_filter(rng.normal(size=(n_slices, size, size)), (1, 3, 3))
    mask &= vessels < 2.2 * vessels.std()
    image = np.where(mask, -850.0, 40.0) + rng.normal(0, 30, mask.shape)
    return image, mask, (2.5, 0.7, 0.7)

