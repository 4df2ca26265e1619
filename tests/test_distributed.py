"""chexradi.train under torch.distributed: two CPU processes (gloo) on loopback against one process.

The module starts ``torchrun --nproc_per_node 2`` once, on this very file (see
``_worker`` at the bottom): each rank runs every distributed scenario in one
process group and writes what it saw to ``rank{r}.json`` / ``.pt`` files, which
the tests compare with single-process runs done here.

- Exactness: a model without batch-norm whose loss is a mean over items, with
  every target known, must end with the single-process weights (the averaged
  gradient of two half batches is the gradient of the whole batch), up to
  floating-point rounding: relative 1e-5. A negative control (one process with
  the half batch) shows that this tolerance does catch a different trajectory.
- A model that is not an image classifier (``toy_text.BagOfTokens``: variable-length
  token batches padded by a ``collate_fn``, selection on the validation loss by a
  ``LossEvaluator``) is exact in the same sense.
- ResNet-18 with triplet attention on the phantom: batch-norm statistics come
  from 8 images per rank instead of 16, so the runs differ; the validation mean
  AUC must agree within ``AUC_TOL`` (see there), and everything that must be
  identical on the ranks is.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from chexradi.train import ArrayDataset, LossEvaluator, distributed, fit
from chexradi.train.data import _make_loader, _rank_batches, _shuffle_order

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
TIMEOUT_S = 150

# Exactness cases: (n_train, batch_size). 41 = 5 * 8 + 1: the last global batch has one item, so rank 1
# repeats it with weight 0; 45 = 5 * 8 + 5: the last batch splits 3 / 2 and the losses are scaled 1.2 / 0.8.
EXACT_CASES = {"short1": (41, 8), "short5": (45, 8)}
EXACT_RTOL = 1e-5

# The phantom run: 96 training images at 64 px, batch 16 (8 per rank), 2 epochs, 48 validation images.
# (difficulty 0: after 2 epochs one process reaches a validation mean AUC of about 0.7.)
PHANTOM = dict(n_train=96, n_val=48, size=64, seed=5, difficulty=0.0)
PHANTOM_FIT = dict(epochs=2, batch_size=16, lr=3e-3, seed=0, patience=None, device="cpu", progress=False)
# Batch-norm normalises each rank's 8 images with their own mean and variance (not the 16 of one process) and
# keeps rank 0's running statistics, so the trajectories part from the first step. With 48 validation images
# (6 to 17 positives per class) after 12 steps, changing the training seed of one process alone moves the
# validation mean AUC by 0.02 to 0.05; 0.1 allows that noise, and a run that did not learn (AUC 0.5, 0.2 below
# one process) fails; so does one below LEARNED.
AUC_TOL = 0.1
LEARNED = 0.6

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)


def _gloo_available() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return dist.is_available() and dist.is_gloo_available()


NO_GLOO = "torch.distributed with the gloo backend is not available in this torch build"
needs_gloo = pytest.mark.skipif(not _gloo_available(), reason=NO_GLOO)


# ----------------------------------------------------------------------------- shared fixtures (both sides)

class TinyNet(nn.Module):
    """Flatten -> Linear -> tanh -> Linear: no batch-norm, no dropout. ``spare`` is never used (it makes DDP
    need find_unused_parameters when ``with_spare``)."""

    def __init__(self, in_features: int, num_classes: int, *, with_spare: bool = False) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.class_names = num_classes, 1, [f"c{k}" for k in range(num_classes)]
        self.config = {"name": "tiny", "num_classes": num_classes, "in_features": in_features}
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, 16), nn.Tanh())
        self.head = nn.Linear(16, num_classes)
        self.spare = nn.Linear(2, 2) if with_spare else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BiasObjective(nn.Module):
    """BCE of ``model(x) + bias``: an nn.Module objective with a parameter of its own (averaged by DDP)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.full((num_classes,), 0.1))

    def logits(self, model, batch):
        return model(batch["image"]) + self.bias

    def loss(self, model, batch):
        logits = self.logits(model, batch)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["target"]), logits


