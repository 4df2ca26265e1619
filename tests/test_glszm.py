"""glszm: parity with PyRadiomics' RadiomicsGLSZM (same process) and a hand-counted zone matrix."""
from __future__ import annotations

import numpy as np
import pytest

from chexradi.radiomics.features import glszm
from chexradi.radiomics.kernels.glszm import glszm_matrix
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import require_pyradiomics, run_feature_class
from conftest import PARITY_BASE, CASE_KINDS, class_parity, random_case, read_cxr_ellipse, read_pyradiomics_case

NAMES = [n for n, deprecated in glszm.FEATURES.items() if not deprecated]


def check(image, mask, spacing=None, settings=None, names=None, context=""):
    return class_parity("glszm", image, mask, spacing, settings, names, context)


BINNINGS = [{}, {"binWidth": 5}, {"binWidth": 1}, {"binCount": 16}]
FORCE2D = [{"force2D": True, "force2Ddimension": 0}, {"force2D": True, "force2Ddimension": 1}]


# ---------------------------------------------------------------------------- metadata
def test_feature_names_match_pyradiomics():
    require_pyradiomics()
    from radiomics import featureextractor

    assert glszm.CLASS_NAME == "glszm"
    assert glszm.FEATURES == featureextractor.getFeatureClasses()["glszm"].getFeatureNames()


def test_unknown_name_is_rejected():
    image, mask, spacing = random_case("blob", 0, 2)
    with pytest.raises(ValueError, match="unknown GLSZM feature"):
        glszm.compute(roi_from_arrays(image, mask, spacing=spacing), ["NoSuchFeature"])


# ---------------------------------------------------------------------------- random cases
@pytest.mark.parametrize("size", [12, 30])
@pytest.mark.parametrize("binning", BINNINGS, ids=["bw25", "bw5", "bw1", "bc16"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_random_cases(kind, ndim, binning, size):
    image, mask, spacing = random_case(kind, 11 + size, ndim, size)
    check(image, mask, spacing, binning, context=f"{kind} {ndim}D size {size} {binning}")


@pytest.mark.parametrize("binning", [{}, {"binWidth": 5}], ids=["bw25", "bw5"])
@pytest.mark.parametrize("force2d", FORCE2D, ids=["f2d0", "f2d1"])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_force2d(kind, force2d, binning):
    image, mask, spacing = random_case(kind, 5, 3, 24)
    check(image, mask, spacing, {**force2d, **binning}, context=f"{kind} {force2d} {binning}")


@pytest.mark.parametrize("ndim", [2, 3])
def test_distances_setting_is_ignored(ndim):
    # PyRadiomics builds GLSZM angles with distance 1 whatever `distances` says
    image, mask, spacing = random_case("blob", 8, ndim, 20)
    ours = check(image, mask, spacing, {"distances": [2, 3]}, context="distances [2, 3]")
    assert ours == check(image, mask, spacing, context="default distances")


def test_no_neighbour_fails_like_pyradiomics():
    # a line along x with force2D in the (z, y) plane: no in-plane angle exists
    image, mask, spacing = random_case("line", 1, 3, 12)
    settings = {**PARITY_BASE, "force2D": True, "force2Ddimension": 2}
    with pytest.raises(RuntimeError, match="angle count"):
        run_feature_class("glszm", image, mask, spacing=spacing, settings=settings)
    with pytest.raises(ValueError, match="admits no neighbour"):
        glszm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), NAMES)


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize("settings", [{}, {"force2D": True}, {"binWidth": 10}], ids=["3d", "force2d", "bw10"])
def test_brain1(settings):
    image, mask, spacing = read_pyradiomics_case("brain1")
    check(image, mask, spacing, settings, context=f"brain1 {settings}")


@pytest.mark.parametrize("settings", [{}, {"binWidth": 5}], ids=["bw25", "bw5"])
def test_real_radiograph(settings):
    image, mask = read_cxr_ellipse()
    check(image, mask, (1.0, 1.0), settings, context=f"00000001_000.png ellipse {settings}")


# ---------------------------------------------------------------------------- hand-counted
# 8-connected zones (the gray-level-2 zone only joins through the diagonal (1,3)-(2,2)):
#   1 1 2 2     level 1: {(0,0),(0,1),(1,0)} size 3, {(2,3),(3,2),(3,3)} size 3
#   1 3 3 2     level 2: {(0,2),(0,3),(1,3),(2,2)} size 4
#   4 3 2 1     level 3: {(1,1),(1,2),(2,1)} size 3
#   4 4 1 1     level 4: {(2,0),(3,0),(3,1)} size 3
HAND = np.array([[1, 1, 2, 2], [1, 3, 3, 2], [4, 3, 2, 1], [4, 4, 1, 1]])


def test_hand_counted_matrix_2d():
    binned = HAND.astype(np.int32)[None]
    mask = np.ones_like(binned, dtype=bool)
    P, sizes = glszm_matrix(binned, mask, 0)
    np.testing.assert_array_equal(sizes, [3, 4])
    np.testing.assert_array_equal(P, [[2, 0], [0, 1], [1, 0], [1, 0]])


def test_hand_counted_features_2d():
    # binWidth 1 on values 1..4 gives bins 1..4 (edges anchored at 0)
    image = HAND.astype(np.float64)
    mask = np.ones(image.shape, bool)
    ours = check(image, mask, settings={"binWidth": 1}, context="hand 4x4")
    nz, np_ = 5.0, 16.0
    assert ours["ZonePercentage"] == pytest.approx(nz / np_, rel=1e-12)
    assert ours["SmallAreaEmphasis"] == pytest.approx((4 / 9 + 1 / 16) / nz, rel=1e-12)
    assert ours["LargeAreaEmphasis"] == pytest.approx((4 * 9 + 16) / nz, rel=1e-12)
    assert ours["GrayLevelNonUniformity"] == pytest.approx((4 + 1 + 1 + 1) / nz, rel=1e-12)
    assert ours["SizeZoneNonUniformity"] == pytest.approx((16 + 1) / nz, rel=1e-12)


def test_hand_counted_connectivity_3d_and_force2d():
    # level 1 on the two ends of a body diagonal of a 2x2x2 cube, level 2 elsewhere
    binned = np.full((2, 2, 2), 2, np.int32)
    binned[0, 0, 0] = binned[1, 1, 1] = 1
    mask = np.ones(binned.shape, bool)
    P, sizes = glszm_matrix(binned, mask, None)  # 26-connected: one zone per level
    np.testing.assert_array_equal(sizes, [2, 6])
    np.testing.assert_array_equal(P, [[1, 0], [0, 1]])
    for axis in (0, 1, 2):  # in-plane only: every slice has one 1-voxel and one 3-voxel zone
        P, sizes = glszm_matrix(binned, mask, axis)
        np.testing.assert_array_equal(sizes, [1, 3])
        np.testing.assert_array_equal(P, [[2, 0], [0, 2]])


def test_zone_outside_mask_not_joined():
    # two level-1 voxels joined only through a level-1 voxel outside the mask form two zones
    binned = np.array([[[1, 1, 1]]], np.int32)
    mask = np.array([[[True, False, True]]])
    P, sizes = glszm_matrix(binned, mask, 0)
    np.testing.assert_array_equal(sizes, [1])
    np.testing.assert_array_equal(P, [[2]])
