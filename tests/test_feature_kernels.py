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
                    fast = mod.compute(roi, list(mod._FUNCS))
                except ValueError:
                    continue
                c = zones.Marginals(*mod.matrix(roi))
                _agree(fast, {n: float(f(c)) for n, f in mod._FUNCS.items()})
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
    assert all(glcm._COMPUTE[n] is glcm._FUNCS[n] for n in kept)
    assert set(gldm._FUNCS.values()) <= set(zones.COMPILED)
    assert set(glszm._FUNCS.values()) - set(zones.COMPILED) == {glszm._zone_percentage}  # its "1 if 0" stays
