"""chexradi.train (fit / predict) and chexradi.metrics, on generated images.

Images are 32x32 noise; class k is present when a bright square sits in its own
quadrant, so a ResNet-18 with triplet attention learns it in a few steps. Every
fit here takes at most a handful of optimizer steps. The module runs torch on one
thread (restored afterwards): on a small, shared CPU that is several times faster
than two threads fighting over two cores, and results stay bit-reproducible.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import shutil
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, TensorDataset

from chexradi.data.transforms import NORMALIZATION
from chexradi.metrics import auc_per_class, mean_auc
from chexradi.nn import create_model, load_model, read_checkpoint
from chexradi.train import (BCEObjective, ArrayDataset, FitResult, Prediction, balanced_pos_weight, fit,
                            masked_bce_with_logits, predict)

SIZE = 32
CLASSES = ["upper_left", "upper_right"]
# Fast, learnable settings shared by the reference run and the resume test.
REF = dict(epochs=4, batch_size=12, lr=3e-3, patience=None, class_weights="balanced", seed=0,
           progress=False, num_workers=0, device="cpu")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def squares(y: np.ndarray, *, seed: int) -> np.ndarray:
    """(N, 32, 32) float32 noise with a bright 10x10 square in quadrant k wherever y[:, k] == 1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, (len(y), SIZE, SIZE)).astype(np.float32)
    for i, row in enumerate(y):
        for k, present in enumerate(row):
            if present == 1:
                r0, c0 = 3 + 16 * (k // 2), 3 + 16 * (k % 2)
                x[i, r0:r0 + 10, c0:c0 + 10] += 2.0
    return x


def labels(n: int, positives: list[int], *, seed: int) -> np.ndarray:
    """(n, K) 0/1 targets with exactly positives[k] ones in column k, rows shuffled."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, len(positives)), np.float32)
    for k, p in enumerate(positives):
        y[rng.permutation(n)[:p], k] = 1
    return y


def new_model(seed: int = 0, name: str = "resnet18_ta") -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(name, num_classes=2, in_chans=1, class_names=CLASSES)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


# Train: 8 of 24 positives in class 0 (balanced pos_weight 16/8 = 2), 18 of 24 in class 1
# (6/18 = 1/3, clipped up to 1). Validation: both labels present in both classes.
Y_TRAIN = labels(24, [8, 18], seed=1)
Y_VAL = labels(16, [8, 6], seed=2)
TRAIN = ArrayDataset(squares(Y_TRAIN, seed=3), Y_TRAIN)
VAL = ArrayDataset(squares(Y_VAL, seed=4), Y_VAL)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 4-epoch run (2 steps per epoch) with checkpoints in out/."""
    out = tmp_path_factory.mktemp("reference")
    model = new_model()
    result = fit(model, TRAIN, VAL, out=out, meta={"image_size": SIZE}, **REF)
    return SimpleNamespace(model=model, result=result, out=out, state=cpu_state(model))


# ----------------------------------------------------------------------------- metrics

def test_auc_hand_computed_case():
    y = np.array([[0, 1], [0, 1], [1, 1], [1, 1]], float)
    s = np.array([[0.1, 0.5], [0.4, 0.2], [0.35, 0.3], [0.8, 0.9]])
    aucs = auc_per_class(y, s)
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered right.
    assert aucs[0] == 0.75
    assert math.isnan(aucs[1])  # one label only: undefined, not an error
    assert mean_auc(y, s) == 0.75
    assert math.isnan(mean_auc(y[:, 1:], s[:, 1:]))


def test_auc_per_class_matches_sklearn_with_unknown_targets():
    rng = np.random.default_rng(0)
    y = (rng.random((40, 4)) < 0.4).astype(float)
    s = rng.random((40, 4))
    y[rng.random((40, 4)) < 0.2] = np.nan  # unknown labels
    y[:, 2] = np.where(np.isnan(y[:, 2]), np.nan, 0.0)  # known targets all 0
    y[:, 3] = np.nan  # nothing known
    y[:3, 0], y[3:6, 0] = 0, 1  # class 0 has both labels
    aucs = auc_per_class(y, s)
    known = ~np.isnan(y[:, :2])
    for k in range(2):
        assert aucs[k] == pytest.approx(roc_auc_score(y[known[:, k], k], s[known[:, k], k]), abs=1e-15)
    assert np.isnan(aucs[2:]).all()
    assert mean_auc(y, s) == pytest.approx(np.mean(aucs[:2]), abs=1e-15)


@pytest.mark.parametrize("y, s, match", [
    (np.zeros(4), np.zeros(4), "2-D"),
    (np.zeros((4, 2)), np.zeros((4, 3)), "same shape"),
    (np.zeros((2, 1)), np.array([[0.1], [np.nan]]), "NaN/inf"),
    (np.array([[0.0], [-1.0]]), np.zeros((2, 1)), "0, 1 or NaN"),
])
def test_metrics_reject_bad_input(y, s, match):
    with pytest.raises(ValueError, match=match):
        auc_per_class(y, s)


# ----------------------------------------------------------------------------- losses and weights

def test_balanced_pos_weight_by_hand():
    t = np.array([[1, 0, 1, np.nan],
                  [0, 0, 1, 0],
                  [0, np.nan, 1, 1],
                  [0, 0, 0, 0]])
    # class 0: neg 3 / pos 1; class 1: no positive -> upper clip; class 2: 1/3 -> lower clip;
    # class 3: neg 2 / pos 1 (the NaN is not counted).
    assert balanced_pos_weight(t).tolist() == [3.0, 100.0, 1.0, 2.0]
    assert balanced_pos_weight(t, clip=(0.25, 10.0)).tolist() == pytest.approx([3.0, 10.0, 1 / 3, 2.0])
    with pytest.raises(ValueError, match="clip"):
        balanced_pos_weight(t, clip=(0.0, 1.0))


def test_masked_bce_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.5, -0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, float("nan")], [0.0, float("nan"), 1.0]])
    w = torch.tensor([2.0, 3.0, 0.5])

    def sp(v):  # softplus: -log sigmoid(-v)
        return math.log1p(math.exp(v))

    # known entries: (0,0) y=1, (0,1) y=0, (1,0) y=0, (1,2) y=1
    plain = (sp(-0.0) + sp(2.0) + sp(1.5) + sp(-3.0)) / 4
    weighted = (2.0 * sp(-0.0) + sp(2.0) + sp(1.5) + 0.5 * sp(-3.0)) / 4
    assert float(masked_bce_with_logits(logits.detach(), targets)) == pytest.approx(plain, rel=1e-6)
    loss = masked_bce_with_logits(logits, targets, pos_weight=w)
    assert float(loss.detach()) == pytest.approx(weighted, rel=1e-6)
    loss.backward()
    assert logits.grad[0, 2] == 0 and logits.grad[1, 1] == 0  # unknown targets give no gradient
    assert (logits.grad[targets == targets] != 0).all()

    objective = BCEObjective([2.0, 3.0, 0.5])
    value, out = objective.loss(lambda image: image * 1.0, {"image": logits.detach(), "target": targets})
    assert float(value) == pytest.approx(weighted, rel=1e-6) and torch.equal(out, logits.detach())
    assert float(masked_bce_with_logits(logits.detach(), torch.full_like(targets, float("nan")))) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        masked_bce_with_logits(logits, targets[:, :2])


