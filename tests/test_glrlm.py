"""GLRLM: the matrix by hand, and every feature against PyRadiomics run in this process."""
from __future__ import annotations

import logging
import warnings
import zlib

import numpy as np
import pytest

from chexradi.radiomics.features import glrlm
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import run_feature_class
from conftest import CASE_KINDS, assert_parity, random_case, read_cxr_ellipse, read_pyradiomics_case

NAMES = list(glrlm.FEATURES)

logging.getLogger("radiomics").setLevel(logging.CRITICAL)


def _ref(image, mask, spacing, settings, names=None):
    with warnings.catch_warnings():  # PyRadiomics' numpy warnings on empty matrices
        warnings.simplefilter("ignore", RuntimeWarning)
        return run_feature_class("glrlm", image, mask, spacing=spacing, settings=settings, names=names)


def _ours(image, mask, spacing, settings, names=None):
    with warnings.catch_warnings():  # chexradi itself must not warn
        warnings.simplefilter("error")
        return glrlm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), names or NAMES)


def _both(image, mask, spacing, settings, names=None):
    return _ours(image, mask, spacing, settings, names), _ref(image, mask, spacing, settings, names)


def _as_dict(counts, angles):
    return {tuple(a): counts[:, :, k] for k, a in enumerate(angles.tolist())}


# ----------------------------------------------------------------------------- by hand


def test_feature_names_match_pyradiomics():
    from radiomics.glrlm import RadiomicsGLRLM

    assert glrlm.FEATURES == RadiomicsGLRLM.getFeatureNames()
    assert not any(glrlm.FEATURES.values())


def test_runs_by_hand_every_2d_angle():
    image = np.array([[1, 1, 2],
                      [1, 2, 2]], float)
    roi = roi_from_arrays(image, np.ones_like(image, bool), settings={"binWidth": 1})
    got = _as_dict(*glrlm.matrices(roi))
    # rows: gray level 1, 2; columns: run length 1, 2, 3 (= the longest box side)
    expected = {
        (0, 0, 1): [[1, 1, 0], [1, 1, 0]],   # rows: "1 1|2", "1|2 2"
        (0, 1, 0): [[1, 1, 0], [1, 1, 0]],   # columns: "1 1", "1|2", "2 2"
        (0, 1, 1): [[3, 0, 0], [3, 0, 0]],   # down-right: "1|2", "1|2", "2", "1"
        (0, 1, -1): [[1, 1, 0], [1, 1, 0]],  # down-left: "1", "1 1", "2 2", "2"
    }
    assert set(got) == set(expected)
    for a, want in expected.items():
        np.testing.assert_array_equal(got[a], np.array(want, float), err_msg=f"angle {a}")


def test_documented_5x5_horizontal_matrix():
    image = np.array([[5, 2, 5, 4, 4],
                      [3, 3, 3, 1, 3],
                      [2, 1, 1, 1, 3],
                      [4, 2, 2, 2, 3],
                      [3, 5, 3, 3, 2]], float)
    # The horizontal GLRLM printed in PyRadiomics' GLRLM documentation.
    documented = np.array([[1, 0, 1, 0, 0],
                           [3, 0, 1, 0, 0],
                           [4, 1, 1, 0, 0],
                           [1, 1, 0, 0, 0],
                           [3, 0, 0, 0, 0]], float)
    roi = roi_from_arrays(image, np.ones((5, 5), bool), settings={"binWidth": 1})
    np.testing.assert_array_equal(_as_dict(*glrlm.matrices(roi))[(0, 0, 1)], documented)
    # force2D on a 2-D image: PyRadiomics keeps only the x direction, so the features are those of this matrix.
    roi = roi_from_arrays(image, np.ones((5, 5), bool), settings={"binWidth": 1, "force2D": True})
    nr = documented.sum()
    j = np.arange(1, 6)
    i = np.arange(1, 6)[:, None]
    ours = glrlm.compute(roi, ["ShortRunEmphasis", "LongRunEmphasis", "RunPercentage", "GrayLevelNonUniformity",
                               "LongRunHighGrayLevelEmphasis"])
    assert ours["ShortRunEmphasis"] == pytest.approx(np.sum(documented / j ** 2) / nr, rel=1e-12)
    assert ours["LongRunEmphasis"] == pytest.approx(np.sum(documented * j ** 2) / nr, rel=1e-12)
    assert ours["RunPercentage"] == pytest.approx(nr / 25, rel=1e-12)
    assert ours["GrayLevelNonUniformity"] == pytest.approx(np.sum(documented.sum(1) ** 2) / nr, rel=1e-12)
    assert ours["LongRunHighGrayLevelEmphasis"] == pytest.approx(np.sum(documented * i ** 2 * j ** 2) / nr,
                                                                 rel=1e-12)


