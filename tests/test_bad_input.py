"""Bad input, as hospital exports deliver it: every problem through the Python API and `chexradi extract`.

For each bad input the test checks the exact exception class, that the message names
the file or the argument, and that it says the fix; for the CLI, the exit status and
that stderr carries the same message (no traceback); for a batch, that the bad case is
reported with its row while the other cases complete, and that the exit status is
non-zero at the end. Inputs that are *not* errors (16-bit and float images, a constant
image, a whole-image mask, a grey image stored as RGB, NaN outside the ROI) must work
and give PyRadiomics' values (``engine="pyradiomics"`` in the same process).

Documented in docs/reliability.md (the table there names these tests).
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner, Result
from PIL import Image

import chexradi
from chexradi.cli import cli
from chexradi.radiomics.batch import extract_batch, journal_path, meta_path
from conftest import assert_parity

# A few classes keep the file fast; together they use every code path of the pre-processing.
FC: dict[str, list[str]] = {"firstorder": [], "glcm": [], "glszm": [], "shape2D": []}
FC_ARG = "featureClass:{firstorder: [], glcm: [], glszm: [], shape2D: []}"
SHAPE = (24, 26)  # (y, x)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------
def run(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def image_and_mask(seed: int = 0, shape: tuple[int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.normal(120.0, 40.0, shape).clip(0, 255).round()
    mask = np.zeros(shape, np.uint8)
    mask[4:16, 5:19] = 1
    mask[16, 7] = 1  # not a rectangle
    return image, mask


def write_sitk(path: Path, arr: np.ndarray, spacing: Optional[tuple[float, ...]] = None,
               origin: Optional[tuple[float, ...]] = None, direction: Optional[tuple[float, ...]] = None) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(tuple(reversed(spacing or (1.0,) * img.GetDimension())))
    if origin is not None:
        img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def write_png(path: Path, arr: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode=mode).save(path)
    return path


def truncated(src: Path, dst: Path, keep: float = 0.6) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    src.unlink()
    return dst


def noise(shape: tuple[int, int] = (96, 96)) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, shape).astype(np.uint8)


def rg1() -> Path:
    from pydicom.data import get_testdata_file

    p = get_testdata_file("RG1_UNCR.dcm", download=False)
    if p is None:  # pragma: no cover - pydicom-data is a test dependency
        pytest.skip("pydicom-data (RG1_UNCR.dcm) is not installed")
    return Path(p)


def read_features_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    return list(a) == list(b) and all((np.isnan(a[k]) and np.isnan(b[k])) or a[k] == b[k] for k in a)


# ------------------------------------------------------------------------------------------
# the bad cases: each writes (image, mask) files under a folder and returns their paths
# relative to it, with the path the message must name
# ------------------------------------------------------------------------------------------
Builder = Callable[[Path], tuple[str, str]]


def _good_mask(d: Path, name: str, mask: Optional[np.ndarray] = None) -> str:
    write_sitk(d / "masks" / f"{name}.nrrd", image_and_mask()[1] if mask is None else mask)
    return f"masks/{name}.nrrd"


def b_missing(d: Path) -> tuple[str, str]:
    return "images/no_such_image.nrrd", _good_mask(d, "missing")


def b_directory(d: Path) -> tuple[str, str]:
    (d / "images" / "a_folder.nrrd").mkdir(parents=True)
    return "images/a_folder.nrrd", _good_mask(d, "directory")


def b_truncated_png(d: Path) -> tuple[str, str]:
    (d / "images").mkdir(parents=True, exist_ok=True)
    truncated(write_png(d / "images" / "full.png", noise()), d / "images" / "truncated.png")
    return "images/truncated.png", _good_mask(d, "truncated_png", np.pad(image_and_mask()[1], ((0, 72), (0, 70))))


def b_truncated_jpeg(d: Path) -> tuple[str, str]:
    (d / "images").mkdir(parents=True, exist_ok=True)
    full = d / "images" / "full.jpg"
    Image.fromarray(noise(), mode="L").save(full, quality=95)
    truncated(full, d / "images" / "truncated.jpg")
    return "images/truncated.jpg", _good_mask(d, "truncated_jpeg", np.pad(image_and_mask()[1], ((0, 72), (0, 70))))


def b_not_an_image(d: Path) -> tuple[str, str]:
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "images" / "report.png").write_text("Patient,Finding\nP1,normal\n")
    return "images/report.png", _good_mask(d, "not_an_image")


def b_truncated_dicom(d: Path) -> tuple[str, str]:
    (d / "images").mkdir(parents=True, exist_ok=True)
    data = rg1().read_bytes()
    (d / "images" / "truncated.dcm").write_bytes(data[: len(data) // 2])
    return "images/truncated.dcm", _good_mask(d, "truncated_dicom")


def b_dicom_no_pixels(d: Path) -> tuple[str, str]:
    import pydicom

    (d / "images").mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(rg1())
    del ds.PixelData
    ds.save_as(d / "images" / "no_pixels.dcm")
    return "images/no_pixels.dcm", _good_mask(d, "dicom_no_pixels")


def b_rgb_colour(d: Path) -> tuple[str, str]:
    img = image_and_mask()[0].astype(np.uint8)
    write_png(d / "images" / "colour.png", np.stack([img, img // 2, img], -1), mode="RGB")
    return "images/colour.png", _good_mask(d, "rgb_colour")


def _float_image(d: Path, name: str, values: list[float], inside: bool) -> tuple[str, str]:
    image, mask = image_and_mask()
    f = image.astype(np.float32)
    ys, xs = np.nonzero(mask if inside else mask == 0)
    for i, v in enumerate(values):
        f[ys[3 + 5 * i], xs[3 + 5 * i]] = v
    write_sitk(d / "images" / f"{name}.nrrd", f)
    return f"images/{name}.nrrd", _good_mask(d, name)


def b_nan_inside(d: Path) -> tuple[str, str]:
    return _float_image(d, "nan_inside", [np.nan, np.inf, -np.inf], inside=True)


def _with_mask(d: Path, name: str, mask: np.ndarray, **geometry: Any) -> tuple[str, str]:
    write_sitk(d / "images" / f"{name}.nrrd", image_and_mask()[0].astype(np.int16))
    write_sitk(d / "masks" / f"{name}.nrrd", mask, **geometry)
    return f"images/{name}.nrrd", f"masks/{name}.nrrd"


def b_label_absent(d: Path) -> tuple[str, str]:
    m = image_and_mask()[1] * 2
    m[0, 0] = 5
    return _with_mask(d, "label_absent", m)


def b_empty_mask(d: Path) -> tuple[str, str]:
    return _with_mask(d, "empty_mask", np.zeros(SHAPE, np.uint8))


def b_one_pixel(d: Path) -> tuple[str, str]:
    m = np.zeros(SHAPE, np.uint8)
    m[10, 10] = 1
    return _with_mask(d, "one_pixel", m)


def b_size_mismatch(d: Path) -> tuple[str, str]:
    return _with_mask(d, "size_mismatch", image_and_mask()[1][:20, :20])


def b_spacing_mismatch(d: Path) -> tuple[str, str]:
    return _with_mask(d, "spacing_mismatch", image_and_mask()[1], spacing=(1.0, 0.5))


def b_origin_mismatch(d: Path) -> tuple[str, str]:
    return _with_mask(d, "origin_mismatch", image_and_mask()[1], origin=(3.0, 0.0))


def b_direction_mismatch(d: Path) -> tuple[str, str]:
    return _with_mask(d, "direction_mismatch", image_and_mask()[1], direction=(0.0, 1.0, 1.0, 0.0))


def b_mask_3d(d: Path) -> tuple[str, str]:
    return _with_mask(d, "mask_3d", np.stack([image_and_mask()[1]] * 3))


def b_float_mask(d: Path) -> tuple[str, str]:
    return _with_mask(d, "float_mask", image_and_mask()[1] * np.float32(0.5))


# name -> (builder, exception, message regex, which file the message names: "image", "mask" or "both")
BAD: dict[str, tuple[Builder, type, str, str]] = {
    "missing": (b_missing, FileNotFoundError, r"^image file not found: .*; check the path", "image"),
    "directory": (b_directory, ValueError, r"^image .* is a directory; pass a single image file", "image"),
    "truncated_png": (b_truncated_png, ValueError,
                      r"^cannot read image .*: not a readable image \(truncated or unsupported format\)\. "
                      r"Re-export it", "image"),
    "truncated_jpeg": (b_truncated_jpeg, ValueError,
                       r"^cannot read image .*: .*truncated.*Re-export it", "image"),
    "not_an_image": (b_not_an_image, ValueError, r"^cannot read image .*Re-export it", "image"),
    "truncated_dicom": (b_truncated_dicom, ValueError, r"^cannot read image .*truncated.*Re-export it", "image"),
    "dicom_no_pixels": (b_dicom_no_pixels, ValueError,
                        r"^image .* is a DICOM file without pixel data .*; pass the DICOM file of the image",
                        "image"),
    "rgb_colour": (b_rgb_colour, ValueError,
                   r"^image .* has 3 colour channels that differ; .* Convert it to grey first", "image"),
    "nan_inside": (b_nan_inside, ValueError,
                   r"^image .* has 3 NaN/inf pixel\(s\) inside the ROI \(label 1\); fix the image or exclude",
                   "image"),
    "label_absent": (b_label_absent, ValueError,
                     r"^label 1 is not present in mask .*; labels present: 2, 5\. Set `label` to one of them",
                     "mask"),
    "empty_mask": (b_empty_mask, ValueError,
                   r"^mask .* is empty \(no voxel > 0\): nothing is segmented\. Check that the right mask", "mask"),
    "one_pixel": (b_one_pixel, ValueError,
                  r"the ROI \(label 1\) is a single voxel; features need at least 2 voxels\. Check the mask",
                  "both"),
    "size_mismatch": (b_size_mismatch, ValueError,
                      r"image size \(26, 24\) differs from mask size \(20, 20\)\. Fix: give the mask that belongs "
                      r"to this image, or set correctMask=True", "both"),
    "spacing_mismatch": (b_spacing_mismatch, ValueError,
                         r"image spacing \(1\.0, 1\.0\) differs from mask spacing \(0\.5, 1\.0\)\. Fix: .*"
                         r"correctMask=True", "both"),
    "origin_mismatch": (b_origin_mismatch, ValueError,
                        r"image origin \(0\.0, 0\.0\) differs from mask origin \(3\.0, 0\.0\)\. Fix: .*"
                        r"correctMask=True", "both"),
    "direction_mismatch": (b_direction_mismatch, ValueError,
                           r"image direction \(1\.0, 0\.0, 0\.0, 1\.0\) differs from mask direction "
                           r"\(0\.0, 1\.0, 1\.0, 0\.0\)\. Fix: .*correctMask=True", "both"),
    "mask_3d": (b_mask_3d, ValueError,
                r"^image .* is 2-D but mask .* is 3-D; give a mask with the image's dimensionality", "both"),
    "float_mask": (b_float_mask, ValueError,
                   r"^mask .* holds non-integer values; a mask is a label map .* Round or threshold it first",
                   "mask"),
}


def _named(kind: str, d: Path, image: str, mask: str) -> list[str]:
    role = BAD[kind][3]
    return [str(d / p) for r, p in (("image", image), ("mask", mask)) if role in (r, "both")]


def _check_message(kind: str, msg: str, d: Path, image: str, mask: str) -> None:
    assert re.search(BAD[kind][2], msg, flags=re.S), f"{kind}: {msg!r} does not match {BAD[kind][2]!r}"
    for path in _named(kind, d, image, mask):
        assert path in msg, f"{kind}: the message does not name {path}: {msg!r}"


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_case_api(kind: str, tmp_path: Path) -> None:
    build, exc, pattern, _ = BAD[kind]
    image, mask = build(tmp_path)
    img, msk = str(tmp_path / image), str(tmp_path / mask)
    with pytest.raises(exc, match=pattern) as err:
        chexradi.extract(img, msk, featureClass=FC)
    _check_message(kind, str(err.value), tmp_path, image, mask)
    ext = chexradi.Extractor(featureClass=FC)
    for call in (ext.execute, ext.prepare):  # prepare: what --validate runs
        with pytest.raises(exc) as err2:
            call(img, msk)
        assert str(err2.value) == str(err.value)
    # the pyradiomics engine checks the inputs the same way before PyRadiomics runs
    with pytest.raises(exc) as err3:
        chexradi.extract(img, msk, featureClass=FC, engine="pyradiomics")
    assert str(err3.value) == str(err.value)


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_case_cli(kind: str, tmp_path: Path) -> None:
    image, mask = BAD[kind][0](tmp_path)
    res = run("extract", tmp_path / image, tmp_path / mask, "-s", FC_ARG)
    assert res.exit_code == 1, res.output
    assert res.stdout == "" and "Traceback" not in res.output
    assert res.stderr.startswith("Error: ")
    _check_message(kind, res.stderr[len("Error: "):].strip(), tmp_path, image, mask)
    res = run("extract", tmp_path / image, tmp_path / mask, "--validate")
    assert res.exit_code == 1 and re.search(BAD[kind][2], res.stderr[len("Error: "):], flags=re.S)


# ------------------------------------------------------------------------------------------
# inputs that must work, with PyRadiomics' values
# ------------------------------------------------------------------------------------------
def g_uint16_png(d: Path) -> tuple[str, str]:
    rng = np.random.default_rng(3)
    write_sitk(d / "images" / "uint16.png", (rng.integers(0, 4096, SHAPE) * 16).astype(np.uint16))
    return "images/uint16.png", _good_mask(d, "uint16_png")


def g_float32(d: Path) -> tuple[str, str]:
    rng = np.random.default_rng(4)
    write_sitk(d / "images" / "float32.nrrd", (rng.normal(0.0, 1.0, SHAPE) * 37.3).astype(np.float32),
               spacing=(0.7, 0.9))
    write_sitk(d / "masks" / "float32.nrrd", image_and_mask()[1], spacing=(0.7, 0.9))
    return "images/float32.nrrd", "masks/float32.nrrd"


def g_constant(d: Path) -> tuple[str, str]:
    write_sitk(d / "images" / "constant.nrrd", np.full(SHAPE, 77, np.int16))
    return "images/constant.nrrd", _good_mask(d, "constant")


def g_whole_mask(d: Path) -> tuple[str, str]:
    write_sitk(d / "images" / "whole.nrrd", image_and_mask()[0].astype(np.int16))
    return "images/whole.nrrd", _good_mask(d, "whole_mask", np.ones(SHAPE, np.uint8))


def g_rgb_grey(d: Path) -> tuple[str, str]:
    img = image_and_mask()[0].astype(np.uint8)
    write_png(d / "images" / "rgb_grey.png", np.stack([img] * 3, -1), mode="RGB")
    return "images/rgb_grey.png", _good_mask(d, "rgb_grey")


def g_nan_outside(d: Path) -> tuple[str, str]:
    return _float_image(d, "nan_outside", [np.nan, np.inf, -np.inf], inside=False)


def g_float_mask_integral(d: Path) -> tuple[str, str]:
    return _with_mask(d, "float_mask_integral", image_and_mask()[1].astype(np.float32))


GOOD: dict[str, Builder] = {
    "uint16_png": g_uint16_png,
    "float32": g_float32,
    "constant": g_constant,
    "whole_mask": g_whole_mask,
    "rgb_grey": g_rgb_grey,
    "nan_outside": g_nan_outside,
    "float_mask_integral": g_float_mask_integral,
}


@pytest.mark.parametrize("kind", list(GOOD))
def test_good_case_equals_pyradiomics(kind: str, tmp_path: Path) -> None:
    image, mask = GOOD[kind](tmp_path)
    img, msk = str(tmp_path / image), str(tmp_path / mask)
    ours = chexradi.extract(img, msk, featureClass=FC)
    ref = chexradi.extract(img, msk, featureClass=FC, engine="pyradiomics")
    assert_parity(ours, ref, kind)
    assert "original_glcm_Contrast" in ours and "original_shape2D_PixelSurface" in ours
    res = run("extract", img, msk, "-s", FC_ARG, "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {k: (v if np.isfinite(v) else None) for k, v in ours.items()}


def test_good_case_details(tmp_path: Path) -> None:
    """What the good inputs are read as: 16-bit stays 16-bit, RGB grey equals grey, NaN outside the ROI is unused."""
    image, mask = g_uint16_png(tmp_path)
    assert sitk.ReadImage(str(tmp_path / image)).GetPixelID() == sitk.sitkUInt16
    # a grey radiograph stored as RGB gives exactly the grey image's features
    image, mask = g_rgb_grey(tmp_path)
    grey = write_png(tmp_path / "grey.png", image_and_mask()[0])
    assert same(chexradi.extract(str(tmp_path / image), str(tmp_path / mask), featureClass=FC),
                chexradi.extract(str(grey), str(tmp_path / mask), featureClass=FC))
    # NaN/inf outside the ROI: the values do not depend on those pixels
    image, mask = g_nan_outside(tmp_path)
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / image)))
    assert np.count_nonzero(~np.isfinite(arr)) == 3
    clean = np.where(np.isfinite(arr), arr, 0).astype(np.float32)
    got = chexradi.extract(str(tmp_path / image), str(tmp_path / mask), featureClass=FC)
    assert same(got, chexradi.extract(clean, sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / mask))),
                                      featureClass=FC))
    assert all(np.isfinite(v) for k, v in got.items() if "firstorder" in k)
    # ... except where the whole image is used: normalize=True refuses, naming the count and the fix
    with pytest.raises(ValueError, match=r"has 3 NaN/inf pixel\(s\) outside the ROI.*normalize=True.*"
                                         r"set normalize=False") as err:
        chexradi.extract(str(tmp_path / image), str(tmp_path / mask), featureClass=FC, normalize=True)
    assert str(tmp_path / image) in str(err.value)
    image, mask = b_nan_inside(tmp_path / "inside")  # with normalize=True, pixels inside the ROI are named as such
    with pytest.raises(ValueError, match=r"has 3 NaN/inf pixel\(s\) inside the ROI \(label 1\); fix the image"):
        chexradi.extract(str(tmp_path / "inside" / image), str(tmp_path / "inside" / mask), normalize=True)
    # numpy inputs: a float64 array and a float mask with integer values work too
    image, mask = image_and_mask()
    assert same(chexradi.extract(image, mask.astype(np.float64), featureClass=FC),
                chexradi.extract(image.astype(np.uint16), mask, featureClass=FC))


def test_one_pixel_mask_pyradiomics_refuses_too(tmp_path: Path) -> None:
    """Both engines agree on a one-pixel mask: PyRadiomics' own execute() refuses it as chexradi does."""
    from radiomics import featureextractor

    image, mask = b_one_pixel(tmp_path)
    ext = featureextractor.RadiomicsFeatureExtractor()
    with pytest.raises(ValueError, match="1 segmented voxel"):
        ext.execute(str(tmp_path / image), str(tmp_path / mask))
    # a two-pixel line is refused by the default minimumROIDimensions=2, and computed with 1 (like PyRadiomics)
    line = np.zeros(SHAPE, np.uint8)
    line[10, 10:12] = 1
    img = image_and_mask()[0]
    with pytest.raises(ValueError, match=r"spans 1 dimension\(s\) but minimumROIDimensions=2; lower "
                                         r"minimumROIDimensions"):
        chexradi.extract(img, line)
    fc = {"firstorder": ["Mean", "Variance"], "glcm": ["Contrast"]}
    assert_parity(chexradi.extract(img, line, featureClass=fc, minimumROIDimensions=1),
                  chexradi.extract(img, line, featureClass=fc, minimumROIDimensions=1, engine="pyradiomics"), "line")


