"""Extractor.prepare's plain-NRRD path (no SimpleITK image) gives what the general path gives, or steps aside.

The general path is forced by making ``_load_plain`` step aside, so both see the same file names (the error
messages name them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import chexradi._nrrd as nrrd
from chexradi.radiomics import imageio
from chexradi.radiomics.extractor import Extractor


def _write(path: Path, arr: np.ndarray, *, spacing=None, origin=None, direction=None) -> str:
    img = sitk.GetImageFromArray(arr)
    nd = arr.ndim
    img.SetSpacing(spacing or [0.7 + 0.2 * i for i in range(nd)])
    img.SetOrigin(origin or [2.0 * i - 1.5 for i in range(nd)])
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path), True)
    return str(path)


def _case(tmp_path: Path, ndim: int, image_dtype, mask_dtype, seed: int = 0, **geometry) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    shape = (5, 30, 26)[3 - ndim:]
    image = np.cumsum(rng.normal(0, 9, shape), axis=-1) + 120
    if np.dtype(image_dtype).kind in "ui":
        image = np.clip(image, 0, 250)
    mask = np.zeros(shape, mask_dtype)
    mask[..., 4:25, 3:20] = 1
    mask[..., 10:14, 8:12] = 2
    tag = f"{ndim}{np.dtype(image_dtype).name}{np.dtype(mask_dtype).name}{seed}"
    return (_write(tmp_path / f"i{tag}.nrrd", image.astype(image_dtype), **geometry),
            _write(tmp_path / f"m{tag}.nrrd", mask, **geometry))


def _general(monkeypatch, ext: Extractor, fn: str, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(Extractor, "_load_plain", lambda *a, **k: None)
        return getattr(ext, fn)(*args, **kwargs)


@pytest.mark.parametrize("ndim,image_dtype,mask_dtype", [
    (2, np.float32, np.uint8), (2, np.uint8, np.uint16), (2, np.int16, np.int32), (2, np.float64, np.int8),
    (3, np.float32, np.uint8), (3, np.int16, np.uint32)])
@pytest.mark.parametrize("settings", [{"binWidth": 8}, {"binWidth": 5, "label": 2},
                                      {"binWidth": 6, "resegmentRange": [100, 160], "resegmentShape": True},
                                      {"binCount": 16, "force2D": True, "minimumROIDimensions": 1}])
def test_same_case_and_features_as_the_general_path(tmp_path, monkeypatch, ndim, image_dtype, mask_dtype,
                                                    settings):
    flips = {"direction": (-1.0, 0.0, 0.0, 1.0) if ndim == 2 else (0, 1, 0, 1, 0, 0, 0, 0, -1)}
    for geometry in ({}, flips):
        image, mask = _case(tmp_path, ndim, image_dtype, mask_dtype, seed=len(geometry), **geometry)
        ext = Extractor(**settings)
        fast = ext.prepare(image, mask)
        slow = _general(monkeypatch, ext, "prepare", image, mask)
        assert fast.raw is None and slow.raw is not None  # the plain path was taken, and then not
        assert fast.image_arr.dtype == slow.image_arr.dtype == np.dtype(image_dtype)
        assert np.array_equal(fast.image_arr, slow.image_arr)
        assert np.array_equal(fast.texture_mask, slow.texture_mask)
        assert np.array_equal(fast.shape_mask, slow.shape_mask)
        assert (fast.texture_box, fast.ndim, fast.spacing, fast.label, fast.voxels) == (
            slow.texture_box, slow.ndim, slow.spacing, slow.label, slow.voxels)
        ours = ext.execute(image, mask)
        assert ours == _general(monkeypatch, ext, "execute", image, mask)  # every value, to the bit
        assert len(ours) > 90


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_whole_image_roi_reads_the_files_pixels_without_changing_them(tmp_path, monkeypatch, dtype):
    """A mask covering the whole image: the ROI's arrays may be views of the file's read-only pixels (float64
    needs no conversion), and no feature class writes into them."""
    rng = np.random.default_rng(1)
    image = _write(tmp_path / "i.nrrd", (rng.random((20, 24)) * 200).astype(dtype))
    mask = _write(tmp_path / "m.nrrd", np.ones((20, 24), np.uint8))
    ext = Extractor(binWidth=10)
    case = ext.prepare(image, mask)
    assert case.raw is None and not case.image_arr.flags.writeable
    assert ext.execute(image, mask) == _general(monkeypatch, ext, "execute", image, mask)


def _steps_aside(monkeypatch) -> list:
    """Records what _load_plain returned."""
    got = []
    real = Extractor._load_plain

    def spy(self, *a, **k):
        got.append(real(self, *a, **k))
        return got[-1]

    monkeypatch.setattr(Extractor, "_load_plain", spy)
    return got


def _outcome(ext: Extractor, image, mask, **kw):
    try:
        return ext.execute(image, mask, **kw)
    except (ValueError, FileNotFoundError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_anything_but_the_common_case_goes_the_general_way(tmp_path, monkeypatch):
    image, mask = _case(tmp_path, 2, np.float32, np.uint8)
    arr = sitk.GetArrayFromImage(sitk.ReadImage(mask))
    img3 = sitk.GetArrayFromImage(sitk.ReadImage(image))

    def variant(name: str, array: np.ndarray, **geometry) -> str:
        return _write(tmp_path / f"{name}.nrrd", array, **geometry)

    shifted = {"origin": [-1.5 + 1e-3, 0.5]}
    nudged = {"origin": [-1.5 + 1e-8, 0.5]}  # within geometryTolerance's default 1e-6 (x 0.7 mm)
    one = np.zeros_like(arr)
    one[7, 7] = 1
    line = np.zeros_like(arr)
    line[7, 3:9] = 1
    nan_image = img3.copy()
    nan_image[12, 12] = np.nan
    cases = {  # name: (image, mask, settings, the plain path takes it)
        "common": (image, mask, {}, True),
        "within tolerance": (image, variant("nudged", arr, **nudged), {}, True),
        "label absent": (image, mask, {"label": 3}, False),
        "empty mask": (image, variant("empty", np.zeros_like(arr)), {}, False),
        "origin differs": (image, variant("shifted", arr, **shifted), {}, False),
        "correctMask": (image, variant("shifted2", arr, **shifted), {"correctMask": True}, False),
        "raised tolerance": (image, variant("shifted3", arr, **shifted), {"geometryTolerance": 1e-2}, True),
        "size differs": (image, variant("small", arr[:-1]), {}, False),
        "float mask": (image, variant("float", arr.astype(np.float32)), {}, False),
        "3-D mask": (image, variant("vol", arr[None]), {}, False),
        "one voxel": (image, variant("one", one), {}, False),
        "line ROI": (image, variant("line", line), {}, False),
        "line ROI allowed": (image, variant("line2", line), {"minimumROIDimensions": 1}, True),
        "minimumROISize": (image, mask, {"minimumROISize": 10 ** 6}, False),
        "NaN in the ROI": (variant("nan", nan_image), mask, {}, True),  # refused after it, in the shared part
        "normalize": (image, mask, {"normalize": True}, False),
        "resampled": (image, mask, {"resampledPixelSpacing": [1, 1], "interpolator": "sitkBSpline"}, False),
        "preCrop": (image, mask, {"preCrop": True, "padDistance": 2}, False),
        "missing mask": (image, str(tmp_path / "nowhere.nrrd"), {}, False),
        "PNG mask": (image, str(tmp_path / "m.png"), {}, False),
    }
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "m.png"))
    got = _steps_aside(monkeypatch)
    for name, (img, msk, settings, plain) in cases.items():
        ext = Extractor(**settings)
        got.clear()
        ours = _outcome(ext, img, msk)
        assert got and (got[0] is not None) == plain, name
        with monkeypatch.context() as m:
            m.setattr(Extractor, "_load_plain", lambda *a, **k: None)
            assert ours == _outcome(ext, img, msk), name  # same values, or the same error word for word
    assert _outcome(Extractor(), image, variant("shifted4", arr, **shifted)).startswith("ValueError: ")
    assert "NaN/inf" in _outcome(Extractor(), tmp_path / "nan.nrrd", mask)


def test_spacing_argument_and_pyradiomics_engine_take_the_general_path(tmp_path, monkeypatch):
    image, mask = _case(tmp_path, 2, np.float32, np.uint8)
    got = _steps_aside(monkeypatch)
    ext = Extractor(binWidth=8)
    with pytest.raises(ValueError, match="geometry mismatch"):  # spacing= applies to the image only
        ext.prepare(image, mask, spacing=(1.0, 1.0))
    assert got == [None]
    pytest.importorskip("radiomics")
    case = Extractor(binWidth=8, engine="pyradiomics").prepare(image, mask)
    assert case.raw is not None and got[-1] is None


def test_a_batch_reads_a_shared_image_once_and_cannot_change_it(tmp_path, monkeypatch):
    image, mask = _case(tmp_path, 2, np.float32, np.uint8)
    arr = sitk.GetArrayFromImage(sitk.ReadImage(mask))
    masks = [mask] + [_write(tmp_path / f"k{k}.nrrd", np.roll(arr, k, axis=1)) for k in (1, 2)]
    reads = []
    real = imageio.read_nrrd_array
    monkeypatch.setattr(imageio, "read_nrrd_array", lambda p: reads.append(Path(p).name) or real(p))
    ext = Extractor(binWidth=8)
    with imageio.reuse_reads():
        cases = [ext.prepare(image, m) for m in masks]
        results = [ext.execute(image, m) for m in masks]
    assert reads.count(Path(image).name) == 1
    shared = cases[0].image_arr
    assert all(c.image_arr is shared for c in cases) and not shared.flags.writeable
    assert np.array_equal(shared, sitk.GetArrayFromImage(sitk.ReadImage(image)))
    assert results == [ext.execute(image, m) for m in masks]  # outside the block: read anew, same values


def test_an_image_that_is_not_plain_nrrd_is_tried_once(tmp_path, monkeypatch):
    image, mask = _case(tmp_path, 2, np.float32, np.uint8)
    img = sitk.ReadImage(image)
    img.SetMetaData("Modality", "CR")  # a key:=value field: SimpleITK reads this file
    other = tmp_path / "meta.nrrd"
    sitk.WriteImage(img, str(other), True)
    assert nrrd.read_nrrd_array(other) is None
    tries = []
    real = imageio.read_nrrd_array
    monkeypatch.setattr(imageio, "read_nrrd_array", lambda p: tries.append(Path(p).name) or real(p))
    ext = Extractor(binWidth=8)
    with imageio.reuse_reads():
        got = [ext.execute(str(other), mask) for _ in range(3)]
    assert tries.count("meta.nrrd") == 1
    assert got[0] == got[1] == got[2] == ext.execute(image, mask)


def test_header_is_read_before_the_rest(tmp_path, monkeypatch):
    """A file that is not plain NRRD is not read whole to find out."""
    big = tmp_path / "big.nrrd"
    big.write_bytes(b"NRRD0004\ntype: uchar\nfoo:=bar\n\n" + bytes(1 << 20))
    sizes = []
    real_open = open

    class Spy:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            sizes.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(nrrd, "open", lambda p, mode="r": Spy(real_open(p, mode)), raising=False)
    assert nrrd.read_nrrd_array(big) is None
    assert sizes == [nrrd._MAX_HEADER]
