"""shape2D: parity with PyRadiomics' RadiomicsShape2D (same process) and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from chexradi.radiomics.features import shape2D
from chexradi.radiomics.kernels.shape2d import shape2d_coefficients
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import run_feature_class
from conftest import (PARITY_BASE, CASE_KINDS, assert_parity, class_parity, cxr_masks, random_case, read_cxr,
                      read_pyradiomics_case)

ALL = list(shape2D.FEATURES)  # deprecated SphericalDisproportion requested explicitly too


def check(image, mask, spacing=None, settings=None, names=ALL, context=""):
    return class_parity("shape2D", image, mask, spacing, settings, names, context)


def one_slice(mask3, axis, index=None):
    """Keep one slice of a 3-D mask along ``axis`` (the fullest one by default)."""
    counts = mask3.sum(axis=tuple(i for i in range(3) if i != axis))
    index = int(np.argmax(counts)) if index is None else index
    out = np.zeros_like(mask3)
    sl = [slice(None)] * 3
    sl[axis] = index
    out[tuple(sl)] = mask3[tuple(sl)]
    return out


# ---------------------------------------------------------------------------- random cases
@pytest.mark.parametrize("kind", CASE_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_2d(kind, seed):
    image, mask, spacing = random_case(kind, seed, 2)
    check(image, mask, spacing, context=f"{kind} seed {seed}")


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_random_3d_single_slice_force2d(kind, axis):
    image, mask, spacing = random_case(kind, 3, 3)
    mask = one_slice(mask, axis)
    if mask.sum() == 1:  # a 1-D kind cut across: PyRadiomics refuses single voxels, add an in-plane neighbour
        z, y, x = (int(i[0]) for i in np.nonzero(mask))
        neighbour = [z, y, x]
        in_plane = [i for i in range(3) if i != axis][0]
        neighbour[in_plane] += 1 if neighbour[in_plane] + 1 < mask.shape[in_plane] else -1
        mask[tuple(neighbour)] = True
    settings = {"force2D": True, "force2Ddimension": axis}
    check(image, mask, spacing, settings=settings, context=f"{kind} axis {axis}")


@pytest.mark.parametrize("spacing", [(1.0, 2.0), (0.3, 2.7), (2.7, 0.3), (0.143, 0.143)])
@pytest.mark.parametrize("kind", ["blob", "sparse", "border"])
def test_anisotropic_spacing(kind, spacing):
    image, mask, _ = random_case(kind, 11, 2, size=40)
    check(image, mask, spacing, context=f"{kind} {spacing}")


def test_many_vertices_diameter():
    """A large scattered mask (thousands of mesh vertices): hull diameter == PyRadiomics' all-pairs diameter."""
    rng = np.random.default_rng(5)
    image = rng.normal(size=(90, 110))
    mask = rng.random((90, 110)) < 0.4
    check(image, mask, (0.7, 1.1), context="many vertices")


def test_default_names_are_pyradiomics_defaults():
    image, mask, spacing = random_case("blob", 5, 2)
    ref = run_feature_class("shape2D", image, mask, spacing=spacing)
    ours = shape2D.compute(roi_from_arrays(image, mask, spacing=spacing))
    assert_parity(ours, ref, "default names")
    assert "SphericalDisproportion" not in ours


def test_feature_table_matches_pyradiomics():
    from radiomics.shape2D import RadiomicsShape2D

    assert shape2D.FEATURES == RadiomicsShape2D.getFeatureNames()


# ---------------------------------------------------------------------------- errors
def test_mask_on_several_slices_raises():
    image, mask, spacing = random_case("blob", 0, 3)
    settings = {**PARITY_BASE, "force2D": True, "force2Ddimension": 0}
    with pytest.raises(ValueError):  # PyRadiomics refuses it too
        run_feature_class("shape2D", image, mask, spacing=spacing, settings=settings, names=ALL)
    with pytest.raises(ValueError, match="single-slice"):
        shape2D.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), ALL)


def test_3d_without_force2d_raises():
    image, mask, spacing = random_case("blob", 0, 3)
    mask = one_slice(mask, 0)
    with pytest.raises(ValueError, match="force2D"):
        shape2D.compute(roi_from_arrays(image, mask, spacing=spacing), ALL)


def test_unknown_name_raises():
    roi = roi_from_arrays(np.ones((3, 3)), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="Unknown shape2D feature"):
        shape2D.compute(roi, ["Perimeter", "Perimetre"])


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize("case", ["brain1", "breast1"])
def test_pyradiomics_cases_largest_slice(case):
    image, mask, spacing = read_pyradiomics_case(case)
    mask = one_slice(mask, 0)
    check(image, mask, spacing, settings={"force2D": True}, context=f"{case} largest slice")


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.143, 0.168)])
@pytest.mark.parametrize("mask_name", ["ellipse", "two_blobs"])
def test_real_radiograph(mask_name, spacing):
    image = read_cxr()
    mask = cxr_masks(image.shape)[mask_name]
    check(image, mask, spacing, context=f"CXR {mask_name}")