# ------------------------------------------------------------------------------------------
# a batch of every bad case between good ones: per-row failures, the rest completes
# ------------------------------------------------------------------------------------------
def _make_mixed_batch(d: Path) -> tuple[Path, list[tuple[str, Optional[str], str, str]]]:
    """cases.csv: good and bad cases interleaved; returns [(name, bad kind or None, image, mask)] in row order."""
    rows: list[tuple[str, Optional[str], str, str]] = []
    good = list(GOOD.items())
    bad = list(BAD)
    for i in range(max(len(good), len(bad))):
        if i < len(good):
            name, build = good[i]
            rows.append((name, None, *build(d / name)))
        if i < len(bad):
            rows.append((bad[i], bad[i], *BAD[bad[i]][0](d / bad[i])))
    path = d / "cases.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Case", "Image", "Mask"])
        for name, _, image, mask in rows:
            w.writerow([name, f"{name}/{image}", f"{name}/{mask}"])
    return path, rows


def test_batch_reports_each_bad_case_by_row(tmp_path: Path) -> None:
    cases, rows = _make_mixed_batch(tmp_path)
    n_bad = sum(1 for r in rows if r[1])
    out = tmp_path / "api" / "features.csv"
    report = extract_batch(cases, out=out, featureClass=FC)
    assert not report.ok and report.n_total == len(rows)
    assert report.n_ok == len(rows) - n_bad and report.n_failed == n_bad
    failed = {f.row: f for f in report.failures}
    for row, (name, kind, image, mask) in enumerate(rows, start=1):
        if kind is None:
            assert row not in failed, failed.get(row)
            continue
        f = failed[row]
        assert (f.image, f.mask, f.label) == (f"{name}/{image}", f"{name}/{mask}", 1)
        _check_message(kind, f.reason, tmp_path / name, image, mask)
    got = read_features_csv(out)
    assert [r["Case"] for r in got] == [r[0] for r in rows if r[1] is None]  # input order
    for r in got:
        ref = chexradi.extract(str(tmp_path / r["Image"]), str(tmp_path / r["Mask"]), featureClass=FC)
        assert {k: float(v) for k, v in r.items() if k.startswith("original_")} == pytest.approx(ref, nan_ok=True)
    meta = json.loads(meta_path(out).read_text())
    assert [f["row"] for f in meta["failures"]] == sorted(failed)
    assert meta["counts"] == {"total": len(rows), "ok": len(rows) - n_bad, "failed": n_bad, "resumed": 0}

    # the CLI: the same rows on stderr, every good case written, exit status 1 at the end
    out_cli = tmp_path / "cli" / "features.csv"
    res = run("extract", "--batch", cases, "--out", out_cli, "-s", FC_ARG)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{len(rows)} case(s): {len(rows) - n_bad} ok, {n_bad} failed" in res.stderr
    lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"^  row (\d+) \(.*$", res.stderr, flags=re.M)}
    assert sorted(lines) == sorted(failed)
    for row, f in failed.items():
        assert lines[row] == f"  row {row} ({f.image}, {f.mask}, label 1): {f.reason.splitlines()[0]}"
    assert out_cli.read_bytes() == out.read_bytes()
    # --validate finds the same failures, computes nothing
    res = run("extract", "--batch", cases, "--validate")
    assert res.exit_code == 1 and f"{len(rows) - n_bad} ok, {n_bad} failed" in res.stderr


