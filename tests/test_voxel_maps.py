"""Voxel-based feature maps (``Extractor.feature_maps``, ``chexradi extract --maps``).

Parity: every map of every voxel-based class equals PyRadiomics' ``execute(..., voxelBased=True)`` on the
same images in the same process (relative 1e-6, NaN where NaN, same grid), over kernel radii, masked and
unmasked kernels, batches, force2D, GLCM weighting and distances, asymmetric GLCM, GLDM alpha, bin
count, voxel shift, flat regions, resegmentation, filtered image types, ROIs touching the image border,
and 2-D images. PyRadiomics cannot make 2-D first-order maps (it appends a 3-D centre to 2-D kernel
offsets), so those are checked against numpy by hand, as are 3-D ones. Bad settings give errors that name
the setting and what is valid.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from chexradi.radiomics.extractor import Extractor
from chexradi.radiomics.settings import load_settings
from conftest import ATOL, RTOL, random_case, write_file

sitk = pytest.importorskip("SimpleITK")

TEXTURES = {"glcm": [], "glrlm": [], "glszm": [], "gldm": [], "ngtdm": []}


def _images(image, mask, spacing, origin=None):
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(tuple(reversed(spacing)))
    if origin is not None:
        img.SetOrigin(origin)
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.CopyInformation(img)
    return img, msk


def _assert_maps_equal(ours, ref):
    assert set(ours) == set(ref), sorted(set(ours) ^ set(ref))[:5]
    for k, b in ref.items():
        a = ours[k]
        assert a.GetSize() == b.GetSize(), k
        assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetSpacing(), b.GetSpacing()), k
        assert np.allclose(a.GetDirection(), b.GetDirection()), k
        x, y = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
        ok = np.isclose(x, y, rtol=RTOL, atol=ATOL, equal_nan=True)
        assert ok.all(), (k, int((~ok).sum()), x[~ok][:3], y[~ok][:3])


def _parity(img, msk, **settings):
    ours = Extractor(**settings).feature_maps(img, msk)
    pytest.importorskip("radiomics")
    ref = Extractor(engine="pyradiomics", **settings).feature_maps(img, msk)
    _assert_maps_equal(ours, ref)
    return ours


# ----------------------------------------------------------------------------- building blocks (fast)


def test_pairwise_sum_is_numpys_sum_bit_for_bit():
    from chexradi.radiomics.kernels.firstorder import pairwise_sum

    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 1000, 1331, 4097, 100_003]:
        a = rng.normal(size=n) * 10 ** rng.uniform(-6, 6, size=n)
        assert pairwise_sum(a) == np.sum(a), n


def test_second_largest_eigenvalue_of_symmetric_matrices():
    from chexradi.radiomics.kernels.voxel import _second_largest

    rng = np.random.default_rng(1)
    for n in [2, 3, 5, 8, 17, 33]:
        for kind in ("psd", "diagonal", "rank one", "indefinite"):
            if kind == "psd":
                a = rng.random((n, n + 3)) ** 3
                s = a @ a.T
            elif kind == "diagonal":
                s = np.diag(rng.random(n))
            elif kind == "rank one":
                u = rng.random(n)
                s = np.outer(u, u)
            else:
                a = rng.normal(size=(n, n))
                s = a + a.T
            want = np.linalg.eigvalsh(s)[-2]
            assert abs(_second_largest(s) - want) <= 1e-14 * max(1.0, np.abs(s).max()), (n, kind)


# ----------------------------------------------------------------------------- settings (fast)


@pytest.mark.parametrize("name, value, expected", [
    ("kernelRadius", 0, "an integer >= 1"),
    ("kernelRadius", -1, "an integer >= 1"),
    ("kernelRadius", 1.5, "an integer >= 1"),
    ("kernelRadius", True, "an integer >= 1"),
    ("voxelBatch", 0, "-1 (all ROI voxels in one batch) or an integer >= 1"),
    ("voxelBatch", -2, "-1 (all ROI voxels in one batch) or an integer >= 1"),
    ("maskedKernel", "yes", "true or false"),
    ("initValue", "zero", "a number (NaN allowed: nan or .nan)"),
])
def test_bad_voxel_settings_are_refused_with_what_is_valid(name, value, expected):
    with pytest.raises(ValueError) as err:
        load_settings(**{name: value})
    assert f"setting {name}={value!r} is invalid" in str(err.value) and expected in str(err.value)


def test_voxel_setting_section_of_a_parameter_file(tmp_path):
    p = write_file(tmp_path, "voxelSetting:\n  kernelRadius: 2\n  maskedKernel: false\n  initValue: .nan\n"
                             "  voxelBatch: 500\nsetting:\n  binWidth: 10\n")
    s = load_settings(p)
    assert (s["kernelRadius"], s["maskedKernel"], s["voxelBatch"], s["binWidth"]) == (2, False, 500, 10)
    assert np.isnan(s["initValue"])
    assert load_settings()["kernelRadius"] == 1 and load_settings()["initValue"] == 0.0
    assert np.isnan(load_settings(initValue="nan")["initValue"]) and load_settings(initValue="-inf")["initValue"] < 0
    bad = write_file(tmp_path, "voxelSetting:\n  kernelRadiuss: 2\n", "bad.yaml")
    with pytest.raises(ValueError, match="unknown setting.*'kernelRadiuss'.*valid: kernelRadius, maskedKernel, "
                                         "initValue, voxelBatch"):
        load_settings(bad)
    worse = write_file(tmp_path, "voxelSetting: [1, 2]\n", "worse.yaml")
    with pytest.raises(ValueError, match="'voxelSetting' section .* must be a mapping"):
        load_settings(worse)


@pytest.mark.slow
def test_iter_feature_maps_hands_over_one_class_at_a_time():
    image, mask, spacing = random_case("blob", 21, 3, size=12)
    img, msk = _images(image, mask, spacing)
    ext = Extractor(binWidth=10, featureClass={"ngtdm": [], "firstorder": ["Mean", "Range"]})
    pairs = ext.iter_feature_maps(img, msk)
    names = []
    for name, m in pairs:
        names.append(name)
    whole = ext.feature_maps(img, msk)
    assert names == list(whole)
    classes = [n.split("_")[1] for n in names]
    assert classes == sorted(classes, key=classes.index)  # grouped: each class whole, then the next
    with pytest.raises(ValueError, match="label"):  # the case is checked when called, not on the first map
        ext.iter_feature_maps(img, msk, label=3)


def test_maps_need_a_voxel_based_class():
    image, mask, spacing = random_case("blob", 0, 3, size=12)
    with pytest.raises(ValueError, match="no voxel-based feature class.*firstorder, glcm"):
        Extractor(featureClass={"shape": []}).feature_maps(*_images(image, mask, spacing))


# ----------------------------------------------------------------------------- parity with PyRadiomics


CONFIGS = {
    "default": {},
    "radius 2": {"kernelRadius": 2},
    "unmasked kernel": {"maskedKernel": False},
    "batches of 37, NaN outside": {"voxelBatch": 37, "initValue": float("nan")},
    "force2D": {"force2D": True, "force2Ddimension": 0},
    "force2D along x, radius 2": {"force2D": True, "force2Ddimension": 2, "kernelRadius": 2},
    "euclidean weighting, distances 1 and 2": {"weightingNorm": "euclidean", "distances": [1, 2]},
    "infinity weighting": {"weightingNorm": "infinity"},
    "asymmetric GLCM, gldm_a 1": {"symmetricalGLCM": False, "gldm_a": 1},
    "binCount 8, voxelArrayShift 50": {"binCount": 8, "voxelArrayShift": 50},
    "resegmented": {"resegmentRange": [60, 140]},
}


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_maps_equal_pyradiomics(config):
    image, mask, spacing = random_case("blob", 3, 3, size=18)
    _parity(*_images(image, mask, spacing, origin=(12.5, -40.0, 7.0)), binWidth=10, **CONFIGS[config])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["full", "flat", "sparse", "border", "line"])
def test_maps_equal_pyradiomics_on_every_kind_of_roi(kind):
    image, mask, spacing = random_case(kind, 4, 3, size=15)
    _parity(*_images(image, mask, spacing), binWidth=15, minimumROIDimensions=1)


@pytest.mark.slow
def test_maps_equal_pyradiomics_with_flat_kernels():
    """Few gray levels: many kernels hold one level (GLCM thresholds, MCC's zero eigenvalue, Skewness' flat
    branch, NGTDM's special cases)."""
    image, mask, spacing = random_case("blob", 5, 3, size=18)
    image = np.round(image / 30) * 30
    _parity(*_images(image, mask, spacing), binWidth=25)
    _parity(*_images(image, mask, spacing), binWidth=25, kernelRadius=2, voxelBatch=60)


@pytest.mark.slow
def test_maps_of_filtered_images_equal_pyradiomics():
    pytest.importorskip("pywt")
    image, mask, spacing = random_case("blob", 6, 3, size=15)
    maps = _parity(*_images(image, mask, spacing), binWidth=10,
                   imageType={"LoG": {"sigma": [1.0]}, "Wavelet": {}, "Square": {}},
                   featureClass={"firstorder": ["Mean", "Skewness"], "glcm": ["Contrast", "MCC"], "ngtdm": []})
    assert {k.split("_")[0] for k in maps} == {"log-sigma-1-0-mm-3D", "square",
                                              *(f"wavelet-{c}" for c in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL",
                                                                         "HHH", "LLL"))}


