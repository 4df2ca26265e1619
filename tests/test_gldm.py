"""gldm: parity with PyRadiomics' RadiomicsGLDM (same process) and a hand-counted dependence matrix."""
from __future__ import annotations

import numpy as np
import pytest

from chexradi.radiomics.features import gldm
from chexradi.radiomics.kernels.gldm import gldm_matrix
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import require_pyradiomics, run_feature_class
from conftest import (PARITY_BASE, CASE_KINDS, assert_parity, class_parity, random_case, read_cxr_ellipse,
                      read_pyradiomics_case)

NAMES = [n for n, deprecated in gldm.FEATURES.items() if not deprecated]
DEPRECATED = [n for n, deprecated in gldm.FEATURES.items() if deprecated]


def check(image, mask, spacing=None, settings=None, names=None, context=""):
    return class_parity("gldm", image, mask, spacing, settings, names, context)


BINNINGS = [{}, {"binWidth": 5}, {"binWidth": 1}, {"binCount": 16}]
NEIGHBOURHOODS = [{}, {"gldm_a": 2}, {"distances": [1, 2]}, {"gldm_a": 2, "distances": [1, 2]}]
FORCE2D = [{"force2D": True, "force2Ddimension": 0}, {"force2D": True, "force2Ddimension": 1}]


# ---------------------------------------------------------------------------- metadata
def test_feature_names_match_pyradiomics():
    require_pyradiomics()
    from radiomics import featureextractor

    assert gldm.CLASS_NAME == "gldm"
    assert gldm.FEATURES == featureextractor.getFeatureClasses()["gldm"].getFeatureNames()
    assert sorted(DEPRECATED) == ["DependencePercentage", "GrayLevelNonUniformityNormalized"]


