"""chexradi.iterate (the ChexRadiNet loop), its History, and the data specs it opens.

One small two-round run on the phantom (24 / 12 / 12 images of 64 x 64, one epoch per
round, radiomics in-process) is made once per module and shared by the tests that only
read its outputs; every number the loop records is recomputed here independently
(AUC from the saved checkpoint, localisation from regions.csv and the phantom's boxes,
mask IoU from the NRRD masks, radiomics from ``chexradi.extract``). Resume tests make
their own runs in their own folders. Torch runs on one thread (restored afterwards).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import default_collate

import chexradi
from chexradi.data.datasets import Splits
from chexradi.data.sources import SOURCES, PhantomDataset, open_data, phantom_splits
from chexradi.guidance import GuidanceDataset, RadiomicsGuidance
from chexradi.loop import History, plot_history
from chexradi.guidance.radiomics import read_vectors
from chexradi.metrics import localization_accuracy
from chexradi.nn import create_model, load_model
from chexradi.train import predict

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)

SPEC = "phantom:n_train=24,n_val=12,n_test=12,size=64"
COUNTS = {"train": 24, "val": 12, "test": 12}
SIDE = 64
KW = dict(model="resnet18_ta", train={"epochs": 1, "batch_size": 12}, radiomics={"jobs": 1}, progress=False)
VOLATILE = ("seconds", "paths")


def run(out: Path, rounds: int = 2, **kw) -> History:
    args = {**KW, **kw}
    return chexradi.iterate(SPEC, rounds=rounds, out=out, **args)


def stable(record: dict) -> dict:
    """A round record without its timings and absolute paths."""
    return {k: v for k, v in record.items() if k not in VOLATILE}


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_mask(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def state(path: Path) -> dict:
    model, _ = load_model(path)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def splits() -> Splits:
    return open_data(SPEC)


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, torch_one_thread) -> tuple[Path, History]:
    out = tmp_path_factory.mktemp("loop") / "run_a"
    return out, run(out)


# ------------------------------------------------------------------------------------ 1. layout
def test_output_layout(run_a, splits):
    out, h = run_a
    settings = json.loads((out / "run.json").read_text())
    assert settings["format"] == "chexradi-run/2" and settings["counts"] == COUNTS
    assert settings["guidance"]["sources"] == ["radiomics"] and "radiomics" in settings
    assert settings["eval_split"] == "test" and settings["class_names"] == list(splits.class_names)
    k = len(splits.class_names)
    for split, n in COUNTS.items():
        images = sorted((out / "images" / split).glob("*.nrrd"))
        assert len(images) == n
        assert read_mask(images[0]).shape == (SIDE, SIDE)
    assert not (out / "round_0" / "radiomics").exists()
    for name in ("cases.csv", "radiomics.csv"):
        assert (out / "round_1" / "radiomics" / name).is_file()
    for r in (0, 1):
        rdir = out / f"round_{r}"
        for name in ("round.json", "auc.csv", "fit/best.pt", "localization_iou.csv", "localization_iobb.csv"):
            assert (rdir / name).is_file(), name
        rows = read_rows(rdir / "regions.csv")
        assert len(rows) == sum(COUNTS.values()) * k
        assert {(x["split"], int(x["index"]), x["class"]) for x in rows} == {
            (s, i, c) for s, n in COUNTS.items() for i in range(n) for c in splits.class_names}
        assert len(list((rdir / "masks").glob("*/*.nrrd"))) == len(rows)
        for x in rows:
            m = read_mask(rdir / x["mask"])
            assert m.shape == (SIDE, SIDE)
            assert set(np.unique(m).tolist()) <= {0, 1}
            assert (x["empty"] == "True") == (not m.any())
            assert (x["x"] == "") == (not m.any())
    data = json.loads((out / "history.json").read_text())
    assert [r["round"] for r in data["rounds"]] == [0, 1]
    assert data["settings"]["counts"] == COUNTS
    csv_rows = read_rows(out / "history.csv")
    assert [r["round"] for r in csv_rows] == ["0", "1"]
    assert len(h) == 2 and [r["round"] for r in h] == [0, 1]


# ---------------------------------------------------------------------------- 2. the records
def test_history_records(run_a, splits):
    out, h = run_a
    r0, r1 = h[0], h[1]
    assert r0["guided"] is False and r1["guided"] is True
    assert r0["heads"] == ["image"] and r1["heads"] == ["image", "fused"]
    assert "fused" not in r0["auc"] and r0["mask_iou"] is None
    assert r0["sources"] == {} and list(r1["sources"]) == ["radiomics"]
    names = list(splits.class_names)
    assert set(r1["auc"]["fused"]) == set(names) and set(r0["auc"]["image"]) == set(names)
    for r in (r0, r1):
        for head, per in r["auc"].items():
            finite = [v for v in per.values() if v is not None and math.isfinite(v)]
            assert finite
            assert r["mean_auc"][head] == pytest.approx(float(np.mean(finite)), abs=1e-12)
        assert r["epochs_run"] == 1 and r["best_epoch"] == 1
        assert r["n_masks"] == sum(COUNTS.values()) * len(names)
        assert json.loads((out / f"round_{r['round']}" / "round.json").read_text()) == r
    rad = r1["sources"]["radiomics"]
    assert rad["cases"] == r1["n_masks"] - r0["n_masks_empty"] and rad["failed"] == 0
    assert rad["values"] == 102 * len(names) and r1["seconds"]["sources"]["radiomics"] > 0
    # auc.csv says the same
    auc = {x["class"]: x for x in read_rows(out / "round_1" / "auc.csv")}
    assert float(auc["mean"]["auc_image"]) == pytest.approx(r1["mean_auc"]["image"], abs=1e-12)
    assert float(auc["mean"]["auc_fused"]) == pytest.approx(r1["mean_auc"]["fused"], abs=1e-12)


@pytest.mark.parametrize("k", [0, 1])
def test_auc_image_recomputed_from_checkpoint(run_a, k):
    out, h = run_a
    model, _ = load_model(out / f"round_{k}" / "fit" / "best.pt")
    test = open_data(SPEC).test
    p = predict(model, test, batch_size=12, device="cpu", progress=False)
    assert p.targets is not None
    assert np.array_equal(p.targets, test.targets)
    names = list(model.class_names)
    assert names == h.class_names
    checked = 0
    for j, c in enumerate(names):
        y = p.targets[:, j]
        rec = h[k]["auc"]["image"][c]
        if len(np.unique(y)) < 2:
            assert rec is None
            continue
        assert rec == pytest.approx(roc_auc_score(y, p.probs[:, j]), abs=1e-6)
        checked += 1
    assert checked >= 3


# ----------------------------------------------------------------------------- 3. localisation
def test_localization_recomputed(run_a, splits):
    out, h = run_a
    test = splits.test
    assert isinstance(test, PhantomDataset)
    names = list(splits.class_names)
    for k in (0, 1):
        rows = [x for x in read_rows(out / f"round_{k}" / "regions.csv") if x["split"] == "test"]
        pred = {(int(x["index"]), x["class"]): [] if x["x"] == "" else [tuple(float(x[c]) for c in "xywh")]
                for x in rows}
        truth = {(i, c): bs for i in range(len(test)) for c, bs in test.boxes_at(i).items() if bs}
        assert truth
        assert h[k]["loc_boxes"] == len(truth)
        boxed = sorted({c for _, c in truth}, key=names.index)
        for metric in ("iou", "iobb"):
            tab = localization_accuracy(pred, truth, metric=metric, classes=boxed)
            rec = h[k][f"loc_{metric}"]
            assert sorted(map(float, rec)) == [float(t) for t in tab.thresholds]
            for t, m in zip(tab.thresholds, tab.mean):
                assert rec[f"{t:g}"] == pytest.approx(float(m), abs=1e-12)
            table = read_rows(out / f"round_{k}" / f"localization_{metric}.csv")
            assert table  # the per-class table is written too


def test_localization_exact_box_is_hit(splits, tmp_path):
    from chexradi.loop.run import _localization

    test = splits.test
    truth = {(i, c): bs for i in range(len(test)) for c, bs in test.boxes_at(i).items() if bs}
    (i, c), bs = next(iter(truth.items()))
    one = localization_accuracy({(i, c): [bs[0]]}, {(i, c): [bs[0]]}, metric="iou", classes=[c])
    assert np.all(one.hits == 1) and np.all(one.accuracy == 1.0)
    shifted = (bs[0][0] + bs[0][2], bs[0][1], bs[0][2], bs[0][3])  # beside it: no overlap
    miss = localization_accuracy({(i, c): [shifted]}, {(i, c): [bs[0]]}, metric="iou", classes=[c])
    assert np.all(miss.hits == 0)
    # the loop's own path: predicted boxes equal to the truth everywhere -> accuracy 1 at every threshold
    exact = {("test", i, c): list(bs) for (i, c), bs in truth.items()}
    loc = _localization(test, "test", exact, list(splits.class_names), tmp_path, localization_accuracy)
    assert loc["n"] == len(truth)
    assert all(v == 1.0 for v in loc["iou"].values()) and all(v == 1.0 for v in loc["iobb"].values())
    assert (tmp_path / "localization_iou.csv").is_file()
    none = _localization(test, "test", {}, list(splits.class_names), tmp_path, localization_accuracy)
    assert all(v == 0.0 for v in none["iou"].values())


# -------------------------------------------------------------------------------- 4. mask IoU
def test_mask_iou_recomputed(run_a):
    out, h = run_a
    ious = []
    for x in read_rows(out / "round_1" / "regions.csv"):
        a = read_mask(out / "round_0" / x["mask"]) > 0
        b = read_mask(out / "round_1" / x["mask"]) > 0
        union = np.count_nonzero(a | b)
        if union:
            ious.append(np.count_nonzero(a & b) / union)
    assert ious
    assert h[1]["mask_iou"] == pytest.approx(float(np.mean(ious)), abs=1e-12)
    assert 0.0 <= h[1]["mask_iou"] <= 1.0


# ----------------------------------------------------------------------- 5. radiomics vectors
def test_radiomics_vectors(run_a, splits):
    out, h = run_a
    names = list(splits.class_names)
    regions = read_rows(out / "round_0" / "regions.csv")
    nonempty = [x for x in regions if x["empty"] != "True"]
    feats_csv = out / "round_1" / "radiomics" / "radiomics.csv"
    rows = read_rows(feats_csv)
    assert len(rows) == len(nonempty) == h[1]["sources"]["radiomics"]["cases"]
    assert len(read_rows(out / "round_1" / "radiomics" / "cases.csv")) == len(nonempty)
    carried = {"Image", "Mask", "split", "index", "class"}
    feats = [c for c in rows[0] if c not in carried]
    assert len(feats) > 20
    # one case against chexradi.extract on the files the loop wrote, with the run's params
    row = next(x for x in rows if x["split"] == "test")
    assert Path(row["Mask"]) == (out / "round_0" / next(
        r["mask"] for r in regions if r["split"] == row["split"] and r["index"] == row["index"]
        and r["class"] == row["class"])).resolve()
    assert Path(row["Image"]) == (out / "images" / row["split"] / f"{int(row['index']):06d}.nrrd").resolve()
    params = json.loads((out / "run.json").read_text())["radiomics"]["params"]
    ref = chexradi.extract(row["Image"], row["Mask"], params=params)
    for f in ("original_firstorder_Mean", "original_shape2D_PixelSurface", "original_glcm_Contrast"):
        assert float(row[f]) == pytest.approx(ref[f], rel=1e-6, abs=1e-9)
    # the image is the network input brought back to 0-255
    img = sitk.GetArrayFromImage(sitk.ReadImage(row["Image"]))
    assert img.shape == (SIDE, SIDE) and img.min() >= 0 and img.max() <= 255.0 + 1e-3
    # vectors: (N, K * F), class-major blocks
    vec = read_vectors(feats_csv, counts=COUNTS, class_names=names)
    f = len(feats)
    assert vec.names == [f"{c}|{ft}" for c in names for ft in feats]
    for split, n in COUNTS.items():
        assert vec.by_split[split].shape == (n, len(names) * f)
    for x in (row, rows[0], rows[-1]):
        k = names.index(x["class"])
        block = vec.by_split[x["split"]][int(x["index"]), k * f:(k + 1) * f]
        assert np.array_equal(block, np.array([float(x[c]) for c in feats]))
    # an empty mask leaves its block NaN, everything extracted is finite
    n_nan_blocks = sum(int(np.isnan(v[:, k * f:(k + 1) * f]).all(axis=1).sum())
                       for v in vec.by_split.values() for k in range(len(names)))
    assert n_nan_blocks == len(regions) - len(nonempty)


# ------------------------------------------------------------------------------------ 6. resume
@pytest.fixture(scope="module")
def run_b(tmp_path_factory, torch_one_thread) -> tuple[Path, History]:
    """1 round, then resumed to 2 rounds in the same folder."""
    out = tmp_path_factory.mktemp("loop") / "run_b"
    first = run(out, rounds=1)
    assert len(first) == 1 and not (out / "round_1").exists()
    return out, run(out, rounds=2)


def test_resume_equals_uninterrupted(run_a, run_b):
    (a, ha), (b, hb) = run_a, run_b
    assert len(hb) == 2
    for k in (0, 1):
        assert stable(hb[k]) == stable(ha[k])
        assert same_state(state(b / f"round_{k}" / "fit" / "best.pt"), state(a / f"round_{k}" / "fit" / "best.pt"))
    assert read_rows(b / "round_1" / "regions.csv") == read_rows(a / "round_1" / "regions.csv")
    assert [stable(r) for r in History.load(b)] == [stable(r) for r in ha]


def test_resume_after_crash_mid_round(run_a, tmp_path):
    a, ha = run_a
    out = tmp_path / "crashed"
    shutil.copytree(a, out)
    rdir = out / "round_1"
    for name in ("round.json", "regions.csv", "auc.csv"):
        (rdir / name).unlink()
    shutil.rmtree(rdir / "masks")
    (out / "history.json").unlink()
    assert len(History.load(out)) == 1
    h = run(out)
    assert [stable(r) for r in h] == [stable(r) for r in ha]
    assert h[0] == ha[0]  # round 0 was read back, not redone
    assert (rdir / "round.json").is_file() and (rdir / "regions.csv").is_file()
    assert read_rows(rdir / "regions.csv") == read_rows(a / "round_1" / "regions.csv")
    assert json.loads((out / "history.json").read_text())["rounds"][1]["mean_auc"] == ha[1]["mean_auc"]


def test_rerun_finished_does_no_work(run_b, monkeypatch):
    from chexradi.loop import training

    out, hb = run_b

    def boom(*a, **k):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(training, "train_round", boom)
    monkeypatch.setattr(training, "evaluate", boom)
    best = out / "round_1" / "fit" / "best.pt"
    mtime = best.stat().st_mtime_ns
    t0 = time.perf_counter()
    h = run(out)
    assert time.perf_counter() - t0 < 5.0
    assert h.rounds == hb.rounds
    assert best.stat().st_mtime_ns == mtime
    # fewer rounds asked: the finished ones are reported, nothing is deleted
    h1 = run(out, rounds=1)
    assert h1.rounds == hb.rounds[:1]
    assert (out / "round_1" / "round.json").is_file()


# ------------------------------------------------------------------------------- 7. resume safety
def test_resume_refuses_other_settings(run_b):
    out, hb = run_b
    before = (out / "run.json").read_text()
    with pytest.raises(ValueError, match=r"differing: train\.lr\)"):
        run(out, train={"epochs": 1, "batch_size": 12, "lr": 0.5})
    with pytest.raises(ValueError, match=r"differing: heatmap\.threshold, train\.epochs\)"):
        run(out, train={"epochs": 2, "batch_size": 12}, heatmap={"threshold": "otsu"})
    with pytest.raises(ValueError, match=r"differing: counts\.train, data\)"):
        chexradi.iterate("phantom:n_train=25,n_val=12,n_test=12,size=64", rounds=2, out=out, **KW)
    with pytest.raises(ValueError, match="already holds a run"):
        run(out, resume=False)
    with pytest.raises(ValueError, match="seed"):
        run(out, seed=1)
    assert (out / "run.json").read_text() == before


def test_resume_accepts_free_settings(run_b):
    out, hb = run_b
    h = run(out, radiomics={"jobs": 2}, train={"epochs": 1, "batch_size": 12, "device": "cpu", "num_workers": 0})
    assert h.rounds == hb.rounds
    settings = json.loads((out / "run.json").read_text())
    assert settings["radiomics"]["jobs"] == 2 and settings["train"]["device"] == "cpu"


# --------------------------------------------------------------------------- 8. settings checks
@pytest.mark.parametrize("group,key", [("train", "epoch"), ("heatmap", "methods"), ("radiomics", "bin_width"),
                                       ("guidance", "fused")])
def test_unknown_setting_lists_valid_keys(tmp_path, group, key):
    from chexradi.loop.settings import defaults

    out = tmp_path / "never"
    with pytest.raises(ValueError) as exc:
        run(out, **{group: {key: 1}})
    msg = str(exc.value)
    assert repr(key) in msg and "valid" in msg
    assert all(k in msg for k in defaults(group))
    assert not out.exists()


@pytest.mark.parametrize("kw,match", [
    ({"train": {"epochs": 0}}, "epochs"),
    ({"train": {"lr": -1.0}}, "lr"),
    ({"train": {"warm_start": "yes"}}, "warm_start"),
    ({"train": {"class_weights": "foo"}}, "class_weights"),
    ({"train": {"class_weights": [1.0, 2.0]}}, "2 values but the model has 6 classes"),
    ({"train": {"amp": "x"}}, "amp"),
    ({"train": {"device": "nope"}}, "device"),
    ({"train": {"weights": "/no/such/weights.pt"}}, "weights"),
    ({"heatmap": {"target_layer": 5}}, "target_layer"),
    ({"heatmap": {"target_layer": "backbone.nolayer"}}, "not a layer of resnet18_ta"),
    ({"guidance": {"dropout": 1.5}}, "dropout"),
    ({"heatmap": {"method": "x"}}, "method"),
    ({"heatmap": {"region": "circle"}}, "region"),
    ({"heatmap": {"threshold": "nope"}}, "heatmap"),
    ({"radiomics": {"engine": "x"}}, "engine"),
    ({"radiomics": {"jobs": -1}}, "jobs"),
    ({"radiomics": {"params": {"binWidth": -1}}}, "binWidth"),
    ({"guidance": {"alignment": "x"}}, "alignment"),
    ({"guidance": {"fuse": False}}, "select_on"),
    ({"guidance": {"select_on": "fused", "fuse": False}}, "fuse"),
    ({"rounds": 0}, "rounds"),
    ({"rounds": True}, "rounds"),
    ({"model": "resnet9000"}, "resnet9000"),
    ({"seed": -1}, "seed"),
])
def test_bad_settings_fail_before_any_work(tmp_path, kw, match):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=match):
        run(out, **kw)
    assert not out.exists()


def test_good_guidance_without_fuse_is_accepted():
    from chexradi.loop.settings import resolve

    g = resolve("guidance", {"fuse": False, "select_on": "image", "alignment": None, "dropout": 0.0})
    assert g["fuse"] is False and g["hidden"] == 256
    t = resolve("train", {"class_weights": "balanced", "device": "cpu", "amp": False})
    assert t["class_weights"] == "balanced" and t["lr"] == 1e-3
    assert resolve("train", {"class_weights": [1, 2, 3]})["class_weights"] == [1, 2, 3]
    assert resolve("heatmap", {"target_layer": "backbone.layer4"})["target_layer"] == "backbone.layer4"
    with pytest.raises(ValueError, match="must be a dict"):
        resolve("train", [("epochs", 1)])


def test_out_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        run(f)
    assert f.read_text() == "x"
    with pytest.raises(ValueError, match="out is required"):
        chexradi.iterate(SPEC, out=None, **KW)


# ------------------------------------------------------------------------------------ 9. open_data
def test_open_data_phantom_options():
    s = open_data("phantom:n=50,size=32,seed=3")
    assert (len(s.train), len(s.val), len(s.test)) == (30, 10, 10)
    assert tuple(s.train[0]["image"].shape) == (1, 32, 32)
    assert s.train.targets.shape == (30, len(s.class_names))
    # size keyword applies when the spec does not set it; the spec wins otherwise
    assert tuple(open_data("phantom:n=5", size=40).test[0]["image"].shape) == (1, 40, 40)
    assert tuple(open_data("phantom:n=5,size=24", size=40).test[0]["image"].shape) == (1, 24, 24)
    # difficulty and seed reach the generator; same options -> same images
    easy, hard = open_data("phantom:n=5,size=32,difficulty=0"), open_data("phantom:n=5,size=32,difficulty=1")
    assert not np.array_equal(easy.train.load_image(0), hard.train.load_image(0))
    again = open_data("phantom:n=5,size=32,difficulty=0")
    assert np.array_equal(easy.train.load_image(0), again.train.load_image(0))
    assert not np.array_equal(open_data("phantom:n=5,size=32,seed=1").train.load_image(0),
                              open_data("phantom:n=5,size=32,seed=2").train.load_image(0))
    c = open_data("phantom:n_train=3,n_val=2,n_test=1,size=16,classes=Nodule+Mass")
    assert (len(c.train), len(c.val), len(c.test)) == (3, 2, 1) and c.class_names == ("Nodule", "Mass")
    assert open_data(s) is s


@pytest.mark.parametrize("spec,exc,match", [
    ("phantom:n=50,colour=red", ValueError, "colour.*valid: classes, difficulty, n, n_test, n_train, n_val, "
                                            "seed, size"),
    ("phantom:n=abc", ValueError, "integers"),
    ("phantom:n=3", ValueError, "n must be >= 5"),
    ("phantom:size", ValueError, "key=value"),
    ("foo:/data", ValueError, ", ".join(SOURCES)),
    ("chestxray14", ValueError, "needs a path"),
    ("", ValueError, "spec string"),
])
def test_open_data_errors(spec, exc, match):
    with pytest.raises(exc, match=match):
        open_data(spec)


def test_open_data_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    for kind in ("chestxray14", "chexpert", "mimic", "csv"):
        with pytest.raises(FileNotFoundError) as e:
            open_data(f"{kind}:{missing}")
        assert str(missing) in str(e.value)


def test_open_data_csv_on_written_phantom(tmp_path):
    from chexradi.data.phantom import write_phantom

    write_phantom(tmp_path / "ph", 10, size=64, seed=0)
    s = open_data(f"csv:{tmp_path / 'ph' / 'labels.csv'}", size=64, val_fraction=0.3)
    assert isinstance(s, Splits)
    assert len(s.train) + len(s.val) == 10 and len(s.val) >= 1
    assert set(s.class_names) == set(phantom_splits(1, 1, 1, size=64).class_names)
    assert s.test is None
    # the in-memory phantom is the same network input as the PNG read from disk (up to 16-bit rounding)
    mem = phantom_splits(8, 1, 1, size=64, seed=0)  # the same 10 cases
    where = {m.ids[j]: (m, j) for m in mem for j in range(len(m))}
    for ds in (s.train, s.val):
        for i in range(len(ds)):
            m, j = where[ds.records[i].image_id]
            np.testing.assert_allclose(np.asarray(ds[i]["image"]), m.load_image(j), atol=1e-3)
            np.testing.assert_array_equal(np.asarray(ds[i]["target"]), m.targets[j])


# ------------------------------------------------------------------------- 10. predict(objective)
def test_predict_with_objective():
    ds = phantom_splits(6, 1, 1, size=32).train
    k = len(ds.class_names)
    torch.manual_seed(0)
    model = create_model("resnet18_ta", num_classes=k, in_chans=1, class_names=list(ds.class_names))
    vectors = np.random.default_rng(0).normal(size=(len(ds), 5))
    vectors[2] = np.nan  # a missing row
    gds = GuidanceDataset(ds, vectors)
    obj = RadiomicsGuidance(model.num_features, 5, k, hidden=16, proj_dim=8)
    assert obj.mode == "fused"
    model.train()
    obj.train()
    p = predict(model, gds, objective=obj, batch_size=4, device="cpu", progress=False)
    assert model.training and obj.training  # modes restored
    assert p.targets is not None and np.array_equal(p.index, np.arange(len(ds)))
    model.eval()
    obj.eval()
    with torch.no_grad():
        ref = obj.logits(model, default_collate([gds[i] for i in range(len(gds))])).numpy()
        img = model(default_collate([ds[i] for i in range(len(ds))])["image"]).numpy()
    np.testing.assert_allclose(p.logits, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(p.probs, 1 / (1 + np.exp(-ref)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(p.logits, img, atol=1e-3)  # it is the fused head, not the image head
    # the image head through the objective = the model itself: by name, or by the objective's mode
    p_img = predict(model, gds, objective=obj, head="image", batch_size=4, device="cpu", progress=False)
    np.testing.assert_allclose(p_img.logits, img, rtol=1e-5, atol=1e-5)
    obj.mode = "image"
    p_img = predict(model, gds, objective=obj, batch_size=4, device="cpu", progress=False)
    np.testing.assert_allclose(p_img.logits, img, rtol=1e-5, atol=1e-5)
    obj.mode = "fused"
    with pytest.raises(ValueError, match="pass objective= with it"):
        predict(model, gds, head="fused")
    with pytest.raises(ValueError, match="heatmaps"):
        predict(model, gds, objective=obj, heatmaps="cam")
    with pytest.raises(ValueError, match="embeddings"):
        predict(model, gds, objective=obj, embeddings=True)
    with pytest.raises(ValueError, match="logits"):
        predict(model, gds, objective=object())


# ----------------------------------------------------------------------------- 11. History, plots
def test_plot_history(run_a, tmp_path):
    out, h = run_a
    png = tmp_path / "h.png"
    fig = plot_history(h, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png2 = tmp_path / "sub" / "h2.png"
    plot_history(out, png2)
    assert png2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.pyplot as plt

    assert len(fig.axes) == 4
    plt.close("all")


def test_history_load_and_tables(run_a, tmp_path):
    out, h = run_a
    with pytest.raises(FileNotFoundError, match="run.json"):
        History.load(tmp_path)
    loaded = History.load(out)
    assert loaded.rounds == h.rounds and loaded.settings == h.settings and loaded.run_dir == out
    lines = h.table().splitlines()
    assert len(lines) == 2 + len(h)  # header, rule, one per round
    assert lines[2].split()[:2] == ["0", "no"] and lines[3].split()[:2] == ["1", "cam"]
    assert lines[0].split()[2:6] == ["AUC", "image", "AUC", "fused"]
    assert lines[3].split()[3] == f"{h[1]['mean_auc']['fused']:.3f}"
    assert str(h) == h.table()
    auc_lines = h.auc_table().splitlines()
    assert len(auc_lines) == 2 + len(h.class_names)
    path = h.to_csv(tmp_path / "h.csv")
    rows = read_rows(path)
    assert len(rows) == len(h)
    for row, r in zip(rows, h):
        assert float(row["mean_auc:image"]) == r["mean_auc"]["image"]
        assert (row["mean_auc:fused"] == "") == ("fused" not in r["mean_auc"])
        if "fused" in r["mean_auc"]:
            assert float(row["mean_auc:fused"]) == r["mean_auc"]["fused"]
            assert int(row["radiomics:cases"]) == r["sources"]["radiomics"]["cases"]
        for c in h.class_names:
            assert float(row[f"auc:image:{c}"]) == r["auc"]["image"][c]
        assert float(row["loc_iou>0.1"]) == r["loc_iou"]["0.1"]
    j = h.to_json(tmp_path / "h.json")
    assert json.loads(j.read_text())["rounds"] == h.rounds
    # a broken round.json is reported, naming it
    broken = tmp_path / "broken"
    (broken / "round_0").mkdir(parents=True)
    (broken / "run.json").write_text("{}")
    (broken / "round_0" / "round.json").write_text("{not json")
    with pytest.raises(ValueError, match="round.json"):
        History.load(broken)


# ------------------------------------------------------------------------------ 12. box regions
def test_heatmap_region_box(tmp_path, monkeypatch):
    """Box regions; and the masks are written without an fsync each, then made durable at once before
    regions.csv."""
    import chexradi.data.lungs as lungs
    import chexradi.loop.regions as regions

    writes, synced = [], []
    write_nrrd, sync_folders = lungs.write_nrrd, regions.sync_folders

    def spy_write(path, arr, spacing, *, sync=True):
        writes.append(sync)
        return write_nrrd(path, arr, spacing, sync=sync)

    def spy_sync(folders):
        synced.append((sorted(Path(f).name for f in folders), len(writes),
                       any(Path(f).parent.parent.joinpath("regions.csv").exists() for f in folders)))
        return sync_folders(folders)

    monkeypatch.setattr(lungs, "write_nrrd", spy_write)
    monkeypatch.setattr(regions, "sync_folders", spy_sync)
    out = tmp_path / "box"
    h = run(out, rounds=1, heatmap={"region": "box"})
    assert len(h) == 1
    rows = read_rows(out / "round_0" / "regions.csv")
    assert len(rows) == sum(COUNTS.values()) * len(h.class_names)
    assert writes == [False] * len(rows)
    assert synced == [(sorted(COUNTS), len(rows), False)]
    n_box = 0
    for x in rows:
        m = read_mask(out / "round_0" / x["mask"])
        want = np.zeros((SIDE, SIDE), np.uint8)
        if x["x"] != "":
            bx, by, bw, bh = (int(float(x[c])) for c in "xywh")
            want[by:by + bh, bx:bx + bw] = 1
            n_box += 1
        assert np.array_equal(m, want), x
    assert n_box > 0


# --------------------------------------------------------------------------- regions files
def test_merge_region_files_gives_one_process_order(tmp_path):
    """Two ranks' row files (each a contiguous block of every split's images) joined split by split give the
    rows in one process's order; read_regions streams them back with `empty` as a bool."""
    from chexradi.loop.regions import REGION_COLUMNS, merge_region_files, read_regions

    def row(split, i, cls, empty=False):
        return [split, i, f"{split}{i}.png", cls, 0.5, "", "", "", "", 0.1, empty, False,
                f"masks/{split}/{i:06d}_{cls}.nrrd"]

    one_process = [row(s, i, c, empty=(i == 3)) for s, n in (("train", 5), ("val", 3), ("test", 2))
                   for i in range(n) for c in ("A", "B")]
    blocks = {"train": (range(0, 3), range(3, 5)), "val": (range(0, 2), range(2, 3)),
              "test": (range(0, 1), range(1, 2))}
    files = []
    for r in range(2):
        path = tmp_path / f"regions.rank{r}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(REGION_COLUMNS)
            w.writerows(x for x in one_process if x[1] in blocks[x[0]][r])
        files.append(path)
    merge_region_files(files, tmp_path / "regions.csv", ["train", "val", "test"])
    got = read_rows(tmp_path / "regions.csv")
    assert [(x["split"], int(x["index"]), x["class"]) for x in got] == [(x[0], x[1], x[3]) for x in one_process]
    streamed = read_regions(tmp_path / "regions.csv")
    assert not isinstance(streamed, list)
    assert [x["empty"] for x in streamed] == [x[10] for x in one_process]
    with pytest.raises(FileNotFoundError, match="delete the round folder"):
        read_regions(tmp_path / "nope" / "regions.csv")
