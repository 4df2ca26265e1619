"""firstorder: parity with PyRadiomics' RadiomicsFirstOrder (same process), IBSI values, hand-computed values."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from chexradi.radiomics.features import firstorder
from chexradi.radiomics.preprocess import roi_from_arrays
from chexradi.radiomics.reference import run_feature_class
from conftest import (CASE_KINDS, assert_parity, class_parity, cxr_masks, random_case, read_cxr,
                      read_pyradiomics_case, shared)

ALL = list(firstorder.FEATURES)  # deprecated StandardDeviation requested explicitly too


def check(image, mask, spacing=None, settings=None, names=ALL, context=""):
    return class_parity("firstorder", image, mask, spacing, settings, names, context)


# ---------------------------------------------------------------------------- random cases
# PyRadiomics warns computing rMAD of a two-voxel ROI (empty 10-90 subset); both sides give NaN.
@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("kind", CASE_KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_cases(kind, ndim, seed):
    image, mask, spacing = random_case(kind, seed, ndim)
    check(image, mask, spacing, context=f"{kind} {ndim}D seed {seed}")


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("shift", [0, 2000])
@pytest.mark.parametrize("binning", [{"binWidth": 25}, {"binWidth": 5}, {"binWidth": 1}, {"binCount": 16}])
def test_settings(binning, shift, ndim):
    image, mask, spacing = random_case("blob", 7, ndim, size=30)
    check(image, mask, spacing, settings={**binning, "voxelArrayShift": shift}, context=f"{binning} shift {shift}")


@pytest.mark.parametrize(
    "spacing", [(0.3, 2.5), (3.0, 0.5, 0.7), (5.0, 0.1, 1.3)], ids=["2d", "3d", "3d-thick"]
)
def test_anisotropic_spacing(spacing):
    image, mask, _ = random_case("blob", 3, len(spacing))
    ours = check(image, mask, spacing, settings={"voxelArrayShift": 100}, context=f"spacing {spacing}")
    assert ours["TotalEnergy"] == pytest.approx(ours["Energy"] * math.prod(spacing), rel=1e-12)


def test_force2d_keeps_3d_voxel_volume():
    """force2D on a 3-D input does not change TotalEnergy's voxel volume (3 spacings)."""
    image, mask, spacing = random_case("blob", 4, 3)
    check(image, mask, (2.0, 0.5, 0.5), settings={"force2D": True, "force2Ddimension": 0})


def test_default_names_are_pyradiomics_defaults():
    image, mask, spacing = random_case("blob", 5, 2)
    ref = run_feature_class("firstorder", image, mask, spacing=spacing)  # enableAllFeatures: no deprecated
    ours = firstorder.compute(roi_from_arrays(image, mask, spacing=spacing))
    assert_parity(ours, ref, "default names")
    assert "StandardDeviation" not in ours


def test_feature_table_matches_pyradiomics():
    from radiomics.firstorder import RadiomicsFirstOrder

    assert firstorder.FEATURES == RadiomicsFirstOrder.getFeatureNames()


@pytest.mark.parametrize("value", [0.1, 1 / 3, 77.0, 100000.1])
def test_flat_region_non_representable(value):
    """A flat ROI whose mean is not exact in floating point: the moments follow PyRadiomics' arithmetic."""
    image = np.full((6, 37), value)
    mask = np.ones_like(image, bool)
    check(image, mask, context=f"flat {value}")


# ---------------------------------------------------------------------------- real data
@pytest.mark.parametrize("case", ["brain1", "breast1"])
@pytest.mark.parametrize("settings", [{}, {"voxelArrayShift": 2000, "binWidth": 25}, {"binCount": 16}])
def test_pyradiomics_cases(case, settings):
    image, mask, spacing = read_pyradiomics_case(case)
    check(image, mask, spacing, settings=settings, context=f"{case} {settings}")


@pytest.mark.parametrize("case", ["brain1", "breast1"])
def test_pyradiomics_baseline_csv(case):
    """PyRadiomics' published baseline (column <case>: binWidth 25, voxelArrayShift 2000)."""
    path = shared("pyradiomics-cases", "baseline", "baseline_firstorder.csv")
    with open(path, newline="") as fh:
        rows = {r[0]: r[1:] for r in csv.reader(fh)}
    col = rows["featureName"].index(case)
    assert "'voxelArrayShift': 2000" in rows["diagnostics_Configuration_Settings"][col]
    image, mask, spacing = read_pyradiomics_case(case)
    ours = firstorder.compute(roi_from_arrays(image, mask, spacing=spacing, settings={"voxelArrayShift": 2000}), ALL)
    ref = {k: float(rows[f"original_firstorder_{k}"][col]) for k in ALL if f"original_firstorder_{k}" in rows}
    assert len(ref) >= 18
    assert_parity({k: ours[k] for k in ref}, ref, f"baseline {case}")


