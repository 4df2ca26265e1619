"""The segment-based counting kernels against the simple ones they replace on the extractor's path.

``kernels.lines.line_counts`` (GLRLM's runs and GLCM's pairs from one walk along the ROI's segments) must give
exactly ``glrlm_counts`` / ``glcm_counts``; ``kernels.glszm.zones_by_runs`` (union-find over runs) exactly the
flood fill's zones; ``run_marginals`` numpy's sums; the NGTDM kernel the same sums in int32 and int64. All
counts are integers, so every comparison is ``==``.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from chexradi.radiomics.features import glcm, glrlm
from chexradi.radiomics.kernels import glszm as kglszm
from chexradi.radiomics.kernels.angles import generate_angles
from chexradi.radiomics.kernels.glcm import glcm_counts
from chexradi.radiomics.kernels.glrlm import glrlm_counts, run_marginals
from chexradi.radiomics.kernels.glszm import (connected_rows, glszm_matrix, glszm_zones, mean_run_length,
                                              neighbourhood, zones_by_runs)
from chexradi.radiomics.kernels.lines import line_counts
from chexradi.radiomics.kernels.ngtdm import ngtdm_sums
from chexradi.radiomics.preprocess import roi_from_arrays


def _levels(shape, n_levels, rng, smooth):
    """1-based gray levels in ``n_levels`` bins of Gaussian noise, smoothed by ``smooth`` voxels (long runs)."""
    img = rng.normal(size=shape)
    if smooth:
        img = ndimage.gaussian_filter(img, smooth)
    edges = np.quantile(img, np.linspace(0, 1, n_levels + 1)[1:-1])
    return (np.digitize(img, edges) + 1).astype(np.int32)


def _case(seed):
    """A random box (1-9 voxels per axis), gray levels (noisy or smooth) and mask (blob, scattered or full)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 10, 3))
    binned = _levels(shape, int(rng.integers(1, 6)), rng, float(rng.choice([0.0, 1.5])))
    kind = seed % 3
    if kind == 0:
        mask = rng.random(shape) < rng.uniform(0.2, 0.9)
    elif kind == 1:
        grid = np.indices(shape)
        mask = sum(((g - s / 2) / max(s / 2, 1)) ** 2 for g, s in zip(grid, shape)) < 1.2
    else:
        mask = np.ones(shape, bool)
    binned[~mask] = 0
    return binned, mask


def _lut(binned, mask):
    levels = np.unique(binned[mask])
    lut = np.full(int(levels[-1]) + 1, -1, np.int64)
    lut[levels] = np.arange(len(levels))
    return lut, len(levels)


@pytest.mark.parametrize("seed", range(80))
def test_line_counts_equal_glcm_and_glrlm_counts(seed):
    binned, mask = _case(seed)
    if not mask.any():
        pytest.skip("empty mask")
    lut, n = _lut(binned, mask)
    for distances in ((1,), (1, 2), (3,)):
        angles = generate_angles(binned.shape, distances, bidirectional=False, force2D_dimension=None)
        if len(angles) == 0:
            continue
        both = np.concatenate([angles, -angles])  # the same lines walked the other way: pairs transposed
        runs, pairs, lone = line_counts(binned, mask, both, lut, n, True)
        assert np.array_equal(pairs, glcm_counts(binned, mask, both, lut, n)), distances
        alone = line_counts(binned, mask, both, lut, n, False)  # the runs without the pairs
        assert np.array_equal(alone[0], runs) and np.array_equal(alone[2], lone) and alone[1].shape[:2] == (0, 0)
        if distances == (1,):
            expected = glrlm_counts(binned, mask, both, lut, n, max(binned.shape))
            got = runs.astype(np.float64)
            got[:, :, lone] = 0
            assert np.array_equal(got, expected)
            # every ROI voxel is in one run per angle
            lengths = np.arange(1, runs.shape[1] + 1)
            assert np.all((runs * lengths[None, :, None]).sum((0, 1)) == mask.sum())