class PlainScaleObjective:
    """Not an nn.Module: ``parameters()`` gives a learnable logit scale, which fit averages by hand."""

    def __init__(self) -> None:
        self.scale = torch.ones((), requires_grad=True)

    def parameters(self):
        return [self.scale]

    def logits(self, model, batch):
        return model(batch["image"]) * self.scale

    def loss(self, model, batch):
        logits = self.logits(model, batch)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["target"]), logits

    def state_dict(self):
        return {"scale": self.scale.detach().clone()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.scale.copy_(state["scale"])


def exact_data(n_train: int):
    """Random 6x6 images and 0/1 targets (all known) with a signal in them."""
    rng = np.random.default_rng(n_train)
    y = (rng.random((n_train + 16, 3)) < 0.4).astype(np.float32)
    x = rng.normal(0, 1, (n_train + 16, 6, 6)).astype(np.float32)
    x[:, 0, :3] += 1.5 * y
    return ArrayDataset(x[:n_train], y[:n_train]), ArrayDataset(x[n_train:], y[n_train:])


def exact_run(case: str, *, batch_size=None, out=None, on_epoch_end=None):
    """One exactness fit; returns (model, objective, result)."""
    n_train, bs = EXACT_CASES[case]
    train, val = exact_data(n_train)
    torch.manual_seed(1)
    model = TinyNet(36, 3, with_spare=case == "short5")
    objective = BiasObjective(3) if case == "short1" else PlainScaleObjective()
    result = fit(model, train, val, epochs=2, batch_size=batch_size or bs, lr=1e-2, seed=3, patience=None,
                 device="cpu", progress=False, objective=objective, out=out, on_epoch_end=on_epoch_end)
    return model, objective, result


def exact_state(model, objective) -> dict:
    state = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in objective.state_dict().items():
        state[f"objective.{k}"] = v.detach().clone()
    return state


# The token run: 45 sequences, batch 8 (the last batch of 5 splits 3 / 2), 2 epochs, selection on -val_loss.
TEXT = dict(n_train=45, n_val=20, epochs=2, batch_size=8, lr=5e-2, seed=4)


def text_run():
    """One token-model fit with a collate function and a loss evaluator; returns (model, result)."""
    from toy_text import BagOfTokens, TokenDataset, TokenObjective, pad_collate

    torch.manual_seed(2)
    model = BagOfTokens()
    result = fit(model, TokenDataset(TEXT["n_train"], seed=0), TokenDataset(TEXT["n_val"], seed=1),
                 epochs=TEXT["epochs"], batch_size=TEXT["batch_size"], lr=TEXT["lr"], seed=TEXT["seed"],
                 patience=None, device="cpu", progress=False, objective=TokenObjective(), collate_fn=pad_collate,
                 evaluator=LossEvaluator(required_keys=TokenObjective.required_keys))
    return model, result


@functools.lru_cache(maxsize=1)
def phantom_data():
    from chexradi.data.sources import phantom_splits

    # version 1: its easy findings are learnt in two epochs, which this test needs (it tests training, not the
    # phantom)
    return phantom_splits(PHANTOM["n_train"], PHANTOM["n_val"], 1, size=PHANTOM["size"], seed=PHANTOM["seed"],
                          difficulty=PHANTOM["difficulty"], version=1)


def phantom_model():
    """A fresh ResNet-18-TA (seeded) and the phantom splits."""
    from chexradi.nn import create_model

    sp = phantom_data()
    torch.manual_seed(0)
    model = create_model("resnet18_ta", num_classes=len(sp.class_names), class_names=list(sp.class_names))
    return model, sp


def result_json(result) -> dict:
    d = asdict(result)
    d["best_path"] = None if result.best_path is None else str(result.best_path)
    d["last_path"] = None if result.last_path is None else str(result.last_path)
    return d


# ----------------------------------------------------------------------------- the torchrun side

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run ``_worker`` on 2 gloo ranks; the ranks' JSON reports and where their files are."""
    if not _gloo_available():
        pytest.skip(NO_GLOO)
    out = tmp_path_factory.mktemp("ranks")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback, whatever the host name resolves to
    t0 = time.perf_counter()
    for attempt in range(2):  # a second try only if another process took the free port meanwhile
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--nnodes", "1",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(Path(__file__).resolve()),
               str(out)]
        try:
            proc = subprocess.run(cmd, env=env, cwd=str(out), capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s:\n{(exc.stdout or '')[-3000:]}\n"
                        f"{(exc.stderr or '')[-3000:]}")
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            break
    if proc.returncode != 0:
        pytest.fail(f"torchrun failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return SimpleNamespace(out=out, reports=reports, seconds=time.perf_counter() - t0)


def _worker(out: Path) -> None:
    """What each torchrun rank does; writes ``out/rank{r}.json`` and state files."""
    import logging

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    d = distributed.init_from_env("cpu")
    report: dict = {"dist": {"rank": d.rank, "world_size": d.world_size, "local_rank": d.local_rank,
                             "backend": d.backend, "is_main": d.is_main, "current": repr(distributed.current())}}
    # -- collectives of Dist
    report["shard"] = list(d.shard(7))
    report["gathered"] = d.all_gather_object({"rank": d.rank})
    report["broadcast"] = d.broadcast_object(f"from {d.rank}")
    report["sum_float"] = d.all_reduce_sum(d.rank + 0.5)
    report["sum_array"] = d.all_reduce_sum(np.array([1.0, d.rank])).tolist()

    # -- exactness, and fit's refusals
    for case in EXACT_CASES:
        model, objective, result = exact_run(case)
        torch.save(exact_state(model, objective), out / f"exact_{case}_rank{d.rank}.pt")
        report[f"exact_{case}"] = result_json(result)
    errors = {}
    train, val = exact_data(41)
    for name, kwargs in (("batch_size", dict(batch_size=7)),
                         ("dataloader", dict(train=torch.utils.data.DataLoader(train, batch_size=8)))):
        args = dict(train=train, batch_size=8)
        args.update(kwargs)
        try:
            fit(TinyNet(36, 3), args.pop("train"), val, epochs=1, device="cpu", progress=False, **args)
            errors[name] = None
        except ValueError as exc:
            errors[name] = str(exc)
    report["errors"] = errors

    # -- resume after an interruption (out/ written by rank 0), against the uninterrupted run above
    class Stop(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Stop

    resume_dir = out / "resume"
    try:
        exact_run("short1", out=resume_dir, on_epoch_end=stop_after_first)
    except Stop:
        pass
    report["interrupted_files"] = sorted(p.name for p in resume_dir.iterdir()) if resume_dir.is_dir() else []
    model, objective, result = exact_run("short1", out=resume_dir)
    torch.save(exact_state(model, objective), out / f"resumed_rank{d.rank}.pt")
    report["resumed"] = result_json(result)

    # -- a token model: collate_fn and LossEvaluator
    model, result = text_run()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"text_rank{d.rank}.pt")
    report["text"] = result_json(result)

    # -- the phantom, ResNet-18 with triplet attention (batch-norm)
    model, sp = phantom_model()
    result = fit(model, sp.train, sp.val, out=out / "phantom", **PHANTOM_FIT)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"phantom_rank{d.rank}.pt")
    report["phantom"] = result_json(result)
    again = fit(phantom_model()[0], sp.train, sp.val, out=out / "phantom", **PHANTOM_FIT)
    report["phantom_again"] = result_json(again)

    (out / f"rank{d.rank}.json").write_text(json.dumps(report, indent=1))
    d.barrier()
    d.close()