# ------------------------------------------------------------------------------------------
# settings, parameter files, cases files, output paths: refused before any case runs
# ------------------------------------------------------------------------------------------
SETTINGS_ERRORS = [
    ("negative_binwidth", {"binWidth": -5}, ["-s", "binWidth:-5"],
     r"setting binWidth=-5 is invalid: expected a number > 0"),
    ("zero_binwidth", {"binWidth": 0}, ["-s", "binWidth:0"], r"setting binWidth=0 is invalid: expected a number > 0"),
    ("unknown_setting", {"binwidth": 5}, ["-s", "binwidth:5"],
     r"unknown setting\(s\) 'binwidth' \(settings\); valid settings: .*\bbinWidth\b.*\bforce2D\b"),
    ("unknown_class", {"featureClass": {"glcmm": []}}, ["-s", "featureClass:{glcmm: []}"],
     r"unknown feature class 'glcmm' \(settings\); valid classes: shape, shape2D, firstorder, glcm, glrlm, glszm, "
     r"gldm, ngtdm\."),
    ("unknown_feature", {"featureClass": {"firstorder": ["Meen"]}}, ["-s", "featureClass:{firstorder: [Meen]}"],
     r"unknown feature 'Meen' in class 'firstorder' \(settings\); valid: .*\bEntropy\b.*\bMean\b.*\bVariance\.$"),
]


