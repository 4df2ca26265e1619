"""chexradi.extract / Extractor end to end: both engines in one process on the same inputs,
every input type, and the errors a user sees."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

import chexradi
from chexradi.radiomics.extractor import Extractor
from conftest import CASE_KINDS, assert_parity, random_case, shared


def both(image, mask, spacing=None, **settings):
    ours = chexradi.extract(image, mask, spacing=spacing, **settings)
    ref = chexradi.extract(image, mask, spacing=spacing, engine="pyradiomics", **settings)
    return ours, ref


# ----------------------------------------------------------------------------- parity, full extraction
@pytest.mark.parametrize("kind", CASE_KINDS)
@pytest.mark.parametrize("ndim", [2, 3])
def test_random_cases_all_classes(kind, ndim):
    image, mask, spacing = random_case(kind, seed=hash((kind, ndim)) % 1000, ndim=ndim, size=20)
    settings = {"minimumROIDimensions": 1, "binWidth": 10}
    ours, ref = both(image, mask.astype(np.uint8), spacing, **settings)
    assert_parity(ours, ref, f"{kind} {ndim}-D")
    assert len(ours) >= 90


@pytest.mark.parametrize(
    "settings",
    [
        {"binCount": 16},
        {"binWidth": 5, "distances": [1, 2]},
        {"force2D": True, "binWidth": 10},
        {"force2D": True, "force2Ddimension": 1, "binWidth": 10},
        {"resegmentRange": [60, 140]},
        {"resegmentRange": [-1, 1.5], "resegmentMode": "sigma", "resegmentShape": True},
        {"resegmentRange": [0.5], "resegmentMode": "relative"},
        {"normalize": True, "normalizeScale": 100, "binWidth": 5, "removeOutliers": 3},
        {"resampledPixelSpacing": [1.5, 1.0, 1.0], "interpolator": "sitkBSpline", "binWidth": 10},
        {"resampledPixelSpacing": [1, 1, 1], "interpolator": "sitkLinear", "padDistance": 2},
        {"preCrop": True, "padDistance": 1},
        {"voxelArrayShift": 2000, "weightingNorm": "euclidean", "symmetricalGLCM": False, "gldm_a": 2},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
def test_settings_parity_3d(settings):
    image, mask, spacing = random_case("blob", seed=7, ndim=3, size=24)
    fc = {c: [] for c in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm", "shape")}
    ours, ref = both(image, mask.astype(np.uint8), spacing, featureClass=fc, **settings)
    assert_parity(ours, ref, str(settings))


def test_label_selects_roi():
    image, mask, spacing = random_case("blob", seed=3, ndim=2, size=30)
    labels = mask.astype(np.uint8)
    labels[:5, :5] = 2
    ours, ref = both(image, labels, spacing, label=2, featureClass={"firstorder": [], "glcm": []})
    assert_parity(ours, ref, "label 2")
    one = chexradi.extract(image, labels, spacing=spacing, featureClass={"firstorder": ["Mean"]})
    assert one["original_firstorder_Mean"] != ours["original_firstorder_Mean"]


# ----------------------------------------------------------------------------- inputs
@pytest.fixture()
def files(tmp_path):
    image, mask, _ = random_case("blob", seed=11, ndim=2, size=40)
    img8 = np.clip(image, 0, 255).astype(np.uint8)
    m8 = mask.astype(np.uint8)
    out = {"arrays": (img8, m8)}
    for ext in ("nrrd", "nii.gz", "png"):
        ip, mp = tmp_path / f"img.{ext}", tmp_path / f"mask.{ext}"
        sitk.WriteImage(sitk.GetImageFromArray(img8), str(ip))
        sitk.WriteImage(sitk.GetImageFromArray(m8), str(mp))
        out[ext] = (ip, mp)
    dcm = tmp_path / "img.dcm"
    sitk.WriteImage(sitk.GetImageFromArray(img8.astype(np.uint16)), str(dcm))
    out["dcm"] = (dcm, out["png"][1])
    from PIL import Image

    jp = tmp_path / "img.jpg"
    Image.fromarray(img8).save(jp, quality=95)
    out["jpg"] = (jp, out["png"][1])
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.stack([img8] * 3, -1)).save(rgb)
    out["rgbgrey"] = (rgb, out["png"][1])
    return out


@pytest.mark.parametrize("kind", ["nrrd", "nii.gz", "png", "dcm", "rgbgrey"])
def test_file_inputs_equal_array_input(files, kind):
    img8, m8 = files["arrays"]
    fc = {"firstorder": [], "glcm": [], "shape2D": []}
    expect = chexradi.extract(img8, m8, featureClass=fc)
    ip, mp = files[kind]
    got = chexradi.extract(str(ip), mp, featureClass=fc)
    assert_parity(got, expect, kind)


def test_jpeg_and_sitk_inputs(files):
    ip, mp = files["jpg"]
    ours, ref = both(str(ip), str(mp), featureClass={"firstorder": [], "glrlm": []})
    assert_parity(ours, ref, "jpeg")
    img = sitk.ReadImage(str(files["nrrd"][0]))
    msk = sitk.ReadImage(str(files["nrrd"][1]))
    assert_parity(chexradi.extract(img, msk), chexradi.extract(*files["arrays"]), "sitk")


def test_extractor_reuse_and_params_file(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("setting:\n  binWidth: 10\nfeatureClass:\n  firstorder: [Mean, Entropy]\n")
    ext = chexradi.Extractor(p)
    image, mask, spacing = random_case("blob", seed=5, ndim=2)
    a = ext.execute(image, mask, spacing=spacing)
    assert list(a) == ["original_firstorder_Mean", "original_firstorder_Entropy"]
    b = chexradi.extract(image, mask, spacing=spacing, params=p, binWidth=5)
    assert a["original_firstorder_Entropy"] != b["original_firstorder_Entropy"]


# ----------------------------------------------------------------------------- errors
def test_errors_name_the_problem(tmp_path, files):
    img8, m8 = files["arrays"]
    with pytest.raises(FileNotFoundError, match="missing.nrrd"):
        chexradi.extract(tmp_path / "missing.nrrd", m8)
    with pytest.raises(ValueError, match="directory"):
        chexradi.extract(tmp_path, m8)
    bad = tmp_path / "trunc.png"
    bad.write_bytes(files["png"][0].read_bytes()[:60])
    with pytest.raises(ValueError, match="trunc.png"):
        chexradi.extract(bad, m8)
    with pytest.raises(ValueError, match=r"label 3 is not present.*labels present: 1"):
        chexradi.extract(img8, m8, label=3)
    with pytest.raises(ValueError, match="empty"):
        chexradi.extract(img8, np.zeros_like(m8))
    one = np.zeros_like(m8)
    one[5, 5] = 1
    with pytest.raises(ValueError, match="single voxel"):
        chexradi.extract(img8, one)
    with pytest.raises(ValueError, match="size"):
        chexradi.extract(img8, m8[:-1])
    with pytest.raises(ValueError, match="3-D"):
        chexradi.extract(img8, np.stack([m8, m8]))
    with pytest.raises(ValueError, match="non-integer"):
        chexradi.extract(img8, m8 * 0.5)
    nan = img8.astype(float)
    nan[m8.astype(bool)] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        chexradi.extract(nan, m8)
    with pytest.raises(ValueError, match="engine"):
        chexradi.extract(img8, m8, engine="cuda")
    with pytest.raises(ValueError, match="binWidth"):
        chexradi.extract(img8, m8, binWidth=-5)
    colour = np.stack([img8, img8 // 2, img8], -1)
    cp = tmp_path / "colour.png"
    from PIL import Image

    Image.fromarray(colour).save(cp)
    with pytest.raises(ValueError, match="colour channels"):
        chexradi.extract(cp, m8)


def test_geometry_mismatch_and_correct_mask():
    image, mask, spacing = random_case("blob", seed=2, ndim=3, size=18)
    img = sitk.GetImageFromArray(image)
    img.SetSpacing((1.0, 1.0, 2.0))
    msk = sitk.GetImageFromArray(mask.astype(np.uint8))
    msk.SetSpacing((1.0, 1.0, 2.0))
    msk.SetOrigin((0.0, 0.0, 0.5))
    with pytest.raises(ValueError, match="correctMask"):
        chexradi.extract(img, msk)
    ours, ref = both(img, msk, correctMask=True, featureClass={"firstorder": [], "glcm": []})
    assert_parity(ours, ref, "correctMask")


@pytest.mark.parametrize("what", ["origin", "spacing", "direction"])
def test_geometry_tolerance_is_pyradiomics_bound(what):
    """geometryTolerance is an absolute bound (scaled by the first spacing for origin and spacing, plain for
    direction), as PyRadiomics' checkMask: a shift just inside passes with the same features as PyRadiomics,
    just outside fails; a NaN never passes."""
    image, mask, _ = random_case("blob", seed=3, ndim=2, size=16)
    img = sitk.GetImageFromArray(image)
    img.SetSpacing((2.0, 2.0))
    tol = 1e-4
    for shift, ok in ((0.9 * tol, True), (1.1 * tol, False), (float("nan"), False)):
        msk = sitk.GetImageFromArray(mask.astype(np.uint8))
        msk.SetSpacing((2.0, 2.0))
        scale = 1.0 if what == "direction" else 2.0
        if what == "origin":
            msk.SetOrigin((shift * scale, 0.0))
        elif what == "spacing":
            msk.SetSpacing((2.0 + shift * scale, 2.0))
        else:
            msk.SetDirection((1.0, shift, 0.0, 1.0))
        if ok:
            ours, ref = both(img, msk, geometryTolerance=tol, featureClass={"firstorder": []})
            assert_parity(ours, ref, f"{what} shift inside the tolerance")
        else:
            with pytest.raises(ValueError, match=f"image {what} .* differs from mask {what}"):
                chexradi.extract(img, msk, geometryTolerance=tol)


def test_minimum_roi_checks():
    image, mask, _ = random_case("line", seed=1, ndim=2)
    with pytest.raises(ValueError, match="minimumROIDimensions"):
        chexradi.extract(image, mask)
    chexradi.extract(image, mask, minimumROIDimensions=1, featureClass={"firstorder": []})
    image, mask, _ = random_case("blob", seed=1, ndim=2)
    with pytest.raises(ValueError, match="minimumROISize"):
        chexradi.extract(image, mask, minimumROISize=int(mask.sum()))


# ----------------------------------------------------------------------------- real data
def test_real_dicom_radiograph():
    path = shared("real-cxr", "rsna_pneumonia_example.dcm")
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    m = np.zeros(arr.shape, np.uint8)
    m[..., arr.shape[-2] // 4: arr.shape[-2] // 2, arr.shape[-1] // 5: arr.shape[-1] // 2] = 1
    msk = sitk.GetImageFromArray(m)
    msk.CopyInformation(img)
    # A one-slice 3-D volume: PyRadiomics' 3-D mesh of a 1024-px slice takes ~30 s and means nothing for
    # a radiograph, so shape is left out; everything else runs in 2-D slices.
    fc = {c: [] for c in ("firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}
    ours, ref = both(img, msk, force2D=True, binWidth=10, featureClass=fc)
    assert_parity(ours, ref, "rsna dicom")
    assert any(k.startswith("original_shape2D_") for k in ours)


@pytest.mark.parametrize("name", ["00000001_000.png", "00027426_000.png", "16747_3_1.jpg", "h0001.png",
                                  "tb0005.png", "tb0007.png"])
def test_real_radiographs_with_lung_fields(name, tmp_path):
    """Both engines on real radiographs with generated lung-field masks, all seven 2-D classes."""
    from chexradi.data.lungs import lung_field_mask, read_radiograph, save_mask

    path = shared("real-cxr", name)
    image, spacing = read_radiograph(path)
    mask = lung_field_mask(image, spacing=spacing)
    mpath = save_mask(mask, spacing, tmp_path / "lungs.nrrd")
    ipath = tmp_path / "image.nrrd"
    img = sitk.GetImageFromArray(image)
    img.SetSpacing(tuple(reversed(spacing)))
    sitk.WriteImage(img, str(ipath))
    ours, ref = both(str(ipath), str(mpath))
    assert_parity(ours, ref, name)
    assert sum(k.startswith("original_shape2D_") for k in ours) >= 9
    assert {k.split("_")[1] for k in ours} == {"shape2D", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


@pytest.mark.parametrize("dim", [0, 1, 2])
@pytest.mark.parametrize("kind", ["blob", "sparse"])
def test_2d_input_with_force2D(kind, dim):
    """PyRadiomics applies force2Ddimension to a 2-D array's own axes: every texture class must too."""
    image, mask, spacing = random_case(kind, seed=dim + 20, ndim=2, size=22)
    fc = {c: [] for c in ("glcm", "glrlm", "glszm", "gldm", "ngtdm")}
    ours, ref = both(image, mask.astype(np.uint8), spacing, force2D=True, force2Ddimension=dim, binWidth=10,
                     featureClass=fc)
    assert_parity(ours, ref, f"2-D force2D dim {dim}")
