"""GLCM: the matrix by hand, and every feature against PyRadiomics run in this process."""
from __future__ import annotations

import logging
import warnings
import zlib

import numpy as np
import pytest

from chexradi.radiomics.features import glcm
from chexradi.radiomics.kernels.glcm import mcc_q
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import run_feature_class
from conftest import CASE_KINDS, assert_parity, random_case, read_cxr_ellipse, read_pyradiomics_case

NAMES = [n for n, dep in glcm.FEATURES.items() if not dep]
DEPRECATED = [n for n, dep in glcm.FEATURES.items() if dep]

logging.getLogger("radiomics").setLevel(logging.CRITICAL)  # PyRadiomics' per-feature warnings


def _ref(image, mask, spacing, settings, names=None):
    with warnings.catch_warnings():  # PyRadiomics' numpy warnings on empty matrices
        warnings.simplefilter("ignore", RuntimeWarning)
        return run_feature_class("glcm", image, mask, spacing=spacing, settings=settings, names=names)


def _ours(image, mask, spacing, settings, names=None):
    with warnings.catch_warnings():  # chexradi itself must not warn
        warnings.simplefilter("error")
        return glcm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), names or NAMES)


def _both(image, mask, spacing, settings, names=None):
    return _ours(image, mask, spacing, settings, names), _ref(image, mask, spacing, settings, names)


# ----------------------------------------------------------------------------- by hand


def test_feature_names_and_deprecated_flags_match_pyradiomics():
    from radiomics.glcm import RadiomicsGLCM

    assert glcm.FEATURES == RadiomicsGLCM.getFeatureNames()
    assert sorted(DEPRECATED) == ["Dissimilarity", "Homogeneity1", "Homogeneity2", "SumVariance"]


def test_counts_by_hand_every_2d_angle():
    # binWidth 1 keeps the gray levels 1, 2, 3 as they are.
    image = np.array([[1, 2, 2],
                      [3, 1, 2]], float)
    roi = roi_from_arrays(image, np.ones_like(image, bool), settings={"binWidth": 1})
    counts, angles = glcm.matrices(roi)
    got = {tuple(a): counts[:, :, k] for k, a in enumerate(angles.tolist())}
    expected = {
        (0, 0, 1): {(1, 2): 2, (2, 2): 1, (3, 1): 1},   # (0,0)->(0,1): 1->2, 2->2; 3->1, 1->2
        (0, 1, 0): {(1, 3): 1, (2, 1): 1, (2, 2): 1},   # columns read downwards
        (0, 1, 1): {(1, 1): 1, (2, 2): 1},              # down-right diagonal
        (0, 1, -1): {(2, 3): 1, (2, 1): 1},             # down-left diagonal
    }
    assert set(got) == set(expected)
    for a, cells in expected.items():
        want = np.zeros((3, 3))
        for (i, j), n in cells.items():
            want[i - 1, j - 1] = n
        np.testing.assert_array_equal(got[a], want, err_msg=f"angle {a}")


PYRAD_DOC_IMAGE = np.array([[1, 2, 5, 2, 3],
                            [3, 2, 1, 3, 1],
                            [1, 3, 5, 5, 2],
                            [1, 1, 1, 1, 2],
                            [1, 2, 4, 3, 5]], float)
# The symmetrical horizontal GLCM printed in PyRadiomics' GLCM documentation.
PYRAD_DOC_P0 = np.array([[6, 4, 3, 0, 0],
                         [4, 0, 2, 1, 3],
                         [3, 2, 0, 1, 2],
                         [0, 1, 1, 0, 0],
                         [0, 3, 2, 0, 2]], float)