@pytest.mark.parametrize("name,kwargs,args,pattern", SETTINGS_ERRORS, ids=[s[0] for s in SETTINGS_ERRORS])
def test_invalid_settings(name: str, kwargs: dict[str, Any], args: list[str], pattern: str, tmp_path: Path) -> None:
    # settings are checked before any file is read: the inputs need not exist
    with pytest.raises(ValueError, match=pattern):
        chexradi.extract(tmp_path / "none.nrrd", tmp_path / "none_mask.nrrd", **kwargs)
    with pytest.raises(ValueError, match=pattern):
        chexradi.Extractor(**kwargs)
    cases = tmp_path / "cases.csv"
    cases.write_text("Image,Mask\nnone.nrrd,none_mask.nrrd\n")
    out = tmp_path / "f.csv"
    with pytest.raises(ValueError, match=pattern):
        extract_batch(cases, out=out, **kwargs)
    assert not journal_path(out).exists() and not out.exists()
    for cmd in (["extract", tmp_path / "none.nrrd", tmp_path / "none_mask.nrrd"],
                ["extract", "--batch", cases, "--out", out]):
        res = run(*cmd, *args)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert res.stderr.startswith("Error: invalid settings: ") and re.search(pattern, res.stderr), res.stderr
    assert not journal_path(out).exists()