def test_angle_without_two_voxels_on_a_line_is_emptied():
    # Box (z=2, y=1, x=2) with ROI voxels (0,0,0) level 1 and (1,0,1) level 2. Only the (1,0,1)
    # diagonal has a line with two ROI voxels; PyRadiomics zeroes the three other angles.
    image = np.array([[[10.0, 0.0]], [[0.0, 20.0]]])
    mask = np.array([[[True, False]], [[False, True]]])
    roi = roi_from_arrays(image, mask, settings={"binWidth": 10})
    got = _as_dict(*glrlm.matrices(roi))
    assert set(got) == {(1, 0, 1), (1, 0, 0), (1, 0, -1), (0, 0, 1)}
    np.testing.assert_array_equal(got[(1, 0, 1)], [[1, 0], [1, 0]])
    for a in [(1, 0, 0), (1, 0, -1), (0, 0, 1)]:
        assert not got[a].any(), a
    ours, ref = _both(image, mask, (2.0, 1.0, 1.0), {"binWidth": 10})
    assert_parity(ours, ref, "emptied angles")


def test_gap_on_a_line_keeps_the_angle():
    # One row "1 . 2": runs of length 1 only, but the line holds two ROI voxels: the angle stays.
    image = np.array([[10.0, 0.0, 20.0]])
    mask = np.array([[True, False, True]])
    roi = roi_from_arrays(image, mask, settings={"binWidth": 10})
    got = _as_dict(*glrlm.matrices(roi))
    np.testing.assert_array_equal(got[(0, 0, 1)], [[1, 0, 0], [1, 0, 0]])
    ours, ref = _both(image, mask, (1.0, 1.0), {"binWidth": 10, "minimumROIDimensions": 1})
    assert_parity(ours, ref, "gap")


def test_unknown_name_and_norm_are_rejected():
    image, mask, spacing = random_case("blob", 0)
    roi = roi_from_arrays(image, mask, spacing=spacing)
    with pytest.raises(ValueError, match="unknown GLRLM feature"):
        glrlm.compute(roi, ["RunEntropy", "ShortRuns"])
    roi = roi_from_arrays(image, mask, spacing=spacing, settings={"weightingNorm": "chebyshev"})
    with pytest.raises(ValueError, match="weightingNorm"):
        glrlm.compute(roi, ["RunEntropy"])


# ----------------------------------------------------------------------------- parity, random cases

SETTINGS_2D = [
    {},
    {"binWidth": 5},
    {"binWidth": 1},
    {"binCount": 16},
    {"distances": [2]},  # ignored by GLRLM, in both engines
    {"weightingNorm": "manhattan"},
    {"weightingNorm": "euclidean", "binWidth": 5},
    {"weightingNorm": "infinity"},
    {"weightingNorm": "no_weighting"},
    {"force2D": True},
    {"force2D": True, "force2Ddimension": 1, "weightingNorm": "infinity"},
]
SETTINGS_3D = SETTINGS_2D[:-2] + [
    {"force2D": True, "force2Ddimension": 0},
    {"force2D": True, "force2Ddimension": 1, "binWidth": 5},
    {"force2D": True, "force2Ddimension": 2, "weightingNorm": "euclidean"},
]


