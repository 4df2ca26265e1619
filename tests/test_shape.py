"""shape (3-D, chexradi's marching-cubes kernel): parity with PyRadiomics' RadiomicsShape in the same process
(every 2x2x2 configuration, random, thin, one-voxel and border-touching masks, anisotropic spacing,
PyRadiomics' cases), the hull diameters against an all-pairs count, IBSI values, errors."""
from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from chexradi.radiomics.features import shape
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import run_feature_class
from conftest import CASE_KINDS, assert_parity, class_parity, random_case, read_pyradiomics_case, shared

ALL = list(shape.FEATURES)  # deprecated Compactness1/2 and SphericalDisproportion requested explicitly too


def check(image, mask, spacing=None, settings=None, names=ALL, context=""):
    return class_parity("shape", image, mask, spacing, settings, names, context)


@pytest.mark.parametrize("kind", CASE_KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_3d(kind, seed):
    image, mask, spacing = random_case(kind, seed, 3)
    check(image, mask, spacing, context=f"{kind} seed {seed}")


@pytest.mark.parametrize("spacing", [(3.0, 0.5, 0.7), (0.4, 2.2, 1.0)])
def test_anisotropic_spacing(spacing):
    image, mask, _ = random_case("blob", 2, 3, size=30)
    check(image, mask, spacing, context=f"spacing {spacing}")


def test_label_other_than_one():
    """The user's ``label`` is resolved into the boolean ROI mask before shape sees it."""
    image, mask, spacing = random_case("blob", 4, 3)
    check(image, mask, spacing, settings={"label": 3}, context="label 3")


def test_default_names_are_pyradiomics_defaults():
    image, mask, spacing = random_case("blob", 5, 3)
    ref = run_feature_class("shape", image, mask, spacing=spacing)
    ours = shape.compute(roi_from_arrays(image, mask, spacing=spacing))
    assert_parity(ours, ref, "default names")
    assert "Compactness1" not in ours


def test_feature_table_matches_pyradiomics():
    from radiomics.shape import RadiomicsShape

    assert shape.FEATURES == RadiomicsShape.getFeatureNames()


@pytest.mark.parametrize("case", ["brain1", "breast1"])
def test_pyradiomics_cases(case):
    image, mask, spacing = read_pyradiomics_case(case)
    check(image, mask, spacing, context=case)


def test_ibsi_phantom_morphology():
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(shared("ibsi-phantom", "phantom.nii.gz")))
    msk = sitk.ReadImage(str(shared("ibsi-phantom", "mask.nii.gz")))
    image = sitk.GetArrayFromImage(img).astype(np.float64)
    mask = sitk.GetArrayFromImage(msk) == 1
    spacing = tuple(reversed(img.GetSpacing()))
    ours = check(image, mask, spacing, context="IBSI phantom")
    with open(shared("ibsi-phantom", "ibsi_1_dig_phantom.csv"), newline="") as fh:
        ibsi = {r["tag"]: (float(r["reference value"]), float(r["tolerance"]))
                for r in csv.DictReader(fh, delimiter=";") if r["reference value"]}
    # the features PyRadiomics defines as IBSI does (its PCA axes use another convention)
    mapping = {
        "morph_volume": "MeshVolume", "morph_vol_approx": "VoxelVolume", "morph_area_mesh": "SurfaceArea",
        "morph_av": "SurfaceVolumeRatio", "morph_sphericity": "Sphericity", "morph_comp_1": "Compactness1",
        "morph_comp_2": "Compactness2", "morph_sph_dispr": "SphericalDisproportion", "morph_diam": "Maximum3DDiameter",
        "morph_pca_elongation": "Elongation", "morph_pca_flatness": "Flatness",
    }
    for tag, name in mapping.items():
        ref, tol = ibsi[tag]
        assert abs(ours[name] - ref) <= tol + 0.5 * 10 ** (np.floor(np.log10(abs(ref))) - 2), (tag, ours[name], ref)


def test_2d_input_raises():
    image, mask, spacing = random_case("blob", 0, 2)
    with pytest.raises(ValueError, match="shape2D"):
        shape.compute(roi_from_arrays(image, mask, spacing=spacing), ALL)