PARAM_FILES = [
    ("bad.yaml", "setting:\n  binWidth: [10\n  label: 1\n",
     r"parameter file .*bad\.yaml is not valid YAML \(line \d+.*\); fix the syntax"),
    ("bad.json", '{"setting": {"binWidth": 10,}}',
     r"parameter file .*bad\.json is not valid JSON \(line 1.*\); fix the syntax"),
    ("list.yaml", "- binWidth: 10\n", r"parameter file .*list\.yaml must hold a mapping \(setting/featureClass/"),
    ("unknown.yaml", "setting:\n  binwidht: 10\n",
     r"unknown setting\(s\) 'binwidht' \(parameter file .*unknown\.yaml\); valid settings: .*binWidth"),
]


@pytest.mark.parametrize("fname,text,pattern", PARAM_FILES, ids=[p[0] for p in PARAM_FILES])
def test_invalid_parameter_file(fname: str, text: str, pattern: str, tmp_path: Path) -> None:
    p = tmp_path / fname
    p.write_text(text)
    with pytest.raises(ValueError, match=pattern) as err:
        chexradi.extract(tmp_path / "none.nrrd", tmp_path / "none_mask.nrrd", params=p)
    assert str(p) in str(err.value)
    with pytest.raises(ValueError, match=pattern):
        chexradi.Extractor(p)
    cases = tmp_path / "cases.csv"
    cases.write_text("Image,Mask\nnone.nrrd,none_mask.nrrd\n")
    with pytest.raises(ValueError, match=pattern):
        extract_batch(cases, out=tmp_path / "f.csv", params=p)
    for cmd in (["extract", "a.nrrd", "b.nrrd"], ["extract", "--batch", cases, "--out", tmp_path / "f.csv"]):
        res = run(*cmd, "--param", p)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert re.search(pattern, res.stderr) and str(p) in res.stderr, res.stderr
    assert not journal_path(tmp_path / "f.csv").exists()
    # a missing parameter file: FileNotFoundError naming it (API), a usage error naming --param (CLI)
    with pytest.raises(FileNotFoundError, match=r"parameter file not found: .*nope\.yaml; pass an existing YAML"):
        chexradi.extract("a.nrrd", "b.nrrd", params=tmp_path / "nope.yaml")
    res = run("extract", "a.nrrd", "b.nrrd", "--param", tmp_path / "nope.yaml")
    assert res.exit_code == 2 and "--param" in res.stderr and "does not exist" in res.stderr


