"""Report-generation scores: the text metrics (pycocoevalcap, R2Gen's convention), clinical efficacy, the floors.

Three tests start METEOR's Java program (about 7 s each, most of it loading its paraphrase table);
the IU X-ray floors test scores 2 x 590 studies without METEOR (a few seconds; METEOR would add
about 8 s per floor).
"""
from __future__ import annotations

import json
import math
import os
import stat
import sys
import time

import numpy as np
import pytest

from conftest import shared
from chexradi.metrics import (BOOTSTRAP_METRICS, TEXT_METRICS, clinical_efficacy, java_status, paired_text_bootstrap,
                              text_scores)
from chexradi.metrics import text as text_mod
from chexradi.reports import load_label_set
from chexradi.reports.tokenizer import clean_report
from chexradi.reportgen.scoring import label_matrix, most_frequent_report, nearest_label_reports, score_reports

pytest.importorskip("pycocoevalcap.bleu.bleu", reason='pycocoevalcap is not installed (pip install "chexradi[reportgen]")')
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

needs_java = pytest.mark.skipif(java_status() is not None, reason=f"METEOR cannot run: {java_status()}")

REFS = ["the heart is normal in size . the mediastinum is unremarkable . the lungs are clear .",
        "there is a small right pleural effusion . no pneumothorax .",
        "heart size is enlarged . there is mild pulmonary edema .",
        "no acute cardiopulmonary abnormality .",
        "degenerative changes of the thoracic spine . no focal consolidation ."]
HYPS = ["the heart size is normal . the lungs are clear .",
        "small right pleural effusion . no pneumothorax .",
        "the heart is enlarged . no pulmonary edema .",
        "",  # a model may emit nothing
        "no focal consolidation . degenerative changes of the spine ."]


def _coco(refs, hyps):
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    return gts, res


def _kill(meteor) -> None:
    meteor.meteor_p.stdin.close()
    meteor.meteor_p.kill()
    meteor.meteor_p.wait()