def test_unknown_name_raises():
    image, mask, spacing = random_case("blob", 0, 3)
    with pytest.raises(ValueError, match="Unknown shape feature"):
        shape.compute(roi_from_arrays(image, mask, spacing=spacing), ["Volume"])


def test_shape_needs_no_pyradiomics(monkeypatch):
    image, mask, spacing = random_case("blob", 0, 3)
    roi = roi_from_arrays(image, mask, spacing=spacing)
    want = shape.compute(roi, ALL)
    monkeypatch.setitem(sys.modules, "radiomics", None)  # makes `import radiomics` raise ImportError
    assert shape.compute(roi, ALL) == want


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 1.3)])
def test_every_cube_configuration(spacing):
    """All 2x2x2 masks of 2 to 8 voxels (PyRadiomics refuses one voxel): every marching-cubes case and its
    complement, parity on every feature."""
    image = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    for code in range(1, 256):
        if bin(code).count("1") < 2:
            continue
        mask = np.array([(code >> k) & 1 for k in range(8)], bool).reshape(2, 2, 2)
        check(image, mask, spacing, context=f"cube {code:08b}")


def _all_pairs_diameters(mask, spacing):
    """Every mesh vertex (midpoint of an edge where the padded mask changes) against every other: the definition."""
    pad = np.pad(mask, 1)
    pts = []
    for axis in range(3):
        moved = np.moveaxis(pad, axis, 0)
        idx = np.argwhere(moved[1:] != moved[:-1]).astype(np.float64)
        idx[:, 0] += 0.5
        orig = np.empty_like(idx)
        orig[:, axis] = idx[:, 0]
        orig[:, [a for a in range(3) if a != axis]] = idx[:, 1:]
        pts.append(orig)
    q = np.concatenate(pts)
    p = q * np.asarray(spacing)
    d = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    same = [q[:, None, k] == q[None, :, k] for k in range(3)]
    return tuple(float(np.sqrt(d[m].max())) for m in (same[0], same[1], same[2], np.ones_like(d, bool)))


@pytest.mark.parametrize("kind", ["blob", "sparse", "line", "border", "full", "small"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hull_diameters_equal_all_pairs(kind, seed):
    from chexradi.radiomics.kernels.shape3d import shape3d_coefficients

    _, mask, _ = random_case(kind, seed, 3, size=18)
    spacing = (1.7, 0.6, 1.1)
    got = shape3d_coefficients(np.ascontiguousarray(mask), *spacing)[2:]
    want = _all_pairs_diameters(mask, spacing)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_one_voxel_by_hand():
    """One voxel: the mesh is the octahedron on its six face centres (PyRadiomics refuses a one-voxel mask)."""
    got = shape.compute(roi_from_arrays(np.ones((3, 3, 3)), np.pad(np.ones((1, 1, 1), bool), 1),
                                        spacing=(1.0, 1.0, 1.0)), ALL)
    assert got["MeshVolume"] == pytest.approx(1 / 6, rel=1e-12)  # two pyramids of base 1/2 and height 1/2
    assert got["SurfaceArea"] == pytest.approx(np.sqrt(3), rel=1e-12)  # 8 equilateral triangles of side sqrt(1/2)
    assert got["VoxelVolume"] == 1.0
    for name in ("Maximum3DDiameter", "Maximum2DDiameterSlice", "Maximum2DDiameterColumn", "Maximum2DDiameterRow"):
        assert got[name] == 1.0, name
    assert got["MajorAxisLength"] == 0.0 and np.isnan(got["Elongation"])


@pytest.mark.parametrize("name,mask", [
    ("line along x", np.ones((1, 1, 9), bool)),
    ("plane z", np.ones((1, 7, 5), bool)),
    ("plane y", np.ones((6, 1, 5), bool)),
    ("plane x", np.ones((4, 7, 1), bool)),
    ("two voxels diagonal", np.eye(2, dtype=bool)[None].repeat(2, 0) & np.eye(2, dtype=bool)[:, None, :]),
])
def test_degenerate_masks(name, mask):
    image = np.random.default_rng(0).normal(size=mask.shape)
    check(image, mask, (1.2, 0.8, 2.0), context=name)
    check(np.pad(image, 2), np.pad(mask, 2), (1.2, 0.8, 2.0), context=f"{name}, padded")