# ----------------------------------------------------------------------------- single-process references

@pytest.fixture(scope="module")
def single_exact():
    return {case: exact_run(case) for case in EXACT_CASES}


@pytest.fixture(scope="module")
def single_phantom():
    model, sp = phantom_model()
    result = fit(model, sp.train, sp.val, **PHANTOM_FIT)
    return SimpleNamespace(model=model, result=result)


def max_rel_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max() / b[k].double().abs().max().clamp(min=1e-12))
               for k in a)


# ----------------------------------------------------------------------------- world 1 (no torchrun)

def test_init_from_env_without_torchrun_is_a_single_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    d = distributed.init_from_env()
    assert (d.rank, d.world_size, d.local_rank, d.backend) == (0, 1, 0, None)
    assert d.is_main and not d.is_distributed
    assert not torch.distributed.is_initialized()
    assert d == distributed.current()
    assert d.shard(5) == range(5)
    assert d.all_gather_object({"a": 1}) == [{"a": 1}]
    assert d.broadcast_object("x") == "x"
    assert d.all_reduce_sum(2) == 2.0 and isinstance(d.all_reduce_sum(2), float)
    arr = np.arange(3.0)
    assert d.all_reduce_sum(arr) is arr
    assert d.device("cpu") == torch.device("cpu")
    d.barrier()
    d.close()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.init_from_env() == distributed.Dist()