def test_line_counts_on_a_smooth_radiograph_sized_image():
    rng = np.random.default_rng(7)
    binned = _levels((1, 120, 150), 9, rng, 4.0)
    yy, xx = np.indices(binned.shape[1:])
    lung = [((yy - 60) / 50.0) ** 2 + ((xx - cx) / 30.0) ** 2 < 1 for cx in (40, 110)]  # two lung fields
    mask = lung[0] | lung[1]
    mask = mask[None]
    binned[~mask] = 0
    lut, n = _lut(binned, mask)
    angles = generate_angles(binned.shape, (1,), bidirectional=False, force2D_dimension=0)
    runs, pairs, lone = line_counts(binned, mask, angles, lut, n, True)
    assert np.array_equal(pairs, glcm_counts(binned, mask, angles, lut, n))
    assert np.array_equal(runs.astype(np.float64), glrlm_counts(binned, mask, angles, lut, n, 150))
    assert not lone.any()


def test_lone_angles_are_flagged():
    # a 3-D ROI of one voxel per slice at different (y, x): no z line holds two ROI voxels
    binned = np.zeros((2, 2, 2), np.int32)
    mask = np.zeros((2, 2, 2), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True
    binned[mask] = 1
    angles = generate_angles(binned.shape, (1,), bidirectional=False, force2D_dimension=None)
    runs, pairs, lone = line_counts(binned, mask, angles, np.array([-1, 0]), 1, False)
    expected = [abs(int(a.sum())) != 3 for a in angles]  # only the diagonal (1, 1, 1) joins them
    assert list(lone) == expected
    assert np.array_equal(runs.astype(float)[:, :, ~lone], glrlm_counts(binned, mask, angles, np.array([-1, 0]), 1,
                                                                         2)[:, :, ~lone])


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("axis", [None, 0, 1, 2])
def test_zones_by_runs_equal_the_flood_fill(seed, axis):
    binned, mask = _case(seed)
    try:
        labels, offsets = neighbourhood(binned, mask, (1,), axis)
    except ValueError:
        return  # no neighbour in this box: glszm_matrix raises before either kernel runs
    flood = glszm_zones(labels, offsets, int(mask.sum()))
    swap, rows = connected_rows(axis)
    lab = binned * mask
    runs = zones_by_runs(np.ascontiguousarray(lab.transpose(0, 2, 1) if swap else lab, dtype=np.int32), rows)
    if swap:  # raster order of the swapped array: the same zones, in another order
        assert sorted(zip(*map(list, flood))) == sorted(zip(*map(list, runs)))
    else:  # both list the zones in raster order of their first voxel
        assert np.array_equal(flood[0], runs[0]) and np.array_equal(flood[1], runs[1])


def test_connected_rows():
    assert connected_rows(None)[1].tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1]]
    assert connected_rows(0)[1].tolist() == [[0, -1]]
    assert connected_rows(1)[1].tolist() == [[-1, 0]]
    assert connected_rows(2)[0] and connected_rows(2)[1].tolist() == [[-1, 0]]  # y and x swapped first


def test_diagonal_runs_join_in_2d():
    # runs that touch only at a corner are one zone (8-connectivity), for level 1 and for level 2; the 3s
    # of the last row touch no other 3
    lab = np.array([[[1, 1, 2, 2, 0], [2, 2, 1, 1, 0], [0, 0, 0, 0, 3], [3, 0, 0, 0, 0]]], np.int32)
    gl, size = zones_by_runs(lab, connected_rows(0)[1])
    assert gl.tolist() == [1, 2, 3, 3] and size.tolist() == [4, 4, 1, 1]


def test_mean_run_length_by_hand():
    lab = np.array([[[0, 1, 1, 2, 0, 3], [4, 4, 4, 4, 0, 0]]], np.int32)  # runs 11, 2, 3 | 4444
    assert mean_run_length(lab) == 8 / 4