def test_ibsi_phantom_parity_and_reference():
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.ReadImage(str(shared("ibsi-phantom", "phantom.nii.gz")))
    msk = sitk.ReadImage(str(shared("ibsi-phantom", "mask.nii.gz")))
    image = sitk.GetArrayFromImage(img).astype(np.float64)
    mask = sitk.GetArrayFromImage(msk) == 1
    spacing = tuple(reversed(img.GetSpacing()))
    ours = check(image, mask, spacing, settings={"binWidth": 1}, context="IBSI phantom")
    check(image, mask, spacing, settings={"binCount": 6}, context="IBSI phantom binCount")

    with open(shared("ibsi-phantom", "ibsi_1_dig_phantom.csv"), newline="") as fh:
        rows = csv.DictReader(fh, delimiter=";")
        ibsi = {r["tag"]: float(r["reference value"]) for r in rows if r["reference value"]}
    # IBSI gives 3 significant digits; PyRadiomics' kurtosis is not in excess form (+3).
    mapping = {
        "stat_mean": ours["Mean"], "stat_var": ours["Variance"], "stat_skew": ours["Skewness"],
        "stat_kurt": ours["Kurtosis"] - 3, "stat_median": ours["Median"], "stat_min": ours["Minimum"],
        "stat_p10": ours["10Percentile"], "stat_p90": ours["90Percentile"], "stat_max": ours["Maximum"],
        "stat_iqr": ours["InterquartileRange"], "stat_range": ours["Range"],
        "stat_mad": ours["MeanAbsoluteDeviation"], "stat_rmad": ours["RobustMeanAbsoluteDeviation"],
        "stat_energy": ours["Energy"], "stat_rms": ours["RootMeanSquared"],
        "ih_entropy": ours["Entropy"], "ih_uniformity": ours["Uniformity"],
    }
    for tag, value in mapping.items():
        ref = ibsi[tag]
        half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(ref))) - 2)
        assert abs(value - ref) <= half_unit + 1e-12, f"{tag}: {value} vs IBSI {ref}"


@pytest.mark.parametrize("mask_name", ["ellipse", "two_blobs"])
@pytest.mark.parametrize("settings", [{}, {"binCount": 16, "voxelArrayShift": 2000}])
def test_real_radiograph(mask_name, settings):
    image = read_cxr()
    mask = cxr_masks(image.shape)[mask_name]
    check(image, mask, (0.143, 0.143), settings=settings, context=f"CXR {mask_name} {settings}")


# ---------------------------------------------------------------------------- hand-computed
def test_hand_computed_tiny_array():
    image = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.ones((2, 2), bool)
    roi = roi_from_arrays(image, mask, spacing=(2.0, 3.0), settings={"binWidth": 1})
    out = firstorder.compute(roi, ALL)
    assert out["Mean"] == 2.5
    assert out["Energy"] == 1 + 4 + 9 + 16
    assert out["TotalEnergy"] == 30 * 6.0
    assert out["RootMeanSquared"] == pytest.approx(math.sqrt(7.5))
    assert out["Minimum"] == 1 and out["Maximum"] == 4 and out["Range"] == 3
    assert out["Median"] == 2.5
    assert out["10Percentile"] == pytest.approx(1.3)  # virtual index 0.3
    assert out["90Percentile"] == pytest.approx(3.7)
    assert out["InterquartileRange"] == pytest.approx(3.25 - 1.75)
    assert out["Variance"] == 1.25
    assert out["StandardDeviation"] == pytest.approx(math.sqrt(1.25))
    assert out["MeanAbsoluteDeviation"] == 1.0
    assert out["RobustMeanAbsoluteDeviation"] == 0.5  # {2, 3} lie in [1.3, 3.7]
    assert out["Skewness"] == 0.0
    assert out["Kurtosis"] == pytest.approx((2 * 1.5**4 + 2 * 0.5**4) / 4 / 1.25**2)
    assert out["Entropy"] == pytest.approx(2.0)  # four equally filled bins
    assert out["Uniformity"] == 0.25
    shifted = firstorder.compute(roi_from_arrays(image, mask, settings={"voxelArrayShift": 1}), ["Energy"])
    assert shifted["Energy"] == 4 + 9 + 16 + 25


