"""chexradi.guidance: NT-Xent by hand, the Standardizer against numpy, GuidanceDataset, RadiomicsGuidance.

Models are ResNet-18s on 32x32 one-channel images with a handful of optimizer
steps; torch runs on one thread in this module (restored afterwards).
"""
from __future__ import annotations

import json
import copy
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from chexradi.guidance import GuidanceDataset, RadiomicsGuidance, Standardizer, nt_xent
from chexradi.nn import create_model, read_checkpoint
from chexradi.train import ArrayDataset, fit

SIZE = 32
D = 5


class Interrupted(Exception):
    pass


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def new_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("resnet18", num_classes=2, in_chans=1)


def new_objective(seed: int = 0, **kw) -> RadiomicsGuidance:
    torch.manual_seed(seed)
    return RadiomicsGuidance(512, D, 2, **dict(dict(hidden=16, proj_dim=8), **kw))


def data(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images with a bright square in quadrant k where class k is present; vectors that encode the labels."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, 2), np.float32)
    y[: n // 2, 0] = 1
    y[:: 2, 1] = 1
    y = y[rng.permutation(n)]
    x = rng.normal(0.0, 0.3, (n, SIZE, SIZE)).astype(np.float32)
    for i, row in enumerate(y):
        for k, present in enumerate(row):
            if present:
                x[i, 3:13, 3 + 16 * k:13 + 16 * k] += 2.0
    v = rng.normal(0.0, 1.0, (n, D)).astype(np.float32)
    v[:, :2] += 2.0 * y
    return x, y, v


def batch_of(n: int = 4, *, seed: int = 0) -> dict:
    x, y, v = data(n, seed=seed)
    return {"image": torch.from_numpy(x)[:, None], "target": torch.from_numpy(y), "guidance": torch.from_numpy(v),
            "guidance_valid": torch.ones(n, dtype=torch.bool)}


# --------------------------------------------------------------------------- nt_xent

def test_nt_xent_by_hand_on_three_pairs():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z2 = torch.tensor([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    t = 0.5
    # unit vectors of the 6 rows [z1; z2]
    r = 1 / math.sqrt(2)
    u = [(1, 0), (0, 1), (r, r), (1, 0), (r, r), (-1, 0)]
    total = 0.0
    for a in range(6):
        p = (a + 3) % 6
        exps = {b: math.exp((u[a][0] * u[b][0] + u[a][1] * u[b][1]) / t) for b in range(6) if b != a}
        total += -math.log(exps[p] / sum(exps.values()))
    expected = total / 6
    # row 0 written out: similarities to rows 1..5 are 0, r, 1, r, -1 (over t = 0.5), positive = row 3
    row0 = -math.log(math.exp(2) / (math.exp(0) + 2 * math.exp(2 * r) + math.exp(2) + math.exp(-2)))
    a0 = -math.log(math.exp(1 / t) / sum(math.exp(s / t) for s in (0, r, 1, r, -1)))
    assert row0 == pytest.approx(a0)
    got = nt_xent(z1, z2, temperature=t)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(nt_xent(z2, z1, temperature=t)) == pytest.approx(expected, rel=1e-6)


def test_nt_xent_is_lower_for_aligned_pairs_and_masks_invalid_rows():
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(16, 8, generator=g)
    aligned = z1 + 0.05 * torch.randn(16, 8, generator=g)
    shuffled = aligned[torch.roll(torch.arange(16), 1)]
    assert float(nt_xent(z1, aligned, temperature=0.1)) < 0.1 * float(nt_xent(z1, shuffled, temperature=0.1))
    valid = torch.ones(16, dtype=torch.bool)
    valid[[2, 5]] = False
    changed = aligned.clone()
    changed[[2, 5]] = torch.randn(2, 8, generator=g)
    masked = nt_xent(z1, aligned, temperature=0.1, valid=valid)
    assert float(nt_xent(z1, changed, temperature=0.1, valid=valid)) == pytest.approx(float(masked))
    assert float(masked) == pytest.approx(float(nt_xent(z1[valid], aligned[valid], temperature=0.1)))
    assert float(nt_xent(z1, changed, temperature=0.1)) != pytest.approx(float(masked))
    none = torch.zeros(16, dtype=torch.bool)
    assert float(nt_xent(z1, aligned, temperature=0.1, valid=none)) == 0.0
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, aligned, temperature=0.0)
    with pytest.raises(ValueError, match="z1 and z2"):
        nt_xent(z1, aligned[:, :4], temperature=0.1)


# --------------------------------------------------------------------------- Standardizer

def test_standardizer_matches_numpy_with_nonfinite_and_constant_columns():
    x = np.array([[1.0, 5.0, 2.0, np.nan],
                  [2.0, 5.0, np.nan, np.nan],
                  [4.0, 5.0, 6.0, np.nan],
                  [np.inf, 5.0, 7.0, np.nan]])
    s = Standardizer().fit(x)
    assert_allclose(s.mean[:3], [7 / 3, 5.0, 5.0])
    assert_allclose(s.std[0], np.std([1.0, 2.0, 4.0]))
    assert_allclose(s.std[2], np.std([2.0, 6.0, 7.0]))
    assert s.constant.tolist() == [False, True, False, True]
    new = np.array([[7 / 3 + np.std([1.0, 2.0, 4.0]), 9.0, np.nan, 3.0],
                    [-np.inf, 5.0, 5.0, 1.0]])
    z = s.transform(new)
    assert z.dtype == np.float32
    assert_allclose(z, [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]], atol=1e-6)
    assert s.n_nonfinite == 2
    assert s.n_nonfinite_per_column.tolist() == [1, 0, 1, 0]
    zx = s.transform(x)
    assert s.n_nonfinite == 6
    assert_allclose(zx[:3, 0], (np.array([1.0, 2.0, 4.0]) - 7 / 3) / np.std([1.0, 2.0, 4.0]), rtol=1e-6)
    assert zx[3, 0] == 0.0
    # a JSON round trip gives the same transform
    s2 = Standardizer.from_state(json.loads(json.dumps(s.state_dict())))
    assert_allclose(s2.transform(new), z)


def test_standardizer_rejects_bad_input():
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        Standardizer().fit(np.zeros(3))
    s = Standardizer().fit(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="2 columns but the Standardizer was fitted on 3"):
        s.transform(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="equal length"):
        Standardizer.from_state({"mean": [0.0], "std": [1.0, 1.0], "constant": [False]})
    with pytest.raises(ValueError, match="positive"):
        Standardizer.from_state({"mean": [0.0], "std": [0.0], "constant": [False]})


# --------------------------------------------------------------------------- GuidanceDataset

def test_guidance_dataset_items():
    x, y, v = data(4, seed=1)
    v = v.astype(np.float64)
    v[1] = np.nan
    v[2, 3] = np.nan
    ds = GuidanceDataset(ArrayDataset(x, y), v)
    assert len(ds) == 4 and ds.dim == D
    item = ds[0]
    assert set(item) == {"image", "target", "index", "guidance", "guidance_valid"}
    assert item["guidance"].dtype == torch.float32
    assert_allclose(item["guidance"].numpy(), v[0].astype(np.float32))
    assert bool(item["guidance_valid"])
    assert not bool(ds[1]["guidance_valid"]) and torch.equal(ds[1]["guidance"], torch.zeros(D))
    assert bool(ds[2]["guidance_valid"]) and float(ds[2]["guidance"][3]) == 0.0
    # with a standardizer: transformed vectors, validity decided on the raw rows
    s = Standardizer().fit(v)
    ds2 = GuidanceDataset(ArrayDataset(x, y), v, standardizer=s, key="rad", valid=[True, True, True, False])
    assert_allclose(ds2[0]["rad"].numpy(), s.transform(v[:1])[0])
    assert [bool(ds2[i]["rad_valid"]) for i in range(4)] == [True, False, True, False]
    assert torch.equal(ds2[3]["rad"], torch.zeros(D))
    # tuple items use their position as the index
    tuples = [(torch.zeros(1, SIZE, SIZE), torch.zeros(2)) for _ in range(4)]
    assert_allclose(GuidanceDataset(tuples, v)[3]["guidance"].numpy(), v[3].astype(np.float32))
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["guidance"].shape == (4, D) and batch["guidance_valid"].tolist() == [True, False, True, True]
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        GuidanceDataset(ArrayDataset(x, y), v[0])
    with pytest.raises(ValueError, match="index 3 but vectors has 3 rows"):
        GuidanceDataset(ArrayDataset(x, y), v[:3])[3]


# --------------------------------------------------------------------------- RadiomicsGuidance

def test_loss_shapes_terms_and_gradients_reach_backbone_and_mlp():
    model, obj = new_model(), new_objective()
    model.train()
    obj.train()
    batch = batch_of(4)
    loss, logits = obj.loss(model, batch)
    assert loss.dim() == 0 and logits.shape == (4, 2)
    assert set(obj.last_terms) == {"bce_image", "bce_fused", "align", "loss"}
    t = obj.last_terms
    assert t["loss"] == pytest.approx(t["bce_image"] + t["bce_fused"] + 0.5 * t["align"], rel=1e-5)
    assert t["align"] > 0 and t["bce_fused"] > 0
    loss.backward()
    assert model.backbone[0].weight.grad is not None and model.backbone[0].weight.grad.abs().sum() > 0
    assert obj.mlp[0].weight.grad is not None and obj.mlp[0].weight.grad.abs().sum() > 0
    assert obj.proj_image[0].weight.grad.abs().sum() > 0 and obj.fused_head.weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0


def test_fused_logits_by_hand_and_image_mode_equals_model():
    model, obj = new_model(), new_objective()
    model.eval()
    obj.eval()
    batch = batch_of(3)
    with torch.no_grad():
        emb = model.embed(batch["image"])
        expected = obj.fused_head(torch.cat([emb, obj.mlp(batch["guidance"])], 1))
        assert torch.allclose(obj.logits(model, batch), expected, atol=1e-6)
        obj.mode = "image"
        assert torch.equal(obj.logits(model, batch), model(batch["image"]))
        no_vectors = {"image": batch["image"]}
        assert torch.equal(obj.logits(model, no_vectors), model(batch["image"]))
        with pytest.raises(ValueError, match="no 'guidance' guidance vectors"):
            obj.logits(model, no_vectors, mode="fused")
    with pytest.raises(ValueError, match="mode"):
        obj.mode = "both"
    with pytest.raises(ValueError, match="fuse=True"):
        new_objective(fuse=False, mode="fused")
    assert new_objective(fuse=False).mode == "image"


def test_mse_alignment_ignores_invalid_rows():
    model, obj = new_model(), new_objective(alignment="mse", fuse=False)
    model.eval()  # batch norm statistics would otherwise change between the two calls
    obj.eval()
    batch = batch_of(4)
    batch["guidance_valid"] = torch.tensor([True, False, True, True])
    with torch.no_grad():
        loss, logits = obj.loss(model, batch)
        assert torch.equal(logits, model(batch["image"]))
        first = dict(obj.last_terms)
        batch["guidance"] = batch["guidance"].clone()
        batch["guidance"][1] = 100.0
        loss2, _ = obj.loss(model, batch)
        assert float(loss2) == float(loss)
        batch["guidance"][2] = 100.0  # a valid row does count
        loss3, _ = obj.loss(model, batch)
    assert float(loss3) > float(loss) + 1.0
    assert first["bce_fused"] == 0.0 and first["align"] > 0
    # by hand: mean over the 3 valid rows of the mean squared error per row
    with torch.no_grad():
        pred = obj.predictor(model.embed(batch["image"]))
        g = batch_of(4)["guidance"]
        expected = ((pred - g) ** 2).mean(1)[[0, 2, 3]].mean()
    assert first["align"] == pytest.approx(float(expected), rel=1e-5)


def test_objective_checks_its_arguments():
    with pytest.raises(ValueError, match="alignment"):
        new_objective(alignment="cosine")
    with pytest.raises(ValueError, match="pos_weight has 3 values"):
        new_objective(pos_weight=[1.0, 2.0, 3.0])
    obj = new_objective()
    bad = batch_of(2)
    bad["guidance"] = bad["guidance"][:, :3]
    with pytest.raises(ValueError, match=r"expected \(2, 5\)"):
        obj.loss(new_model(), bad)


@pytest.mark.slow
def test_fit_trains_the_objective_and_resumes(tmp_path):
    x, y, v = data(12, seed=2)
    xv, yv, vv = data(8, seed=3)
    v = v.astype(np.float64)
    v[4] = np.nan  # an empty mask: no guidance for this image
    s = Standardizer().fit(v)
    train = GuidanceDataset(ArrayDataset(x, y), v, standardizer=s)
    val = GuidanceDataset(ArrayDataset(xv, yv), vv, standardizer=s)
    kw = dict(epochs=2, batch_size=6, lr=3e-3, patience=None, seed=0, progress=False, device="cpu")

    obj = new_objective()
    before = {k: t.clone() for k, t in obj.state_dict().items()}
    res = fit(new_model(), train, val, objective=obj, **kw)
    assert len(res.history) == 2 and all(math.isfinite(h["train_loss"]) for h in res.history)
    after = obj.state_dict()
    assert not torch.equal(before["mlp.0.weight"], after["mlp.0.weight"])
    assert not torch.equal(before["fused_head.weight"], after["fused_head.weight"])

    # stopped after epoch 1, resumed: the objective comes back from last.pt and the run matches
    full_obj, full_model = new_objective(), new_model()
    fit(full_model, train, val, objective=full_obj, out=tmp_path / "full", **kw)

    def stop(record):
        raise Interrupted

    with pytest.raises(Interrupted):
        fit(new_model(), train, val, objective=new_objective(), out=tmp_path / "cut", on_epoch_end=stop, **kw)
    saved = read_checkpoint(tmp_path / "cut" / "last.pt")["train_state"]["objective"]
    assert "mlp.0.weight" in saved
    resumed_obj = new_objective(seed=7)
    resumed_model = new_model(seed=7)
    fit(resumed_model, train, val, objective=resumed_obj, out=tmp_path / "cut", **kw)
    for k, t in full_obj.state_dict().items():
        assert torch.equal(t, resumed_obj.state_dict()[k]), k
    for k, t in full_model.state_dict().items():
        assert torch.equal(t, resumed_model.state_dict()[k]), k


@pytest.mark.parametrize("with_out", [True, False])
def test_fit_restores_the_objective_of_the_best_epoch(tmp_path, with_out):
    """The fused head and guidance branch come back from the same epoch as the model's weights."""
    x, y, v = data(12, seed=4)
    xv, yv, vv = data(8, seed=5)
    yv = np.random.default_rng(9).integers(0, 2, yv.shape).astype(np.float32)  # unlearnable: an early best
    s = Standardizer().fit(v)
    train = GuidanceDataset(ArrayDataset(x, y), v, standardizer=s)
    val = GuidanceDataset(ArrayDataset(xv, yv), vv, standardizer=s)
    seen = []
    obj, model = new_objective(), new_model()
    res = fit(model, train, val, objective=obj, epochs=4, batch_size=6, lr=3e-3, patience=None, seed=0,
              progress=False, device="cpu", out=tmp_path / "run" if with_out else None,
              on_epoch_end=lambda r: seen.append(copy.deepcopy(obj.state_dict())))
    best = seen[res.best_epoch - 1]
    for k, t in best.items():
        assert torch.equal(t, obj.state_dict()[k]), k
    if res.best_epoch < len(seen):  # the last epoch's state differs, so this can fail
        assert any(not torch.equal(t, seen[-1][k]) for k, t in best.items())
    if with_out:
        saved = read_checkpoint(res.best_path)["objective"]
        assert all(torch.equal(t, saved[k]) for k, t in best.items())