def test_documented_5x5_symmetrical_matrix_and_features():
    roi = roi_from_arrays(PYRAD_DOC_IMAGE, np.ones((5, 5), bool), settings={"binWidth": 1})
    counts, angles = glcm.matrices(roi)
    k = angles.tolist().index([0, 0, 1])
    np.testing.assert_array_equal(counts[:, :, k] + counts[:, :, k].T, PYRAD_DOC_P0)
    # force2D on a 2-D image leaves (as in PyRadiomics) only the x direction: features of that one matrix.
    roi = roi_from_arrays(PYRAD_DOC_IMAGE, np.ones((5, 5), bool), settings={"binWidth": 1, "force2D": True})
    np.testing.assert_array_equal(glcm.probabilities(roi)[0, :, :, 0], PYRAD_DOC_P0 / PYRAD_DOC_P0.sum())
    p = PYRAD_DOC_P0 / PYRAD_DOC_P0.sum()
    i, j = np.indices(p.shape) + 1
    ours = glcm.compute(roi, ["Contrast", "JointEnergy", "JointAverage", "Id", "MaximumProbability"])
    assert ours["Contrast"] == pytest.approx(np.sum((i - j) ** 2 * p), rel=1e-12)
    assert ours["JointEnergy"] == pytest.approx(np.sum(p ** 2), rel=1e-12)
    assert ours["JointAverage"] == pytest.approx(np.sum(i * p), rel=1e-12)
    assert ours["Id"] == pytest.approx(np.sum(p / (1 + np.abs(i - j))), rel=1e-12)
    assert ours["MaximumProbability"] == pytest.approx(6 / PYRAD_DOC_P0.sum(), rel=1e-12)


def test_mcc_q_is_bit_identical_to_pyradiomics_expression():
    rng = np.random.default_rng(3)
    p = rng.random((1, 7, 7, 4))
    p[0, 2, :, 1] = 0
    p /= p.sum((1, 2), keepdims=True)
    px = p.sum(2, keepdims=True)
    py = p.sum(1, keepdims=True)
    eps = np.spacing(1)
    q = (p[:, :, None, 0, :] * p[:, None, :, 0, :]) / (px[:, :, None, 0, :] * py[:, None, :, 0, :] + eps)
    for gl in range(1, 7):
        q += (p[:, :, None, gl, :] * p[:, None, :, gl, :]) / (px[:, :, None, 0, :] * py[:, None, :, gl, :] + eps)
    ours = mcc_q(np.ascontiguousarray(p[0]), np.ascontiguousarray(px[0, :, 0, :]),
                 np.ascontiguousarray(py[0, 0, :, :]), eps)
    assert np.array_equal(ours, q[0].transpose(2, 0, 1))


def test_unknown_name_and_norm_are_rejected():
    image, mask, spacing = random_case("blob", 0)
    roi = roi_from_arrays(image, mask, spacing=spacing)
    with pytest.raises(ValueError, match="unknown GLCM feature"):
        glcm.compute(roi, ["Contrast", "Contrasts"])
    roi = roi_from_arrays(image, mask, spacing=spacing, settings={"weightingNorm": "L2"})
    with pytest.raises(ValueError, match="weightingNorm"):
        glcm.compute(roi, ["Contrast"])


# ----------------------------------------------------------------------------- parity, random cases

