"""chexradi.metrics: box overlaps, localisation accuracy (Wang et al. 2017) and auc_report, by hand."""
from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest

from chexradi.cam.masks import Box
from chexradi.metrics import (IOBB_THRESHOLDS, IOU_THRESHOLDS, LocalizationTable, auc_per_class, auc_report,
                              box_iobb, box_iou, localization_accuracy, mean_auc)


# ----------------------------------------------------------------------------- box overlaps

def test_iou_and_iobb_of_hand_drawn_boxes():
    a, b = (0, 0, 10, 10), (5, 5, 10, 10)
    # overlap [5, 10) x [5, 10) = 25; union 100 + 100 - 25 = 175
    assert box_iou(a, b) == pytest.approx(25 / 175, abs=1e-15)
    assert box_iou(b, a) == box_iou(a, b)
    assert box_iobb(b, a) == pytest.approx(25 / 100, abs=1e-15)
    # unequal sizes: IoBB divides by the predicted box only
    assert box_iobb((5, 5, 10, 20), (0, 0, 10, 10)) == pytest.approx(25 / 200, abs=1e-15)
    assert box_iou((5, 5, 10, 20), (0, 0, 10, 10)) == pytest.approx(25 / 275, abs=1e-15)


def test_identical_disjoint_and_touching_boxes():
    assert box_iou((3, 4, 7, 9), (3, 4, 7, 9)) == 1.0
    assert box_iobb((3, 4, 7, 9), (3, 4, 7, 9)) == 1.0
    assert box_iou((0, 0, 10, 10), (50, 50, 5, 5)) == 0.0
    assert box_iobb((0, 0, 10, 10), (50, 50, 5, 5)) == 0.0
    # apart along one axis only (overlapping along the other)
    for other in [(0, 50, 10, 10), (50, 0, 10, 10), (2, -30, 4, 5)]:
        assert box_iou((0, 0, 10, 10), other) == 0.0
        assert box_iobb(other, (0, 0, 10, 10)) == 0.0
    # [0, 10) and [10, 20) share no area, along either axis or at a corner
    for other in [(10, 0, 10, 10), (0, 10, 10, 10), (10, 10, 5, 5)]:
        assert box_iou((0, 0, 10, 10), other) == 0.0
        assert box_iobb(other, (0, 0, 10, 10)) == 0.0


def test_containment():
    small, large = (2, 3, 4, 5), (0, 0, 10, 10)
    assert box_iobb(small, large) == 1.0  # prediction inside the ground truth
    assert box_iou(small, large) == pytest.approx(20 / 100, abs=1e-15)
    assert box_iobb(large, small) == pytest.approx(20 / 100, abs=1e-15)


def test_box_forms_agree():
    want = 25 / 175
    assert box_iou(Box(x=0, y=0, w=10, h=10, score=0.9), [5, 5, 10, 10]) == pytest.approx(want, abs=1e-15)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5.0, 5.0, 10.0, 10.0, 0.3])) == pytest.approx(want, abs=1e-15)
    # continuous coordinates: half-pixel boxes
    assert box_iou((0, 0, 1.5, 2), (0.5, 0, 1.5, 2)) == pytest.approx(2 / 4, abs=1e-15)


@pytest.mark.parametrize("bad, match", [
    ((0, 0, -1, 5), "w > 0 and h > 0"),
    ((0, 0, 5, 0), "w > 0 and h > 0"),
    ((0, float("nan"), 5, 5), "NaN/inf"),
    ((0, 0, 5, float("inf")), "NaN/inf"),
    ((0, 0, 5), r"one box \(x, y, w, h\)"),
    ("0 0 5 5", "not a box"),
])
def test_bad_boxes_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=f"`a`.*{match}"):
        box_iou(bad, (0, 0, 1, 1))
    with pytest.raises(ValueError, match=f"`b`.*{match}"):
        box_iou((0, 0, 1, 1), bad)
    with pytest.raises(ValueError, match=f"`pred`.*{match}"):
        box_iobb(bad, (0, 0, 1, 1))
    with pytest.raises(ValueError, match=f"`truth`.*{match}"):
        box_iobb((0, 0, 1, 1), bad)