@pytest.mark.parametrize("smooth", [0.0, 3.0])
def test_glszm_matrix_is_the_same_on_either_path(smooth, monkeypatch):
    rng = np.random.default_rng(3)
    binned = _levels((4, 40, 50), 6, rng, smooth)
    mask = np.ones(binned.shape, bool)
    mask[:, :5] = False
    binned[~mask] = 0
    chosen = kglszm.runs_pay(np.ascontiguousarray(binned), connected_rows(None)[1])
    assert chosen == (smooth > 0)  # long runs on the smooth image only
    out = {}
    for pay in (True, False):
        monkeypatch.setattr(kglszm, "runs_pay", lambda lab, rows, pay=pay: pay)
        for axis in (None, 0, 2):
            out[pay, axis] = glszm_matrix(binned, mask, axis)
    for axis in (None, 0, 2):
        assert all(np.array_equal(a, b) for a, b in zip(out[True, axis], out[False, axis]))


def test_run_marginals_equal_numpy_sums():
    rng = np.random.default_rng(1)
    p = rng.integers(0, 50, (7, 30, 13)).astype(np.float64)
    nr, pr, pg = run_marginals(p)
    assert np.array_equal(nr, p.sum((0, 1))) and np.array_equal(pr, p.sum(0)) and np.array_equal(pg, p.sum(1))


def test_ngtdm_sums_use_int64_where_int32_could_overflow():
    # levels near 3e8 with 8 neighbours: neighbour sums pass 2**31 (int32 would wrap)
    rng = np.random.default_rng(2)
    top = 300_000_000
    binned = rng.integers(top - 5, top + 1, (1, 6, 7)).astype(np.int32)
    mask = np.ones(binned.shape, bool)
    labels, offsets = neighbourhood(binned, mask, (1,), 0)
    n_i, s_i = ngtdm_sums(labels, offsets, top)
    lab = labels.reshape(binned.shape[0], binned.shape[1] + 2, binned.shape[2] + 2)[0].astype(np.float64)
    for g in np.unique(binned):
        ys, xs = np.nonzero(lab == g)
        diffs = []
        for y, x in zip(ys, xs):
            win = lab[y - 1:y + 2, x - 1:x + 2].ravel()
            nb = np.delete(win, 4)
            nb = nb[nb > 0]
            diffs.append(abs(g - nb.sum() / len(nb)))
        assert n_i[g - 1] == len(ys)
        assert s_i[g - 1] == pytest.approx(sum(diffs), rel=1e-12)


def _roi(classes):
    rng = np.random.default_rng(5)
    image = ndimage.gaussian_filter(rng.normal(100, 30, (40, 50)), 2)
    mask = np.zeros(image.shape, bool)
    mask[5:35, 4:46] = True
    roi = roi_from_arrays(image, mask, settings={"binWidth": 5})
    roi.classes = classes
    return roi


def test_glcm_takes_its_pairs_from_glrlms_walk_only_when_glrlm_runs():
    alone = _roi(("glcm",))
    both = _roi(("glcm", "glrlm"))
    names = list(glcm.FEATURES)
    a = glcm.compute(alone, names)
    b = glcm.compute(both, names)
    assert a == b or all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a)
    assert [k[0] for k in alone._cache if isinstance(k, tuple)] == ["pairs"]  # no walk: GLRLM will not run
    assert [k[0] for k in both._cache if isinstance(k, tuple)] == ["lines"]
    glrlm.compute(both, list(glrlm.FEATURES))
    assert [k[0] for k in both._cache if isinstance(k, tuple)] == ["lines"]  # GLRLM reused the walk
    # GLRLM alone walks without counting pairs (GLCM's Ng**2 counts per angle are not made)
    runs_only = _roi(("glrlm",))
    glrlm.compute(runs_only, list(glrlm.FEATURES))
    (entry,) = [v for k, v in runs_only._cache.items() if isinstance(k, tuple) and k[0] == "lines"]
    assert entry[1].shape[:2] == (0, 0) and np.array_equal(entry[0], both._cache[next(
        k for k in both._cache if isinstance(k, tuple) and k[0] == "lines")][0])
    # other distances: GLCM's angles are not GLRLM's, so it counts its own pairs
    far = _roi(("glcm", "glrlm"))
    far.settings["distances"] = [2]
    glcm.compute(far, names)
    assert [k[0] for k in far._cache if isinstance(k, tuple)] == ["pairs"]