# ------------------------------------------------------------------------------------------------
# text_scores against pycocoevalcap
# ------------------------------------------------------------------------------------------------
def test_bleu_rouge_cider_equal_pycocoevalcap_called_directly_without_java():
    gts, res = _coco(REFS, HYPS)
    got = text_scores(REFS, HYPS, meteor=False)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    want = {"BLEU_1": bleu[0], "BLEU_2": bleu[1], "BLEU_3": bleu[2], "BLEU_4": bleu[3],
            "ROUGE_L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=0), k
    assert got["METEOR"] is None and got.unavailable["METEOR"]  # not asked for: unavailable with a reason, never 0


@pytest.mark.slow
@needs_java
def test_text_scores_equal_pycocoevalcap_called_directly_and_java_is_ended(monkeypatch):
    import pycocoevalcap.meteor.meteor as meteor_mod

    started = []

    class Recording(meteor_mod.Meteor):
        def __init__(self):
            super().__init__()
            started.append(self)

    monkeypatch.setattr(meteor_mod, "Meteor", Recording)
    got = text_scores(REFS, HYPS, ids=[f"s{i}" for i in range(5)])
    assert len(started) == 1 and started[0].meteor_p.poll() is not None, "METEOR's java process was left running"
    monkeypatch.undo()

    gts, res = _coco(REFS, HYPS)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    m = meteor_mod.Meteor()
    try:
        meteor, _ = m.compute_score(gts, res)
    finally:
        _kill(m)
    want = {"BLEU_1": bleu[0], "BLEU_2": bleu[1], "BLEU_3": bleu[2], "BLEU_4": bleu[3], "METEOR": meteor,
            "ROUGE_L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}
    assert list(got.scores) == list(TEXT_METRICS)
    for k in TEXT_METRICS:
        assert got[k] == pytest.approx(want[k], rel=1e-12, abs=0), k
    assert got.unavailable == {} and got.n == 5 and got.empty_hypotheses == 1
    assert 0 < got["METEOR"] < 1
    json.dumps(got.as_dict(), allow_nan=False)


@pytest.mark.slow
@needs_java
def test_identical_reports_give_bleu_one_up_to_pycocoevalcaps_epsilon_and_meteor_near_one():
    refs = REFS[:3] + [REFS[4]]
    got = text_scores(refs, refs)
    for k in ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4"):
        # pycocoevalcap divides (matches + 1e-15) by (n-grams + 1e-9): 1 - O(1e-10), never exactly 1
        assert 1 - 1e-8 < got[k] < 1.0, (k, got[k])
    assert got["ROUGE_L"] == 1.0
    assert got["METEOR"] > 0.99, got["METEOR"]
    # CIDEr-D of a corpus of distinct documents scored against themselves: every cosine 1, no length
    # penalty -> 10 (the maximum) for every study with at least 4 words
    assert got["CIDEr"] == pytest.approx(10.0, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# by hand
# ------------------------------------------------------------------------------------------------
HAND_REFS = ["the heart is normal .", "no pleural effusion .", "the lungs are clear ."]
HAND_HYPS = ["the heart is enlarged .", "no effusion .", "the lungs are clear ."]


def test_bleu_and_rouge_l_by_hand():
    # Clipped n-gram matches / hypothesis n-grams, per study (one reference each):
    #   1 "the heart is enlarged ." vs "the heart is normal ."
    #       1-grams the heart is enlarged .          -> 4/5 (not "enlarged")
    #       2-grams the_heart heart_is is_enlarged enlarged_. -> 2/4
    #       3-grams the_heart_is heart_is_enlarged is_enlarged_. -> 1/3
    #       4-grams                                   -> 0/2
    #   2 "no effusion ." vs "no pleural effusion ."
    #       1-grams 3/3, 2-grams (no_effusion, effusion_.) 1/2, 3-grams 0/1, 4-grams 0/0
    #   3 identical, 5 words: 5/5, 4/4, 3/3, 2/2
    # Corpus BLEU sums them: matches [12, 7, 4, 2] over [13, 10, 7, 4]; hypothesis length 13,
    # reference length 14 (the "closest" reference length; one reference per study) -> brevity
    # penalty exp(1 - 14/13).
    bp = math.exp(1 - 14 / 13)
    p = [12 / 13, 7 / 10, 4 / 7, 2 / 4]
    want_bleu = [bp * math.prod(p[:k + 1]) ** (1 / (k + 1)) for k in range(4)]
    # ROUGE-L: LCS-based P and R, F = (1 + b^2) P R / (R + b^2 P) with b = 1.2, mean over studies
    #   1 LCS "the heart is ." = 4: P = R = 4/5 -> F = 0.8
    #   2 LCS "no effusion ." = 3: P = 3/3, R = 3/4 -> F = 2.44 * 0.75 / (0.75 + 1.44)
    #   3 identical -> 1
    b2 = 1.2 ** 2
    want_rouge = (0.8 + (1 + b2) * 1.0 * 0.75 / (0.75 + b2 * 1.0) + 1.0) / 3
    got = text_scores(HAND_REFS, HAND_HYPS, meteor=False)
    # pycocoevalcap's epsilons move BLEU by about 1e-10
    for k in range(4):
        assert got[f"BLEU_{k + 1}"] == pytest.approx(want_bleu[k], rel=1e-8), k
    assert got["ROUGE_L"] == pytest.approx(want_rouge, rel=1e-12)

    # Without the identical study no 4-gram matches: pycocoevalcap's BLEU-4 is not 0 but the
    # fourth root of (p1 p2 p3 * 1e-15 / (2 + 1e-9)) times the brevity penalty, about 1e-4.
    two = text_scores(HAND_REFS[:2], HAND_HYPS[:2], meteor=False)
    small, tiny = 1e-9, 1e-15
    prod = ((7 + tiny) / (8 + small)) * ((3 + tiny) / (6 + small)) * ((1 + tiny) / (4 + small)) * (tiny / (2 + small))
    ratio = (8 + tiny) / (9 + small)
    assert two["BLEU_4"] == pytest.approx(prod ** 0.25 * math.exp(1 - 1 / ratio), rel=1e-12)
    assert 0 < two["BLEU_4"] < 1e-3


def test_cider_d_by_hand():
    # Two studies with disjoint words: every reference n-gram has document frequency 1 of N = 2, so
    # every weight is log 2 - log 1 and the weights cancel in the cosines.
    #   A: hypothesis = reference (4 words): cosine 1 for n = 1..4, same length -> 10 * 1 = 10
    #   B: "lungs are" vs "lungs are clear bilaterally":
    #      n=1: h = {lungs, are}, r = 4 words: sum min(h, r) r = 2 -> 2 / (sqrt 2 * 2) = 1 / sqrt 2
    #      n=2: h = {lungs_are}, r = 3 bigrams -> 1 / (1 * sqrt 3)
    #      n=3, 4: the hypothesis has none -> 0
    #      length penalty on the bigram counts (pycocoevalcap's "length"): 1 - 3 = -2,
    #      exp(-(-2)^2 / (2 * 6^2)) = exp(-1/18)
    #      -> 10 * (1/sqrt 2 + 1/sqrt 3 + 0 + 0) / 4 * exp(-1/18)
    refs = ["heart size is normal", "lungs are clear bilaterally"]
    hyps = ["heart size is normal", "lungs are"]
    b = 10 * (1 / math.sqrt(2) + 1 / math.sqrt(3)) / 4 * math.exp(-1 / 18)
    got = text_scores(refs, hyps, meteor=False)
    assert got["CIDEr"] == pytest.approx((10 + b) / 2, rel=1e-12)


def test_cider_properties_single_study_zero_and_order_invariance():
    # IDF needs a corpus: with one study every n-gram has df = N = 1, weight log 1 - log 1 = 0.
    assert text_scores([REFS[0]], [REFS[0]], meteor=False)["CIDEr"] == 0.0
    a = text_scores(REFS, HYPS, meteor=False)
    order = [3, 0, 4, 2, 1]
    b = text_scores([REFS[i] for i in order], [HYPS[i] for i in order], meteor=False)
    for k in TEXT_METRICS:
        if k != "METEOR":
            assert b[k] == pytest.approx(a[k], rel=1e-12), k
    # a hypothesis swapped to another study scores lower everywhere
    c = text_scores(REFS, HYPS[1:] + HYPS[:1], meteor=False)
    assert all(c[k] < a[k] for k in ("BLEU_1", "BLEU_4", "ROUGE_L", "CIDEr"))


# ------------------------------------------------------------------------------------------------
# METEOR without Java, pycocoevalcap missing
# ------------------------------------------------------------------------------------------------
def test_meteor_unavailable_without_java(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no java
    reason = java_status()
    assert reason is not None and "java" in reason and "apt-get install default-jre-headless" in reason
    got = text_scores(REFS, HYPS)
    assert got["METEOR"] is None
    assert got.unavailable == {"METEOR": reason}
    assert all(isinstance(got[k], float) for k in TEXT_METRICS if k != "METEOR")
    assert got.row()["METEOR"] is None and got.as_dict()["unavailable"]["METEOR"] == reason
    json.dumps(got.as_dict(), allow_nan=False)
    off = text_scores(REFS, HYPS, meteor=False)
    assert off["METEOR"] is None and "meteor=False" in off.unavailable["METEOR"]
    assert {k: v for k, v in off.scores.items() if k != "METEOR"} == {k: v for k, v in got.scores.items()
                                                                      if k != "METEOR"}


def _fake_java(folder, body: str) -> None:
    folder.mkdir()
    exe = folder / "java"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_broken_java_is_named_and_a_dying_meteor_process_is_an_error(monkeypatch, tmp_path):
    _fake_java(tmp_path / "broken", "echo 'no JVM here' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path / "broken"))
    reason = java_status()
    assert "exit status 1" in reason and "no JVM here" in reason and "JAVA_HOME" in reason
    assert text_scores(REFS, HYPS).unavailable["METEOR"] == reason

    # `java -version` works but the scorer dies at once: an error that says how to go on, and no
    # process left behind
    _fake_java(tmp_path / "dying", 'if [ "$1" = "-version" ]; then exit 0; fi; echo "meteor crashed" >&2; exit 3')
    monkeypatch.setenv("PATH", str(tmp_path / "dying"))
    assert java_status() is None
    with pytest.raises(RuntimeError, match=r"failed \(.*meteor crashed.*meteor=False"):
        text_scores(REFS, HYPS)

    # a scorer that never answers is killed by the watchdog (METEOR_TIMEOUT_S + 0.1 s per study)
    _fake_java(tmp_path / "silent", 'if [ "$1" = "-version" ]; then exit 0; fi; exec /bin/sleep 600')
    monkeypatch.setenv("PATH", str(tmp_path / "silent"))
    monkeypatch.setattr(text_mod, "METEOR_TIMEOUT_S", 1.0)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"did not answer within 2 s and was killed.*meteor=False"):
        text_scores(REFS, HYPS)
    assert time.perf_counter() - t0 < 30


def test_pycocoevalcap_missing_gives_the_install_hint(monkeypatch):
    for name in [n for n in sys.modules if n == "pycocoevalcap" or n.startswith("pycocoevalcap.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pycocoevalcap", None)
    with pytest.raises(ImportError, match=r'pip install "chexradi\[reportgen\]"'):
        text_scores(REFS, HYPS, meteor=False)
    with pytest.raises(ImportError, match=r'pip install "chexradi\[reportgen\]"'):
        paired_text_bootstrap(REFS, HYPS, REFS)


# ------------------------------------------------------------------------------------------------
# bad input, empty texts
# ------------------------------------------------------------------------------------------------
def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"5 reference\(s\) but 4 hypothes"):
        text_scores(REFS, HYPS[:4], meteor=False)
    refs = ["", " ", "the lungs are clear .", "\n", "", "", "", ""]
    ids = [f"CXR{i}" for i in range(len(refs))]
    with pytest.raises(ValueError) as err:
        text_scores(refs, ["the lungs are clear ."] * len(refs), ids=ids, meteor=False)
    msg = str(err.value)
    assert "7 reference report(s) have no words" in msg
    assert "CXR0, CXR1, CXR3, CXR4, CXR5 and 2 more" in msg and "CXR2" not in msg
    assert "drop those studies or give their reference text" in msg
    with pytest.raises(ValueError, match="study 1"):  # indices without ids
        text_scores(["a b .", ""], ["a b .", "c ."], meteor=False)
    with pytest.raises(ValueError, match="ids has 2 entries but there are 5 studies"):
        text_scores(REFS, HYPS, ids=["a", "b"], meteor=False)
    with pytest.raises(ValueError, match="hypothesis 3 must be a string"):
        text_scores(REFS, HYPS[:3] + [None] + HYPS[4:], meteor=False)
    with pytest.raises(ValueError, match="not a single string"):
        text_scores("the lungs are clear .", "the lungs are clear .", meteor=False)
    with pytest.raises(ValueError, match="no studies"):
        text_scores([], [], meteor=False)


def test_empty_hypotheses_are_scored_by_every_scorer_and_counted():
    hyps = ["", "small right pleural effusion . no pneumothorax .", "  \n ", "no acute cardiopulmonary abnormality .",
            "no focal consolidation ."]
    got = text_scores(REFS, hyps, meteor=False)
    assert got.empty_hypotheses == 2
    gts, res = _coco(REFS, ["", hyps[1], "", hyps[3], hyps[4]])
    bleu, per_bleu = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, per_rouge = Rouge().compute_score(gts, res)
    cider, per_cider = Cider().compute_score(gts, res)
    for k in range(4):
        assert got[f"BLEU_{k + 1}"] == pytest.approx(bleu[k], rel=1e-12)
        assert per_bleu[k][0] < 1e-20 and per_bleu[k][2] < 1e-20  # nothing matched, brevity penalty exp(-huge)
    assert got["ROUGE_L"] == pytest.approx(rouge, rel=1e-12) and per_rouge[0] == per_rouge[2] == 0.0
    assert got["CIDEr"] == pytest.approx(cider, rel=1e-12) and per_cider[0] == per_cider[2] == 0.0
    every = text_scores(REFS, [""] * 5, meteor=False)
    assert every.empty_hypotheses == 5
    assert all(every[k] < 1e-6 for k in TEXT_METRICS if k != "METEOR")


# ------------------------------------------------------------------------------------------------
# paired bootstrap
# ------------------------------------------------------------------------------------------------
def _systems():
    rng = np.random.default_rng(3)
    pool = REFS + HAND_REFS + ["the heart and lungs are normal .", "no pleural effusion or pneumothorax ."]
    refs = [pool[i] for i in rng.integers(0, len(pool), 14)]
    a = [pool[i] for i in rng.integers(0, len(pool), 14)]
    b = [r if k % 2 else pool[(k * 5) % len(pool)] for k, r in enumerate(refs)]
    return refs, a, b


def test_bootstrap_point_values_are_text_scores_and_a_resample_is_pycocoevalcap_on_the_resampled_corpus():
    refs, a, b = _systems()
    res = paired_text_bootstrap(refs, a, b, metrics=BOOTSTRAP_METRICS, n_boot=50, seed=1)
    sa, sb = text_scores(refs, a, meteor=False), text_scores(refs, b, meteor=False)
    for m, r in res.items():
        assert r.a == pytest.approx(sa[m], rel=1e-12) and r.b == pytest.approx(sb[m], rel=1e-12), m
        assert r.difference == pytest.approx(r.b - r.a) and r.ci[0] <= r.ci[1] and r.n_resamples == 50
        json.dumps(r.row(), allow_nan=False)
    # one resample (studies drawn twice count twice, in CIDEr's document frequency too)
    idx = np.array([0, 0, 3, 5, 5, 5, 7, 8, 9, 9, 10, 11, 12, 13])
    stats = text_mod._PairedStats(refs, [a, b])
    got = stats.scores(np.bincount(idx, minlength=len(refs)))
    for s, hyps in enumerate((a, b)):
        gts, res_ = _coco([refs[i] for i in idx], [hyps[i] for i in idx])
        bleu, _ = Bleu(4).compute_score(gts, res_, verbose=0)
        want = [*bleu, Rouge().compute_score(gts, res_)[0], Cider().compute_score(gts, res_)[0]]
        assert got[s] == pytest.approx(want, rel=1e-12)


def test_bootstrap_of_a_system_against_itself_and_bad_arguments():
    refs, a, b = _systems()
    same = paired_text_bootstrap(refs, a, a, n_boot=20)
    assert set(same) == {"BLEU_4", "ROUGE_L", "CIDEr"}
    assert all(r.difference == 0.0 and r.ci == (0.0, 0.0) for r in same.values())
    r1 = paired_text_bootstrap(refs, a, b, n_boot=20, seed=4)
    r2 = paired_text_bootstrap(refs, a, b, n_boot=20, seed=4)
    assert r1 == r2
    with pytest.raises(ValueError, match="METEOR cannot be bootstrapped"):
        paired_text_bootstrap(refs, a, b, metrics=("METEOR",))
    with pytest.raises(ValueError, match="unknown metric"):
        paired_text_bootstrap(refs, a, b, metrics=("BLEU",))
    with pytest.raises(ValueError, match="at least 2 studies"):
        paired_text_bootstrap(refs[:1], a[:1], b[:1])
    with pytest.raises(ValueError, match="n_boot"):
        paired_text_bootstrap(refs, a, b, n_boot=5)
    with pytest.raises(ValueError, match="level"):
        paired_text_bootstrap(refs, a, b, level=95)
    with pytest.raises(ValueError, match="14 reference"):
        paired_text_bootstrap(refs, a, b[:3])


# ------------------------------------------------------------------------------------------------
# clinical efficacy
# ------------------------------------------------------------------------------------------------
NAMES = ["Effusion", "Cardiomegaly", "Pneumonia"]
nan = float("nan")
CE_REF = [[1, 0, -1],
          [1, 1, nan],
          [0, nan, 0],
          [nan, 1, -1]]
CE_GEN = [[1, 1, 0],
          [0, 1, 1],
          [1, None, -1],
          [nan, -1, 1]]


def test_clinical_efficacy_by_hand_uncertain_negative():
    # Positives (1 only): reference Effusion {s1, s2}, Cardiomegaly {s2, s4}, Pneumonia {};
    #                     generated Effusion {s1, s3}, Cardiomegaly {s1, s2}, Pneumonia {s2, s4}.
    # Effusion:     TP s1, FP s3, FN s2        -> P 1/2, R 1/2, F1 1/2
    # Cardiomegaly: TP s2, FP s1, FN s4        -> P 1/2, R 1/2, F1 1/2
    # Pneumonia:    TP 0, FP s2 s4, FN 0       -> P 0, R NaN (no reference positive), F1 0 / (0 + 2 + 0) = 0
    # micro: TP 2, FP 4, FN 2 -> P 1/3, R 1/2, F1 2 (1/3)(1/2) / (5/6) = 0.4
    # macro: P and F1 mean(1/2, 1/2, 0) = 1/3; R over the 2 labels where defined = 1/2
    ce = clinical_efficacy(CE_REF, CE_GEN, NAMES)
    assert ce.tp.tolist() == [1, 1, 0] and ce.fp.tolist() == [1, 1, 2] and ce.fn.tolist() == [1, 1, 0]
    assert ce.support.tolist() == [2, 2, 0]
    np.testing.assert_allclose(ce.precision, [0.5, 0.5, 0.0])
    np.testing.assert_allclose(ce.recall, [0.5, 0.5, nan])
    np.testing.assert_allclose(ce.f1, [0.5, 0.5, 0.0])
    assert ce.micro == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4})
    assert ce.macro == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 1 / 3})
    assert ce.macro_labels == {"precision": 3, "recall": 2, "f1": 3}
    d = ce.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["labels"][2] == {"label": "Pneumonia", "tp": 0, "fp": 2, "fn": 0, "support": 0, "precision": 0.0,
                              "recall": None, "f1": 0.0}
    rows = ce.table()
    assert [r["label"] for r in rows] == NAMES + ["micro", "macro"] and math.isnan(rows[2]["recall"])
    assert rows[3]["tp"] == 2 and rows[3]["fp"] == 4 and rows[3]["fn"] == 2