def test_unknown_name_is_rejected():
    image, mask, spacing = random_case("blob", 0, 2)
    with pytest.raises(ValueError, match="unknown GLDM feature"):
        gldm.compute(roi_from_arrays(image, mask, spacing=spacing), ["NoSuchFeature"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_deprecated_features_give_no_value_like_pyradiomics(ndim):
    # PyRadiomics raises DeprecationWarning inside these getters: the names are absent from its output.
    image, mask, spacing = random_case("blob", 2, ndim)
    ours = check(image, mask, spacing, names=DEPRECATED, context="deprecated only")
    assert ours == {}
    ours = check(image, mask, spacing, names=NAMES + DEPRECATED, context="all names")
    assert sorted(ours) == sorted(NAMES)


# ---------------------------------------------------------------------------- random cases
@pytest.mark.parametrize("size", [12, 30])
@pytest.mark.parametrize("binning", BINNINGS, ids=["bw25", "bw5", "bw1", "bc16"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_random_cases(kind, ndim, binning, size):
    image, mask, spacing = random_case(kind, 11 + size, ndim, size)
    check(image, mask, spacing, binning, context=f"{kind} {ndim}D size {size} {binning}")


@pytest.mark.parametrize("binning", [{}, {"binWidth": 5}], ids=["bw25", "bw5"])
@pytest.mark.parametrize("nbh", NEIGHBOURHOODS, ids=["a0d1", "a2d1", "a0d12", "a2d12"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_alpha_and_distances(kind, ndim, nbh, binning):
    image, mask, spacing = random_case(kind, 3, ndim, 20)
    check(image, mask, spacing, {**nbh, **binning}, context=f"{kind} {ndim}D {nbh} {binning}")


@pytest.mark.parametrize("nbh", NEIGHBOURHOODS, ids=["a0d1", "a2d1", "a0d12", "a2d12"])
@pytest.mark.parametrize("force2d", FORCE2D, ids=["f2d0", "f2d1"])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_force2d(kind, force2d, nbh):
    image, mask, spacing = random_case(kind, 5, 3, 24)
    check(image, mask, spacing, {**force2d, **nbh, "binWidth": 10}, context=f"{kind} {force2d} {nbh}")


def test_no_neighbour_fails_like_pyradiomics():
    image, mask, spacing = random_case("line", 1, 3, 12)
    settings = {**PARITY_BASE, "force2D": True, "force2Ddimension": 2}
    with pytest.raises(RuntimeError, match="angle count"):
        run_feature_class("gldm", image, mask, spacing=spacing, settings=settings)
    with pytest.raises(ValueError, match="admits no neighbour"):
        gldm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), NAMES)


def test_fractional_alpha_differs_from_pyradiomics():
    # Known difference: PyRadiomics passes gldm_a to C as an int and raises TypeError for 1.5;
    # chexradi accepts it and, gray levels being integers, gives the result of floor(gldm_a).
    image, mask, spacing = random_case("blob", 4, 2, 24)
    with pytest.raises(TypeError):
        run_feature_class("gldm", image, mask, spacing=spacing, settings={"binWidth": 5, "gldm_a": 1.5})
    ours = gldm.compute(roi_from_arrays(image, mask, spacing=spacing, settings={"binWidth": 5, "gldm_a": 1.5}), NAMES)
    ref = run_feature_class("gldm", image, mask, spacing=spacing, settings={"binWidth": 5, "gldm_a": 1})
    assert_parity(ours, ref, "gldm_a 1.5 vs 1")


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize(
    "settings",
    [{}, {"force2D": True}, {"gldm_a": 2, "distances": [1, 2]}, {"force2D": True, "force2Ddimension": 1, "gldm_a": 2}],
    ids=["3d", "force2d", "a2d12", "force2d1-a2"],
)
def test_brain1(settings):
    image, mask, spacing = read_pyradiomics_case("brain1")
    check(image, mask, spacing, settings, context=f"brain1 {settings}")


@pytest.mark.parametrize("settings", [{}, {"binWidth": 5, "gldm_a": 2, "distances": [1, 2]}], ids=["bw25", "bw5-a2d12"])
def test_real_radiograph(settings):
    image, mask = read_cxr_ellipse()
    check(image, mask, (1.0, 1.0), settings, context=f"00000001_000.png ellipse {settings}")


# ---------------------------------------------------------------------------- hand-counted
#   1 1 2 2     dependent (same level, 8-neighbourhood) neighbours per voxel:
#   1 3 3 2       2 2 2 2
#   4 3 2 1       2 2 2 3
#   4 4 1 1       2 2 1 2
#                 2 2 2 2
HAND = np.array([[1, 1, 2, 2], [1, 3, 3, 2], [4, 3, 2, 1], [4, 4, 1, 1]])


def test_hand_counted_matrix():
    binned = HAND.astype(np.int32)[None]
    mask = np.ones_like(binned, dtype=bool)
    P = gldm_matrix(binned, mask, force2D_dimension=0)
    expected = np.zeros((4, 9))  # 8 angles: 0..8 dependent neighbours
    expected[0, 2] = 6
    expected[1, [1, 2, 3]] = [1, 2, 1]
    expected[2, 2] = 3
    expected[3, 2] = 3
    np.testing.assert_array_equal(P, expected)
    # alpha 1: every 8-neighbour whose level differs by at most 1 counts; check voxel (2,2) (level 2):
    # neighbours 3,3,2,3,1,4,1,1 -> 7 dependent; it is the only level-2 voxel with 7
    P1 = gldm_matrix(binned, mask, alpha=1, force2D_dimension=0)
    assert P1[1, 7] == 1
    assert P1.sum() == 16
    # a masked-out neighbour never counts, whatever alpha
    mask2 = mask.copy()
    mask2[0, 0, 1] = False  # (0,0) loses its level-1 neighbour
    P2 = gldm_matrix(binned, mask2, force2D_dimension=0)
    assert P2[0, 1] == 2 and P2[0, 2] == 3  # (0,0) and (1,0) drop to 1
    assert P2.sum() == 15


def test_hand_counted_features():
    image = HAND.astype(np.float64)
    mask = np.ones(image.shape, bool)
    ours = check(image, mask, settings={"binWidth": 1}, context="hand 4x4")
    # dependence sizes j = dependents + 1: j=2 once, j=3 fourteen times, j=4 once
    assert ours["SmallDependenceEmphasis"] == pytest.approx((1 / 4 + 14 / 9 + 1 / 16) / 16, rel=1e-12)
    assert ours["LargeDependenceEmphasis"] == pytest.approx((4 + 14 * 9 + 16) / 16, rel=1e-12)
    assert ours["DependenceNonUniformity"] == pytest.approx((1 + 196 + 1) / 16, rel=1e-12)
    assert ours["GrayLevelNonUniformity"] == pytest.approx((36 + 16 + 9 + 9) / 16, rel=1e-12)
