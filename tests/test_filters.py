"""Filtered image types (``imageType``) in the numba engine: every feature of every filtered image equal to
PyRadiomics' (``engine="pyradiomics"``) in the same process, with the same names; the filters' own rules."""
from __future__ import annotations

import numpy as np
import pytest

from chexradi.radiomics.extractor import Extractor
from chexradi.radiomics.filters import NUMBA_IMAGE_TYPES, filtered_images
from conftest import RTOL, random_case, shared

pytest.importorskip("radiomics")
pytest.importorskip("pywt")

TYPES = [
    {"Original": {}},
    {"LoG": {"sigma": [1.0, 2.5]}},
    {"Wavelet": {}},
    {"Wavelet": {"wavelet": "haar", "level": 2, "start_level": 1}},
    {"Square": {}},
    {"SquareRoot": {}},
    {"Logarithm": {}},
    {"Exponential": {}},
    {"Gradient": {}},
    {"Gradient": {"gradientUseSpacing": False}},
    {"LBP2D": {"lbp2DRadius": 2, "lbp2DSamples": 12}},
    {"Original": {"binWidth": 10}, "LoG": {"sigma": [2], "binCount": 16}, "Square": {"binWidth": 0.5}},
]


def _parity(image, mask, spacing=None, **settings):
    ours = Extractor(**settings).execute(image, mask, spacing=spacing)
    ref = Extractor(engine="pyradiomics", **settings).execute(image, mask, spacing=spacing)
    assert set(ours) == set(ref), sorted(set(ours) ^ set(ref))
    bad = []
    for k, v in ref.items():
        a, b = ours[k], v
        if np.isnan(b) or np.isnan(a):
            if not (np.isnan(a) and np.isnan(b)):
                bad.append((k, a, b))
        elif abs(a - b) > max(1e-9, RTOL * max(abs(a), abs(b))):
            bad.append((k, a, b))
    assert not bad, bad[:5]
    return ours


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("image_types", TYPES, ids=[",".join(f"{k}{v}" for k, v in t.items()) for t in TYPES])
def test_every_image_type_equals_pyradiomics(ndim, image_types):
    image, mask, spacing = random_case("blob", 3, ndim, size=30)
    ours = _parity(image, mask, spacing, imageType=image_types, minimumROIDimensions=1)
    names = {k.split("_")[0] for k in ours if not k.startswith("original_shape")}
    assert names, ours
    if "Wavelet" in image_types and image_types["Wavelet"].get("level") == 2:
        assert {"wavelet-HLH", "wavelet2-LLL"} <= names if ndim == 3 else {"wavelet-HL", "wavelet2-LL"} <= names


