"""chexradi.cam.masks: heatmap -> binary mask and ChestX-ray14 boxes, against hand computations."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage
from scipy.ndimage import gaussian_filter
from skimage.filters import threshold_otsu

import chexradi
from chexradi.cam.masks import (THRESHOLD_METHODS, Box, MaskWarning, heatmap_to_mask,
                                mask_to_boxes, threshold_value)

ROWS, COLS = 64, 80


def bumps() -> np.ndarray:
    """Strong narrow bump A (height 1, sigma 5, at row 20 col 20) and a weaker, wider bump B
    (height 0.8, sigma 12, at row 44 col 60), shifted so that the minimum is exactly 0."""
    r, c = np.mgrid[:ROWS, :COLS].astype(float)
    h = (np.exp(-((r - 20) ** 2 + (c - 20) ** 2) / (2 * 5.0 ** 2))
         + 0.8 * np.exp(-((r - 44) ** 2 + (c - 60) ** 2) / (2 * 12.0 ** 2)))
    return h - h.min()


# Half maximum: A keeps offsets d^2 <= 50 ln 2 = 34.7 (|dr|, |dc| <= 5); B keeps
# d^2 <= 288 ln 1.6 = 135.4 (|dr|, |dc| <= 11).
BOX_A = (15, 15, 11, 11)
BOX_B = (49, 33, 23, 23)


def test_fraction_strongest_keeps_the_half_max_region_of_the_strongest_bump():
    h = bumps()
    res = heatmap_to_mask(h)
    assert res.threshold == 0.5 * h.max()
    expected = (h >= 0.5 * h.max()) & (np.arange(COLS)[None, :] < 40)   # bump A only
    assert_array_equal(res.mask, expected.astype(np.uint8))
    assert res.mask.dtype == np.uint8 and res.mask.shape == h.shape
    assert res.n_components == 2 and res.ok and not res.empty and not res.full
    assert [b.as_tuple() for b in res.boxes] == [BOX_A]
    assert_allclose(res.boxes[0].score, h.max())


def test_keep_all_and_largest():
    h = bumps()
    every = heatmap_to_mask(h, keep="all")
    assert_array_equal(every.mask, (h >= 0.5 * h.max()).astype(np.uint8))
    assert [b.as_tuple() for b in every.boxes] == [BOX_A, BOX_B]   # strongest first
    assert_allclose([b.score for b in every.boxes], [h[20, 20], h[44, 60]])
    largest = heatmap_to_mask(h, keep="largest")
    assert [b.as_tuple() for b in largest.boxes] == [BOX_B]
    assert largest.mask.sum() > heatmap_to_mask(h).mask.sum()


def test_rectangle_gives_exact_boxes():
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 30:45] = 1
    mask[30:32, 2:5] = 1
    boxes = mask_to_boxes(mask)
    assert boxes == [Box(30, 10, 15, 10, 150 / 2400), Box(2, 30, 3, 2, 6 / 2400)]
    assert boxes[0].area == 150 and boxes[0].as_tuple() == (30, 10, 15, 10)
    heat = np.zeros(mask.shape)
    heat[31, 3] = 9.0
    assert [b.as_tuple() for b in mask_to_boxes(mask.astype(bool), heat)] == [
        (2, 30, 3, 2), (30, 10, 15, 10)]
    assert mask_to_boxes(mask, min_size=7) == boxes[:1]
    res = heatmap_to_mask(mask.astype(float) * 3.0 + 1.0, keep="all")
    assert [b.as_tuple() for b in res.boxes] == [(30, 10, 15, 10), (2, 30, 3, 2)]


def test_connectivity_diagonal():
    mask = np.eye(4, dtype=bool)
    assert [b.as_tuple() for b in mask_to_boxes(mask)] == [(0, 0, 4, 4)]
    assert len(mask_to_boxes(mask, connectivity=1)) == 4
    assert heatmap_to_mask(mask * 1.0, connectivity=1, keep="all").n_components == 4


def test_otsu_and_percentile_match_reference():
    h = bumps() + np.random.default_rng(0).uniform(0, 0.05, (ROWS, COLS))
    otsu = heatmap_to_mask(h, method="otsu", keep="all")
    assert otsu.threshold == threshold_otsu(h) == threshold_value(h, method="otsu")
    assert_array_equal(otsu.mask, (h >= threshold_otsu(h)).astype(np.uint8))
    pct = heatmap_to_mask(h, method="percentile", value=90, keep="all")
    assert pct.threshold == np.percentile(h, 90)
    assert_array_equal(pct.mask, (h >= np.percentile(h, 90)).astype(np.uint8))
    assert heatmap_to_mask(h, method="percentile").threshold == np.percentile(h, 95)


def test_fixed_on_ramp_and_affine_rescale():
    ramp = np.tile(np.arange(256.0), (4, 1))
    res = heatmap_to_mask(ramp, method="fixed")
    assert res.threshold == 180.0 and res.params["value"] == 180.0
    assert_array_equal(res.mask, (ramp >= 180).astype(np.uint8))
    assert res.boxes[0].as_tuple() == (180, 0, 76, 4)
    scaled = heatmap_to_mask(ramp * 2.0 + 10.0, method="fixed", value=180)
    assert_allclose(scaled.threshold, 180 * 2.0 + 10.0)
    assert_array_equal(scaled.mask, res.mask)
    assert_allclose(threshold_value(ramp, method="fixed", value=60), 60.0)


def test_smoothing_matches_gaussian_filter():
    h = np.random.default_rng(1).uniform(0, 1, (30, 40))
    g = gaussian_filter(h, 2.0)
    res = heatmap_to_mask(h, sigma=2.0, keep="all")
    t = g.min() + 0.5 * (g.max() - g.min())
    assert_allclose(res.threshold, t)
    assert_array_equal(res.mask, (g >= t).astype(np.uint8))
    assert not np.array_equal(res.mask, heatmap_to_mask(h, keep="all").mask)
    assert res.params["sigma"] == 2.0


@pytest.mark.parametrize("method", THRESHOLD_METHODS)
def test_constant_heatmap_is_full_and_flagged(method, caplog):
    with caplog.at_level(logging.WARNING, logger="chexradi.cam"):
        with pytest.warns(MaskWarning, match="full mask"):
            res = heatmap_to_mask(np.full((10, 12), 0.3), method=method)
    assert res.full and not res.empty and not res.ok
    assert res.threshold == 0.3 and res.mask.all()
    assert [b.as_tuple() for b in res.boxes] == [(0, 0, 12, 10)]
    assert any("full mask" in r.getMessage() for r in caplog.records)


def test_single_spike_with_min_size_is_empty_and_flagged():
    h = np.zeros((20, 20))
    h[5, 5] = 1.0
    with pytest.warns(MaskWarning, match="empty mask.*min_size"):
        res = heatmap_to_mask(h, min_size=2)
    assert res.empty and not res.full and not res.ok
    assert res.n_components == 1 and res.boxes == [] and not res.mask.any()
    assert res.mask.dtype == np.uint8


def test_singleton_leading_axis_is_squeezed():
    h = bumps()
    assert_array_equal(heatmap_to_mask(h[None]).mask, heatmap_to_mask(h).mask)


@pytest.mark.parametrize("kwargs, match", [
    ({"heatmap": np.array([[0.0, np.nan], [np.inf, 1.0]])}, "heatmap.*2 non-finite"),
    ({"heatmap": np.zeros((2, 3, 4))}, "heatmap.*2-D"),
    ({"heatmap": np.zeros((0, 4))}, "heatmap.*empty"),
    ({"method": "mean"}, "fraction, otsu, percentile, fixed"),
    ({"value": 0}, r"value.*\(0, 1\]"),
    ({"value": 1.5}, r"value.*\(0, 1\]"),
    ({"method": "percentile", "value": 150}, r"value.*\[0, 100\]"),
    ({"method": "fixed", "value": 300}, r"value.*\[0, 255\]"),
    ({"method": "otsu", "value": 0.5}, "value.*otsu"),
    ({"keep": "bogus"}, "keep.*strongest, largest, all"),
    ({"sigma": -1.0}, "sigma"),
    ({"min_size": 0}, "min_size"),
    ({"connectivity": 3}, "connectivity"),
])
def test_heatmap_to_mask_errors(kwargs, match):
    kwargs = {"heatmap": bumps(), **kwargs}
    with pytest.raises(ValueError, match=match):
        heatmap_to_mask(kwargs.pop("heatmap"), **kwargs)


def test_mask_to_boxes_errors():
    with pytest.raises(ValueError, match="mask.*binary"):
        mask_to_boxes(np.array([[0, 1], [2, 0]]))
    with pytest.raises(ValueError, match="mask.*2-D"):
        mask_to_boxes(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="heatmap.*shape"):
        mask_to_boxes(np.zeros((3, 3)), np.zeros((3, 4)))
    assert mask_to_boxes(np.zeros((3, 3))) == []


@pytest.mark.filterwarnings("ignore::chexradi.cam.masks.MaskWarning")  # constant draws
@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(3, 24), st.integers(3, 24)),
              elements=st.floats(-5, 5, allow_nan=False)),
       st.floats(0.01, 1.0), st.floats(0.01, 1.0), st.floats(0.0, 2.0))
def test_properties(raw, v1, v2, sigma):
    h = gaussian_filter(raw, 1.0)
    lo_v, hi_v = sorted((v1, v2))
    lo = heatmap_to_mask(h, value=lo_v, keep="all", sigma=sigma)
    hi = heatmap_to_mask(h, value=hi_v, keep="all", sigma=sigma)
    strongest = heatmap_to_mask(h, value=lo_v, sigma=sigma)
    assert hi.threshold >= lo.threshold
    for res in (lo, hi, strongest):
        assert res.mask.dtype == np.uint8 and res.mask.shape == h.shape
        assert set(np.unique(res.mask)) <= {0, 1} and not res.empty
        for b in res.boxes:
            assert 0 <= b.x and b.x + b.w <= h.shape[1] and 0 <= b.y and b.y + b.h <= h.shape[0]
            assert res.mask[b.y:b.y + b.h, b.x:b.x + b.w].any()
    assert not (hi.mask & ~lo.mask.astype(bool)).any()         # higher value: subset
    assert not (strongest.mask & ~lo.mask.astype(bool)).any()  # strongest: subset of all
    assert len(strongest.boxes) == 1 and len(lo.boxes) == lo.n_components


def _reference_mask(heat: np.ndarray, thr: float, keep: str, min_size: int, connectivity: int) -> np.ndarray:
    """heatmap_to_mask's selection written with scipy's own per-label reductions."""
    labels, n = ndimage.label(heat >= thr, structure=ndimage.generate_binary_structure(2, connectivity))
    idx = np.arange(1, n + 1)
    area = np.asarray(ndimage.sum(np.ones_like(heat), labels, idx))
    peak = np.asarray(ndimage.maximum(heat, labels, idx))
    total = np.asarray(ndimage.sum(heat, labels, idx))
    kept = [k for k in range(n) if area[k] >= min_size]
    if kept and keep == "strongest":
        kept = [min(kept, key=lambda k: (-peak[k], -total[k], -area[k], k))]
    elif kept and keep == "largest":
        kept = [min(kept, key=lambda k: (-area[k], -peak[k], -total[k], k))]
    return np.isin(labels, idx[kept]).astype(np.uint8)


@pytest.mark.filterwarnings("ignore::chexradi.cam.masks.MaskWarning")
@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(2, 30)),
              elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0, 1)),
       st.sampled_from(["strongest", "largest", "all"]), st.integers(1, 4), st.sampled_from([1, 2]),
       st.sampled_from([("fraction", 0.5), ("fraction", 0.2), ("otsu", None), ("percentile", 70.0)]))
def test_selection_and_boxes_match_scipy_and_mask_to_boxes(h, keep, min_size, connectivity, method):
    """One labelling serves the selection and the boxes: the mask is the one scipy's per-label maximum and sum
    select (ties included: the heatmaps repeat values), and the boxes are those mask_to_boxes finds on it."""
    res = heatmap_to_mask(h, method=method[0], value=method[1], keep=keep, min_size=min_size,
                          connectivity=connectivity)
    assert_array_equal(res.mask, _reference_mask(h, res.threshold, keep, min_size, connectivity))
    assert res.mask.dtype == np.uint8
    assert res.boxes == mask_to_boxes(res.mask, h, connectivity=connectivity)


def test_ties_on_peak_go_to_the_larger_heat_sum_then_the_larger_area():
    h = np.zeros((5, 12))
    h[1, 1:4] = 1.0                        # A: 3 pixels, peak 1, sum 3.0
    h[1, 6:11] = [1.0, .45, .45, .45, .45]  # B: 5 pixels, peak 1, sum 2.8
    h[3, 1:4] = 0.9                        # C: weaker peak
    strongest = heatmap_to_mask(h, value=0.4)
    assert_array_equal(np.argwhere(strongest.mask), [[1, 1], [1, 2], [1, 3]])
    assert strongest.boxes == [Box(x=1, y=1, w=3, h=1, score=1.0)]
    largest = heatmap_to_mask(h, value=0.4, keep="largest")
    assert largest.boxes == [Box(x=6, y=1, w=5, h=1, score=1.0)]
    h[1, 1:4] = [1.0, .4, .4]              # A: sum 1.8 < 2.8 now, so B is the strongest
    assert heatmap_to_mask(h, value=0.3).boxes == [Box(x=6, y=1, w=5, h=1, score=1.0)]
    everything = heatmap_to_mask(h, value=0.3, keep="all")  # peak, then area, then raster order
    assert [(b.x, b.y) for b in everything.boxes] == [(6, 1), (1, 1), (1, 3)]


def test_mask_feeds_the_radiomics_engine():
    h = bumps()
    image = np.random.default_rng(2).normal(100.0, 20.0, h.shape)
    res = heatmap_to_mask(h, sigma=1.0)
    feats = chexradi.extract(image, res.mask, spacing=(1.0, 1.0),
                             featureClass={"firstorder": []})
    first = {k: v for k, v in feats.items() if "_firstorder_" in k}
    assert len(first) >= 18 and all(np.isfinite(v) for v in first.values())
    assert_allclose(feats["original_firstorder_Mean"], image[res.mask == 1].mean(), rtol=1e-6)


def test_to_dict_is_json():
    res = heatmap_to_mask(bumps(), method="percentile", value=99, keep="all", sigma=0.5)
    rec = json.loads(json.dumps(res.to_dict()))
    assert rec["method"] == "percentile" and rec["threshold"] == res.threshold
    assert rec["params"] == {"method": "percentile", "value": 99.0, "sigma": 0.5, "keep": "all",
                             "min_size": 1, "connectivity": 2}
    assert rec["boxes"][0] == {"x": res.boxes[0].x, "y": res.boxes[0].y, "w": res.boxes[0].w,
                               "h": res.boxes[0].h, "score": res.boxes[0].score}
    assert rec["ok"] and rec["n_pixels"] == int(res.mask.sum()) and "mask" not in rec