@pytest.mark.slow
def test_maps_of_lbp3d_images_equal_pyradiomics():
    pytest.importorskip("trimesh")
    image, mask, spacing = random_case("blob", 16, 3, size=15)
    maps = _parity(*_images(image, mask, spacing), binWidth=0.5, imageType={"LBP3D": {}},
                   featureClass={"firstorder": ["Mean"], "glcm": ["Contrast"], "glszm": []})
    assert {k.split("_")[0] for k in maps} == {"lbp-3D-m1", "lbp-3D-m2", "lbp-3D-k"}


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, {"force2D": True}, {"kernelRadius": 3, "maskedKernel": False}],
                         ids=["default", "force2D", "radius 3 unmasked"])
def test_2d_texture_maps_equal_pyradiomics(settings):
    image, mask, spacing = random_case("blob", 7, 2, size=20)
    _parity(*_images(np.round(image / 12) * 12, mask, spacing), binWidth=10, featureClass=TEXTURES, **settings)


@pytest.mark.slow
def test_mcc_fails_batch_by_batch():
    """A block ROI and one isolated voxel, in batches of 10: only the batch holding the isolated voxel (every
    angle empty there, kept by its nine neighbours in the batch) keeps initValue in the MCC map."""
    rng = np.random.default_rng(17)
    image = rng.normal(100, 30, (8, 14, 14))
    mask = np.zeros(image.shape, bool)
    mask[1:5, 2:8, 2:8] = True
    mask[6, 12, 12] = True
    img, msk = _images(image, mask, (1.0, 1.0, 1.0))
    maps = _parity(img, msk, binWidth=10, voxelBatch=10, initValue=-7.0, minimumROIDimensions=1,
                   featureClass={"glcm": ["MCC"]})
    mcc = sitk.GetArrayFromImage(maps["original_glcm_MCC"])
    box = tuple(slice(max(int(ix.min()) - 1, 0), int(ix.max()) + 2) for ix in np.nonzero(mask))
    centres = np.argwhere(mask[box])  # PyRadiomics' order, batches of 10
    values = mcc[mask[box]]  # the map's grid is the box
    isolated = int(np.flatnonzero((centres == np.array([6, 12, 12]) - [b.start for b in box]).all(1))[0])
    failed = np.zeros(len(values), bool)
    failed[isolated // 10 * 10:isolated // 10 * 10 + 10] = True
    assert np.all(values[failed] == -7.0) and np.all(np.isfinite(values[~failed])) and np.all(values[~failed] != -7.0)


@pytest.mark.slow
def test_one_gray_level_with_empty_angles_keeps_init_value_for_mcc():
    """PyRadiomics' eigenvalue call fails on the NaN of an empty angle before its one-level rule (MCC 1)."""
    image, mask, spacing = random_case("sparse", 18, 3, size=12)
    flat = np.full(image.shape, 50.0)
    maps = _parity(*_images(flat, mask, spacing), initValue=-2.0, minimumROIDimensions=1,
                   featureClass={"glcm": ["MCC", "JointAverage"]})
    assert np.all(sitk.GetArrayFromImage(maps["original_glcm_MCC"])[mask] == -2.0)
    image, mask, spacing = random_case("full", 18, 3, size=9)
    maps = _parity(*_images(np.full(image.shape, 50.0), mask, spacing), featureClass={"glcm": ["MCC"]})
    assert np.all(sitk.GetArrayFromImage(maps["original_glcm_MCC"])[mask] == 1.0)


@pytest.mark.slow
def test_deprecated_features_and_a_per_image_type_init_value_as_pyradiomics():
    image, mask, spacing = random_case("blob", 19, 3, size=12)
    maps = _parity(*_images(image, mask, spacing), binWidth=10, minimumROIDimensions=1,
                   imageType={"Original": {"initValue": -3.0}, "Square": {}},
                   featureClass={"glcm": ["Dissimilarity", "Contrast"], "gldm": ["DependencePercentage"]})
    dissimilarity = sitk.GetArrayFromImage(maps["original_glcm_Dissimilarity"])
    assert np.all(dissimilarity == -3.0)  # no value: PyRadiomics' map keeps initValue everywhere
    contrast = sitk.GetArrayFromImage(maps["original_glcm_Contrast"])
    box = tuple(slice(max(int(ix.min()) - 1, 0), int(ix.max()) + 2) for ix in np.nonzero(mask))
    assert np.all(contrast[~mask[box]] == -3.0)
    assert np.all(sitk.GetArrayFromImage(maps["square_glcm_Contrast"])[~mask[box]] == 0.0)


def test_unmasked_kernels_refuse_nan_pixels_near_the_roi():
    image, mask, spacing = random_case("blob", 20, 3, size=12)
    box = [int(ix.min()) for ix in np.nonzero(mask)]
    image[tuple(max(b - 1, 0) for b in box)] = np.nan  # outside the ROI, inside its box padded by 1
    img, msk = _images(image, mask, spacing)
    with pytest.raises(ValueError, match="NaN/inf pixel.*maskedKernel=False.*maskedKernel=True"):
        Extractor(maskedKernel=False, featureClass={"firstorder": ["Mean"]}).feature_maps(img, msk)


@pytest.mark.slow
def test_glcm_mcc_keeps_init_value_where_pyradiomics_eigenvalues_fail():
    """A kernel with an angle that has no pair (while the batch keeps that angle) makes PyRadiomics' batched
    eigenvalue call fail on NaN: its MCC map keeps initValue for the whole batch. So does ours; a batch
    without such a kernel gets values."""
    image, mask, spacing = random_case("sparse", 8, 3, size=15)
    img, msk = _images(image, mask, spacing)
    maps = _parity(img, msk, binWidth=10, initValue=-7.0, featureClass={"glcm": ["MCC", "Contrast"]})
    mcc = sitk.GetArrayFromImage(maps["original_glcm_MCC"])
    assert np.all(mcc[mask] == -7.0)
    assert np.isfinite(sitk.GetArrayFromImage(maps["original_glcm_Contrast"])[mask]).any()


@pytest.mark.slow
def test_mcc_fast_path_equals_pyradiomics_routine_kernel_by_kernel():
    """The compiled MCC (symmetric eigenproblem) equals the fallback that runs PyRadiomics' own routine on
    PyRadiomics' full matrices, kernel by kernel."""
    from chexradi.radiomics import voxel

    image, mask, spacing = random_case("full", 9, 3, size=12)
    settings = load_settings(binWidth=20).values
    k = voxel._Kernels(image, mask, spacing, settings)
    angles = k.angles((1,), False, "GLCM")
    maps = dict(voxel.class_maps(image, mask, spacing=spacing, settings=settings, classes=[("glcm", ["MCC"])],
                                 ndim=3))
    values = maps["glcm"].values["MCC"]
    keep = np.ones(len(angles), dtype=bool)
    for v in range(0, len(k.centres), 7):
        exact = voxel._mcc_exact(k, k.centres[v], angles, keep, True, np.zeros(0))
        assert values[v] == pytest.approx(exact, rel=1e-9, abs=1e-12), v


# ----------------------------------------------------------------------------- by hand


def _window_stats(image, mask, radius, axes):
    """Per ROI voxel: the ROI values in the box of ``radius`` along ``axes`` (numpy, one voxel at a time)."""
    out = {}
    for idx in zip(*np.nonzero(mask)):
        sl = tuple(slice(max(i - radius, 0), i + radius + 1) if ax in axes else slice(i, i + 1)
                   for ax, i in enumerate(idx))
        out[idx] = image[sl][mask[sl]]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("ndim", [2, 3])
def test_first_order_maps_by_hand(ndim):
    image, mask, spacing = random_case("blob", 10, ndim, size=14)
    img, msk = _images(image, mask, spacing, origin=(3.0,) * ndim)
    names = ["Mean", "Minimum", "Maximum", "Median", "Range", "Energy", "Variance", "10Percentile"]
    maps = Extractor(kernelRadius=2, initValue=-1.0, featureClass={"firstorder": names}).feature_maps(img, msk)
    arr = {n: sitk.GetArrayFromImage(maps[f"original_firstorder_{n}"]) for n in names}
    box = tuple(slice(max(int(np.min(ix)) - 2, 0), int(np.max(ix)) + 3) for ix in np.nonzero(mask))
    assert arr["Mean"].shape == image[box].shape
    crop_mask = mask[box]
    assert np.all(arr["Mean"][~crop_mask] == -1.0)
    for idx, vals in _window_stats(image[box], crop_mask, 2, set(range(ndim))).items():
        want = {"Mean": vals.mean(), "Minimum": vals.min(), "Maximum": vals.max(), "Median": np.median(vals),
                "Range": np.ptp(vals), "Energy": np.sum(vals ** 2), "Variance": vals.var(),
                "10Percentile": np.percentile(vals, 10)}
        for n in names:
            assert arr[n][idx] == pytest.approx(want[n], rel=1e-12, abs=1e-9), (n, idx)
    # the grid: the ROI's box padded by kernelRadius, placed where it lies in the image
    start = [b.start for b in reversed(box)]
    assert np.allclose(maps["original_firstorder_Mean"].GetOrigin(), img.TransformIndexToPhysicalPoint(start))


@pytest.mark.slow
def test_pyradiomics_cannot_make_2d_first_order_maps():
    """Why the 2-D first-order maps are checked by hand: PyRadiomics 3.1 appends a 3-D centre offset to its 2-D
    kernel offsets and fails. If a later PyRadiomics fixes this, compare the maps here instead."""
    pytest.importorskip("radiomics")
    image, mask, spacing = random_case("blob", 11, 2, size=14)
    with pytest.raises(ValueError, match="dimension"):
        Extractor(engine="pyradiomics", featureClass={"firstorder": ["Mean"]}).feature_maps(
            *_images(image, mask, spacing))


@pytest.mark.slow
def test_maps_on_a_rotated_grid_lie_where_the_roi_is():
    image, mask, spacing = random_case("blob", 12, 3, size=12)
    img, msk = _images(image, mask, spacing, origin=(5.0, 6.0, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    img.SetDirection(direction)
    msk.CopyInformation(img)
    maps = Extractor(featureClass={"ngtdm": ["Coarseness"]}).feature_maps(img, msk)
    m = maps["original_ngtdm_Coarseness"]
    box = [max(int(np.min(ix)) - 1, 0) for ix in np.nonzero(mask)]
    assert np.allclose(m.GetOrigin(), img.TransformIndexToPhysicalPoint(tuple(reversed(box))))
    assert np.allclose(m.GetDirection(), direction)


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_writes_one_nrrd_map_per_feature(tmp_path):
    from click.testing import CliRunner

    from chexradi.cli import cli

    image, mask, spacing = random_case("blob", 13, 3, size=12)
    img, msk = _images(image, mask, spacing, origin=(1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    sitk.WriteImage(msk, str(tmp_path / "msk.nrrd"))
    params = write_file(tmp_path, "voxelSetting:\n  kernelRadius: 2\nfeatureClass:\n  glcm: [Contrast]\n"
                                  "  firstorder: [Mean]\nsetting:\n  binWidth: 10\n")
    out = tmp_path / "maps"
    res = CliRunner().invoke(cli, ["extract", str(tmp_path / "img.nrrd"), str(tmp_path / "msk.nrrd"),
                                   "--param", str(params), "--maps", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["maps.meta.json", "original_firstorder_Mean.nrrd",
                                                     "original_glcm_Contrast.nrrd"]
    want = Extractor(str(params)).feature_maps(img, msk)
    for name, image_ in want.items():
        got = sitk.ReadImage(str(out / f"{name}.nrrd"))
        assert got.GetSize() == image_.GetSize() and np.allclose(got.GetOrigin(), image_.GetOrigin())
        assert np.array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(image_), equal_nan=True)
    meta = json.loads((out / "maps.meta.json").read_text())
    assert meta["kind"] == "chexradi-feature-maps" and meta["settings"]["setting"]["kernelRadius"] == 2
    assert sorted(meta["maps"]) == ["original_firstorder_Mean.nrrd", "original_glcm_Contrast.nrrd"]


@pytest.mark.parametrize("args, message", [
    (["--maps", "{tmp}/m", "--batch", "{tmp}/cases.csv"], "--maps computes the feature maps of one case"),
    (["{tmp}/img.nrrd", "{tmp}/msk.nrrd", "--maps", "{tmp}/m", "--out", "{tmp}/f.csv"], "drop --out / --format"),
    (["{tmp}/img.nrrd", "{tmp}/msk.nrrd", "--maps", "{tmp}/img.nrrd"], "is a file; give a folder"),
    (["{tmp}/img.nrrd", "{tmp}/msk.nrrd", "--maps", "{tmp}/m", "--setting", "kernelRadius:0"],
     "setting kernelRadius=0 is invalid"),
    (["{tmp}/img.nrrd", "{tmp}/msk.nrrd", "--maps", "{tmp}/m", "--jobs", "2"], "drop --jobs / --scheduler"),
])
def test_cli_maps_bad_usage(tmp_path, args, message):
    from click.testing import CliRunner

    from chexradi.cli import cli

    image, mask, spacing = random_case("blob", 14, 3, size=9)
    img, msk = _images(image, mask, spacing)
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    sitk.WriteImage(msk, str(tmp_path / "msk.nrrd"))
    (tmp_path / "cases.csv").write_text("Image,Mask\nimg.nrrd,msk.nrrd\n")
    res = CliRunner().invoke(cli, ["extract", *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2, res.output
    assert message in res.output