def test_clinical_efficacy_by_hand_uncertain_positive():
    # -1 positive: reference Pneumonia {s1, s4}; generated Cardiomegaly {s1, s2, s4}, Pneumonia {s2, s3, s4}.
    # Effusion unchanged (1, 1, 1); Cardiomegaly TP s2 s4, FP s1, FN 0 -> P 2/3, R 1, F1 0.8;
    # Pneumonia TP s4, FP s2 s3, FN s1 -> P 1/3, R 1/2, F1 0.4.
    # micro: TP 4, FP 4, FN 2 -> P 1/2, R 2/3, F1 4/7
    ce = clinical_efficacy(CE_REF, CE_GEN, NAMES, uncertain="positive")
    assert ce.tp.tolist() == [1, 2, 1] and ce.fp.tolist() == [1, 1, 2] and ce.fn.tolist() == [1, 0, 1]
    np.testing.assert_allclose(ce.f1, [0.5, 0.8, 0.4])
    assert ce.micro == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7})
    assert ce.macro == pytest.approx({"precision": (0.5 + 2 / 3 + 1 / 3) / 3, "recall": (0.5 + 1 + 0.5) / 3,
                                      "f1": (0.5 + 0.8 + 0.4) / 3})


def test_clinical_efficacy_nan_rules_and_bad_input():
    # A: TP 0, FP 1, FN 1 -> P 0, R 0 -> F1 0 (both defined, both 0)
    # B: nothing positive anywhere -> P, R, F1 NaN
    # C: generated positive, no reference positive -> P 0, R NaN, F1 0 / (0 + 1 + 0) = 0
    ce = clinical_efficacy([[1, 0, 0], [0, 0, nan]], [[0, 0, 0], [1, nan, 1]], ["A", "B", "C"])
    np.testing.assert_array_equal(ce.precision, [0.0, nan, 0.0])
    np.testing.assert_array_equal(ce.recall, [0.0, nan, nan])
    np.testing.assert_array_equal(ce.f1, [0.0, nan, 0.0])
    assert ce.micro == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert ce.macro == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert ce.macro_labels == {"precision": 2, "recall": 1, "f1": 2}
    none = clinical_efficacy([[0, 0]], [[0, nan]], ["A", "B"])
    assert all(math.isnan(v) for v in [*none.micro.values(), *none.macro.values()])
    assert none.as_dict()["micro"] == {"precision": None, "recall": None, "f1": None}
    with pytest.raises(ValueError, match=r"shape \(2, 3\) but generated labels \(2, 2\)"):
        clinical_efficacy(np.zeros((2, 3)), np.zeros((2, 2)), ["A", "B", "C"])
    with pytest.raises(ValueError, match=r"values other than 1 / 0 / -1 / NaN: \[2.0\]"):
        clinical_efficacy([[2, 0]], [[0, 0]], ["A", "B"])
    with pytest.raises(ValueError, match="uncertain must be one of negative, positive"):
        clinical_efficacy([[1]], [[1]], ["A"], uncertain="ignore")
    with pytest.raises(ValueError, match=r"1 label name\(s\) for 2 column"):
        clinical_efficacy([[1, 0]], [[1, 0]], ["A"])
    with pytest.raises(ValueError, match="2-D"):
        clinical_efficacy([1, 0], [1, 0], ["A", "B"])