# ---------------------------------------------------------------------------- hand-computed
def test_square_3x3_spacing_1_2():
    """3x3 square, spacing (y, x) = (1, 2): the mesh is an octagon through the boundary edge midpoints."""
    image = np.zeros((5, 5))
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    out = shape2D.compute(roi_from_arrays(image, mask, spacing=(1.0, 2.0)), ALL)
    assert out["PixelSurface"] == 9 * 2.0
    # 3x3 box minus 4 corner triangles of 1/8 pixel, times the pixel area 2
    assert out["MeshSurface"] == pytest.approx((9 - 4 * 0.125) * 2.0)
    # two sides of 2 pixels along x (4 mm each), two along y (2 mm each), 4 diagonals (0.5 px, 0.5 px)
    assert out["Perimeter"] == pytest.approx(2 * 4.0 + 2 * 2.0 + 4 * math.hypot(0.5, 1.0))
    # farthest vertices: (y=0, x=-0.5) and (y=2, x=2.5) in pixel units -> (2 mm, 6 mm)
    assert out["MaximumDiameter"] == pytest.approx(math.hypot(2.0, 6.0))
    # pixel-centre variances: 2/3 * 1^2 along y, 2/3 * 2^2 along x
    assert out["MajorAxisLength"] == pytest.approx(4 * math.sqrt(8 / 3))
    assert out["MinorAxisLength"] == pytest.approx(4 * math.sqrt(2 / 3))
    assert out["Elongation"] == pytest.approx(0.5)
    assert out["Sphericity"] == pytest.approx(2 * math.sqrt(math.pi * out["MeshSurface"]) / out["Perimeter"])
    assert out["SphericalDisproportion"] == pytest.approx(1 / out["Sphericity"])
    assert out["PerimeterSurfaceRatio"] == pytest.approx(out["Perimeter"] / out["MeshSurface"])
    check(image, mask, (1.0, 2.0), context="3x3 square")


def test_single_pixel():
    """One pixel: a diamond through the 4 edge midpoints."""
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    out = shape2D.compute(roi_from_arrays(np.zeros((3, 3)), mask, spacing=(1.5, 0.5)), ALL)
    assert out["PixelSurface"] == 0.75
    assert out["MeshSurface"] == pytest.approx(0.5 * 0.75)
    assert out["Perimeter"] == pytest.approx(4 * math.hypot(0.75, 0.25))
    assert out["MaximumDiameter"] == pytest.approx(1.5)
    assert out["MajorAxisLength"] == 0.0 and out["MinorAxisLength"] == 0.0
    assert math.isnan(out["Elongation"])  # 0 / 0, as PyRadiomics


def test_kernel_diameter_against_brute_force():
    """The hull shortcut gives the same maximum diameter as comparing every pair of mesh vertices."""
    rng = np.random.default_rng(1)
    for trial in range(20):
        mask = rng.random((int(rng.integers(2, 30)), int(rng.integers(2, 30)))) < rng.uniform(0.1, 0.9)
        if not mask.any():
            continue
        sy, sx = rng.uniform(0.2, 3.0, 2)
        pad = np.pad(mask, 1)
        pts = []
        # vertices where the mask changes between vertical / horizontal neighbours (padded pixel coordinates)
        for y, x in zip(*np.nonzero(pad[:-1, :] != pad[1:, :])):
            pts.append(((y + 0.5) * sy, x * sx))
        for y, x in zip(*np.nonzero(pad[:, :-1] != pad[:, 1:])):
            pts.append((y * sy, (x + 0.5) * sx))
        p = np.array(pts)
        d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        _, _, diameter, *_ = shape2d_coefficients(mask, sy, sx)
        assert diameter == pytest.approx(math.sqrt(d2.max()), rel=1e-12), trial


@pytest.mark.parametrize("n,spacing", [(10, (1.0, 1.0)), (17, (0.7, 1.3)), (40, (0.143, 0.143))])
def test_diagonal_line(n, spacing):
    """A collinear, non-axis-aligned ROI: the minor eigenvalue is 0 up to rounding on both sides."""
    mask = np.eye(n, dtype=bool)
    ours = check(np.zeros((n, n)), mask, spacing, context=f"diagonal {n}")
    assert ours["MinorAxisLength"] == pytest.approx(0.0, abs=1e-9)
