"""The compiled GLCM, GLRLM and GLSZM/GLDM feature passes against the numpy definitions they replace.

``glcm.compute`` takes 17 threshold-free features from one compiled pass, ``glrlm.compute``
all 16, and GLSZM/GLDM the 15 features they share (``zones.compiled``); the numpy functions
(``_FUNCS``) are PyRadiomics' formulas term for term. Both must
agree to rounding on every kind of ROI, and the threshold-sensitive GLCM features must still
come from numpy. Parity with PyRadiomics itself is in test_glcm.py, test_glrlm.py and
test_fuzz.py.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import CASE_KINDS, random_case

from chexradi.radiomics.features import glcm, gldm, glrlm, glszm, zones
from chexradi.radiomics.kernels.glcm import PLAIN_FEATURES
from chexradi.radiomics.kernels.glrlm import GLRLM_FEATURES
from chexradi.radiomics.preprocess import roi_from_arrays

SETTINGS = [{"binWidth": 25}, {"binWidth": 3}, {"binCount": 64, "symmetricalGLCM": False},
            {"binWidth": 10, "weightingNorm": "euclidean"}, {"binWidth": 10, "weightingNorm": "no_weighting"},
            {"binWidth": 10, "distances": [1, 2]}]


def _agree(fast: dict, slow: dict) -> None:
    assert sorted(fast) == sorted(slow)
    for k, a in fast.items():
        b = slow[k]
        if math.isnan(b):
            assert math.isnan(a), (k, a, b)
        else:
            assert abs(a - b) <= 1e-12 * max(abs(a), abs(b)) + 1e-300, (k, a, b)


@pytest.mark.parametrize("kind", CASE_KINDS)
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("k", range(len(SETTINGS)))
def test_compiled_passes_equal_numpy_definitions(kind: str, ndim: int, k: int):
    for seed in range(3):
        image, mask, spacing = random_case(kind, seed + 10 * k, ndim=ndim, size=16)
        roi = roi_from_arrays(image, mask, spacing=spacing, settings=dict(SETTINGS[k]))
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fast = glcm.compute(roi, list(glcm._FUNCS))
            except ValueError:  # no GLCM angle fits the box: both paths refuse
                fast = None
            if fast is not None:
                c = glcm._Coefficients(roi)
                _agree(fast, {n: float(np.squeeze(f(c)).real) for n, f in glcm._FUNCS.items()})
            for mod in (glszm, gldm):
                try:
                    fast = mod.compute(roi, list(mod.FUNCS))
                except ValueError:
                    continue
                c = zones.Marginals(*mod.matrix(roi))
                _agree(fast, {n: float(f(c)) for n, f in mod.FUNCS.items()})
            try:
                fast = glrlm.compute(roi, list(glrlm._FUNCS))
            except ValueError:
                continue
            c = glrlm._Coefficients(roi)
            _agree(fast, {n: float(np.squeeze(f(c))) for n, f in glrlm._FUNCS.items()})


def test_which_features_are_compiled():
    assert set(GLRLM_FEATURES) == set(glrlm._FUNCS)
    assert set(PLAIN_FEATURES) < set(glcm._FUNCS)
    # those that test a threshold or cancel keep PyRadiomics' numpy reductions, to the bit
    kept = set(glcm._FUNCS) - set(PLAIN_FEATURES)
    assert kept == {"Correlation", "Imc1", "Imc2", "MCC", "ClusterShade", "JointEntropy", "JointAverage"}
    assert all(glcm._COMPUTE[n] is glcm._FUNCS[n] for n in kept - {"MCC"})
    assert glcm._COMPUTE["MCC"] is glcm._mcc_symmetric  # falls back to glcm._mcc near 0 (tested below)
    assert set(gldm.FUNCS.values()) <= set(zones.COMPILED)
    assert set(glszm.FUNCS.values()) - set(zones.COMPILED) == {glszm._zone_percentage}  # its "1 if 0" stays


def _mcc_both(roi, monkeypatch) -> tuple[float, float, int]:
    """(symmetric path, PyRadiomics' eigvals path, how often the symmetric path fell back)."""
    calls = []
    reference = glcm._mcc

    def counted(c, q=None):
        calls.append(1)
        return reference(c, q)

    monkeypatch.setattr(glcm, "_mcc", counted)
    c = glcm._Coefficients(roi)
    with np.errstate(divide="ignore", invalid="ignore"):
        fast = float(np.squeeze(glcm._mcc_symmetric(c)).real)
        n_fallback = len(calls)
        slow = float(np.squeeze(reference(c)).real)
    return fast, slow, n_fallback


@pytest.mark.parametrize("settings", [{"binWidth": 8}, {"binWidth": 3, "symmetricalGLCM": False},
                                      {"binWidth": 8, "weightingNorm": "manhattan"}])
def test_mcc_symmetric_eigenproblem_gives_pyradiomics_eigenvalues(settings, monkeypatch):
    """A textured 2-D ROI with ~30 gray levels: the symmetric path is taken (no fallback) and equals
    numpy.linalg.eigvals on Q to rounding; the general routine's first eigenvalue is 1 (a check that Q is
    the matrix we think), and its second is the one whose root is MCC."""
    rng = np.random.default_rng(3)
    image = np.cumsum(rng.normal(0, 6, (60, 60)), axis=1) + 128
    mask = np.zeros((60, 60), np.uint8)
    mask[5:55, 8:50] = 1
    roi = roi_from_arrays(image, mask, spacing=(1.0, 1.0), settings=dict(settings))
    fast, slow, n_fallback = _mcc_both(roi, monkeypatch)
    assert n_fallback == 0
    assert 0.05 < slow < 1.0
    assert abs(fast - slow) <= 1e-13 * slow
    c = glcm._Coefficients(roi)
    q = glcm.mcc_q(np.ascontiguousarray(c.P[0]), np.ascontiguousarray(c.px[0, :, 0, :]),
                   np.ascontiguousarray(c.py[0, 0, :, :]), glcm._EPS)
    ev = np.sort(np.linalg.eigvals(q).real, axis=1)
    assert np.allclose(ev[:, -1], 1.0, atol=1e-12)
    assert abs(np.mean(np.sqrt(ev[:, -2])) - slow) <= 1e-12


def test_mcc_falls_back_where_pyradiomics_rounding_decides(monkeypatch):
    """Where the second eigenvalue at some angle is 0 in exact arithmetic (this 4 x 5 binary image; eigvals
    gives 5.6e-17 there), the symmetric path hands over to eigvals, so the result is PyRadiomics' to the bit."""
    image = np.array([[9, 9, 9, 9, 1], [1, 1, 9, 1, 1], [1, 1, 9, 9, 1], [9, 9, 9, 1, 1]], dtype=float)
    mask = np.ones_like(image, dtype=np.uint8)
    roi = roi_from_arrays(image, mask, spacing=(1.0, 1.0), settings={"binWidth": 4})
    c = glcm._Coefficients(roi)
    q = glcm.mcc_q(np.ascontiguousarray(c.P[0]), np.ascontiguousarray(c.px[0, :, 0, :]),
                   np.ascontiguousarray(c.py[0, 0, :, :]), glcm._EPS)
    assert np.min(np.abs(np.sort(np.linalg.eigvals(q).real, axis=1)[:, -2])) < 1e-15
    fast, slow, n_fallback = _mcc_both(roi, monkeypatch)
    assert n_fallback == 1
    assert fast == slow and 0.1 < fast < 0.2


def test_mcc_level_without_pair_at_an_angle(monkeypatch):
    """Without symmetricalGLCM a level found only in the last column has no pair at the angle pointing
    right: a zero row and column in Q, a zero eigenvalue. The symmetric path keeps it (no fallback)."""
    rng = np.random.default_rng(5)
    image = np.cumsum(rng.normal(0, 4, (40, 40)), axis=1) + 100
    image[0, -1] = 400  # a level of its own, in the top-right corner
    mask = np.ones_like(image, dtype=np.uint8)
    roi = roi_from_arrays(image, mask, spacing=(1.0, 1.0), settings={"binWidth": 25, "symmetricalGLCM": False})
    c = glcm._Coefficients(roi)
    assert np.any(c.px[0, :, 0, :] == 0)
    fast, slow, n_fallback = _mcc_both(roi, monkeypatch)
    assert n_fallback == 0
    assert abs(fast - slow) <= 1e-13 * slow