# ------------------------------------------------------------------------------------------------
# labels, score_reports
# ------------------------------------------------------------------------------------------------
def test_label_matrix_on_written_sentences():
    texts = ["there is a small right pleural effusion .", "no pleural effusion .", "", "possible pneumonia .", " . "]
    lm = label_matrix(texts)
    names = load_label_set("chestxray14").names
    assert lm.names == names and len(names) == 14 and "No Finding" not in lm.names
    assert lm.values.shape == (5, 14)
    eff, pna = names.index("Effusion"), names.index("Pneumonia")
    np.testing.assert_array_equal(lm.values[:, eff], [1, 0, 0, nan, 0])
    np.testing.assert_array_equal(lm.values[:, pna], [nan, nan, 0, -1, 0])
    assert lm.empty == (2, 4)
    assert (lm.values[[2, 4]] == 0).all()
    values, got_names, empty = lm  # unpacks as a tuple
    assert got_names == names and empty == (2, 4)
    with pytest.raises(ValueError, match="report 1 must be a string"):
        label_matrix(["a .", 3])


def test_clean_report_is_a_no_op_on_clean_text():
    for raw in ["The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
                "Heart size normal. No pleural effusion, pneumothorax or focal airspace disease... XXXX deformity.",
                "1. Cardiomegaly (moderate); 2. no effusion", "<unk> heart . lungs clear ."]:
        once = clean_report(raw)
        assert clean_report(once) == once
    assert clean_report("the heart is normal . the lungs are clear .") == "the heart is normal . the lungs are clear ."