# ----------------------------------------------------------------------------- localisation accuracy
# 4 images x 2 classes. Best overlap of every ground-truth box with its (image, class) predictions:
#   A: img1 IoU 25/175 IoBB 0.25 | img2 IoU 0.5 IoBB 1 | img3 no prediction (miss) |
#      img4 best of a disjoint box and one with IoU 80/120, IoBB 0.8
#   B: img1 prediction inside the truth: IoU 100/400, IoBB 1 | img2 two truth boxes, one predicted
#      exactly (1, 1), the other missed (0, 0) | img3 prediction without truth (ignored) | img4 nothing
TRUTH = {
    ("img1", "A"): (0, 0, 10, 10),
    ("img2", "A"): [(0, 0, 10, 10)],
    ("img3", "A"): (0, 0, 10, 10),
    ("img4", "A"): (20, 20, 10, 10),
    ("img1", "B"): (0, 0, 20, 20),
    ("img2", "B"): [(0, 0, 10, 10), (50, 50, 10, 10)],
}
PRED = {
    ("img1", "A"): [Box(5, 5, 10, 10, 0.7)],
    ("img2", "A"): [(0, 0, 10, 5)],
    ("img4", "A"): np.array([[0, 0, 5, 5], [22, 20, 10, 10]]),
    ("img1", "B"): (0, 0, 10, 10),
    ("img2", "B"): [(0, 0, 10, 10)],
    ("img3", "B"): [(0, 0, 10, 10)],
}
IOU_A = [3 / 4, 2 / 4, 2 / 4, 2 / 4, 1 / 4, 1 / 4, 0.0]  # T = 0.1 ... 0.7; IoU 0.5 is not > 0.5
IOU_B = [2 / 3, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 1 / 3]
IOBB_A = [3 / 4, 2 / 4, 2 / 4, 2 / 4, 1 / 4]  # T = 0.1, 0.25, 0.5, 0.75, 0.9; 0.25 is not > 0.25
IOBB_B = [2 / 3] * 5


def _rows(boxes: dict, *, strings: bool = False, bbox_list: bool = False) -> list[dict]:
    rows = []
    for (image, cls), value in boxes.items():
        if isinstance(value, Box):
            value = [value]
        elif isinstance(value, tuple) or (isinstance(value, np.ndarray) and value.ndim == 1):
            value = [value]
        for b in value:
            x, y, w, h = (b.x, b.y, b.w, b.h) if isinstance(b, Box) else tuple(b)
            vals = [str(v) for v in (x, y, w, h)] if strings else [x, y, w, h]
            if bbox_list:
                rows.append(dict(zip(["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"], [image, cls, *vals])))
            else:
                rows.append({"image": image, "class": cls, "x": vals[0], "y": vals[1], "w": vals[2], "h": vals[3],
                             "score": "0.5"})
    return rows


def test_localization_iou_by_hand():
    t = localization_accuracy(PRED, TRUTH)
    assert isinstance(t, LocalizationTable)
    assert t.metric == "iou" and t.thresholds == IOU_THRESHOLDS and t.classes == ["A", "B"]
    assert t.counts.tolist() == [4, 3]
    assert t.hits.tolist() == [[3, 2, 2, 2, 1, 1, 0], [2, 2, 1, 1, 1, 1, 1]]
    np.testing.assert_allclose(t.accuracy, [IOU_A, IOU_B], rtol=0, atol=1e-15)
    np.testing.assert_allclose(t.mean, (np.array(IOU_A) + IOU_B) / 2, rtol=0, atol=1e-15)


def test_localization_iobb_by_hand():
    t = localization_accuracy(PRED, TRUTH, metric="iobb")
    assert t.thresholds == IOBB_THRESHOLDS
    np.testing.assert_allclose(t.accuracy, [IOBB_A, IOBB_B], rtol=0, atol=1e-15)
    np.testing.assert_allclose(t.mean, (np.array(IOBB_A) + IOBB_B) / 2, rtol=0, atol=1e-15)


def test_any_predicted_box_counts_and_missing_prediction_is_a_miss():
    truth = {("img4", "A"): (20, 20, 10, 10)}
    both = localization_accuracy({("img4", "A"): [(0, 0, 5, 5), (22, 20, 10, 10)]}, truth, thresholds=[0.6])
    assert both.accuracy.tolist() == [[1.0]]
    disjoint_only = localization_accuracy({("img4", "A"): [(0, 0, 5, 5)]}, truth, thresholds=[0.6])
    assert disjoint_only.accuracy.tolist() == [[0.0]]
    for pred in ({}, {("img4", "A"): []}, {("img4", "B"): (20, 20, 10, 10)}, {("other", "A"): (20, 20, 10, 10)}):
        t = localization_accuracy(pred, truth, thresholds=[0.1])
        assert t.counts.tolist() == [1] and t.accuracy.tolist() == [[0.0]]


def test_predictions_without_truth_are_not_counted():
    extra = dict(PRED)
    extra[("img4", "B")] = (0, 0, 10, 10)
    extra[("img9", "A")] = (0, 0, 10, 10)
    t = localization_accuracy(extra, TRUTH)
    assert t.counts.tolist() == [4, 3]
    np.testing.assert_allclose(t.accuracy, [IOU_A, IOU_B], rtol=0, atol=1e-15)