@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (7, 2), (8, 3), (100, 7)])
def test_shard_gives_every_index_to_exactly_one_rank_in_order(n, world):
    shards = [distributed.Dist(rank=r, world_size=world).shard(n) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


@pytest.mark.parametrize("env,match", [
    ({"RANK": "0"}, "RANK is set but WORLD_SIZE is not"),
    ({"LOCAL_RANK": "1"}, "LOCAL_RANK is set but WORLD_SIZE is not"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set but RANK is not"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK=2 is not below"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR and MASTER_PORT are not set"),
    ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "1", "RANK": "1"}, "RANK=1 but WORLD_SIZE=1"),
])
def test_init_from_env_names_the_inconsistent_variable(monkeypatch, env, match):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=match) as info:
        distributed.init_from_env("cpu")
    assert "torchrun" in str(info.value)
    assert not torch.distributed.is_initialized()


def test_init_from_env_refuses_nccl_without_cuda_and_unknown_backends(monkeypatch):
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="backend must be one of"):
        distributed.init_from_env(backend="mpi")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="nccl needs a CUDA device|backend='nccl' needs a CUDA device"):
            distributed.init_from_env("cpu", backend="nccl")
    else:
        with pytest.raises(ValueError, match="backend='nccl' needs CUDA GPUs"):
            distributed.init_from_env(backend="nccl")
    assert not torch.distributed.is_initialized()