def test_score_reports_end_to_end():
    refs = ["There is a small right pleural effusion. Heart size is normal.",  # Effusion 1, Cardiomegaly 0
            "The heart is enlarged. No pleural effusion.",  # Cardiomegaly 1, Effusion 0
            "No acute cardiopulmonary abnormality."]  # nothing
    hyps = ["small right pleural effusion .",  # Effusion 1: TP
            "no pleural effusion .",  # Cardiomegaly missed: FN
            "..."]  # no word after cleaning
    got = score_reports(refs, hyps, ids=["a", "b", "c"], meteor=False)
    assert got.n == 3 and got.empty_hypotheses == 1 and got.generated_labels.empty == (2,)
    # TP 1 (Effusion), FP 0, FN 1 (Cardiomegaly) -> P 1, R 1/2, F1 2/3
    row = got.row()
    assert list(row) == [*TEXT_METRICS, "CE_P", "CE_R", "CE_F1"]
    assert (row["CE_P"], row["CE_R"]) == (1.0, 0.5) and row["CE_F1"] == pytest.approx(2 / 3)
    assert row["METEOR"] is None and "meteor=False" in got.text.unavailable["METEOR"]
    clean = text_scores([clean_report(r) for r in refs], [clean_report(h) for h in hyps], meteor=False)
    assert {k: row[k] for k in TEXT_METRICS} == clean.row()
    # already-clean input scores the same
    again = score_reports([clean_report(r) for r in refs], [clean_report(h) for h in hyps], meteor=False)
    assert again.row() == row
    d = got.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["row"] == row and d["clinical"]["micro"]["precision"] == 1.0 and d["label_set"] == "chestxray14"
    with pytest.raises(ValueError, match=r"study b\b.*drop those studies"):
        score_reports([refs[0], "-- ; ...", refs[2]], hyps, ids=["a", "b", "c"], meteor=False)
    with pytest.raises(ValueError, match="uncertain must be one of"):
        score_reports(refs, hyps, uncertain="maybe")