# ----------------------------------------------------------------------------- fit

def test_training_loss_falls_on_a_cosine_schedule(reference):
    h = reference.result.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4] and [r["steps"] for r in h] == [2, 4, 6, 8]
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert reference.result.criterion == "val_mean_auc" and reference.result.best_score > 0.8
    for r in h:  # per-step cosine from lr to 0 over 8 steps; "lr" is the rate after the epoch
        assert r["lr"] == pytest.approx(REF["lr"] * 0.5 * (1 + math.cos(math.pi * r["steps"] / 8)), abs=1e-12)
        assert len(r["val_auc"]) == 2 and r["val_mean_auc"] == pytest.approx(np.mean(r["val_auc"]))
    best = max(range(4), key=lambda i: (h[i]["score"], -i))  # first epoch with the top score
    assert reference.result.best_epoch == best + 1
    assert not reference.model.training
    assert not reference.result.stopped_early and reference.result.amp is False
    assert reference.result.device == "cpu"


def test_same_seed_gives_identical_weights_another_seed_does_not():
    kw = dict(REF, epochs=1, max_steps=2, class_weights=None)
    states = []
    for seed in (0, 0, 1):
        model = new_model(seed=0)  # same initial weights; only the fit seed changes
        fit(model, TRAIN, VAL, **dict(kw, seed=seed))
        states.append(cpu_state(model))
    assert same_state(states[0], states[1])
    assert not same_state(states[0], states[2])


