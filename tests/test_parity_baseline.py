"""Parity on PyRadiomics' own test cases and baseline configurations.

For every baseline column whose image is in ../shared/data/pyradiomics-cases
(brain1, breast1 and their `_2d`, `_FBN`, `_combined`, `_flatRegion`,
`_normalization`, `_resampling`, `_resegmentation` configurations, and the
shape2D cases), the column's settings are read from its
`diagnostics_Configuration_Settings` row and both engines run in this process
on the same files:

* chexradi (numba) == PyRadiomics run now, within rel 1e-6 / abs 1e-9;
* chexradi == the published baseline value, within rel 1e-6 (the baseline
  CSVs hold full double precision).
"""
from __future__ import annotations

from functools import lru_cache

import pytest

from chexradi.radiomics.extractor import Extractor
from chexradi.radiomics.reference import baseline_columns, baseline_inputs, baseline_settings
from chexradi.radiomics.reference import read_baseline
from conftest import SHARED_DATA, assert_parity, close, shared

CASES_DIR = SHARED_DATA / "pyradiomics-cases"
_baseline = lru_cache(maxsize=None)(read_baseline)

# Published baseline values that today's PyRadiomics (3.1.4, run in this process) no longer
# reproduces. chexradi must still equal PyRadiomics-now exactly; its distance to the published
# value is pinned (relative) so that a change on either side is noticed. See docs/parity.md.
KNOWN_BASELINE_DRIFT = {
    # brain1's 3-D mesh features: the baseline was written by an older PyRadiomics release; 3.1.4
    # (and chexradi's marching cubes, equal to it) differ by up to 8e-4 relative on the same files.
    ("shape", "brain1"): {
        "original_shape_MeshVolume": 2e-4,
        "original_shape_SurfaceArea": 1e-3,
        "original_shape_SurfaceVolumeRatio": 1e-3,
        "original_shape_Sphericity": 1e-3,
    },
}


def baseline(cls: str) -> dict[str, dict[str, str]]:
    return _baseline(CASES_DIR, cls)


PARAMS = baseline_columns(CASES_DIR)


@pytest.mark.slow
@pytest.mark.skipif(not PARAMS, reason=f"PyRadiomics test cases not available under {CASES_DIR}")
@pytest.mark.parametrize("cls,col", PARAMS, ids=[f"{c}-{k}" for c, k in PARAMS])
def test_baseline_column(cls: str, col: str) -> None:
    shared("pyradiomics-cases")
    settings = baseline_settings(CASES_DIR, cls, col)
    image, mask = baseline_inputs(CASES_DIR, cls, col)
    ours = Extractor(settings, featureClass={cls: []}).execute(image, mask)
    ref = Extractor(settings, featureClass={cls: []}, engine="pyradiomics").execute(image, mask)
    assert_parity(ours, ref, f"{cls}/{col} vs PyRadiomics")
    published = {k: float(v) for k, v in baseline(cls)[col].items() if k.startswith("original_")}
    drift = KNOWN_BASELINE_DRIFT.get((cls, col), {})
    for k, bound in drift.items():
        rel = abs(ours[k] - published[k]) / abs(published[k])
        assert 1e-6 < rel < bound, f"{cls}/{col}: known drift of {k} changed: rel {rel:.2e} (bound {bound:.0e})"
    bad = [(k, ours.get(k), v) for k, v in published.items()
           if k in ours and k not in drift and not close(ours[k], v)]
    missing = sorted(set(published) - set(ours))
    assert not missing, f"{cls}/{col}: baseline features chexradi did not compute: {missing}"
    assert not bad, f"{cls}/{col}: differs from the published baseline (name, chexradi, baseline): {bad}"
