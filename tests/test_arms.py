"""The loop's arms (guidance masks cam / truth / random / lungs, the control), a shared round 0, per-image
predictions, and `chexradi compare` on them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from click.testing import CliRunner

import chexradi
from chexradi.cam.masks import mask_iou, place_mask
from chexradi.cli import cli
from chexradi.data.sources import open_data
from chexradi.metrics import auc_per_class, delong
from chexradi.loop.compare import RunScores, compare

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)

SPEC = "phantom:n_train=24,n_val=12,n_test=16,size=64"
KW = dict(model="resnet18", rounds=2, train={"epochs": 1, "batch_size": 12}, radiomics={"jobs": 1}, progress=False)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0


# --- numpy helpers ---------------------------------------------------------------------------


def test_place_mask_keeps_area_and_outline_inside_the_allowed_region():
    shape = np.zeros((40, 40), bool)
    shape[2:7, 30:38] = True
    shape[7:9, 30:32] = True  # an L: not symmetric
    allowed = np.zeros((40, 40), bool)
    allowed[10:35, 5:25] = True
    for s in range(20):
        out = place_mask(shape, allowed, np.random.default_rng(s))
        assert out.sum() == shape.sum() and not (out & ~allowed).any()
        rows, cols = np.nonzero(out)
        moved = np.zeros_like(shape)
        moved[rows - rows.min() + 2, cols - cols.min() + 30] = True
        assert np.array_equal(moved, shape)  # a translation, nothing else
    a = place_mask(shape, allowed, np.random.default_rng(3))
    assert np.array_equal(a, place_mask(shape, allowed, np.random.default_rng(3)))
    spots = {tuple(np.argwhere(place_mask(shape, allowed, np.random.default_rng(s)))[0]) for s in range(30)}
    assert len(spots) > 10  # positions are drawn, not fixed
    # too big to fit: the place with the fewest pixels outside, the area kept
    big = np.zeros((40, 40), bool)
    big[0:30, 0:30] = True
    out = place_mask(big, allowed, np.random.default_rng(0))
    assert out.sum() == 900 and (out & ~allowed).sum() == 900 - allowed.sum()
    with pytest.raises(ValueError, match="empty"):
        place_mask(np.zeros((5, 5), bool), np.ones((5, 5), bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="same shape"):
        place_mask(shape, allowed[:-1], np.random.default_rng(0))


def test_mask_iou():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2, :2] = True
    b[1:3, 1:3] = True
    assert mask_iou(a, b) == pytest.approx(1 / 7)
    assert np.isnan(mask_iou(np.zeros((3, 3)), np.zeros((3, 3))))
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(a, b[:3])


# --- the arms on a small phantom ---------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arms")
    out = {"control": root / "control"}
    chexradi.iterate(SPEC, out=out["control"], guidance={"enabled": False}, **KW)
    for arm in ("cam", "truth", "random", "lungs"):
        out[arm] = root / arm
        chexradi.iterate(SPEC, out=out[arm], guidance={"masks": arm}, round0_from=out["control"], **KW)
    return out


@pytest.fixture(scope="module")
def splits():
    return open_data(SPEC)


def test_round0_is_shared_not_retrained(runs):
    src = json.loads((runs["control"] / "round_0" / "round.json").read_text())
    for arm in ("cam", "truth", "random", "lungs"):
        rec = json.loads((runs[arm] / "round_0" / "round.json").read_text())
        assert rec["arm"] == arm and rec["paths"]["checkpoint"].startswith(str(runs[arm]))
        assert rec["copied_from"] == str(runs["control"])
        assert {k: v for k, v in rec.items() if k not in ("arm", "paths", "copied_from")} == \
            {k: v for k, v in src.items() if k not in ("arm", "paths")}
        assert (runs[arm] / "round_0" / "fit" / "best.pt").read_bytes() == \
            (runs["control"] / "round_0" / "fit" / "best.pt").read_bytes()
        assert json.loads((runs[arm] / "run.json").read_text())["round0_from"] == str(runs["control"])
        h = chexradi.History.load(runs[arm])
        assert [r["arm"] for r in h] == [arm, arm] and h[1]["guided"]


def test_truth_arm_masks(runs, splits):
    rows = _rows(runs["truth"] / "round_1" / "radiomics" / "cases.csv")
    train = splits.train
    outlines: dict[str, list[np.ndarray]] = {}
    for i in range(len(train)):
        for c, m in train.masks_at(i).items():
            outlines.setdefault(c, []).append(m)
    seen_absent = clear = in_place = 0
    for r in rows:
        i, c, mask = int(r["index"]), r["class"], _mask(Path(r["Mask"]))
        if r["split"] != "train":  # validation and test: the model's own heatmap masks
            assert Path(r["Mask"]).parent == (runs["truth"] / "round_0" / "masks" / r["split"]).resolve()
            continue
        present = train.masks_at(i)
        if c in present:
            assert np.array_equal(mask, present[c])
        elif c == "Cardiomegaly":
            assert np.array_equal(mask, train.heart_at(i))  # judged on the heart, present or not
        else:
            seen_absent += 1
            allowed = train.lungs_at(i).copy()
            for m in present.values():
                allowed &= ~m
            # a real finding's mask of that class where it lay in its own image, cut to this image's normal lung
            # (it had >= 95 % there), or that mask moved whole
            here = any(np.array_equal(mask, o & allowed) and (o & allowed).sum() >= 0.95 * o.sum()
                       for o in outlines[c])
            moved = int(mask.sum()) in {int(o.sum()) for o in outlines[c]}
            assert here or moved, (i, c)
            in_place += here
            clear += not (mask & ~allowed).any()  # inside the lungs, clear of the image's findings
    assert seen_absent > 10 and clear >= 0.9 * seen_absent and in_place >= 0.5 * seen_absent
    rec = chexradi.History.load(runs["truth"])[1]
    assert rec["guidance_truth_iou"]["train"] == 1.0
    assert 0.0 <= rec["guidance_truth_iou"]["test"] < 1.0
    assert rec["sources"]["radiomics"]["cases"] == len(rows) and rec["guidance_unannotated"] == 0


def test_random_and_lungs_arm_masks(runs, splits):
    cam_rows = {(r["split"], r["index"], r["class"]): r for r in _rows(runs["random"] / "round_0" / "regions.csv")}
    rows = _rows(runs["random"] / "round_1" / "radiomics" / "cases.csv")
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    for r in rows:
        cam = _mask(runs["random"] / "round_0" / cam_rows[(r["split"], r["index"], r["class"])]["mask"])
        moved = _mask(Path(r["Mask"]))
        assert moved.sum() == cam.sum()
        assert "guidance_masks" in r["Mask"]
    for r in _rows(runs["lungs"] / "round_1" / "radiomics" / "cases.csv"):
        ds = getattr(splits, r["split"])
        assert np.array_equal(_mask(Path(r["Mask"])), ds.lungs_at(int(r["index"])))


def test_the_same_arm_draws_the_same_masks(runs, tmp_path):
    again = tmp_path / "random_again"
    chexradi.iterate(SPEC, out=again, guidance={"masks": "random"}, round0_from=runs["control"], **KW)
    a = (runs["random"] / "round_1" / "radiomics" / "radiomics.csv").read_text()
    b = (again / "round_1" / "radiomics" / "radiomics.csv").read_text()
    strip = lambda t: [line.split(",", 2)[2] for line in t.splitlines()[1:]]  # noqa: E731 - paths differ
    assert strip(a) == strip(b)


def test_resume_with_another_arm_is_refused_by_name(runs):
    with pytest.raises(ValueError, match="it is the 'truth' arm, not 'random'"):
        chexradi.iterate(SPEC, out=runs["truth"], guidance={"masks": "random"}, **KW)
    with pytest.raises(ValueError, match="it is the 'control' arm, not 'cam'"):
        chexradi.iterate(SPEC, out=runs["control"], **KW)


def test_round0_from_checks(runs, tmp_path):
    with pytest.raises(ValueError, match="differing: train"):
        chexradi.iterate(SPEC, out=tmp_path / "x", guidance={"masks": "truth"}, round0_from=runs["control"],
                         **{**KW, "train": {"epochs": 2, "batch_size": 12}})
    with pytest.raises(ValueError, match="not a run folder with a finished round 0"):
        chexradi.iterate(SPEC, out=tmp_path / "y", round0_from=tmp_path, **KW)


def test_truth_arm_needs_ground_truth(tmp_path):
    from chexradi.loop.arms import GuidanceMasks

    class NoTruth:  # a dataset that knows no masks and no boxes
        size = 64

        def __len__(self) -> int:
            return 3

    with pytest.raises(ValueError, match="need ground-truth masks or boxes"):
        GuidanceMasks("truth", {"train": NoTruth()}, ["Nodule"], round_dir=tmp_path, prev_round_dir=tmp_path,
                      seed=0, k=1)
    with pytest.raises(ValueError, match="unknown guidance masks 'oracle'"):
        GuidanceMasks("oracle", {"train": NoTruth()}, ["Nodule"], round_dir=tmp_path, prev_round_dir=tmp_path,
                      seed=0, k=1)


def test_predictions_and_box_hits_are_written(runs, splits):
    h = chexradi.History.load(runs["cam"])
    rows = _rows(runs["cam"] / "round_1" / "predictions.csv")
    names = h.class_names
    assert [r["image_id"] for r in rows] == splits.test.ids
    y = np.array([[float(r[f"y:{c}"]) for c in names] for r in rows])
    p = np.array([[float(r[f"p_image:{c}"]) for c in names] for r in rows])
    assert np.array_equal(y, splits.test.targets)
    aucs = auc_per_class(y, p)
    for c, a in zip(names, aucs):
        if np.isfinite(a):
            assert h[1]["auc"]["image"][c] == pytest.approx(a, abs=1e-6)
    assert "p_fused:Nodule" in rows[0]
    boxes = _rows(runs["cam"] / "round_1" / "localization_boxes.csv")
    assert len(boxes) == sum(len(splits.test.boxes_at(i)) for i in range(len(splits.test)))
    hits = np.mean([np.mean([float(b["iou"]) > 0.1 for b in boxes if b["class"] == c])
                    for c in sorted({b["class"] for b in boxes})])
    assert h[1]["loc_iou"]["0.1"] == pytest.approx(hits)


def test_compare_pairs_runs_and_matches_delong(runs, tmp_path):
    res = compare([runs["cam"], runs["truth"]], control=runs["control"], n_resamples=200, out=tmp_path / "cmp")
    assert {r["arm"] for r in res.auc} == {"cam", "truth"}
    names = chexradi.History.load(runs["cam"]).class_names
    rows_c = _rows(runs["control"] / "round_1" / "predictions.csv")
    rows_a = _rows(runs["cam"] / "round_1" / "predictions.csv")
    for r in res.auc:
        if r["arm"] != "cam" or r["class"] == "mean":
            continue
        y = np.array([float(x[f"y:{r['class']}"]) for x in rows_c])
        d = delong(y, [float(x[f"p_image:{r['class']}"]) for x in rows_a],
                   [float(x[f"p_image:{r['class']}"]) for x in rows_c])
        assert r["difference"] == pytest.approx(d.difference) and r["p_delong"] == pytest.approx(d.p_value)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(d.ci)
        assert r["boot_low"] <= r["difference"] <= r["boot_high"] or r["boot_low"] == r["boot_high"]
    mean = next(r for r in res.auc if r["arm"] == "cam" and r["class"] == "mean")
    per = [r["difference"] for r in res.auc if r["arm"] == "cam" and r["class"] != "mean"]
    assert mean["difference"] == pytest.approx(np.mean(per))
    assert {(r["metric"], r["threshold"]) for r in res.localization} == {("iou", 0.1), ("iou", 0.3), ("iobb", 0.5)}
    for f in ("compare.csv", "localization.csv", "compare.json", "forest.png"):
        assert (tmp_path / "cmp" / f).is_file()
    assert set(res.settings["classes"]) <= set(names)


def test_compare_several_seeds_gives_the_seed_spread(runs, tmp_path):
    seed1 = {}
    for arm, kw in (("control", {"guidance": {"enabled": False}}), ("cam", {})):
        seed1[arm] = tmp_path / f"{arm}1"
        chexradi.iterate(SPEC, out=seed1[arm], seed=1, **kw, **KW)
    res = compare([runs["cam"], seed1["cam"]], control=[runs["control"], seed1["control"]], n_resamples=100)
    mean = next(r for r in res.auc if r["class"] == "mean")
    assert mean["n_runs"] == 2 and mean["seeds"] == "0 1"
    assert mean["seed_sd"] is not None and mean["seed_low"] < mean["seed_high"]


def test_compare_refuses_what_it_cannot_pair(runs, tmp_path):
    with pytest.raises(ValueError, match="given twice"):
        compare([runs["cam"], runs["cam"]], control=runs["control"], n_resamples=50)
    from chexradi.loop.compare import _distinct, read_run_scores

    ctl, cam = read_run_scores(runs["control"]), read_run_scores(runs["cam"])
    twin = RunScores(**{**ctl.__dict__, "run_dir": Path("/elsewhere/control")})  # another control-arm run
    with pytest.raises(ValueError, match="is a run of the control arm"):
        _distinct([ctl], [cam, twin])
    with pytest.raises(ValueError, match="several runs with seed 0"):
        _distinct([ctl, twin], [cam])
    other = tmp_path / "epochs2"
    chexradi.iterate(SPEC, out=other, **{**KW, "train": {"epochs": 2, "batch_size": 12}})
    with pytest.raises(ValueError, match="differ in more than their arm and seed.*train.epochs"):
        compare([other], control=runs["control"], n_resamples=50)
    with pytest.raises(ValueError, match="has no .fused. head scores .it has image.*the image head only"):
        compare([runs["cam"]], control=runs["control"], head="fused", n_resamples=50)


def test_compare_refuses_another_test_set(runs, tmp_path):
    other = tmp_path / "other"
    chexradi.iterate("phantom:n_train=24,n_val=12,n_test=10,size=64", out=other, **{**KW, "rounds": 1})
    with pytest.raises(ValueError, match="not tested on the same images"):
        compare([other], control=runs["control"], round=0, n_resamples=50)
    with pytest.raises(ValueError, match="control runs belong to several arms"):
        compare([runs["cam"]], control=[runs["control"], runs["truth"]], n_resamples=50)
    res = CliRunner().invoke(cli, ["compare", str(other), "--control", str(runs["control"]), "--round", "0"])
    assert res.exit_code == 2 and "same images" in res.output


def test_compare_cli(runs, tmp_path):
    res = CliRunner().invoke(cli, ["compare", str(runs["truth"]), "-c", str(runs["control"]), "--resamples", "50",
                                   "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "truth" in res.output and "DeLong" in res.output and (tmp_path / "c" / "compare.csv").is_file()