class Interrupted(Exception):
    pass


def test_resume_after_interruption_reproduces_the_uninterrupted_run(reference, tmp_path):
    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(new_model(), TRAIN, VAL, out=tmp_path, meta={"image_size": SIZE}, on_epoch_end=stop_after_two,
            **REF)
    assert read_checkpoint(tmp_path / "last.pt")["train_state"]["epoch"] == 2

    seen = []
    model = new_model(seed=123)  # other initial weights: everything must come from last.pt
    result = fit(model, TRAIN, VAL, out=tmp_path, meta={"image_size": SIZE}, on_epoch_end=seen.append,
                 **REF)
    assert [r["epoch"] for r in seen] == [3, 4]
    assert without_timings(result.history) == without_timings(reference.result.history)
    assert result.best_epoch == reference.result.best_epoch
    assert result.best_score == reference.result.best_score
    assert same_state(cpu_state(model), reference.state)
    assert same_state(read_checkpoint(tmp_path / "last.pt")["state_dict"],
                      read_checkpoint(reference.out / "last.pt")["state_dict"])


def test_finished_run_returns_its_result_without_training(reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference.out, out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    seen = []
    model = new_model(seed=7)
    result = fit(model, TRAIN, VAL, out=out, meta={"image_size": SIZE}, on_epoch_end=seen.append, **REF)
    assert seen == []
    assert result.history == reference.result.history
    assert (result.best_epoch, result.best_score, result.stopped_early) == (
        reference.result.best_epoch, reference.result.best_score, reference.result.stopped_early)
    assert same_state(cpu_state(model), reference.state) and not model.training
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_checkpoints_load_and_record_settings_and_versions(reference):
    res: FitResult = reference.result
    assert res.best_path == reference.out / "best.pt" and res.last_path == reference.out / "last.pt"
    model, ckpt = load_model(res.best_path, expect="resnet18_ta")
    assert same_state(cpu_state(model), reference.state)
    assert ckpt["epoch"] == res.best_epoch and ckpt["score"] == res.best_score
    meta = ckpt["meta"]
    assert meta["class_names"] == CLASSES and meta["normalization"] == NORMALIZATION
    assert meta["image_size"] == SIZE
    fit_settings = meta["fit"]
    for key in ("epochs", "batch_size", "lr", "seed", "class_weights", "patience", "device"):
        assert fit_settings[key] == REF[key], key
    assert fit_settings["weight_decay"] == 1e-4 and fit_settings["amp"] is False
    json.dumps(fit_settings)  # JSON-able
    assert {"chexradi", "torch", "numpy"} <= set(ckpt["versions"])

    _, last = load_model(res.last_path)
    ts = last["train_state"]
    assert ts["epoch"] == 4 and ts["finished"] and ts["history"] == res.history
    assert {"optimizer", "scheduler", "scaler", "rng", "objective"} <= set(ts)
    # balanced weights from the training targets: 16/8 and 6/18 clipped to 1
    assert ts["objective"]["pos_weight"].tolist() == [2.0, 1.0]

    saved = json.loads((reference.out / "history.json").read_text())
    assert saved["history"] == res.history and saved["best_epoch"] == res.best_epoch
    assert saved["fit"] == fit_settings and saved["model"] == model.config
    assert saved["versions"]["torch"] == torch.__version__


def test_resume_refuses_another_model_or_other_settings(reference, tmp_path):
    shutil.copy(reference.out / "last.pt", tmp_path / "last.pt")
    with pytest.raises(ValueError, match=r"last\.pt.*resnet18_ta"):
        fit(new_model(name="resnet18"), TRAIN, VAL, out=tmp_path, **REF)
    with pytest.raises(ValueError, match=r"last\.pt.*lr: 0\.003 -> 0\.001.*resume=False"):
        fit(new_model(), TRAIN, VAL, out=tmp_path, **dict(REF, lr=1e-3))


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    rng = np.random.default_rng(5)
    y_train, y_val = labels(16, [8, 8], seed=6), labels(16, [8, 8], seed=7)
    # unlearnable: the squares do not follow the labels
    train = ArrayDataset(rng.normal(size=(16, SIZE, SIZE)), y_train)
    val = ArrayDataset(rng.normal(size=(16, SIZE, SIZE)), y_val)
    model = new_model()
    res = fit(model, train, val, epochs=6, batch_size=16, lr=3e-3, patience=1, out=tmp_path, progress=False,
              device="cpu")
    h = res.history
    assert res.stopped_early and len(h) < 6
    assert len(h) == res.best_epoch + 1  # one epoch without improvement, then stop
    assert res.best_score == max(r["score"] for r in h) == h[res.best_epoch - 1]["score"]
    for i, r in enumerate(h):
        assert r["improved"] == (r["score"] > max([q["score"] for q in h[:i]], default=-math.inf))
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == res.best_epoch
    assert same_state(best["state_dict"], cpu_state(model))
    assert not same_state(read_checkpoint(tmp_path / "last.pt")["state_dict"], cpu_state(model))


def test_undefined_val_auc_selects_on_val_loss(caplog):
    y_val = np.zeros((8, 2), np.float32)  # one label per class: AUC undefined
    val = ArrayDataset(squares(y_val, seed=8), y_val)
    with caplog.at_level(logging.WARNING, logger="chexradi"):
        res = fit(new_model(), TRAIN, val, **dict(REF, epochs=1, max_steps=1))
    assert res.criterion == "-val_loss" and res.history[0]["val_mean_auc"] is None
    assert res.best_score == -res.history[0]["val_loss"]
    assert "-val_loss" in caplog.text


def test_dataloader_of_tuples_is_used_as_given_and_reseeded_per_epoch():
    x = torch.from_numpy(TRAIN.images.numpy())
    y = TRAIN.targets
    states = []
    for _ in range(2):
        loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
        model = new_model()
        res = fit(model, loader, TensorDataset(VAL.images, VAL.targets), epochs=1, max_steps=2, lr=3e-3,
                  progress=False, device="cpu")
        states.append(cpu_state(model))
    assert res.history[0]["steps"] == 2
    assert same_state(*states)


def test_amp_on_cpu_autocasts_to_bfloat16():
    res = fit(new_model(), TRAIN, VAL, **dict(REF, epochs=1, max_steps=1, amp=True))
    assert res.amp is True and math.isfinite(res.history[0]["train_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (amp defaults to float16 there)")
def test_amp_on_cuda_trains():
    model = new_model()
    res = fit(model, TRAIN, VAL, **dict(REF, device="cuda", epochs=3, amp=None))
    assert res.amp is True and res.device.startswith("cuda")
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert next(model.parameters()).is_cuda


# ----------------------------------------------------------------------------- bad input

@pytest.fixture(scope="module")
def small_model():
    return new_model()


class NoTarget(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"image": torch.zeros(1, SIZE, SIZE), "label": torch.zeros(2)}


@pytest.mark.parametrize("change, match", [
    (dict(class_weights="inverse"), "unknown class_weights 'inverse'"),
    (dict(class_weights=[1.0, 2.0, 3.0]), "class_weights has 3 values but the model has 2"),
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(lr=-1.0), "lr must be"),
    (dict(patience=0), "patience"),
    (dict(device="tpu"), "device"),
    (dict(train=NoTarget()), "train item 0 has no 'target'"),
    (dict(val=np.zeros((4, 1, SIZE, SIZE))), "ArrayDataset"),
    (dict(objective=BCEObjective(), class_weights="balanced"), "class_weights"),
])
def test_fit_rejects_bad_input(small_model, change, match):
    kw = dict(REF, train=TRAIN, val=VAL)
    kw.update(change)
    with pytest.raises(ValueError, match=match):
        fit(small_model, kw.pop("train"), kw.pop("val"), **kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_fit_refuses_cuda_when_unavailable(small_model):
    with pytest.raises(ValueError, match="CUDA.*device='cpu'"):
        fit(small_model, TRAIN, VAL, **dict(REF, device="cuda"))


def test_array_dataset_checks_its_input():
    with pytest.raises(ValueError, match=r"targets must be \(N, K\) with N = 3"):
        ArrayDataset(np.zeros((3, 8, 8)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ArrayDataset(np.zeros((2, 8, 8)), np.array([[1.0], [-1.0]]))
    item = ArrayDataset(np.zeros((2, 8, 8)), np.array([[1.0], [np.nan]]))[1]
    assert item["image"].shape == (1, 8, 8) and item["image"].dtype == torch.float32
    assert torch.isnan(item["target"]).all() and item["index"] == 1


# ----------------------------------------------------------------------------- predict

def test_predict_matches_the_eval_forward_in_dataset_order(reference):
    model = reference.model
    y = np.concatenate([Y_VAL[:9], np.full((1, 2), np.nan, np.float32)])
    data = ArrayDataset(VAL.images[:10], y)
    model.train()
    pred: Prediction = predict(model, data, batch_size=4, progress=False, embeddings=True, device="cpu")
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(VAL.images[:10])).numpy()
        emb = model.embed(VAL.images[:10]).numpy()
    assert pred.probs.shape == (10, 2) and pred.probs.dtype == np.float32
    assert ((pred.probs >= 0) & (pred.probs <= 1)).all()
    assert_allclose(pred.probs, expected, rtol=1e-5, atol=1e-6)
    assert_allclose(pred.probs, 1 / (1 + np.exp(-pred.logits.astype(np.float64))), rtol=1e-5, atol=1e-6)
    assert_allclose(pred.embeddings, emb, rtol=1e-5, atol=1e-5)
    assert pred.index.tolist() == list(range(10))
    np.testing.assert_array_equal(pred.targets, y)  # NaN stays NaN, rows in order
    assert pred.class_names == CLASSES and pred.heatmaps is None

    unlabeled = predict(model, ArrayDataset(VAL.images[:3]), progress=False, device="cpu")
    assert unlabeled.targets is None and unlabeled.index.tolist() == [0, 1, 2]


def test_predict_heatmap_plumbing(small_model, monkeypatch):
    calls = []

    def fake_heatmaps(model, x, *, method="gradcam", classes=None, target_layer=None):
        calls.append((method, classes, target_layer, torch.is_grad_enabled(), model.training))
        b, _, h, w = x.shape
        maps = torch.stack([torch.full((b, h, w), c / 10.0) for c in classes], dim=1)
        with torch.no_grad():
            return maps, model(x)

    fake = types.ModuleType("chexradi.cam.methods")
    fake.heatmaps = fake_heatmaps
    monkeypatch.setitem(sys.modules, "chexradi.cam.methods", fake)
    data = ArrayDataset(VAL.images[:5], Y_VAL[:5])
    pred = predict(small_model, data, batch_size=2, heatmaps="cam", classes=["upper_right"],
                   target_layer="backbone.layer3", progress=False, device="cpu")
    assert pred.heatmaps.shape == (5, 1, SIZE, SIZE) and pred.heatmaps.dtype == np.float32
    assert (pred.heatmaps == np.float32(0.1)).all() and pred.heatmap_classes == [1]
    assert calls == [("cam", [1], "backbone.layer3", True, False)] * 3
    plain = predict(small_model, data, progress=False, device="cpu")
    assert_allclose(pred.probs, plain.probs, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown class name 'lower_left'"):
        predict(small_model, data, heatmaps="cam", classes=["lower_left"], progress=False)
    with pytest.raises(ValueError, match="unknown heatmaps 'scorecam'"):
        predict(small_model, data, heatmaps="scorecam", progress=False)
    with pytest.raises(ValueError, match="classes"):
        predict(small_model, data, classes=[0], progress=False)
    with pytest.raises(ValueError, match="shuffl"):
        predict(small_model, DataLoader(data, shuffle=True), progress=False)


@pytest.mark.skipif(importlib.util.find_spec("chexradi.cam.methods") is None,
                    reason="chexradi.cam.methods is not written yet")
def test_predict_real_heatmaps(reference):
    data = ArrayDataset(VAL.images[:6], Y_VAL[:6])
    grad = predict(reference.model, data, batch_size=4, heatmaps="gradcam", classes=["upper_right"],
                   progress=False, device="cpu")
    assert grad.heatmaps.shape == (6, 1, SIZE, SIZE) and grad.heatmaps.dtype == np.float32
    assert grad.heatmaps.min() >= 0 and grad.heatmaps.max() <= 1 and grad.heatmap_classes == [1]
    cam = predict(reference.model, data, heatmaps="cam", progress=False, device="cpu")
    assert cam.heatmaps.shape == (6, 2, SIZE, SIZE) and cam.heatmap_classes == [0, 1]
    plain = predict(reference.model, data, progress=False, device="cpu")
    assert_allclose(grad.probs, plain.probs, rtol=1e-5, atol=1e-6)
    assert not reference.model.training