def test_class_without_truth_is_nan_and_left_out_of_the_mean():
    t = localization_accuracy(PRED, TRUTH, classes=["B", "C", "A"])
    assert t.classes == ["B", "C", "A"] and t.counts.tolist() == [3, 0, 4]
    assert np.isnan(t.accuracy[1]).all()
    np.testing.assert_allclose(t.accuracy[[0, 2]], [IOU_B, IOU_A], rtol=0, atol=1e-15)
    np.testing.assert_allclose(t.mean, (np.array(IOU_A) + IOU_B) / 2, rtol=0, atol=1e-15)
    only_a = localization_accuracy(PRED, TRUTH, classes=["A"])  # B's truth left out
    np.testing.assert_allclose(only_a.mean, IOU_A, rtol=0, atol=1e-15)
    nothing = localization_accuracy(PRED, TRUTH, classes=["C"])
    assert np.isnan(nothing.mean).all() and nothing.counts.tolist() == [0]


def test_both_input_formats_give_the_same_table():
    ref = localization_accuracy(PRED, TRUTH, metric="iobb")
    variants = [
        (_rows(PRED), _rows(TRUTH)),
        (_rows(PRED, strings=True), _rows(TRUTH, strings=True)),  # csv.DictReader rows
        (PRED, _rows(TRUTH, strings=True, bbox_list=True)),  # BBox_List_2017 column names
        (_rows(PRED) + [{"image": "img4", "class": "B", "x": "", "y": "", "w": "", "h": ""}], TRUTH),  # no box
    ]
    for pred, truth in variants:
        t = localization_accuracy(pred, truth, metric="iobb")
        assert t.classes == ref.classes and t.counts.tolist() == ref.counts.tolist()
        np.testing.assert_array_equal(t.accuracy, ref.accuracy)
        np.testing.assert_array_equal(t.mean, ref.mean)


@pytest.mark.parametrize("thresholds, match", [
    ([0.0, 0.5], r"\(0, 1\)"),
    ([0.5, 1.0], r"\(0, 1\)"),
    ([-0.1], r"\(0, 1\)"),
    ([float("nan")], r"\(0, 1\)"),
    ([0.5, 0.3], "strictly increasing"),
    ([0.3, 0.3], "strictly increasing"),
    ([], "empty"),
    ("0.5", "sequence"),
    (0.5, "sequence"),
    ([True], "real numbers"),
])
def test_threshold_validation(thresholds, match):
    with pytest.raises(ValueError, match=f"`thresholds`.*{match}"):
        localization_accuracy(PRED, TRUTH, thresholds=thresholds)


def test_thresholds_accept_arrays_and_metric_is_checked():
    t = localization_accuracy(PRED, TRUTH, thresholds=np.array([0.1, 0.5]))
    assert t.thresholds == (0.1, 0.5)
    np.testing.assert_allclose(t.accuracy, [[IOU_A[0], IOU_A[4]], [IOU_B[0], IOU_B[4]]], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="`metric`"):
        localization_accuracy(PRED, TRUTH, metric="giou")
    with pytest.raises(ValueError, match="`classes`"):
        localization_accuracy(PRED, TRUTH, classes=["A", "A"])
    with pytest.raises(ValueError, match="`classes`"):
        localization_accuracy(PRED, TRUTH, classes="A")


@pytest.mark.parametrize("which", ["predicted", "truth"])
@pytest.mark.parametrize("bad, match", [
    ({("img1", "A"): (0, 0, -3, 5)}, "w > 0 and h > 0"),
    ({("img1", "A"): [(0, 0, 5, 5), (0, float("nan"), 5, 5)]}, "NaN/inf"),
    ({"img1": (0, 0, 5, 5)}, r"\(image_id, class_name\) tuples"),
    ({("img1", 3): (0, 0, 5, 5)}, "class name 3"),
    ([{"image": "img1", "class": "A", "x": "0", "y": "0", "w": "-2", "h": "5"}], "row 0.*w > 0 and h > 0"),
    ([{"image": "img1", "class": "A", "x": "0", "y": "nan", "w": "2", "h": "5"}], "row 0.*NaN/inf"),
    ([{"image": "img1", "class": "A", "x": "0", "y": "0", "w": "2"}], "no 'h' column"),
    ([{"image": "img1", "class": "A", "x": "0", "y": "zero", "w": "2", "h": "5"}], "non-numeric"),
    ([("img1", "A", 0, 0, 5, 5)], "not a dict"),
    (42, "mapping"),
])
def test_bad_inputs_name_the_argument(which, bad, match):
    kwargs = {"predicted": PRED, "truth": TRUTH, which: bad}
    with pytest.raises(ValueError, match=f"`{which}.*{match}"):
        localization_accuracy(kwargs["predicted"], kwargs["truth"])