def test_brain1_log_and_wavelet():
    d = shared("pyradiomics-cases")
    ours = _parity(str(d / "brain1_image.nrrd"), str(d / "brain1_label.nrrd"),
                   imageType={"Original": {}, "LoG": {"sigma": [1, 2.0, 3.5], "binWidth": 5}, "Wavelet": {}})
    types = {k.split("_")[0] for k in ours}
    assert types == {"original", "log-sigma-1-mm-3D", "log-sigma-2-0-mm-3D", "log-sigma-3-5-mm-3D",
                     *(f"wavelet-{c}" for c in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL"))}


def test_brain1_force2d_resampled_and_large_sigma():
    d = shared("pyradiomics-cases")
    img, msk = str(d / "brain1_image.nrrd"), str(d / "brain1_label.nrrd")
    _parity(img, msk, imageType={"Wavelet": {}, "LBP2D": {}}, force2D=True, force2Ddimension=0,
            featureClass={"firstorder": [], "glcm": []})
    _parity(img, msk, imageType={"LoG": {"sigma": [2.0]}, "Square": {}}, resampledPixelSpacing=[2, 2, 2],
            featureClass={"firstorder": [], "glszm": []})
    ours = _parity(img, msk, imageType={"LoG": {"sigma": [1.0, 400.0]}}, featureClass={"firstorder": ["Mean"]})
    assert sorted(ours) == ["log-sigma-1-0-mm-3D_firstorder_Mean"]  # 400 mm: larger than the image, no image


def test_log_skips_images_smaller_than_4_voxels_and_sigmas_not_above_0():
    from radiomics import imageoperations

    from chexradi.radiomics.reference import to_sitk

    image = np.random.default_rng(0).normal(size=(3, 20, 20))
    assert list(filtered_images(image, (1.0, 1.0, 1.0), "LoG", {"sigma": [1.0]})) == []
    assert list(imageoperations.getLoGImage(to_sitk(image), to_sitk((image > 0).astype(np.uint8)), sigma=[1.0])) == []
    image = np.random.default_rng(0).normal(size=(8, 20, 20))
    assert [n for _, n, _ in filtered_images(image, (1.0, 1.0, 1.0), "LoG", {"sigma": [0.0, 1.5]})] == [
        "log-sigma-1-5-mm-3D"]


def test_the_numba_engine_computes_every_image_type():
    from chexradi.names import IMAGE_TYPES

    assert set(NUMBA_IMAGE_TYPES) == set(IMAGE_TYPES)
    Extractor(imageType={t: ({"sigma": [1.0]} if t == "LoG" else {}) for t in IMAGE_TYPES})  # none refused


def _sitk_log(image, spacing, sigma):
    import SimpleITK as sitk

    from chexradi.radiomics.reference import to_sitk

    f = sitk.LaplacianRecursiveGaussianImageFilter()
    f.SetNormalizeAcrossScale(True)
    f.SetSigma(sigma)
    return sitk.GetArrayFromImage(f.Execute(to_sitk(image, spacing)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.uint8])
def test_log_equals_simpleitk_bit_for_bit(dtype):
    """chexradi's recursive Gaussian passes against SimpleITK's LaplacianRecursiveGaussianImageFilter (PyRadiomics'
    LoG): the same pixel type and the same bits, on the whole image and on boxes (inside, at each end, one voxel
    thick), 2-D and 3-D, anisotropic spacing, sigmas below one voxel to larger than the ROI."""
    from chexradi.radiomics.filters import laplacian_of_gaussian

    rng = np.random.default_rng(7)
    for shape, spacing in [((9, 31, 26), (2.5, 0.7, 0.9)), ((4, 12, 40), (1.0, 1.0, 1.0)), ((37, 23), (0.45, 1.3))]:
        image = (rng.normal(60, 40, shape)).astype(dtype)
        boxes = [tuple(slice(0, n) for n in shape), tuple(slice(n // 3, n // 3 + 2) for n in shape),
                 tuple(slice(0, 1) for _ in shape), tuple(slice(n - 3, n) for n in shape),
                 tuple(slice(1, n - 1) for n in shape)]
        for sigma in (0.4, 1.3, 4.0):
            want = _sitk_log(image, spacing, sigma)
            for box in boxes:
                got = laplacian_of_gaussian(image, spacing, sigma, box)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want[box], err_msg=f"{shape} sigma {sigma} box {box}")


BOX_TYPES = {"LoG": {"sigma": [0.8, 3.0]}, "Wavelet": {}, "Wavelet2": {"wavelet": "haar", "level": 2, "start_level": 1},
             "Wavelet3": {"wavelet": "db3", "level": 2}, "Gradient": {}, "Gradient2": {"gradientUseSpacing": False},
             "LBP2D": {"lbp2DRadius": 2.5, "lbp2DSamples": 12}, "Square": {}, "SquareRoot": {}, "Logarithm": {},
             "Exponential": {}, "Original": {}}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("ndim,force2d,f2d_axis", [(2, False, 0), (3, False, 0), (3, True, 0), (3, True, 1),
                                                   (3, True, 2)])
def test_filtered_images_on_a_box_equal_the_whole_images_cropped(ndim, force2d, f2d_axis):
    """Every image type computed for a box (what the extractor asks for: the ROI's box, or that padded by
    kernelRadius) equals the whole filtered image cropped to the box, bit for bit and in the same pixel type: boxes
    deep inside (where LoG, Wavelet, Gradient and LBP2D compute only near the box), at the image's ends (where the
    wavelet wraps around and the gradient and LBP extend the edge), and the whole image."""
    from chexradi.radiomics.filters import _wavelet_region

    rng = np.random.default_rng(ndim + force2d)
    shape = (58, 47) if ndim == 2 else (20, 57, 44)
    spacing = (0.8, 1.1) if ndim == 2 else (3.0, 0.8, 1.1)
    boxes = [tuple(slice(n // 2 - 3, n // 2 + 4) for n in shape), tuple(slice(n // 2, n // 2 + 1) for n in shape),
             tuple(slice(0, 5) for _ in shape), tuple(slice(n - 4, n) for n in shape),
             tuple(slice(2, n - 9) for n in shape), tuple(slice(0, n) for n in shape)]
    # a normalised image with flat areas of one non-integer value: where a sample ties with its centre,
    # LBP2D's code depends on the rounding of the sample's absolute coordinates
    flats = rng.integers(0, 4, tuple((n + 7) // 8 for n in shape))
    for ax in range(ndim):
        flats = np.repeat(flats, 8, ax)
    flats = (flats[tuple(slice(0, n) for n in shape)] - 1.5) / 2.7182818
    for image in ((rng.normal(60, 30, shape)), rng.normal(60, 30, shape).astype(np.int16), flats):
        dtype = image.dtype
        for key, args in BOX_TYPES.items():
            kw = {**args, "force2D": force2d, "force2Ddimension": f2d_axis}
            whole = list(filtered_images(image, spacing, key.rstrip("23"), kw))
            assert whole
            for box in boxes:
                part = list(filtered_images(image, spacing, key.rstrip("23"), kw, box=box))
                assert [n for _, n, _ in part] == [n for _, n, _ in whole]
                for (a, name, _), (b, _, _) in zip(whole, part):
                    assert b.dtype == a.dtype and b.shape == a[box].shape, (key, name, box)
                    np.testing.assert_array_equal(b, a[box], err_msg=f"{key} {name} {dtype} box {box}")
    # the wavelet runs on the box widened by its reach where that stays inside the image, on the whole axis
    # where it would wrap around
    inner = tuple(slice(n // 2 - 3, n // 2 + 4) for n in shape)
    region = _wavelet_region(shape, inner, tuple(range(ndim)), 5)
    assert all(r.stop - r.start < n and (r.stop - r.start) % 2 == 0 for r, n in zip(region, shape))
    assert _wavelet_region(shape, tuple(slice(0, 5) for _ in shape), tuple(range(ndim)), 7) == tuple(
        slice(0, n) for n in shape)


def test_lbp2d_box_on_a_flat_non_integer_image():
    """Far down a flat image of a non-integer value the samples' coordinates round differently from row to row
    (scikit-image's codes change along the rows); the box keeps the slices' origin, so its codes are the whole
    image's."""
    image = np.full((700, 60), 109.37171885582272)
    whole = next(filtered_images(image, (1.0, 1.0), "LBP2D", {}))[0]
    assert len(np.unique(whole[2:-2, 2:-2])) > 1  # the case shows what it is about
    for start in (5, 300, 507, 650):
        box = (slice(start, start + 10), slice(20, 40))
        np.testing.assert_array_equal(next(filtered_images(image, (1.0, 1.0), "LBP2D", {}, box=box))[0], whole[box])


def test_box_and_recursive_gaussian_errors():
    from chexradi.radiomics.filters import laplacian_of_gaussian
    from chexradi.radiomics.kernels.recursive import coefficients

    image = np.zeros((6, 7))
    for box in [(slice(2, 2), slice(0, 7))]:
        with pytest.raises(ValueError, match="not a non-empty region"):
            list(filtered_images(image, (1.0, 1.0), "Original", {}, box=box))
    for box in [(slice(0, 6),), (slice(0, 6), slice(0, 7), slice(0, 1)), (slice(0, 6, 2), slice(0, 7)), (1, 2)]:
        with pytest.raises(ValueError, match="slices with step 1"):
            list(filtered_images(image, (1.0, 1.0), "Original", {}, box=box))
    with pytest.raises(ValueError, match="at least 4 voxels"):
        laplacian_of_gaussian(np.zeros((2, 30)), (1.0, 1.0), 1.0)
    np.testing.assert_array_equal(laplacian_of_gaussian(image, (1.0, 1.0), 1.0, (slice(None), slice(2, None))),
                                  laplacian_of_gaussian(image, (1.0, 1.0), 1.0)[:, 2:])
    for sigma, spacing, order in [(0.0, 1.0, 0), (1.0, -1.0, 2), (1.0, 1.0, 1)]:
        with pytest.raises(ValueError, match="recursive Gaussian"):
            coefficients(sigma, spacing, order)


LBP3D_SETTINGS = [{}, {"lbp3DLevels": 3, "lbp3DIcosphereRadius": 1.5, "lbp3DIcosphereSubdivision": 2}]


@pytest.mark.parametrize("dtype", [np.float64, np.int16])
@pytest.mark.parametrize("settings", LBP3D_SETTINGS, ids=["defaults", "3 levels, radius 1.5, 2 subdivisions"])
def test_lbp3d_images_and_features_equal_pyradiomics(settings, dtype):
    """PyRadiomics' getLBP3DImage (its SciPy sph_harm restored by chexradi.radiomics.reference) against
    chexradi's LBP3D: the images at the ROI voxels, then every feature of every image."""
    pytest.importorskip("trimesh")
    import SimpleITK as sitk
    from radiomics import imageoperations

    from chexradi.radiomics.reference import require_pyradiomics

    require_pyradiomics()
    image, mask, spacing = random_case("blob", 15, 3, size=18)
    image = image.astype(dtype)
    ref = list(imageoperations.getLBP3DImage(sitk.GetImageFromArray(image),
                                             sitk.GetImageFromArray(mask.astype(np.uint8)), **settings))
    ours = list(filtered_images(image, spacing, "LBP3D", settings, mask=mask))
    assert [n for _, n, _ in ours] == [n for _, n, _ in ref] == [
        *(f"lbp-3D-m{k + 1}" for k in range(settings.get("lbp3DLevels", 2))), "lbp-3D-k"]
    for (a, _, _), (b, _, _) in zip(ours, ref):  # the same calls in the same order: the same bits
        np.testing.assert_array_equal(a[mask], sitk.GetArrayFromImage(b)[mask])
    _parity(image, mask, spacing, imageType={"LBP3D": settings}, binWidth=0.5)


def test_legacy_sph_harm_is_the_spherical_harmonic_pyradiomics_asks_for():
    """scipy's removed sph_harm(m, n, azimuth, polar), rebuilt from lpmv and poch (both engines' LBP3D use it),
    checked against closed forms; its successor sph_harm_y agrees to ~1e-14 for the angles PyRadiomics passes
    (its 'polar' angle in [-pi, pi])."""
    from scipy.special import sph_harm_y

    from chexradi.radiomics.reference import legacy_sph_harm

    rng = np.random.default_rng(0)
    az, pol = rng.uniform(-np.pi, np.pi, 200), rng.uniform(0, np.pi, 200)
    closed = {(0, 0): 0.5 / np.sqrt(np.pi) + 0 * az, (0, 1): np.sqrt(3 / 4 / np.pi) * np.cos(pol),
              (1, 1): -np.sqrt(3 / 8 / np.pi) * np.sin(pol) * np.exp(1j * az),
              (-1, 1): np.sqrt(3 / 8 / np.pi) * np.sin(pol) * np.exp(-1j * az),
              (-2, 2): 0.25 * np.sqrt(15 / 2 / np.pi) * np.sin(pol) ** 2 * np.exp(-2j * az),
              (0, 2): 0.25 * np.sqrt(5 / np.pi) * (3 * np.cos(pol) ** 2 - 1)}
    for (m, n), want in closed.items():
        np.testing.assert_allclose(legacy_sph_harm(m, n, az, pol), want, rtol=1e-12, atol=1e-13)
    pol = rng.uniform(-np.pi, np.pi, 200)
    for n in range(4):
        for m in range(-n, n + 1):
            np.testing.assert_allclose(sph_harm_y(n, m, pol, az), legacy_sph_harm(m, n, az, pol), rtol=1e-12,
                                       atol=1e-13)


def test_lbp3d_edge_cases(monkeypatch, caplog):
    pytest.importorskip("trimesh")
    image, mask, spacing = random_case("blob", 16, 3, size=12)
    # one degree: PyRadiomics fails (its harmonics array stays 1-D); chexradi yields the degree and the kurtosis
    assert [n for _, n, _ in filtered_images(image, spacing, "LBP3D", {"lbp3DLevels": 1}, mask=mask)] == [
        "lbp-3D-m1", "lbp-3D-k"]
    # a 2-D image gives no LBP3D image, with a warning, as in PyRadiomics
    image2, mask2, spacing2 = random_case("blob", 16, 2)
    with caplog.at_level("WARNING", logger="chexradi.radiomics.filters"):
        assert list(filtered_images(image2, spacing2, "LBP3D", {}, mask=mask2)) == []
    assert "LBP3D needs a 3-D image" in caplog.text
    with pytest.raises(ValueError, match="needs the ROI mask"):
        list(filtered_images(image, spacing, "LBP3D", {}))
    # without trimesh, the error names the extra
    import sys

    monkeypatch.setitem(sys.modules, "trimesh", None)
    monkeypatch.setitem(sys.modules, "trimesh.creation", None)
    with pytest.raises(ImportError, match=r'pip install "chexradi\[lbp3d\]"'):
        list(filtered_images(image, spacing, "LBP3D", {}, mask=mask))


def test_cli_extract_takes_a_parameter_file_with_image_types(tmp_path):
    """`chexradi extract --param` with PyRadiomics' imageType section, unchanged: the filtered images' features."""
    import json

    import SimpleITK as sitk
    from click.testing import CliRunner

    from chexradi.cli import cli

    image, mask, spacing = random_case("blob", 5, 3, size=24)
    img = sitk.GetImageFromArray(image.astype(np.int16))
    img.SetSpacing(tuple(reversed(spacing)))
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.CopyInformation(img)
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    sitk.WriteImage(msk, str(tmp_path / "msk.nrrd"))
    params = tmp_path / "params.yaml"
    params.write_text("imageType:\n  Original: {}\n  LoG:\n    sigma: [1.0, 2.0]\n  Wavelet: {}\n"
                      "featureClass:\n  firstorder: []\n  glcm: [Contrast]\nsetting:\n  binWidth: 10\n")
    res = CliRunner().invoke(cli, ["extract", str(tmp_path / "img.nrrd"), str(tmp_path / "msk.nrrd"),
                                   "--param", str(params), "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    ref = Extractor(str(params), engine="pyradiomics").execute(str(tmp_path / "img.nrrd"), str(tmp_path / "msk.nrrd"))
    assert set(got) == set(ref)
    assert {k.split("_")[0] for k in got} == {"original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D",
                                             *(f"wavelet-{c}" for c in ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL",
                                                                        "HHH", "LLL"))}
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=RTOL, abs=1e-9, nan_ok=True), k
    bad = tmp_path / "bad.yaml"
    bad.write_text("imageType:\n  LoG:\n    sigma: [0]\n")
    res = CliRunner().invoke(cli, ["extract", str(tmp_path / "img.nrrd"), str(tmp_path / "msk.nrrd"),
                                   "--param", str(bad)])
    assert res.exit_code == 2 and "setting LoG sigma=[0] is invalid" in res.output


@pytest.mark.parametrize("case", ["negative values", "float32", "resegmented", "preCrop", "normalized",
                                  "force2D axis 1", "shape without Original"])
def test_filters_with_the_pipeline_settings(case):
    image, mask, spacing = random_case("blob", 6, 3, size=28)
    types = {"LoG": {"sigma": [1.0]}, "Wavelet": {}, "SquareRoot": {}, "Logarithm": {}, "Square": {}}
    kw = {"minimumROIDimensions": 1}
    if case == "negative values":
        image = image - 100.0
    elif case == "float32":
        image = image.astype(np.float32)
    elif case == "resegmented":
        kw.update(resegmentRange=[80, 200])
    elif case == "preCrop":
        kw.update(preCrop=True)
    elif case == "normalized":
        kw.update(normalize=True)
    elif case == "force2D axis 1":
        kw.update(force2D=True, force2Ddimension=1, featureClass={"firstorder": [], "glcm": [], "glrlm": []})
        types = {"Wavelet": {}, "LBP2D": {}}
    else:
        kw.update(featureClass={"shape": [], "firstorder": ["Mean", "Median"]})
    ours = _parity(image, mask, spacing, imageType=types, **kw)
    if case == "shape without Original":
        assert any(k.startswith("original_shape_") for k in ours)
        assert not any(k.startswith("original_firstorder") for k in ours)
    if case == "negative values":
        assert any(k.startswith("squareroot_") for k in ours)


def test_filter_settings_in_the_general_section():
    """PyRadiomics takes sigma, wavelet, ... in the general settings too; so does chexradi."""
    image, mask, spacing = random_case("blob", 7, 3, size=24)
    ours = _parity(image, mask, spacing, imageType={"LoG": {}, "Wavelet": {}}, sigma=[2.0], wavelet="haar",
                   minimumROIDimensions=1, featureClass={"firstorder": ["Mean"]})
    assert "log-sigma-2-0-mm-3D_firstorder_Mean" in ours and "wavelet-HHH_firstorder_Mean" in ours


def test_timings_split_filters_from_classes():
    image, mask, spacing = random_case("blob", 8, 3, size=24)
    ext = Extractor(imageType={"Original": {}}, featureClass={"glcm": []}, minimumROIDimensions=1)
    ext.execute(image, mask, spacing=spacing)
    assert set(ext.last_timings) == {"glcm"}
    ext = Extractor(imageType={"Original": {}, "Square": {}}, featureClass={"glcm": []}, minimumROIDimensions=1)
    ext.execute(image, mask, spacing=spacing)
    assert set(ext.last_timings) == {"glcm", "filters"} and all(t >= 0 for t in ext.last_timings.values())