def _one_good_case(d: Path) -> dict[str, str]:
    image, mask = image_and_mask()
    write_sitk(d / "images" / "c0.nrrd", image.astype(np.int16))
    write_sitk(d / "masks" / "c0.nrrd", mask)
    return {"Image": "images/c0.nrrd", "Mask": "masks/c0.nrrd"}


CASES_ERRORS = [
    ("no_image_column", "Path,Mask\nimages/c0.nrrd,masks/c0.nrrd\n",
     r"cases file .*cases\.csv has no 'Image' column; columns found: Path, Mask\. The header needs Image and Mask"),
    ("lowercase_columns", "image,mask\nimages/c0.nrrd,masks/c0.nrrd\n",
     r"cases file .*cases\.csv has no 'Image' or 'Mask' column \(column names are case-sensitive: rename 'image', "
     r"'mask'\)"),
    ("duplicate_rows", "Image,Mask\nimages/c0.nrrd,masks/c0.nrrd\nimages/c1.nrrd,masks/c0.nrrd\n"
                       "images/c0.nrrd,masks/c0.nrrd\n",
     r"cases file .*cases\.csv has duplicate cases \(same Image, Mask and Label\): rows 1 and 3 \(Image .*c0\.nrrd, "
     r"Mask .*c0\.nrrd, label 1\)\. Remove the repeated rows"),
    ("empty_file", "", r"cases file .*cases\.csv is empty; it needs a header line with the columns Image and Mask"),
    ("header_only", "Image,Mask\n", r"cases file .*cases\.csv has a header but no case rows; add one line per case"),
]


