"""NRRD (.nrrd, .nhdr) and NIfTI (.nii, .nii.gz) radiographs through chexradi.data.readers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from chexradi.data.datasets import _index_images, csv_dataset  # noqa: E402
from chexradi.data.readers import image_shape_and_spacing, read_radiograph  # noqa: E402
from chexradi.data.transforms import to_model_input  # noqa: E402

ROW_MM, COL_MM = 0.7, 0.5  # anisotropic, so a swapped order fails
SUFFIXES = (".nrrd", ".nii", ".nii.gz", ".nhdr")


def _image(rows: int = 12, cols: int = 9, dtype=np.int16) -> np.ndarray:
    """Distinct values everywhere, so a transpose or flip cannot pass."""
    return (np.arange(rows * cols).reshape(rows, cols) * 7 - 300).astype(dtype)


def _write(path: Path, arr: np.ndarray, spacing: tuple[float, ...], *, vector: bool = False) -> Path:
    img = sitk.GetImageFromArray(arr, isVector=vector)
    img.SetSpacing(spacing)  # SimpleITK order: (x, y[, z]) = (column, row[, slice])
    sitk.WriteImage(img, str(path))
    return path


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_2d(tmp_path: Path, suffix: str):
    arr = _image()
    p = _write(tmp_path / f"cxr{suffix}", arr, (COL_MM, ROW_MM))
    image, spacing = read_radiograph(p)
    assert image.dtype == np.float64 and image.shape == (12, 9)
    np.testing.assert_array_equal(image, arr.astype(np.float64))
    assert spacing == pytest.approx((ROW_MM, COL_MM))
    assert image_shape_and_spacing(p) == ((12, 9), spacing)
    assert read_radiograph(str(p))[1] == spacing  # str paths too


def test_intensities_as_stored_float_and_uint16(tmp_path: Path):
    f = np.linspace(-1000.5, 3000.25, 6 * 5).reshape(6, 5).astype(np.float32)
    u = (np.arange(30).reshape(5, 6) * 2000).astype(np.uint16)  # up to 58000: no windowing, no sign flip
    np.testing.assert_array_equal(read_radiograph(_write(tmp_path / "f.nrrd", f, (1.0, 1.0)))[0], f.astype(float))
    np.testing.assert_array_equal(read_radiograph(_write(tmp_path / "u.nii.gz", u, (1.0, 1.0)))[0], u.astype(float))


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz"])
def test_single_slice_volumes_squeeze(tmp_path: Path, suffix: str):
    arr = _image()
    # numpy (1, H, W) = SimpleITK size (W, H, 1): the slice axis is z.
    p = _write(tmp_path / f"z{suffix}", arr[None], (COL_MM, ROW_MM, 2.5))
    image, spacing = read_radiograph(p)
    np.testing.assert_array_equal(image, arr)
    assert spacing == pytest.approx((ROW_MM, COL_MM))
    assert image_shape_and_spacing(p) == (image.shape, spacing)
    # numpy (H, W, 1) = SimpleITK size (1, W, H): rows run along z, columns along y.
    p = _write(tmp_path / f"x{suffix}", arr[:, :, None], (2.5, COL_MM, ROW_MM))
    image, spacing = read_radiograph(p)
    np.testing.assert_array_equal(image, arr)
    assert image.shape == (12, 9) and spacing == pytest.approx((ROW_MM, COL_MM))
    assert image_shape_and_spacing(p) == (image.shape, spacing)
    # numpy (H, 1, W) = SimpleITK size (W, 1, H).
    p = _write(tmp_path / f"y{suffix}", arr[:, None, :], (COL_MM, 2.5, ROW_MM))
    image, spacing = read_radiograph(p)
    np.testing.assert_array_equal(image, arr)
    assert spacing == pytest.approx((ROW_MM, COL_MM))
    assert image_shape_and_spacing(p) == (image.shape, spacing)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_true_volume_is_refused(tmp_path: Path, suffix: str):
    p = _write(tmp_path / f"ct{suffix}", np.stack([_image()] * 3), (COL_MM, ROW_MM, 2.0))
    for fn in (read_radiograph, image_shape_and_spacing):
        with pytest.raises(ValueError, match="2-D") as err:
            fn(p)
        assert str(p) in str(err.value) and "(9, 12, 3)" in str(err.value)


def test_rgb_vector_image_is_grey_by_luminance(tmp_path: Path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    rgb[0, 0] = (10, 20, 30)
    p = _write(tmp_path / "rgb.nrrd", rgb, (COL_MM, ROW_MM), vector=True)
    image, spacing = read_radiograph(p)
    expected = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # the PNG path's weights
    assert image.shape == (4, 5)
    np.testing.assert_allclose(image, expected)
    assert image_shape_and_spacing(p) == ((4, 5), spacing) and spacing == pytest.approx((ROW_MM, COL_MM))


def test_many_component_pixels_are_refused(tmp_path: Path):
    p = _write(tmp_path / "five.nrrd", np.zeros((4, 5, 5), np.float32), (1.0, 1.0), vector=True)
    for fn in (read_radiograph, image_shape_and_spacing):
        with pytest.raises(ValueError, match="5 components"):
            fn(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_pixels_are_refused(tmp_path: Path, bad: float):
    arr = _image().astype(np.float32)
    arr[3, 4] = bad
    p = _write(tmp_path / "nan.nrrd", arr, (COL_MM, ROW_MM))
    with pytest.raises(ValueError, match="NaN or infinite") as err:
        read_radiograph(p)
    assert str(p) in str(err.value)


def test_missing_and_corrupt_files(tmp_path: Path):
    for name in ("missing.nrrd", "missing.nii.gz"):
        with pytest.raises(FileNotFoundError):
            read_radiograph(tmp_path / name)
        with pytest.raises(FileNotFoundError):
            image_shape_and_spacing(tmp_path / name)
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"not a nifti file at all" * 3)
    for fn in (read_radiograph, image_shape_and_spacing):
        with pytest.raises(ValueError) as err:
            fn(junk)
        assert str(junk) in str(err.value)


def test_to_model_input_on_nrrd(tmp_path: Path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 4096, (40, 30)).astype(np.uint16)
    image, _ = read_radiograph(_write(tmp_path / "cxr.nrrd", arr, (COL_MM, ROW_MM)))
    x = to_model_input(image, size=16)
    assert x.shape == (1, 16, 16) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_array_equal(x, to_model_input(arr.astype(np.float64), size=16))


def test_csv_dataset_with_nrrd_and_nifti(tmp_path: Path):
    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    names = ["a.nrrd", "b.nii.gz", "c.nrrd", "d.nii"]
    arrays = {}
    for n in names:
        arrays[n] = rng.integers(0, 4096, (48, 40)).astype(np.uint16)
        _write(tmp_path / "images" / n, arrays[n], (COL_MM, ROW_MM))
    rows = "\n".join(f"{n},{i % 2},{(i + 1) % 2},p{i}" for i, n in enumerate(names))
    (tmp_path / "labels.csv").write_text(f"Image,Atelectasis,Effusion,Patient\n{rows}\n", encoding="utf-8")
    d = csv_dataset(tmp_path / "labels.csv", size=32, patient_col="Patient").train
    assert len(d) == 4 and d.validate() == (True, [])
    assert d.records[1].meta["shape"] == (48, 40)
    for i, n in enumerate(names):
        item = d[i]
        assert tuple(item["image"].shape) == (1, 32, 32)
        np.testing.assert_array_equal(item["image"].numpy(), to_model_input(arrays[n].astype(float), size=32))


def test_chestxray14_index_finds_volume_suffixes(tmp_path: Path):
    folder = tmp_path / "images"
    folder.mkdir()
    for n in ("a.png", "b.NRRD", "c.nii", "d.nii.gz", "e.nhdr", "notes.txt", "f.gz", "g.csv.gz"):
        (folder / n).write_bytes(b"")
    assert set(_index_images(tmp_path, "images")) == {"a.png", "b.NRRD", "c.nii", "d.nii.gz", "e.nhdr"}