def test_fit_under_torchrun_env_without_a_process_group_refuses(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    train, val = exact_data(41)
    with pytest.raises(ValueError, match="init_from_env"):
        fit(TinyNet(36, 3), train, val, epochs=1, device="cpu", progress=False)


@pytest.mark.parametrize("n,batch_size,world", [(41, 8, 2), (45, 8, 2), (32, 8, 2), (10, 12, 4), (13, 6, 3)])
def test_rank_batches_split_the_single_process_batches(n, batch_size, world):
    seed = 987654321
    ds = ArrayDataset(torch.zeros(n, 1, 2, 2), torch.zeros(n, 1))
    single = [b["index"].tolist() for b in _make_loader(ds, batch_size=batch_size, shuffle=True, seed=seed,
                                                        num_workers=0, pin_memory=False)]
    assert [i for b in single for i in b] == _shuffle_order(n, seed)
    plans = [_rank_batches(n, batch_size, seed, r, world) for r in range(world)]
    assert all(len(p[0]) == len(single) for p in plans)
    for step, global_batch in enumerate(single):
        parts = [p[0][step] for p in plans]
        weights = [p[1][step] for p in plans]
        real = [part for part, (_, n_real) in zip(parts, weights) if n_real]
        assert [i for part in real for i in part] == global_batch  # in order, each once
        assert all(len(part) == n_real or n_real == 0 for part, (_, n_real) in zip(parts, weights))
        assert all(len(part) >= 1 for part in parts)  # every rank steps
        assert np.mean([scale for scale, _ in weights]) == pytest.approx(1.0)
        if len(global_batch) == batch_size:
            assert all(len(part) == batch_size // world for part in parts)
            assert all(scale == 1.0 for scale, _ in weights)


# ----------------------------------------------------------------------------- two gloo ranks

@needs_gloo
def test_ranks_see_the_group_and_its_collectives(ranks):
    for r, rep in enumerate(ranks.reports):
        assert rep["dist"] == {"rank": r, "world_size": 2, "local_rank": r, "backend": "gloo", "is_main": r == 0,
                               "current": repr(distributed.Dist(rank=r, world_size=2, local_rank=r,
                                                                backend="gloo"))}
        assert rep["gathered"] == [{"rank": 0}, {"rank": 1}]
        assert rep["broadcast"] == "from 0"
        assert rep["sum_float"] == 2.0 and rep["sum_array"] == [2.0, 1.0]
    assert ranks.reports[0]["shard"] + ranks.reports[1]["shard"] == list(range(7))


@needs_gloo
@pytest.mark.parametrize("case", sorted(EXACT_CASES))
def test_two_ranks_with_half_batches_equal_one_process(ranks, single_exact, case):
    model, objective, result = single_exact[case]
    ref = exact_state(model, objective)
    states = [torch.load(ranks.out / f"exact_{case}_rank{r}.pt") for r in range(WORLD)]
    for r in range(WORLD):
        assert states[r].keys() == ref.keys()
        assert all(torch.equal(states[r][k], states[0][k]) for k in ref), "the ranks' weights differ"
    diff = max_rel_diff(states[0], ref)
    assert diff < EXACT_RTOL, f"{case}: max relative weight difference {diff:.3g}"
    rep = ranks.reports[0][f"exact_{case}"]
    assert rep == ranks.reports[1][f"exact_{case}"]
    assert (rep["world_size"], rep["backend"]) == (2, "gloo") and (result.world_size, result.backend) == (1, None)
    for ours, theirs in zip(rep["history"], result.history):
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
        assert ours["steps"] == theirs["steps"] and ours["lr"] == pytest.approx(theirs["lr"], rel=1e-12)


@needs_gloo
def test_a_token_model_with_a_collate_function_is_exact_on_two_ranks(ranks):
    model, result = text_run()
    ref = {k: v.detach() for k, v in model.state_dict().items()}
    states = [torch.load(ranks.out / f"text_rank{r}.pt") for r in range(WORLD)]
    assert all(torch.equal(states[1][k], states[0][k]) for k in ref), "the ranks' weights differ"
    diff = max_rel_diff(states[0], ref)
    assert diff < EXACT_RTOL, f"max relative weight difference {diff:.3g}"
    rep = ranks.reports[0]["text"]
    assert rep == ranks.reports[1]["text"] and rep["criterion"] == result.criterion == "-val_loss"
    for ours, theirs in zip(rep["history"], result.history):
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    assert rep["best_epoch"] == result.best_epoch


def test_the_exactness_tolerance_catches_another_trajectory(single_exact):
    """Negative control: one process with the half batch (what unaveraged ranks would follow)."""
    model, objective, _ = single_exact["short1"]
    half = exact_run("short1", batch_size=4)
    assert max_rel_diff(exact_state(half[0], half[1]), exact_state(model, objective)) > 100 * EXACT_RTOL


@needs_gloo
def test_fit_refuses_what_it_cannot_shard(ranks):
    for rep in ranks.reports:
        assert "batch_size=7 is not divisible by the world size 2" in rep["errors"]["batch_size"]
        assert "DataLoader" in rep["errors"]["dataloader"] and "pass its Dataset" in rep["errors"]["dataloader"]


@needs_gloo
def test_distributed_resume_reproduces_the_uninterrupted_run(ranks):
    assert ranks.reports[0]["interrupted_files"] == ["best.pt", "history.json", "last.pt"]
    uninterrupted = torch.load(ranks.out / "exact_short1_rank0.pt")
    for r in range(WORLD):
        resumed = torch.load(ranks.out / f"resumed_rank{r}.pt")
        assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in ranks.reports[0]["resumed"]["history"]]
    full = [{k: v for k, v in h.items() if k != "seconds"} for h in ranks.reports[0]["exact_short1"]["history"]]
    assert strip == full


@needs_gloo
def test_phantom_resnet_two_ranks_match_one_process_within_batchnorm_noise(ranks, single_phantom):
    from chexradi.nn import load_model, read_checkpoint

    rep0, rep1 = ranks.reports[0]["phantom"], ranks.reports[1]["phantom"]
    assert rep0 == rep1  # same FitResult on both ranks
    single = single_phantom.result
    ours = [h["val_mean_auc"] for h in rep0["history"]]
    theirs = [h["val_mean_auc"] for h in single.history]
    assert all(abs(a - b) <= AUC_TOL for a, b in zip(ours, theirs)), (ours, theirs)
    assert abs(rep0["best_score"] - single.best_score) <= AUC_TOL
    assert rep0["best_score"] >= LEARNED and single.best_score >= LEARNED
    assert [h["steps"] for h in rep0["history"]] == [h["steps"] for h in single.history] == [6, 12]
    # final weights: the same on both ranks, and those of best.pt
    w0, w1 = (torch.load(ranks.out / f"phantom_rank{r}.pt") for r in range(WORLD))
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    out = ranks.out / "phantom"
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "history.json", "last.pt"]
    ckpt = read_checkpoint(out / "best.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    fresh, _ = load_model(out / "best.pt")
    assert all(torch.equal(v, w0[k]) for k, v in fresh.state_dict().items())
    fit_settings = ckpt["meta"]["fit"]
    assert (fit_settings["world_size"], fit_settings["backend"]) == (2, "gloo")
    assert fit_settings["find_unused_parameters"] is False
    history = json.loads((out / "history.json").read_text())
    assert history["fit"]["world_size"] == 2 and history["history"] == rep0["history"]
    # a finished run returns its result without training, on every rank
    for rep in ranks.reports:
        assert rep["phantom_again"] == rep0


if __name__ == "__main__":  # a torchrun rank (see the `ranks` fixture)
    _worker(Path(sys.argv[1]))
