"""Fuzzing (issue "Reliability"): random images, masks and settings through both engines, and
property tests for the heatmap -> mask -> box path.

Engine parity: for every drawn case the numba engine (``chexradi.extract``) and the real PyRadiomics
(its own ``RadiomicsFeatureExtractor.execute`` on SimpleITK images built from the same arrays, so
that PyRadiomics' own checks decide what it refuses) must either both refuse -- chexradi with a
``ValueError`` and a message, as docs/radiomics.md promises -- or give the same feature names with
values within the parity tolerance (conftest.close: rel 1e-6, abs 1e-9; a NaN only where PyRadiomics
has a NaN). Any other exception from chexradi is a crash and fails the test.

Accepted differences (docs/radiomics.md, "Differences from PyRadiomics"): NaN/inf pixels inside the ROI are
refused by chexradi, PyRadiomics computes from them; shape2D on 3-D input is not drawn (chexradi computes it
for a one-slice ROI, PyRadiomics raises or skips). Found and fixed: float32 images (binning and
resegmentation arithmetic, test_float32_image_parity), GLCM Imc2 on 0/1 images (memory order of the
sums), heatmaps whose range overflows float64 (now refused with a "rescale" message).

Examples are derandomized (CI is reproducible). ``CHEXRADI_FUZZ_EXAMPLES=2000`` sets the number of examples
of every test here for a local run; ``CHEXRADI_FUZZ_FLOAT32=0`` leaves float32 images out of the engine fuzz.
``pytest --hypothesis-show-statistics`` shows how often both engines refused and why.
"""
from __future__ import annotations

import logging
import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra.numpy import arrays

import chexradi
from chexradi.cam.masks import MaskWarning, heatmap_to_mask, mask_to_boxes
from chexradi.radiomics.reference import to_sitk
from chexradi.radiomics.settings import _WEIGHTING, feature_names, load_settings
from conftest import close