def _ids(settings_list):
    return ["-".join(f"{k}={v}" for k, v in s.items()) or "default" for s in settings_list]


def _run_case(kind, ndim, size, settings, seed):
    image, mask, spacing = random_case(kind, seed, ndim=ndim, size=size)
    settings = dict(settings, minimumROIDimensions=1)  # let PyRadiomics take 1-D ROIs ("line", "small")
    try:
        ref = _ref(image, mask, spacing, settings)
    except RuntimeError as exc:  # no direction fits the box: PyRadiomics' C code refuses, so must we
        assert "angle" in str(exc)
        with pytest.raises(ValueError, match="admits no direction"):
            _ours(image, mask, spacing, settings)
        return
    ours = _ours(image, mask, spacing, settings)
    assert_parity(ours, ref, f"glrlm {kind} {ndim}D size {size} {settings}")


@pytest.mark.parametrize("settings", SETTINGS_2D, ids=_ids(SETTINGS_2D))
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_parity_random_2d(kind, settings):
    _run_case(kind, 2, 24, settings, seed=zlib.crc32(f"{kind}{settings}".encode()) % 1000)


@pytest.mark.parametrize("settings", SETTINGS_3D, ids=_ids(SETTINGS_3D))
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_parity_random_3d(kind, settings):
    _run_case(kind, 3, 15, settings, seed=zlib.crc32(f"{kind}{settings}".encode()) % 1000 + 1)


@pytest.mark.parametrize("size", [5, 9, 40])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", ["blob", "sparse", "border"])
def test_parity_sizes(kind, ndim, size):
    _run_case(kind, ndim, size, {"binWidth": 10}, seed=size)


@pytest.mark.parametrize("seed", range(6))
def test_parity_sparse_thin_volumes(seed):
    # Two-slice sparse ROIs: some through-plane angles have no line with two ROI voxels.
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 40, (2, 7, 8)).round(1)
    mask = rng.random((2, 7, 8)) < 0.08
    mask[0, 0, 0] = mask[1, 6, 7] = True
    ours, ref = _both(image, mask, (3.0, 1.0, 1.0), {"binWidth": 20})
    assert_parity(ours, ref, f"thin sparse volume, seed {seed}")


# ----------------------------------------------------------------------------- parity, real images


BRAIN_SETTINGS = [
    {},
    {"force2D": True},
    {"force2D": True, "force2Ddimension": 1, "binWidth": 10},
    {"weightingNorm": "euclidean"},
    {"binCount": 16},
]


@pytest.mark.parametrize("settings", BRAIN_SETTINGS, ids=_ids(BRAIN_SETTINGS))
def test_parity_brain1(settings):
    image, mask, spacing = read_pyradiomics_case("brain1")
    ours, ref = _both(image, mask, spacing, settings)
    assert_parity(ours, ref, f"brain1 {settings}")


CXR_SETTINGS = [
    {},
    {"binWidth": 5},
    {"weightingNorm": "manhattan"},
    {"force2D": True, "binCount": 16},
]


@pytest.mark.parametrize("settings", CXR_SETTINGS, ids=_ids(CXR_SETTINGS))
def test_parity_real_radiograph(settings):
    image, mask = read_cxr_ellipse(0.42, 0.38, inclusive=False)
    ours, ref = _both(image, mask, (0.5, 0.5), settings)
    assert_parity(ours, ref, f"00000001_000.png {settings}")


def test_parity_subset_of_names():
    image, mask, spacing = random_case("blob", 11, ndim=3, size=12)
    names = ["RunEntropy", "ShortRunLowGrayLevelEmphasis", "RunVariance"]
    ours, ref = _both(image, mask, spacing, {"binWidth": 10}, names=names)
    assert sorted(ours) == sorted(names)
    assert_parity(ours, ref, "subset")