@pytest.mark.parametrize("name,text,pattern", CASES_ERRORS, ids=[c[0] for c in CASES_ERRORS])
def test_invalid_cases_file(name: str, text: str, pattern: str, tmp_path: Path) -> None:
    _one_good_case(tmp_path)
    cases = tmp_path / "cases.csv"
    cases.write_text(text)
    out = tmp_path / "f.csv"
    with pytest.raises(ValueError, match=pattern):
        extract_batch(cases, out=out, featureClass=FC)
    res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.startswith("Error: ") and re.search(pattern, res.stderr), res.stderr
    assert not out.exists() and not journal_path(out).exists()


def test_unwritable_output(tmp_path: Path) -> None:
    cases_rows = _one_good_case(tmp_path)
    cases = tmp_path / "cases.csv"
    cases.write_text(f"Image,Mask\n{cases_rows['Image']},{cases_rows['Mask']}\n")
    a_file = tmp_path / "some_file.txt"
    a_file.write_text("not a folder")
    targets = [
        (a_file / "out.csv", r"cannot create the folder of {name}=.*some_file\.txt/out\.csv \(.*some_file\.txt\): "
                             r".*some_file\.txt is a file, not a folder; choose a writable location"),
        (a_file / "sub" / "out.csv", r"cannot create the folder of {name}=.*some_file\.txt/sub/out\.csv .*"
                                     r"some_file\.txt is a file, not a folder; choose a writable location"),
        (tmp_path, r"{name}=.* is a directory; give a file path such as .*features\.csv"),
        (Path("/proc/chexradi_out/out.csv"), r"cannot create the folder of {name}=/proc/chexradi_out/out\.csv .*"
                                             r"choose a writable location"),
    ]
    for out, pattern in targets:
        with pytest.raises(ValueError, match=pattern.format(name="out")):
            extract_batch(cases, out=out, featureClass=FC)
        res = run("extract", "--batch", cases, "--out", out, "-s", FC_ARG)
        assert res.exit_code == 2 and re.search(pattern.format(name="out"), res.stderr), res.stderr
        res = run("extract", tmp_path / cases_rows["Image"], tmp_path / cases_rows["Mask"], "--out", out)
        assert res.exit_code == 2 and re.search(pattern.format(name="--out"), res.stderr), res.stderr
    assert a_file.read_text() == "not a folder"