SETTINGS_2D = [
    {},
    {"binWidth": 5},
    {"binWidth": 1},
    {"binCount": 16},
    {"distances": [1, 2]},
    {"distances": [2]},
    {"symmetricalGLCM": False},
    {"weightingNorm": "manhattan"},
    {"weightingNorm": "euclidean"},
    {"weightingNorm": "infinity", "binWidth": 5},
    {"weightingNorm": "no_weighting"},
    {"force2D": True},
    {"force2D": True, "force2Ddimension": 1, "distances": [1, 2]},
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
    except RuntimeError as exc:  # no angle fits the box: PyRadiomics' C code refuses, so must we
        assert "angle" in str(exc)
        with pytest.raises(ValueError, match="no neighbour offset"):
            glcm.compute(roi_from_arrays(image, mask, spacing=spacing, settings=settings), NAMES)
        return
    ours = _ours(image, mask, spacing, settings)
    assert_parity(ours, ref, f"glcm {kind} {ndim}D size {size} {settings}")


@pytest.mark.parametrize("settings", SETTINGS_2D, ids=_ids(SETTINGS_2D))
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_parity_random_2d(kind, settings):
    _run_case(kind, 2, 24, settings, seed=zlib.crc32(f"{kind}{settings}".encode()) % 1000)


@pytest.mark.slow
@pytest.mark.parametrize("settings", SETTINGS_3D, ids=_ids(SETTINGS_3D))
@pytest.mark.parametrize("kind", CASE_KINDS)
def test_parity_random_3d(kind, settings):
    _run_case(kind, 3, 15, settings, seed=zlib.crc32(f"{kind}{settings}".encode()) % 1000 + 1)


@pytest.mark.parametrize("size", [5, 9, 40])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", ["blob", "sparse", "border"])
def test_parity_sizes(kind, ndim, size):
    _run_case(kind, ndim, size, {"binWidth": 10}, seed=size)


def test_parity_no_angle_fits_raises_like_pyradiomics():
    image, mask, spacing = random_case("small", 0)  # two voxels side by side: box 1 x 2
    with pytest.raises(RuntimeError):
        run_feature_class("glcm", image, mask, spacing=spacing, settings={"distances": [2], "minimumROIDimensions": 1})
    with pytest.raises(ValueError, match="no neighbour offset"):
        glcm.compute(roi_from_arrays(image, mask, spacing=spacing, settings={"distances": [2]}), NAMES)


@pytest.mark.parametrize("weighting", [None, "euclidean"])
def test_parity_every_angle_empty(weighting):
    # Isolated voxels: no pair at distance 1 along any angle. Unweighted, every angle is dropped;
    # weighted, the one merged matrix is empty. PyRadiomics gives NaN (MCC: NaN, or 1 if flat).
    image = np.arange(100, dtype=float).reshape(10, 10) * 7
    mask = np.zeros((10, 10), bool)
    mask[::3, ::3] = True
    settings = {} if weighting is None else {"weightingNorm": weighting}
    ours, ref = _both(image, mask, (1.0, 1.0), settings)
    assert_parity(ours, ref, f"isolated voxels, {weighting}")
    assert np.isnan(ours["Contrast"])


def test_parity_single_empty_angle_force2d():
    # 2-D input + force2D: PyRadiomics only looks along x; vertical-only neighbours leave it empty.
    image = np.arange(30, dtype=float).reshape(6, 5) * 11
    mask = np.zeros((6, 5), bool)
    mask[:, 1] = mask[:, 3] = True  # the box spans x, so the x angle exists, but holds no pair
    ours, ref = _both(image, mask, (1.0, 1.0), {"force2D": True, "minimumROIDimensions": 1})
    assert_parity(ours, ref, "single empty angle")
    assert np.isnan(ours["JointEntropy"])


@pytest.mark.parametrize("kind", ["blob", "flat"])
def test_parity_deprecated_names_requested(kind):
    # PyRadiomics calculates no value for deprecated features even when named; neither do we.
    image, mask, spacing = random_case(kind, 5, ndim=3, size=12)
    names = list(glcm.FEATURES)
    ours, ref = _both(image, mask, spacing, {}, names=names)
    assert not set(DEPRECATED) & set(ref), "PyRadiomics now returns deprecated GLCM features"
    assert_parity(ours, ref, f"deprecated requested, {kind}")


# ----------------------------------------------------------------------------- parity, real images


BRAIN_SETTINGS = [
    {},
    {"force2D": True},
    {"force2D": True, "force2Ddimension": 1, "binWidth": 10},
    {"distances": [1, 2], "weightingNorm": "manhattan"},
    {"binCount": 16, "symmetricalGLCM": False},
]


@pytest.mark.parametrize("settings", BRAIN_SETTINGS, ids=_ids(BRAIN_SETTINGS))
def test_parity_brain1(settings):
    image, mask, spacing = read_pyradiomics_case("brain1")
    ours, ref = _both(image, mask, spacing, settings)
    assert_parity(ours, ref, f"brain1 {settings}")


CXR_SETTINGS = [
    {},
    {"binWidth": 5, "distances": [1, 2]},
    {"weightingNorm": "infinity"},
    {"force2D": True, "binCount": 16},
]


@pytest.mark.parametrize("settings", CXR_SETTINGS, ids=_ids(CXR_SETTINGS))
def test_parity_real_radiograph(settings):
    image, mask = read_cxr_ellipse(0.42, 0.38, inclusive=False)
    ours, ref = _both(image, mask, (0.5, 0.5), settings)
    assert_parity(ours, ref, f"00000001_000.png {settings}")


def test_parity_subset_of_names():
    image, mask, spacing = random_case("blob", 11, ndim=3, size=12)
    names = ["MCC", "Imc2", "Dissimilarity", "Correlation"]
    ours, ref = _both(image, mask, spacing, {"binWidth": 10}, names=names)
    assert sorted(ours) == ["Correlation", "Imc2", "MCC"]
    assert_parity(ours, ref, "subset")
