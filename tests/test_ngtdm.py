"""ngtdm: parity with PyRadiomics' RadiomicsNGTDM (same process) and a hand-computed NGTDM."""
from __future__ import annotations

import numpy as np
import pytest

from chexradi.radiomics.features import ngtdm
from chexradi.radiomics.kernels.ngtdm import ngtdm_matrix
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import require_pyradiomics, run_feature_class
from conftest import PARITY_BASE, CASE_KINDS, class_parity, random_case, read_cxr_ellipse, read_pyradiomics_case

NAMES = [n for n, deprecated in ngtdm.FEATURES.items() if not deprecated]


def check(image, mask, spacing=None, settings=None, names=None, context=""):
    return class_parity("ngtdm", image, mask, spacing, settings, names, context)


BINNINGS = [{}, {"binWidth": 5}, {"binWidth": 1}, {"binCount": 16}]
FORCE2D = [{"force2D": True, "force2Ddimension": 0}, {"force2D": True, "force2Ddimension": 1}]


# ---------------------------------------------------------------------------- metadata
def test_feature_names_match_pyradiomics():
    require_pyradiomics()
    from radiomics import featureextractor

    assert ngtdm.CLASS_NAME == "ngtdm"
    assert ngtdm.FEATURES == featureextractor.getFeatureClasses()["ngtdm"].getFeatureNames()


def test_unknown_name_is_rejected():
    image, mask, spacing = random_case("blob", 0, 2)
    with pytest.raises(ValueError, match="unknown NGTDM feature"):
        ngtdm.compute(roi_from_arrays(image, mask, spacing=spacing), ["NoSuchFeature"])


# ---------------------------------------------------------------------------- random cases
@pytest.mark.parametrize("size", [12, 30])
@pytest.mark.parametrize("binning", BINNINGS, ids=["bw25", "bw5", "bw1", "bc16"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_random_cases(kind, ndim, binning, size):
    image, mask, spacing = random_case(kind, 11 + size, ndim, size)
    check(image, mask, spacing, binning, context=f"{kind} {ndim}D size {size} {binning}")


@pytest.mark.parametrize("binning", [{}, {"binWidth": 5}], ids=["bw25", "bw5"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_distances_1_2(kind, ndim, binning):
    image, mask, spacing = random_case(kind, 3, ndim, 20)
    check(image, mask, spacing, {"distances": [1, 2], **binning}, context=f"{kind} {ndim}D d[1,2] {binning}")


@pytest.mark.parametrize("distances", [[1], [1, 2]], ids=["d1", "d12"])
@pytest.mark.parametrize("force2d", FORCE2D, ids=["f2d0", "f2d1"])
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_force2d(kind, force2d, distances):
    image, mask, spacing = random_case(kind, 5, 3, 24)
    check(image, mask, spacing, {**force2d, "distances": distances, "binWidth": 10}, context=f"{kind} {force2d}")


def test_homogeneous_roi_special_values():
    # one gray level: sum p_i s_i = 0 -> Coarseness 1e6; N_gp = 1 -> Contrast 0; Busyness, Strength 0
    image, mask, spacing = random_case("flat", 0, 2)
    ours = check(image, mask, spacing, context="flat")
    assert ours == {"Coarseness": 1e6, "Contrast": 0.0, "Busyness": 0.0, "Complexity": 0.0, "Strength": 0.0}


def test_no_neighbour_fails_like_pyradiomics():
    image, mask, spacing = random_case("line", 1, 3, 12)
    settings = {**PARITY_BASE, "force2D": True, "force2Ddimension": 2}
    with pytest.raises(RuntimeError, match="angle count"):
        run_feature_class("ngtdm", image, mask, spacing=spacing, settings=settings)
    with pytest.raises(ValueError, match="admits no neighbour"):
        ngtdm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), NAMES)


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize(
    "settings",
    [{}, {"force2D": True}, {"distances": [1, 2]}, {"force2D": True, "force2Ddimension": 1}],
    ids=["3d", "force2d", "d12", "force2d1"],
)
def test_brain1(settings):
    image, mask, spacing = read_pyradiomics_case("brain1")
    check(image, mask, spacing, settings, context=f"brain1 {settings}")


@pytest.mark.parametrize("settings", [{}, {"binWidth": 5, "distances": [1, 2]}], ids=["bw25", "bw5-d12"])
def test_real_radiograph(settings):
    image, mask = read_cxr_ellipse()
    check(image, mask, (1.0, 1.0), settings, context=f"00000001_000.png ellipse {settings}")


# ---------------------------------------------------------------------------- hand-computed
# ROI: the 3x3 block below (top-left of a 5x5 image) plus an isolated level-3 voxel at (4,4).
#   1 2 1    corners: neighbours 2,2,3 -> |1 - 7/3| = 4/3        (n_1 = 4, s_1 = 16/3)
#   2 3 2    edges:   neighbours 1,1,2,3,2 -> |2 - 9/5| = 1/5    (n_2 = 4, s_2 = 4/5)
#   1 2 1    centre:  neighbours 1,1,1,1,2,2,2,2 -> |3 - 3/2|    (n_3 = 2, s_3 = 3/2)
# The isolated voxel has no ROI neighbour: it counts in n_3 with a difference of 0.
def hand_case():
    image = np.zeros((5, 5))
    image[:3, :3] = [[1, 2, 1], [2, 3, 2], [1, 2, 1]]
    image[4, 4] = 3
    mask = np.zeros((5, 5), bool)
    mask[:3, :3] = True
    mask[4, 4] = True
    return image, mask


def test_hand_computed_matrix():
    image, mask = hand_case()
    n, s = ngtdm_matrix(image.astype(np.int32)[None], mask[None], force2D_dimension=0)
    np.testing.assert_array_equal(n, [4, 4, 2])
    np.testing.assert_allclose(s, [16 / 3, 4 / 5, 3 / 2], rtol=1e-15)


def test_hand_computed_features():
    image, mask = hand_case()
    ours = check(image, mask, settings={"binWidth": 1}, context="hand 5x5")
    p = np.array([0.4, 0.4, 0.2])
    s = np.array([16 / 3, 4 / 5, 3 / 2])
    i = np.array([1.0, 2.0, 3.0])
    assert ours["Coarseness"] == pytest.approx(1 / np.sum(p * s), rel=1e-12)
    contrast = sum(p[a] * p[b] * (i[a] - i[b]) ** 2 for a in range(3) for b in range(3)) / (3 * 2) * s.sum() / 10
    assert ours["Contrast"] == pytest.approx(contrast, rel=1e-12)
    strength = sum((p[a] + p[b]) * (i[a] - i[b]) ** 2 for a in range(3) for b in range(3)) / s.sum()
    assert ours["Strength"] == pytest.approx(strength, rel=1e-12)


def test_mean_uses_voxels_in_mask_only():
    # masking out the centre of the block changes the corners' neighbourhood mean to (2+2)/2
    image, mask = hand_case()
    mask[1, 1] = False
    n, s = ngtdm_matrix(image.astype(np.int32)[None], mask[None], force2D_dimension=0)
    np.testing.assert_array_equal(n, [4, 4, 1])
    # corners: |1 - 2| = 1 each; edges: neighbours 1,1,2,2 (centre gone) -> |2 - 6/4| = 1/2 each
    np.testing.assert_allclose(s, [4.0, 2.0, 0.0], rtol=1e-15)