# ------------------------------------------------------------------------------------------------
# floors
# ------------------------------------------------------------------------------------------------
def test_most_frequent_report():
    train = ["Small left effusion.", "small left effusion .", "SMALL LEFT EFFUSION..",  # 3 x after cleaning
             "Heart size normal. Lungs clear.", "heart size normal . lungs clear .",  # 2 x
             "The lungs are clear.", "the lungs are clear .", "", "..."]  # 2 x; 2 without words (ignored)
    assert most_frequent_report(train) == "small left effusion ."
    tie = ["the lungs are clear .", "heart size normal . lungs clear ."] * 2
    assert most_frequent_report(tie) == "heart size normal . lungs clear ."  # the smaller text
    assert most_frequent_report(tie[::-1]) == "heart size normal . lungs clear ."
    with pytest.raises(ValueError, match="no training report has words"):
        most_frequent_report(["", " . "])


def test_nearest_label_reports():
    train = [("Heart size normal. Lungs clear.", [0, 0]), ("heart size normal . lungs clear .", [0, 0]),
             ("The lungs are clear.", [0, 0]),
             ("Small left effusion.", [1, 0]), ("small left effusion .", [1, 0]), ("small left effusion", [1, 0]),
             ("Large right effusion.", [1, nan]), ("Cardiomegaly.", [0, 1]),
             ("Cardiomegaly. Small effusion.", [1, 1]), ("Enlarged heart.", [-1, 1]), ("enlarged heart .", [0, 1])]
    texts, labels = [t for t, _ in train], [y for _, y in train]
    queries = [[0, 0], [1, 0], [1, 1], [0, 1], [-1, nan]]
    assert nearest_label_reports(texts, labels, queries) == [
        "heart size normal . lungs clear .",  # 2 of the 3 reports at distance 0
        "small left effusion .",  # 3 vs "large right effusion ." 1
        "cardiomegaly . small effusion .",  # the only one at distance 0
        "enlarged heart .",  # 2 (the -1 is not positive) vs "cardiomegaly ." 1
        "heart size normal . lungs clear ."]  # -1 and NaN are not positive: [0, 0]
    # No exact match: every report at the smallest distance is a candidate, counted over the label
    # vectors that tie ([1, 0] and [0, 1] are both 1 away from [1, 1]; [0, 0] is 2 away)
    tie_train = [("a a .", [1, 0]), ("c c .", [1, 0]), ("c c .", [0, 1]), ("b b .", [0, 1])] + [("b b .", [0, 0])] * 5
    got = nearest_label_reports([t for t, _ in tie_train], [y for _, y in tie_train], [[1, 1], [0, 0]])
    assert got == ["c c .", "b b ."]
    with pytest.raises(ValueError, match=r"3 training report\(s\) but 2 row"):
        nearest_label_reports(["a .", "b .", "c ."], [[1, 0], [0, 1]], [[1, 0]])
    with pytest.raises(ValueError, match="query labels have 3 column"):
        nearest_label_reports(["a .", "b ."], [[1, 0], [0, 1]], [[1, 0, 0]])
    # vectorised: 590 queries against 2069 training reports
    rng = np.random.default_rng(0)
    big = (rng.random((2069, 14)) < 0.08).astype(float)
    words = [f"finding{k} ." for k in range(300)]
    texts = [words[i] for i in rng.integers(0, 300, 2069)]
    t0 = time.perf_counter()
    out = nearest_label_reports(texts, big, (rng.random((590, 14)) < 0.08).astype(float))
    assert time.perf_counter() - t0 < 1.0 and len(out) == 590


