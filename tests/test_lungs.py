"""Generated lung-field masks and the radiograph reader, on real chest radiographs."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from chexradi.data.lungs import lung_field_mask, read_radiograph, save_mask

from conftest import shared

REAL_CXR = [
    "00000001_000.png",
    "00027426_000.png",
    "16747_3_1.jpg",
    "h0001.png",
    "rsna_pneumonia_example.dcm",
    "tb0005.png",
    "tb0007.png",
]


def _rg1() -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file("RG1_UNCR.dcm", download=False)
    if p is None:
        pytest.skip("pydicom-data is not installed (pip install pydicom-data): no RG1_UNCR.dcm")
    return Path(p)


def _case(name: str) -> Path:
    return _rg1() if name == "RG1_UNCR.dcm" else shared("real-cxr", name)


_CACHE: dict[str, tuple[np.ndarray, tuple[float, float], np.ndarray]] = {}


def _image_and_mask(name: str) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """Each radiograph is read and segmented once per test session."""
    if name not in _CACHE:
        image, spacing = read_radiograph(_case(name))
        _CACHE[name] = (image, spacing, lung_field_mask(image, spacing=spacing, separate=True))
    return _CACHE[name]


# ---------------------------------------------------------------------------
# Lung fields on real radiographs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_CXR + ["RG1_UNCR.dcm"])
def test_lung_fields_look_like_lungs(name: str) -> None:
    image, _, labels = _image_and_mask(name)
    H, W = image.shape
    assert labels.shape == image.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1, 2}

    # Two connected components in the binary mask, one in each half of the image.
    comp, n = ndi.label(labels > 0)
    assert n == 2, f"{name}: {n} components"
    cols = [np.nonzero(labels == k)[1] for k in (1, 2)]
    assert cols[0].mean() < W / 2 < cols[1].mean(), f"{name}: right lung should be on the image's left"
    assert cols[0].max() < cols[1].min(), f"{name}: the lungs overlap across the midline"

    for k in (1, 2):
        frac = (labels == k).mean()
        assert 0.05 <= frac <= 0.35, f"{name}: lung {k} covers {frac:.3f} of the image"
        ys, xs = np.nonzero(labels == k)
        # Not touching the border: a margin of at least 0.5% of the image on every side.
        assert ys.min() >= 0.005 * H and ys.max() < 0.995 * H - 1, f"{name}: lung {k} reaches the top/bottom"
        assert xs.min() >= 0.005 * W and xs.max() < 0.995 * W - 1, f"{name}: lung {k} reaches the side"
        # Taller than wide, like a lung field.
        assert np.ptp(ys) > np.ptp(xs), f"{name}: lung {k} is wider than tall"

    # Lungs are darker than the mediastinum strip at the image centre (same rows).
    ys = np.nonzero(labels.any(axis=1))[0]
    strip = image[ys.min() : ys.max() + 1, int(0.47 * W) : int(0.53 * W)]
    assert image[labels > 0].mean() < strip.mean(), f"{name}: lungs are not darker than the mediastinum"


@pytest.mark.parametrize("name", ["00000001_000.png", "RG1_UNCR.dcm"])
def test_binary_mask_and_determinism(name: str) -> None:
    image, spacing, labels = _image_and_mask(name)
    before = image.copy()
    binary = lung_field_mask(image, spacing=spacing)
    assert binary.dtype == np.uint8 and set(np.unique(binary)) == {0, 1}
    np.testing.assert_array_equal(binary, (labels > 0).astype(np.uint8))
    np.testing.assert_array_equal(lung_field_mask(image, spacing=spacing, separate=True), labels)
    np.testing.assert_array_equal(image, before)  # the input is not modified


def test_mask_does_not_depend_on_image_size() -> None:
    """The same radiograph at half and double size gives (nearly) the same lung fields."""
    from skimage.transform import resize

    image, _, labels = _image_and_mask("00000001_000.png")
    ref = labels > 0
    for shape in [(256, 256), (1024, 1024)]:
        small = resize(image, shape, order=1, anti_aliasing=True, preserve_range=True)
        m = resize(lung_field_mask(small).astype(float), image.shape, order=1) >= 0.5
        dice = 2 * (m & ref).sum() / (m.sum() + ref.sum())
        assert dice > 0.95, f"size {shape}: Dice {dice:.3f} against the 512x512 mask"


def test_constant_and_invalid_images_raise() -> None:
    with pytest.raises(ValueError, match="no contrast"):
        lung_field_mask(np.full((256, 256), 100.0))
    with pytest.raises(ValueError, match="lung field"):
        lung_field_mask(np.add.outer(np.arange(256.0), np.arange(256.0)))  # a ramp: nothing enclosed
    with pytest.raises(ValueError, match="2-D"):
        lung_field_mask(np.zeros((8, 64, 64)))
    with pytest.raises(ValueError, match="NaN"):
        lung_field_mask(np.full((64, 64), np.nan))
    with pytest.raises(ValueError, match="spacing"):
        lung_field_mask(np.zeros((64, 64)), spacing=(0.0, 1.0))


def test_rotated_radiograph_is_rejected() -> None:
    """A radiograph on its side has no two side-by-side lung fields: an error, not a guess."""
    image, _, _ = _image_and_mask("h0001.png")
    with pytest.raises(ValueError, match="lung field"):
        lung_field_mask(np.rot90(image))


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------


def test_read_png_8bit() -> None:
    from PIL import Image

    path = shared("real-cxr", "00000001_000.png")
    image, spacing = read_radiograph(path)
    raw = np.asarray(Image.open(path))
    assert raw.dtype == np.uint8 and raw.ndim == 2
    assert image.dtype == np.float64 and image.shape == (512, 512)
    np.testing.assert_array_equal(image, raw.astype(np.float64))
    assert spacing == (1.0, 1.0)


def test_read_rgb_png_and_jpeg_by_luminance(caplog: pytest.LogCaptureFixture) -> None:
    from PIL import Image

    for name in ["h0001.png", "16747_3_1.jpg"]:
        path = shared("real-cxr", name)
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.float64)
        with caplog.at_level(logging.INFO, logger="chexradi"):
            image, spacing = read_radiograph(path)
        assert image.shape == rgb.shape[:2]
        np.testing.assert_allclose(image, rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-9)
        assert spacing == (1.0, 1.0)
        assert any("luminance" in r.getMessage() and name in r.getMessage() for r in caplog.records)
        caplog.clear()


def test_read_16bit_png_and_colour_png(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    a16 = rng.integers(0, 65535, size=(40, 30), dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "a16.png")
    image, _ = read_radiograph(tmp_path / "a16.png")
    np.testing.assert_array_equal(image, a16.astype(np.float64))

    rgb = rng.integers(0, 255, size=(20, 25, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    image, _ = read_radiograph(tmp_path / "rgb.png")
    np.testing.assert_allclose(image, rgb.astype(float) @ np.array([0.299, 0.587, 0.114]))


def test_read_dicom_monochrome1_is_inverted() -> None:
    import pydicom

    path = _rg1()
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array
    assert ds.PhotometricInterpretation == "MONOCHROME1" and int(ds.BitsStored) == 15
    image, spacing = read_radiograph(path)
    assert image.shape == raw.shape == (1955, 1841)
    np.testing.assert_array_equal(image, (2**15 - 1) - raw.astype(np.float64))
    # The file's PixelSpacing is "0.000": invalid, so the fallback applies.
    assert spacing == (1.0, 1.0)
    # After inversion the lungs are darker than the mediastinum, as in MONOCHROME2.
    H, W = image.shape
    assert image[H // 3, W // 4] < image[H // 3, W // 2]


def test_read_dicom_monochrome2_and_spacing() -> None:
    import pydicom

    path = shared("real-cxr", "rsna_pneumonia_example.dcm")
    image, spacing = read_radiograph(path)
    ds = pydicom.dcmread(path)
    np.testing.assert_array_equal(image, ds.pixel_array.astype(np.float64))
    assert spacing == (0.168, 0.168)


def test_read_dicom_rescale_and_monochrome1(tmp_path: Path) -> None:
    """RescaleSlope/Intercept are applied; MONOCHROME1 mirrors the rescaled representable range."""
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm", download=False)  # ships with pydicom itself
    ds = pydicom.dcmread(src)
    raw = ds.pixel_array.astype(np.float64)  # int16, BitsStored 16, slope 1, intercept -1024
    image, spacing = read_radiograph(src)
    np.testing.assert_array_equal(image, raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert spacing == pytest.approx((0.661468, 0.661468))

    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.RescaleSlope = 2
    ds.save_as(tmp_path / "m1.dcm")
    image, _ = read_radiograph(tmp_path / "m1.dcm")
    lo, hi = -32768 * 2 - 1024, 32767 * 2 - 1024
    np.testing.assert_array_equal(image, (lo + hi) - (raw * 2 - 1024))


def test_read_errors(tmp_path: Path) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    missing = tmp_path / "no_such_radiograph.png"
    with pytest.raises(FileNotFoundError, match="no_such_radiograph.png"):
        read_radiograph(missing)
    with pytest.raises(ValueError, match="directory"):
        read_radiograph(tmp_path)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.png"):
        read_radiograph(junk)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(ValueError, match="without pixel data"):
        read_radiograph(tmp_path / "nopixels.dcm")


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------


def test_save_mask_roundtrip(tmp_path: Path) -> None:
    import SimpleITK as sitk

    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 3:15] = 1
    mask[5:25, 22:35] = 2
    out = save_mask(mask, (0.5, 0.25), tmp_path / "sub" / "mask.nrrd")
    assert out == tmp_path / "sub" / "mask.nrrd"
    img = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), mask)
    assert img.GetSpacing() == pytest.approx((0.25, 0.5))  # SimpleITK order (x, y)
    assert sorted(p.name for p in out.parent.iterdir()) == ["mask.nrrd"]  # no temporary file left

    # Overwrite in place (os.replace), spacing taken from a DICOM's header.
    dcm = shared("real-cxr", "rsna_pneumonia_example.dcm")
    big = np.zeros((1024, 1024), bool)
    big[100:200, 300:400] = True
    save_mask(big, dcm, out)
    img = sitk.ReadImage(str(out))
    assert img.GetSpacing() == pytest.approx((0.168, 0.168))
    assert sitk.GetArrayFromImage(img).sum() == 100 * 100


def test_save_mask_errors(tmp_path: Path) -> None:
    png = shared("real-cxr", "00000001_000.png")
    with pytest.raises(ValueError, match="differs from the shape"):
        save_mask(np.zeros((10, 10), np.uint8), png, tmp_path / "m.nrrd")
    with pytest.raises(ValueError, match=".nrrd"):
        save_mask(np.zeros((10, 10), np.uint8), (1.0, 1.0), tmp_path / "m.nii.gz")
    with pytest.raises(ValueError, match="integer"):
        save_mask(np.zeros((10, 10)), (1.0, 1.0), tmp_path / "m.nrrd")
    with pytest.raises(FileNotFoundError, match="nothing_here.png"):
        save_mask(np.zeros((10, 10), np.uint8), tmp_path / "nothing_here.png", tmp_path / "m.nrrd")
    assert not list(tmp_path.iterdir())