_N = int(os.environ.get("CHEXRADI_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(default: int):
    """Hypothesis settings: ``default`` examples (or CHEXRADI_FUZZ_EXAMPLES), derandomized, no deadline."""
    return settings(max_examples=_N or default, deadline=None, derandomize=True, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


try:
    import radiomics  # noqa: F401
    HAVE_PYRADIOMICS = True
except ImportError:  # pragma: no cover - PyRadiomics is a test dependency
    HAVE_PYRADIOMICS = False
needs_pyradiomics = pytest.mark.skipif(not HAVE_PYRADIOMICS, reason="PyRadiomics (pyradiomics-bhklab) not installed")


@pytest.fixture(scope="module", autouse=True)
def quiet_and_reproducible():
    """PyRadiomics (and chexradi) log warnings for skipped classes and binCount: keep the run silent; and run
    ITK single-threaded (below)."""
    import SimpleITK as sitk

    loggers = [logging.getLogger(n) for n in ("radiomics", "chexradi")]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    # sitk.Normalize (normalize=True, both engines) sums over the image in several threads in a varying order:
    # its z-scores differ by an ulp from run to run, which flips borderline resegmentation (see the @example of
    # test_fuzz_engines_agree_3d). One ITK thread makes every example reproducible.
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    for lg, lv in zip(loggers, before):
        lg.setLevel(lv)


# ============================================================================ engine vs PyRadiomics
DTYPES = ("uint8", "int16", "uint16", "float32", "float64")
# float32 images: PyRadiomics bins (getBinEdges) and resegments (resegmentMask) the ROI values in float32
# arithmetic, and so does chexradi (preprocess.roi_from_arrays passes the pixel type to discretize(),
# extractor.prepare resegments the image in its own type); test_float32_image_parity holds the minimal
# cases the fuzzing found before that. CHEXRADI_FUZZ_FLOAT32=0 leaves float32 out of the engine fuzz.
FUZZ_FLOAT32 = os.environ.get("CHEXRADI_FUZZ_FLOAT32", "1") == "1"
FUZZ_DTYPES = DTYPES if FUZZ_FLOAT32 else tuple(d for d in DTYPES if d != "float32")
_INT_RANGE = {"uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535)}
TEXTURE = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")


def _image(draw, rng: np.random.Generator, shape, dtype: str):
    """Random image values of ``dtype``: noise, a few levels (many ties), constant, smooth, or huge range."""
    kind = draw(st.sampled_from(["noise", "levels", "constant", "smooth", "extreme"]))
    if dtype in _INT_RANGE:
        tmin, tmax = _INT_RANGE[dtype]
        lo = draw(st.integers(tmin, tmax))
        span = draw(st.sampled_from([0, 1, 3, 20, 255, 4000, tmax - tmin]))
        span = min(span, tmax - lo)
    else:
        lo = draw(st.sampled_from([0.0, -1.5, 1e-3, -1000.0, 37.25, 1e5, -3e6]))
        span = draw(st.sampled_from([0.0, 1e-3, 1.0, 7.3, 100.0, 2500.0, 1e6]))
    if kind == "constant":
        u = np.zeros(shape)
    elif kind == "levels":
        k = draw(st.integers(2, 5))
        u = rng.integers(0, k, shape) / (k - 1)
    elif kind == "smooth":
        grid = np.indices(shape, dtype=float)
        u = sum(np.sin(g / rng.uniform(1.0, 6.0) + rng.uniform(0, 6)) for g in grid)
        u = (u - u.min()) / max(np.ptp(u), 1e-12) * 0.9 + 0.1 * rng.random(shape)
    elif kind == "extreme":  # only the two ends of the range
        u = (rng.random(shape) < 0.5).astype(float)
    else:
        u = rng.random(shape)
    values = lo + span * u
    if dtype in _INT_RANGE:
        values = np.clip(np.round(values), *_INT_RANGE[dtype])
    return values.astype(dtype), float(span)


def _mask(draw, rng: np.random.Generator, shape):
    """A label map: blobs, holes, thin lines, single voxels, pairs, sparse voxels, full or border boxes,
    empty; sometimes several labels."""
    kind = draw(st.sampled_from(["blob", "blob", "holes", "line", "single", "pair", "sparse", "sparse", "full",
                                 "border", "border", "empty"]))
    nd = len(shape)
    m = np.zeros(shape, bool)
    if kind in ("blob", "holes"):
        centre = [rng.uniform(-0.5, s - 0.5) for s in shape]
        radii = [rng.uniform(0.6, max(1.0, s / 1.5)) for s in shape]
        grid = np.indices(shape, dtype=float)
        r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
        m = r2 + rng.uniform(0, 0.5, shape) <= 1.0
        if kind == "holes":
            m &= rng.random(shape) > 0.3
    elif kind == "line":
        ax = draw(st.integers(0, nd - 1))
        idx = [int(rng.integers(0, s)) for s in shape]
        idx[ax] = slice(None)
        m[tuple(idx)] = True
    elif kind in ("single", "pair"):
        idx = [int(rng.integers(0, s)) for s in shape]
        m[tuple(idx)] = True
        if kind == "pair":
            ax = int(rng.integers(0, nd))
            idx[ax] = idx[ax] + 1 if idx[ax] + 1 < shape[ax] else max(idx[ax] - 1, 0)
            m[tuple(idx)] = True
    elif kind == "sparse":
        m = rng.random(shape) < rng.uniform(0.05, 0.5)
    elif kind == "full":
        m[...] = True
    elif kind == "border":
        m[tuple(slice(0, int(rng.integers(1, s + 1))) for s in shape)] = True
    labels = m.astype(np.int64)
    several = draw(st.integers(0, 2)) == 0
    if several:  # some ROI voxels become label 2 or 3
        labels[m & (rng.random(shape) < 0.4)] = 2
        labels[m & (rng.random(shape) < 0.15)] = 3
    label = draw(st.sampled_from([1, 1, 2, 3] if several else [1, 1, 1, 1, 1, 2]))
    mdtype = draw(st.sampled_from(["uint8", "uint8", "uint16", "int16", "float32"]))
    return labels.astype(mdtype), label


@st.composite
def engine_cases(draw, ndim: int):
    """(image, mask, spacing, settings) for one extraction."""
    if ndim == 2:
        shape = (draw(st.integers(1, 64)), draw(st.integers(1, 64)))
    else:
        shape = (draw(st.one_of(st.just(1), st.integers(1, 24))), draw(st.integers(1, 24)),
                 draw(st.integers(1, 24)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    dtype = draw(st.sampled_from(FUZZ_DTYPES))
    image, span = _image(draw, rng, shape, dtype)
    mask, label = _mask(draw, rng, shape)
    spacing = tuple(draw(st.sampled_from([1.0, 0.5, 0.7, 1.25, 2.5, 3.0])) for _ in shape)

    kw: dict = {}
    kw["label"] = label
    if draw(st.integers(0, 2)) == 0:
        kw["normalize"] = True
        kw["normalizeScale"] = draw(st.sampled_from([1.0, 100.0, 0.5]))
        kw["removeOutliers"] = draw(st.sampled_from([None, 2.0, 3.0]))
        unit = 8 * kw["normalizeScale"]  # z-scores: the ROI spans a few units of normalizeScale
    else:
        unit = span
    if draw(st.booleans()):
        kw["binCount"] = draw(st.integers(1, 40))
    else:  # a width giving at most ~60 bins over the image range (PyRadiomics' matrices stay small)
        k = draw(st.sampled_from([1, 2, 3, 5, 8, 13, 32, 60]))
        kw["binWidth"] = (unit / k) if unit > 0 else draw(st.sampled_from([25.0, 0.5, 1.0]))
    classes = ["firstorder", *TEXTURE, "shape" if ndim == 3 else "shape2D"]
    if ndim == 2:
        classes.append("shape")  # 3-D shape on 2-D input: both engines skip it
    chosen = draw(st.lists(st.sampled_from(classes), min_size=1, max_size=len(classes), unique=True))
    fc = {}
    for cls in chosen:
        if draw(st.integers(0, 3)) == 0:  # a few named features, deprecated ones included
            fc[cls] = draw(st.lists(st.sampled_from(sorted(feature_names(cls))), min_size=1, max_size=4,
                                    unique=True))
        else:
            fc[cls] = []
    kw["featureClass"] = fc
    kw["distances"] = draw(st.sampled_from([[1], [1], [2], [1, 2], [1, 3]]))
    if draw(st.booleans()):
        kw["force2D"] = True
        kw["force2Ddimension"] = draw(st.integers(0, 2))  # ignored for 2-D input by both engines
    kw["minimumROIDimensions"] = draw(st.sampled_from([1, 1, 1, 1, 2, 3]))
    kw["minimumROISize"] = draw(st.sampled_from([None, None, None, None, 1, 5, 30]))
    kw["weightingNorm"] = draw(st.sampled_from(_WEIGHTING))
    kw["symmetricalGLCM"] = draw(st.booleans())
    kw["gldm_a"] = draw(st.integers(0, 3))
    kw["voxelArrayShift"] = draw(st.sampled_from([0, 0, 1000, 2.5]))
    reseg = draw(st.sampled_from([None, None, None, None, "absolute", "relative", "sigma"]))
    if reseg == "absolute":
        lo_q, hi_q = sorted(draw(st.tuples(st.floats(0, 1), st.floats(0, 1))))
        vals = image.astype(np.float64)
        kw["resegmentRange"] = [float(np.quantile(vals, lo_q)), float(np.quantile(vals, hi_q))]
    elif reseg == "relative":
        kw["resegmentMode"] = "relative"
        kw["resegmentRange"] = draw(st.sampled_from([[0.2], [0.1, 0.9], [0.5, 1.0]]))
    elif reseg == "sigma":
        kw["resegmentMode"] = "sigma"
        kw["resegmentRange"] = draw(st.sampled_from([[-1.0, 1.0], [-2.0], [-0.5, 3.0]]))
    if reseg is not None:
        kw["resegmentShape"] = draw(st.booleans())
    if draw(st.integers(0, 5)) == 0:
        kw["preCrop"] = True
        kw["padDistance"] = draw(st.integers(0, 3))
    return image, mask, spacing, kw


def pyradiomics_execute(image, mask, spacing, kw) -> dict[str, float]:
    """PyRadiomics' own extraction on SimpleITK images made from the same arrays (its checks, not ours)."""
    from radiomics import featureextractor

    s = load_settings(**kw)
    ext = featureextractor.RadiomicsFeatureExtractor(**s.pyradiomics_settings())
    ext.disableAllFeatures()
    ext.enableFeaturesByName(**{c: list(n) for c, n in s.feature_classes.items()})
    ext.disableAllImageTypes()
    ext.enableImageTypes(Original={})
    with warnings.catch_warnings():  # numpy's "Mean of empty slice" and the like, from PyRadiomics
        warnings.simplefilter("ignore")
        out = ext.execute(to_sitk(image, spacing), to_sitk(mask, spacing), label=s["label"])
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def _event(name: str) -> None:
    """Record a hypothesis event (shown by --hypothesis-show-statistics); a no-op outside a hypothesis test."""
    try:
        event(name)
    except InvalidArgument:
        pass


def check_engines(image, mask, spacing, kw) -> None:
    """Both refuse (chexradi with a ValueError and a message), or the same features within tolerance."""
    try:
        ref, ref_err = pyradiomics_execute(image, mask, spacing, kw), None
    except Exception as exc:  # any refusal of PyRadiomics counts
        ref, ref_err = None, exc
    try:
        ours, our_err = chexradi.extract(image, mask, spacing=spacing, **kw), None
    except ValueError as exc:
        ours, our_err = None, exc
    if our_err is not None and ref_err is None and "NaN/inf pixel" in str(our_err):
        # Documented difference (docs/radiomics.md): NaN/inf pixels inside the ROI are refused. PyRadiomics computes
        # NaN features from them -- and numbers for the shape classes, which never read the intensities (e.g.
        # normalize=True on a constant image makes every pixel NaN; see the @example of test_fuzz_engines_agree_2d).
        assert all("_shape" in k or math.isnan(v) for k, v in ref.items()), ref
        _event("documented difference: NaN pixels in the ROI refused")
        return
    if ref_err is not None:
        assert our_err is not None, f"PyRadiomics refused ({ref_err!r}) but chexradi computed {len(ours)} features"
        assert str(our_err).strip(), "chexradi's ValueError has no message"
        _event("both refused: " + str(ref_err)[:40])
        return
    _event("compared")
    assert our_err is None, f"chexradi refused ({our_err}) but PyRadiomics computed {len(ref)} features"
    assert sorted(ours) == sorted(ref), (f"feature names differ: only chexradi {sorted(set(ours) - set(ref))}, "
                                         f"only PyRadiomics {sorted(set(ref) - set(ours))}")
    nan = [k for k in ref if math.isnan(ours[k]) and not math.isnan(ref[k])]
    assert not nan, f"chexradi gives NaN where PyRadiomics gives a number: {nan}"
    bad = [(k, ours[k], ref[k]) for k in ref if not close(ours[k], ref[k])]
    assert not bad, f"{len(bad)} feature(s) differ (name, chexradi, PyRadiomics): {bad}"


@needs_pyradiomics
@fuzz_settings(300)
@given(engine_cases(ndim=2))
@example((np.zeros((1, 6), np.uint8), np.array([[0, 1, 2, 1, 2, 2]], np.uint8), (1.0, 1.0),
          {"normalize": True, "featureClass": {"shape2D": ["Elongation"]}, "minimumROIDimensions": 1}))
@pytest.mark.slow
def test_fuzz_engines_agree_2d(case):
    check_engines(*case)


@needs_pyradiomics
@fuzz_settings(300)
@given(engine_cases(ndim=3))
@example((np.array([[[2500.001, 1e-3, 1e-3, 1e-3, 1e-3, 2500.001, 1e-3, 1e-3, 1e-3, 2500.001, 2500.001, 2500.001,
                      2500.001, 1e-3, 2500.001, 1e-3, 2500.001]]]),
          np.array([[[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]]], np.uint8), (1.0, 3.0, 2.5),
          {"normalize": True, "removeOutliers": 2.0, "binWidth": 0.6153846153846154, "minimumROIDimensions": 1,
           "featureClass": {"firstorder": [], "glcm": []}, "resegmentMode": "sigma", "resegmentRange": [-1.0, 1.0]}))
@pytest.mark.slow
def test_fuzz_engines_agree_3d(case):
    check_engines(*case)


# ---------------------------------------------------------------------------- regressions (found by fuzzing)
@needs_pyradiomics
def test_glcm_imc2_memory_layout_regression():
    """Imc2 is 0 where HXY2 == HXY and NaN (skipped by the mean) where rounding gives HXY > HXY2, per angle.
    PyRadiomics' P_glcm comes out of np.delete with axis 2 outermost in memory, so numpy's sums over (1, 2)
    add in another order than on a C-ordered array: for this binary image one angle had HXY2 - HXY = 0 in
    chexradi and -2.2e-16 in PyRadiomics, and Imc2 was 0.184 against 0.246. Fixed in features/glcm.py
    (probabilities() reproduces the layout). Reduced from a 1 x 14 x 15 case of test_fuzz_engines_agree_3d."""
    image = np.array([[0, 1, 0, 1, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 1], [0, 1, 1, 1, 1], [1, 1, 1, 1, 1]],
                     np.uint8)
    check_engines(image, np.ones(image.shape, np.uint8), (1.0, 1.0),
                  {"binWidth": 1.0, "symmetricalGLCM": False, "featureClass": {"glcm": []}})


# ------------------------------------------------------------ float32 images (found by fuzzing, fixed)
# Minimal cases (1 x n float32 images, whole image as ROI) reduced from the fuzzer's float32 failures.
FLOAT32_CASES = [
    ([[0.0, 0.7]], {"binWidth": 0.7}),       # PyRadiomics: 0.7f % 0.7 in float32 -> edges 0, 0.69999999, ...
    ([[1.7, 0.5, 1.3, 1.6]], {"binCount": 3}),  # np.histogram edges in float32
    ([[-1.4, -1.3]], {"resegmentMode": "sigma", "resegmentRange": [-1.0]}),  # mean - std in float32
    ([[100000.0, 100000.0078125]], {"binCount": 3}),  # float32 histogram: PyRadiomics refuses ("Too many bins")
]


@needs_pyradiomics
@pytest.mark.parametrize("values, kw", FLOAT32_CASES, ids=["binWidth", "binCount", "sigma", "binCount-refused"])
def test_float32_image_parity(values, kw):
    image = np.array(values, np.float32)
    check_engines(image, np.ones(image.shape, np.uint8), (1.0, 1.0),
                  {**kw, "featureClass": {"firstorder": ["Entropy", "Mean"]}, "minimumROIDimensions": 1})


@needs_pyradiomics
@fuzz_settings(150)
@given(st.sampled_from(DTYPES), st.integers(1, 40), st.booleans(), st.data())
@example("float32", 7, False, None)
def test_discretize_in_image_dtype_like_pyradiomics(dtype, nbins, use_count, data):
    """discretize(float64 copy, value_dtype=original dtype) gives PyRadiomics' binImage on the original
    values exactly, for every pixel type (the engine half of the float32 fix)."""
    from radiomics import imageoperations

    from chexradi.radiomics.discretize import discretize

    if data is None:  # the first minimal case above
        image, span = np.array([[0.0, 0.7]], np.float32), 0.7
    else:
        rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
        image, span = _image(data.draw, rng, (data.draw(st.integers(1, 6)), data.draw(st.integers(2, 9))), dtype)
    mask = np.ones(image.shape, bool)
    kw = {"binCount": nbins} if use_count else {"binWidth": (span / nbins) if span > 0 else 0.7}

    def ours():
        return discretize(image.astype(np.float64), mask, bin_width=kw.get("binWidth", 25.0),
                          bin_count=kw.get("binCount"), value_dtype=image.dtype)

    try:
        ref, ref_edges = imageoperations.binImage(image.copy(), mask, **kw)
    except ValueError:  # np.histogram (float32): "Too many bins for data range" -- chexradi raises it too
        with pytest.raises(ValueError):
            ours()
        return
    binned, edges = ours()
    assert np.array_equal(binned, ref)
    assert np.array_equal(edges, np.asarray(ref_edges, dtype=np.float64))


# ============================================================================ heatmap -> mask -> box
_odd_shapes = st.tuples(st.integers(1, 33), st.integers(1, 33))
# Finite values up to +-1e300: max - min stays finite (see test_heatmap_range_overflow for +-1e308).
_heat_values = st.one_of(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
                         st.sampled_from([0.0, 1.0, -1.0, 1e-300, 1e12, -1e300, 1e300]))


def _heatmaps():
    """Random finite heatmaps of odd shapes (1-pixel rows and columns included), raw or smoothed-looking."""
    return arrays(np.float64, _odd_shapes, elements=_heat_values)


def _check_result(res, heat_shape):
    """Invariants of every MaskResult: binary uint8 mask of the heatmap's shape, flags, boxes."""
    mask = res.mask
    assert mask.dtype == np.uint8 and mask.shape == heat_shape
    assert set(np.unique(mask).tolist()) <= {0, 1}
    n_on = int(mask.sum())
    assert res.empty == (n_on == 0) and res.full == (n_on == mask.size)
    assert res.ok == (not res.empty and not res.full)
    assert (res.boxes == []) == res.empty
    covered = np.zeros(heat_shape, bool)
    for b in res.boxes:
        assert b.w >= 1 and b.h >= 1
        assert 0 <= b.x and b.x + b.w <= heat_shape[1] and 0 <= b.y and b.y + b.h <= heat_shape[0]
        sub = mask[b.y:b.y + b.h, b.x:b.x + b.w]
        # tight: the component touches all four sides of its box
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()
        covered[b.y:b.y + b.h, b.x:b.x + b.w] = True
    assert not (mask.astype(bool) & ~covered).any()  # every foreground pixel lies in a box
    rec = res.to_dict()
    assert rec["n_pixels"] == n_on and rec["shape"] == list(heat_shape)


_METHOD_VALUES = {
    "fraction": st.floats(0.001, 1.0),
    "percentile": st.floats(0.0, 100.0),
    "fixed": st.floats(0.0, 255.0),
}


@pytest.mark.filterwarnings("ignore::chexradi.cam.masks.MaskWarning")
@fuzz_settings(150)
@given(_heatmaps(), st.sampled_from(sorted(_METHOD_VALUES)), st.data(), st.sampled_from([1, 2]))
@example(np.array([[0.0, 1.0, 0.0]]), "fixed", None, 2)  # one row
def test_masks_monotone_in_threshold(heat, method, data, connectivity):
    """A higher threshold value gives a subset mask (keep='all', no smoothing) and a higher threshold;
    the mask is exactly ``heat >= threshold``; mask_to_boxes on the mask gives the result's boxes."""
    if data is None:
        v1, v2 = 60.0, 180.0
    else:
        v1, v2 = sorted((data.draw(_METHOD_VALUES[method]), data.draw(_METHOD_VALUES[method])))
    lo = heatmap_to_mask(heat, method=method, value=v1, keep="all", connectivity=connectivity)
    hi = heatmap_to_mask(heat, method=method, value=v2, keep="all", connectivity=connectivity)
    for res in (lo, hi):
        _check_result(res, heat.shape)
        assert np.array_equal(res.mask, (heat >= res.threshold).astype(np.uint8))
        assert heat.min() <= res.threshold <= heat.max()
        assert not res.empty  # the maximum always passes its own threshold
        assert len(res.boxes) == res.n_components
        assert mask_to_boxes(res.mask, heat, connectivity=connectivity) == res.boxes
    assert hi.threshold >= lo.threshold
    assert not (hi.mask.astype(bool) & ~lo.mask.astype(bool)).any()


@pytest.mark.filterwarnings("ignore::chexradi.cam.masks.MaskWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # skimage's Otsu squares +-1e300 differences (overflow)
@fuzz_settings(150)
@given(_heatmaps(), st.sampled_from(["fraction", "otsu", "percentile", "fixed"]),
       st.sampled_from(["strongest", "largest", "all"]), st.integers(1, 6), st.sampled_from([1, 2]),
       st.sampled_from([0.0, 0.7, 2.0]))
def test_mask_invariants_keep_min_size(heat, method, keep, min_size, connectivity, sigma):
    """keep / min_size / smoothing: the kept mask is a subset of the thresholded (smoothed) heatmap, every
    kept component has >= min_size pixels, 'strongest' and 'largest' keep at most one component."""
    res = heatmap_to_mask(heat, method=method, keep=keep, min_size=min_size, connectivity=connectivity,
                          sigma=sigma)
    _check_result(res, heat.shape)
    above = heatmap_to_mask(heat, method=method, keep="all", connectivity=connectivity, sigma=sigma)
    assert above.threshold == res.threshold
    assert not (res.mask.astype(bool) & ~above.mask.astype(bool)).any()
    if keep != "all":
        assert len(res.boxes) <= 1
    from scipy import ndimage

    labels, n = ndimage.label(res.mask, structure=ndimage.generate_binary_structure(2, connectivity))
    assert n == len(res.boxes)
    if n:
        assert np.bincount(labels.ravel())[1:].min() >= min_size
    assert res.params == {"method": method, "value": res.params["value"], "sigma": sigma, "keep": keep,
                          "min_size": min_size, "connectivity": connectivity}


@fuzz_settings(150)
@given(arrays(np.bool_, _odd_shapes), st.sampled_from(["bool", "uint8", "int64", "float32"]), st.integers(1, 5),
       st.sampled_from([1, 2]), st.booleans())
def test_mask_to_boxes_properties(mask, dtype, min_size, connectivity, with_heat):
    """Any binary mask (bool or 0/1 numbers): one box per component of >= min_size pixels, inside the image,
    tight, sorted by score (descending); the score is the component's max heat or its area fraction."""
    from scipy import ndimage

    heat = np.arange(mask.size, dtype=float).reshape(mask.shape) % 7 if with_heat else None
    boxes = mask_to_boxes(mask.astype(dtype), heat, connectivity=connectivity, min_size=min_size)
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    assert len(boxes) == int((areas >= min_size).sum())
    scores = [b.score for b in boxes]
    assert scores == sorted(scores, reverse=True)
    for b in boxes:
        assert 0 <= b.x and b.x + b.w <= mask.shape[1] and 0 <= b.y and b.y + b.h <= mask.shape[0]
        sub = mask[b.y:b.y + b.h, b.x:b.x + b.w]
        assert sub[0].any() and sub[-1].any() and sub[:, 0].any() and sub[:, -1].any()
        if heat is None:
            assert 0 < b.score <= 1


@fuzz_settings(100)
@given(_heatmaps(), st.data(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_non_finite_heatmap_is_refused(heat, data, bad):
    """Documented: a NaN/inf anywhere in the heatmap raises ValueError naming the count (no mask)."""
    r = data.draw(st.integers(0, heat.shape[0] - 1))
    c = data.draw(st.integers(0, heat.shape[1] - 1))
    heat = heat.copy()
    heat[r, c] = bad
    with pytest.raises(ValueError, match="1 non-finite"):
        heatmap_to_mask(heat)
    with pytest.raises(ValueError, match="non-finite"):
        mask_to_boxes(np.ones(heat.shape, np.uint8), heat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MaskWarning)
        fixed = heatmap_to_mask(np.nan_to_num(heat, posinf=1e6, neginf=-1e6))  # the fix the message suggests
    _check_result(fixed, heat.shape)


@pytest.mark.filterwarnings("ignore::chexradi.cam.masks.MaskWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("method, sigma", [("fraction", 0.0), ("otsu", 0.0), ("fraction", 1.0)])
def test_heatmap_range_overflow(method, sigma):
    """Documented: 'any range'. A finite heatmap whose range overflows float64 must give the threshold of the
    same heatmap scaled down (a finite threshold in [min, max]) -- or a ValueError that says to rescale it."""
    h = np.array([[-1e308, 0.0, 1e308], [5.0, 1e308, -3.0], [1.0, 2.0, 3.0]])
    try:
        res = heatmap_to_mask(h, method=method, sigma=sigma, keep="all")
    except ValueError as exc:
        assert "heatmap" in str(exc), f"unhelpful error: {exc}"
        return
    scaled = heatmap_to_mask(h / 1e10, method=method, sigma=sigma, keep="all")
    assert np.isfinite(res.threshold) and h.min() <= res.threshold <= h.max()
    assert np.array_equal(res.mask, scaled.mask)