# ------------------------------------------------------------------------------------------------
# IU X-ray (R2Gen's split)
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_text_floors_on_iu_xray_r2gen_test_split():
    """Both floors on the 590 test studies, METEOR left out to keep the test short (~5 s).

    Measured (meteor on, chestxray14 labeler for CE): most frequent report BLEU-4 0.0777, nearest
    MeSH labels BLEU-4 0.0918.
    """
    folder = shared("iu-xray-reports")
    annotation, xml = folder / "r2gen_annotation.json", folder / "NLMCXR_reports.tgz"
    if not xml.is_file():
        pytest.skip(f"{xml} is absent (the MeSH labels of the nearest-label floor)")
    from chexradi.data.reports_join import r2gen_iu_xray

    joined = r2gen_iu_xray(annotation, reports=xml, labels="mesh")
    split = joined.by_split()
    train, test = split["train"], split["test"]
    assert (len(train), len(test)) == (2069, 590)
    for r in train + test:  # the annotation's reports are cleaned once and stay so
        once = clean_report(r.report.text)
        assert clean_report(once) == once
    refs = [r.report.text for r in test]
    ids = [r.image_id for r in test]
    mf = most_frequent_report([r.report.text for r in train])
    assert mf == "the heart is normal in size . the mediastinum is unremarkable . the lungs are clear ."
    floor = score_reports(refs, [mf] * len(refs), ids=ids, meteor=False)
    assert 0.01 < floor.row()["BLEU_4"] < 0.3
    assert floor.row()["BLEU_4"] == pytest.approx(0.0777, abs=5e-4)
    # a normal report predicts no finding: recall 0, precision (and F1) undefined
    assert floor.row()["CE_R"] == 0.0 and floor.row()["CE_P"] is None
    # nearest MeSH labels (IU's human indexing; "No Indexing" studies have NaN labels: nothing positive)
    t0 = time.perf_counter()
    near = nearest_label_reports([r.report.text for r in train], np.stack([r.labels for r in train]),
                                 np.stack([r.labels for r in test]))
    assert time.perf_counter() - t0 < 1.0
    near_scores = score_reports(refs, near, ids=ids, meteor=False)
    assert 0.01 < near_scores.row()["BLEU_4"] < 0.3
    assert near_scores.row()["CE_F1"] > 0.3  # the labels carry the findings the labeler reads
    boot = paired_text_bootstrap([clean_report(r) for r in refs], [mf] * len(refs), near, n_boot=100)
    assert boot["BLEU_4"].a == pytest.approx(floor.row()["BLEU_4"], rel=1e-12)
    assert boot["CIDEr"].b == pytest.approx(near_scores.row()["CIDEr"], rel=1e-12)


def test_no_java_left_running_by_this_module():
    """No METEOR process of ours survives (pycocoevalcap's jar runs as `java -jar ... meteor-1.5.jar`)."""
    mine = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == os.getpid() and any(b"meteor-1.5.jar" in c for c in cmd):
            mine.append(pid)
    assert not mine, f"METEOR java processes left by this test process: {mine}"