def test_flat_region_moments_are_zero():
    out = firstorder.compute(roi_from_arrays(np.full((3, 4), 5.0), np.ones((3, 4), bool)), ALL)
    assert out["Skewness"] == 0.0 and out["Kurtosis"] == 0.0 and out["Variance"] == 0.0
    assert out["Entropy"] == pytest.approx(0.0, abs=1e-12) and out["Uniformity"] == 1.0


@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
def test_two_voxels_robust_mad_is_nan():
    """Two distinct values: nothing lies between the interpolated P10 and P90, so rMAD is NaN, as in PyRadiomics."""
    image = np.array([[10.0, 20.0]])
    mask = np.ones((1, 2), bool)
    ours = check(image, mask, context="two voxels")
    assert math.isnan(ours["RobustMeanAbsoluteDeviation"])


def test_percentiles_match_numpy_exactly():
    rng = np.random.default_rng(0)
    for n in list(range(1, 40)) + [99, 100, 101, 1000, 4137]:
        x = rng.normal(0, 100, n).round(2)
        got = firstorder.percentiles(x, [10, 25, 50, 75, 90])
        want = [float(np.nanpercentile(x, q)) for q in (10, 25, 50, 75, 90)]
        assert got == want, n


def test_unknown_name_raises():
    roi = roi_from_arrays(np.ones((3, 3)), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="Unknown firstorder feature"):
        firstorder.compute(roi, ["Mean", "Meen"])


def test_kernels_equal_numpys_calls_bit_for_bit():
    """The compiled first-order passes against the numpy expressions they replace, by ==: sizes around numpy's
    pairwise block (8, 128) and up to 1e5, Gaussian, whole-number and flat values."""
    from chexradi.radiomics.kernels.firstorder import counted_order_statistics, level_counts, moments, robust_mad

    rng = np.random.default_rng(3)
    sizes = [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1023, 1025, 4097, 63830, 100001]
    for n in sizes:
        for x in (rng.normal(50, 20, n), rng.integers(0, 255, n).astype(np.float64), np.full(n, 3.3)):
            mean = np.mean(x)
            d = x - mean
            d2 = d * d
            want = (np.sum(x * x), mean, np.mean(np.abs(d)), np.mean(d2), np.mean(d2 * d), np.mean(d2 * d2))
            assert moments(x, 0.0) == want, n
            xs = x + 2000.0
            assert moments(x, 2000.0)[0] == np.sum(xs * xs), n
            lo, hi = np.percentile(x, [10, 90])
            sub = x[(x >= lo) & (x <= hi)]
            got = robust_mad(x, lo, hi)
            assert (np.isnan(got) and sub.size == 0) or got == np.mean(np.abs(sub - np.mean(sub))), n
        kth = np.array(sorted({0, n - 1, n // 2, (n - 1) // 2, n // 10}), np.int64)
        ints = rng.integers(-40, 3000, n).astype(np.float64)
        ok, values = counted_order_statistics(ints, kth, 65536.0)
        assert ok and np.array_equal(values, np.partition(ints, kth)[kth]), n
        if n > 1:  # one value off the whole numbers: partitioned instead
            halves = ints.copy()
            halves[-1] += 0.5
            assert not counted_order_statistics(halves, kth, 65536.0)[0], n
        assert not counted_order_statistics(ints * 1e6, kth, 65536.0)[0] or np.ptp(ints) == 0
        levels = rng.integers(0, 40, n).astype(np.int32)
        assert np.array_equal(level_counts(levels), np.bincount(levels)), n
    assert np.isnan(robust_mad(np.array([1.0, 5.0]), 1.4, 4.6))


def test_the_neighbourhood_is_made_once_per_roi():
    """GLSZM, GLDM and NGTDM share the ROI's padded gray levels and neighbour offsets (made once), with the
    values they had with their own."""
    from chexradi.radiomics.features import get_feature_module
    from chexradi.radiomics.kernels.glszm import neighbourhood

    image, mask, spacing = random_case("blob", 4, 3, size=24)
    roi = roi_from_arrays(image, mask, spacing=spacing, settings={"binWidth": 10})
    calls = []
    original = roi.neighbourhood

    def counting(distances):
        calls.append(tuple(distances))
        return original(distances)

    roi.neighbourhood = counting
    for cls in ("glszm", "gldm", "ngtdm"):
        get_feature_module(cls).compute(roi, list(get_feature_module(cls).FEATURES))
    assert calls == [(1,), (1,), (1,)]
    assert [k for k in roi._cache if k[0] == "neighbourhood"] == [("neighbourhood", (1,))]
    labels, offsets = neighbourhood(roi.binned, roi.mask, (1,), roi.plane_axis)
    cached = roi._cache[("neighbourhood", (1,))]
    assert np.array_equal(cached[0], labels) and np.array_equal(cached[1], offsets)