def test_truth_row_without_a_box_is_an_error():
    with pytest.raises(ValueError, match="`truth row 0`.*no box"):
        localization_accuracy(PRED, [{"image": "img1", "class": "A", "x": "", "y": "", "w": "", "h": ""}])


def test_table_string_and_rows():
    t = localization_accuracy(PRED, TRUTH, metric="iobb", classes=["A", "B", "Cardiomegaly"])
    text = str(t)
    for c in ("A", "B", "Cardiomegaly", "mean", "T(IoBB)"):
        assert c in text
    for thr in ("0.1", "0.25", "0.5", "0.75", "0.9"):
        assert thr in text
    header = text.splitlines()[1].split()
    assert header[-5:] == ["0.1", "0.25", "0.5", "0.75", "0.9"]
    line_a = next(ln for ln in text.splitlines() if ln.startswith("A "))
    assert line_a.split() == ["A", "4", "0.7500", "0.5000", "0.5000", "0.5000", "0.2500"]
    rows = t.to_rows()
    assert [r["class"] for r in rows] == ["A", "B", "Cardiomegaly", "mean"]
    assert rows[0] == {"class": "A", "n": 4, "iobb>0.1": 0.75, "iobb>0.25": 0.5, "iobb>0.5": 0.5,
                       "iobb>0.75": 0.5, "iobb>0.9": 0.25}
    assert math.isnan(rows[2]["iobb>0.5"]) and rows[3]["n"] == 7
    assert len(t.to_rows(include_mean=False)) == 3


def test_to_csv_round_trip(tmp_path):
    t = localization_accuracy(PRED, TRUTH, classes=["A", "B", "C"])
    path = tmp_path / "sub" / "loc.csv"
    t.to_csv(path)
    with open(path, newline="", encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert list(back[0]) == ["class", "n"] + [f"iou>{x:g}" for x in IOU_THRESHOLDS]
    assert [r["class"] for r in back] == ["A", "B", "C", "mean"]
    acc = np.array([[float(r[c]) for c in t.columns] for r in back])
    np.testing.assert_array_equal(acc[:3], t.accuracy)  # exact, NaN included
    np.testing.assert_array_equal(acc[3], t.mean)
    assert [int(r["n"]) for r in back] == [4, 3, 0, 7]
    assert [p.name for p in path.parent.iterdir()] == ["loc.csv"]  # no temporary file left


# ----------------------------------------------------------------------------- auc_report

def test_auc_report_names_classes_without_both_labels():
    y = np.array([[0, 1, 0, np.nan], [0, 1, 0, np.nan], [1, 1, 0, np.nan], [1, 1, np.nan, np.nan]], float)
    s = np.array([[0.1, 0.5, 0.2, 0.1], [0.4, 0.2, 0.3, 0.2], [0.35, 0.3, 0.4, 0.3], [0.8, 0.9, 0.5, 0.4]])
    r = auc_report(y, s, class_names=["Mass", "Nodule", "Edema", "Hernia"])
    assert r["auc"]["Mass"] == 0.75  # 3 of 4 (positive, negative) pairs ordered right
    assert list(r["auc"]) == ["Mass", "Nodule", "Edema", "Hernia"]
    assert all(math.isnan(r["auc"][c]) for c in ("Nodule", "Edema", "Hernia"))
    assert r["mean"] == 0.75 == mean_auc(y, s) and r["n_defined"] == 1
    assert r["undefined"] == ["Nodule", "Edema", "Hernia"]
    assert r["no_positives"] == ["Edema", "Hernia"]
    assert r["no_negatives"] == ["Nodule", "Hernia"]
    assert r["n_positives"] == {"Mass": 2, "Nodule": 4, "Edema": 0, "Hernia": 0}
    assert r["n_negatives"] == {"Mass": 2, "Nodule": 0, "Edema": 3, "Hernia": 0}
    np.testing.assert_array_equal(list(r["auc"].values()), auc_per_class(y, s))
    default = auc_report(y[:, :1], s[:, :1])
    assert default["auc"] == {"class_0": 0.75} and default["undefined"] == []
    nothing = auc_report(y[:, 1:], s[:, 1:])
    assert math.isnan(nothing["mean"]) and nothing["n_defined"] == 0


def test_auc_report_validates_input():
    y, s = np.zeros((3, 2)), np.zeros((3, 2))
    with pytest.raises(ValueError, match="`class_names`"):
        auc_report(y, s, class_names=["a"])
    with pytest.raises(ValueError, match="`class_names`"):
        auc_report(y, s, class_names=["a", "a"])
    with pytest.raises(ValueError, match="same shape"):
        auc_report(y, s[:, :1])


def test_metrics_module_does_not_import_torch():
    code = "import sys, chexradi.metrics; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
