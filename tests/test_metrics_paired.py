"""chexradi.metrics.paired: DeLong's test against scikit-learn, a direct O(mn) computation, the bootstrap and
a published worked example; the paired bootstrap; bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from chexradi.metrics import auc_ci, delong, delong_contrast, fast_auc, paired_bootstrap


def _data(n: int = 300, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    a = rng.normal(size=n) + 1.2 * y
    b = 0.6 * a + rng.normal(size=n) * 0.8 + 0.3 * y  # correlated with a, a little weaker
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return y, a, b


def _delong_direct(y, scores):
    """DeLong et al. (1988) as written: the kernel psi(x, y) over all positive-negative pairs, the structural
    components, their covariance matrices with m - 1 and n - 1: O(mn), no ranks."""
    x = [s[y == 1] for s in scores]
    z = [s[y == 0] for s in scores]
    m, n = len(x[0]), len(z[0])
    v10, v01, aucs = [], [], []
    for xs, zs in zip(x, z):
        psi = (xs[:, None] > zs[None, :]) + 0.5 * (xs[:, None] == zs[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    s10 = np.cov(v10, ddof=1)
    s01 = np.cov(v01, ddof=1)
    return np.array(aucs), s10 / m + s01 / n


@pytest.mark.parametrize("ties", [False, True])
def test_delong_equals_the_direct_computation_and_sklearn(ties):
    y, a, b = _data(ties=ties)
    res = delong(y, a, b)
    aucs, s = _delong_direct(y, [a, b])
    assert res.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert res.auc_b == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert (res.auc_a, res.auc_b) == pytest.approx(tuple(aucs), abs=1e-12)
    var = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    assert res.se == pytest.approx(math.sqrt(var), rel=1e-10)
    z = (aucs[0] - aucs[1]) / math.sqrt(var)
    assert res.z == pytest.approx(z, rel=1e-10)
    assert res.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)
    assert res.ci == pytest.approx((res.difference - 1.959963984540054 * res.se,
                                    res.difference + 1.959963984540054 * res.se), rel=1e-12)
    assert res.difference == pytest.approx(res.auc_a - res.auc_b)
    assert (res.n_positives, res.n_negatives) == (int(y.sum()), int((1 - y).sum()))


def test_delong_agrees_with_a_bootstrap_on_the_same_data():
    y, a, b = _data(n=400, seed=1)
    res = delong(y, a, b)
    boot = paired_bootstrap(lambda i: fast_auc(y[i], a[i]) - fast_auc(y[i], b[i]), y.size, n_resamples=3000,
                            seed=3)
    assert boot.estimate == pytest.approx(res.difference, abs=1e-12)
    assert boot.se == pytest.approx(res.se, rel=0.15)
    assert abs(boot.ci[0] - res.ci[0]) < 0.02 and abs(boot.ci[1] - res.ci[1]) < 0.02


def test_single_auc_ci_published_example():
    # pauc's README example (a DeLong interval, clipped to [0, 1]): AUC 0.708, 95 % CI (0.378, 1.000)
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.35, 0.24, 0.8, 0.2, 0.85, 0.13, 0.85, 0.74, 0.58, 0.71, 0.25])
    auc, (lo, hi), se = auc_ci(y, p)
    assert round(auc, 3) == 0.708 and round(lo, 3) == 0.378 and hi == 1.0
    # and the same variance as the direct computation
    _, s = _delong_direct(y, [p])
    assert se == pytest.approx(math.sqrt(float(s)), rel=1e-12)


def test_identical_models_and_a_hand_computed_case():
    y, a, _ = _data(n=50, seed=2)
    res = delong(y, a, a)
    assert res.difference == 0.0 and res.p_value == 1.0 and res.ci == (0.0, 0.0)
    # 2 positives (0.9, 0.4), 2 negatives (0.5, 0.1): model a ranks 3 of 4 pairs right, model b all 4
    y4 = np.array([1, 1, 0, 0])
    r = delong(y4, [0.9, 0.4, 0.5, 0.1], [0.9, 0.6, 0.5, 0.1])
    assert r.auc_a == 0.75 and r.auc_b == 1.0
    # by hand: V10_a = (1, 0.5), V01_a = (0.5, 1); V10_b = V01_b = (1, 1): S = var(V10_a)/2 + var(V01_a)/2
    assert r.se == pytest.approx(math.sqrt(0.125 / 2 + 0.125 / 2))


def test_contrast_reduces_to_delong_and_matches_the_bootstrap_over_classes():
    rng = np.random.default_rng(4)
    n, k = 400, 3
    t = (rng.random((n, k)) < 0.3).astype(float)
    t[rng.random((n, k)) < 0.05] = np.nan  # unknown labels are left out of their class
    s_a = rng.normal(size=(n, k)) + 1.0 * np.nan_to_num(t)
    s_b = 0.5 * s_a + rng.normal(size=(n, k)) + 0.6 * np.nan_to_num(t)
    scores = np.stack([s_a, s_b])
    known = ~np.isnan(t[:, 0])
    est, ci, p, se = delong_contrast(t[:, :1], scores[:, :, :1], [[1.0], [-1.0]])
    ref = delong(t[known, 0], s_a[known, 0], s_b[known, 0])
    assert est == pytest.approx(ref.difference) and se == pytest.approx(ref.se) and p == pytest.approx(ref.p_value)
    w = np.array([[1 / k] * k, [-1 / k] * k])
    est, ci, p, se = delong_contrast(t, scores, w, names=["A", "B", "C"])

    def stat(i):
        d = 0.0
        for c in range(k):
            ok = ~np.isnan(t[i, c])
            d += fast_auc(t[i, c][ok], s_a[i, c][ok]) - fast_auc(t[i, c][ok], s_b[i, c][ok])
        return d / k

    boot = paired_bootstrap(stat, n, n_resamples=2000, seed=5)
    assert est == pytest.approx(boot.estimate, abs=1e-12)
    assert se == pytest.approx(boot.se, rel=0.15)


def test_paired_bootstrap_is_seeded_and_counts_undefined_replicates():
    y, a, b = _data(n=60, seed=6)
    f = lambda i: fast_auc(y[i], a[i]) - fast_auc(y[i], b[i])  # noqa: E731
    r1 = paired_bootstrap(f, y.size, n_resamples=200, seed=7)
    r2 = paired_bootstrap(f, y.size, n_resamples=200, seed=7)
    r3 = paired_bootstrap(f, y.size, n_resamples=200, seed=8)
    assert r1 == r2 and r1.ci != r3.ci
    assert r1.ci[0] <= r1.estimate <= r1.ci[1] and r1.n_valid == 200
    # a statistic undefined on some resamples (three positives in 60 cases): those are left out and counted
    y3 = np.zeros(60)
    y3[:3] = 1
    r = paired_bootstrap(lambda i: fast_auc(y3[i], a[i]), 60, n_resamples=400, seed=1)
    assert 200 <= r.n_valid < 400
    # a large effect has a small p, no effect a large one
    yb, ab, _ = _data(n=300, seed=9)
    big = paired_bootstrap(lambda i: fast_auc(yb[i], ab[i]) - 0.5, yb.size, n_resamples=400, seed=2)
    assert 2 / 401 <= big.p_value < 0.01  # never 0: at least 2 / (n + 1)
    none = paired_bootstrap(lambda i: fast_auc(y[i], a[i]) - fast_auc(y[i], a[i]), y.size, n_resamples=50)
    assert none.p_value == 1.0 and none.ci == (0.0, 0.0)


@pytest.mark.parametrize("y, match", [
    (np.zeros(10), "class 'Nodule' has no positive case"),
    (np.ones(10), "class 'Nodule' has no negative case"),
    (np.r_[1, np.zeros(9)], "only one positive"),
    (np.r_[2, np.ones(9)], "0 and 1 only"),
])
def test_delong_refuses_a_class_it_cannot_test(y, match):
    with pytest.raises(ValueError, match=match):
        delong(y, np.arange(10.0), np.arange(10.0)[::-1], name="class 'Nodule'")


def test_delong_bad_scores_and_level():
    y = np.r_[np.ones(5), np.zeros(5)]
    with pytest.raises(ValueError, match="scores_b must be 1-D with one score per case"):
        delong(y, np.arange(10.0), np.arange(9.0))
    with pytest.raises(ValueError, match="NaN/inf"):
        delong(y, np.r_[np.nan, np.arange(9.0)], np.arange(10.0))
    with pytest.raises(ValueError, match="level"):
        delong(y, np.arange(10.0), np.arange(10.0), level=95)
    with pytest.raises(ValueError, match="must agree"):
        delong_contrast(y[:, None], np.arange(10.0)[None, :, None], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="n_resamples"):
        paired_bootstrap(lambda i: 0.0, 10, n_resamples=5)
    with pytest.raises(ValueError, match="not finite on the data"):
        paired_bootstrap(lambda i: float("nan"), 10)
