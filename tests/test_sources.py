"""Guidance sources behind one protocol: a toy source written here plugs into the loop with no change outside
chexradi.guidance; sources combine; the loop names no source and imports no radiomics module."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import chexradi
from chexradi.guidance import GuidanceDataset, Prepared, get_source, list_sources, register_source
from chexradi.train.objectives import masked_bce_with_logits
from conftest import REPO

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SPEC = "phantom:n_train=24,n_val=12,n_test=12,size=64"
KW = dict(model="resnet18", train={"epochs": 1, "batch_size": 12}, progress=False)


class _ConstantHead(nn.Module):
    """A head of its own over the image embedding and a vector: logits = W [e; v]."""

    heads = ("const",)

    def __init__(self, num_features: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features + dim, num_classes)

    def head_logits(self, head: str, features: Any, batch: Mapping[str, Any]) -> Tensor:
        emb = features.emb
        return self.linear(torch.cat([emb, batch["const"].to(emb.dtype)], dim=1))

    def terms(self, features: Any, batch: Mapping[str, Any], target: Tensor) -> tuple[list, dict, dict]:
        logits = self.head_logits("const", features, batch)
        bce = masked_bce_with_logits(logits, target)
        return [bce], {"const": logits}, {"bce_const": bce}


class ConstantSource:
    """A toy guidance source: the same vector for every image (``value`` repeated ``dim`` times), static, no
    masks, one head of its own. Everything the loop needs, nothing chexradi knows about."""

    name = "constant"
    needs_masks = False
    static = True
    defaults = {"value": 1.0, "dim": 4}

    def __init__(self) -> None:
        self.started = 0
        self.closed = 0

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        if not isinstance(settings["dim"], int) or settings["dim"] < 1:
            raise ValueError(f"constant['dim'] must be a positive integer, got {settings['dim']!r}")

    def setup(self, ctx: Any) -> None:
        (ctx.run_dir / "constant.txt").write_text("set up once\n")

    def start(self, settings: Mapping[str, Any]) -> None:
        self.started += 1

    def close(self) -> None:
        self.closed += 1

    def prepare(self, ctx: Any) -> Prepared:
        v = {s: np.full((len(ds), ctx.settings["dim"]), float(ctx.settings["value"])) for s, ds in ctx.parts.items()}
        return Prepared(data={"vectors": v}, record={"dim": ctx.settings["dim"], "round": ctx.k}, seconds=0.01)

    def wrap(self, dataset: Any, prepared: Prepared, split: str) -> Any:
        return GuidanceDataset(dataset, prepared.data["vectors"][split], key="const")

    def module(self, prepared: Prepared, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> nn.Module:
        return _ConstantHead(num_features, prepared.data["vectors"]["train"].shape[1], num_classes)


class _Ragged(torch.utils.data.Dataset):
    """Items of ``base`` with ``ragged``: a vector of ``1 + index % 3`` ones (lengths differ within a batch)."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        return {**self.base[i], "ragged": torch.ones(1 + i % 3)}


def pad_ragged(values: list) -> Tensor:
    out = torch.zeros(len(values), max(len(v) for v in values))
    for i, v in enumerate(values):
        out[i, :len(v)] = v
    return out


class _LengthHead(nn.Module):
    heads = ("ragged",)

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(num_features + 1, num_classes)
        self.lengths: list = []

    def head_logits(self, head: str, features: Any, batch: Mapping[str, Any]) -> Tensor:
        emb = features.emb
        length = batch["ragged"].sum(1, keepdim=True)  # the item's own length, padding excluded
        self.lengths.append(length.flatten().tolist())
        return self.linear(torch.cat([emb, length.to(emb.dtype)], dim=1))

    def terms(self, features: Any, batch: Mapping[str, Any], target: Tensor) -> tuple[list, dict, dict]:
        logits = self.head_logits("ragged", features, batch)
        return [masked_bce_with_logits(logits, target)], {"ragged": logits}, {}


class RaggedSource(ConstantSource):
    """A static source whose items carry vectors of different lengths, batched by its own collate function."""

    name = "ragged"
    defaults: dict = {}
    collates = True
    modules: list = []

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        pass

    def setup(self, ctx: Any) -> None:
        pass

    def prepare(self, ctx: Any) -> Prepared:
        return Prepared(data={}, record={"round": ctx.k})

    def wrap(self, dataset: Any, prepared: Prepared, split: str) -> Any:
        return _Ragged(dataset)

    def collate(self, prepared: Prepared) -> dict:
        return {"ragged": pad_ragged} if self.collates else {}

    def module(self, prepared: Prepared, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> nn.Module:
        m = _LengthHead(num_features, num_classes)
        RaggedSource.modules.append(m)
        return m


@pytest.fixture(scope="module", autouse=True)
def constant_source():
    register_source("constant", ConstantSource, replace=True)
    register_source("ragged", RaggedSource, replace=True)
    yield


@pytest.mark.slow
def test_a_source_written_outside_chexradi_plugs_in(tmp_path):
    assert "constant" in list_sources() and get_source("constant").static
    h = chexradi.iterate(SPEC, rounds=2, out=tmp_path / "c", guidance={"sources": ["constant"], "select_on": "image"},
                         sources={"constant": {"value": 0.5, "dim": 3}}, **KW)
    # static: it guides round 0 already, with a head of its own
    assert [r["guided"] for r in h] == [True, True] and [r["heads"] for r in h] == [["image", "const"]] * 2
    assert [r["sources"] for r in h] == [{"constant": {"dim": 3, "round": 0}}, {"constant": {"dim": 3, "round": 1}}]
    assert all(0.0 <= h.mean_auc(k, "const") <= 1.0 for k in range(2))
    assert (tmp_path / "c" / "constant.txt").is_file() and not (tmp_path / "c" / "images").exists()
    assert "AUC const" in h.table() and "constant s" in h.table()
    rows = (tmp_path / "c" / "round_1" / "predictions.csv").read_text().splitlines()[0]
    assert "p_const:Nodule" in rows and "p_image:Nodule" in rows
    settings = h.settings
    assert settings["constant"] == {"value": 0.5, "dim": 3} and "radiomics" not in settings
    with pytest.raises(ValueError, match="constant\\['dim'\\] must be a positive integer"):
        chexradi.iterate(SPEC, rounds=1, out=tmp_path / "bad", guidance={"sources": ["constant"]},
                         sources={"constant": {"dim": 0}}, **KW)
    with pytest.raises(ValueError, match="does not list"):
        chexradi.iterate(SPEC, rounds=1, out=tmp_path / "bad2", sources={"constant": {}}, **KW)


@pytest.mark.slow
def test_sources_combine(tmp_path):
    h = chexradi.iterate(SPEC, rounds=2, out=tmp_path / "both", radiomics={"jobs": 1},
                         guidance={"sources": ["radiomics", "constant"]}, **KW)
    r0, r1 = h
    assert list(r0["sources"]) == ["constant"]  # radiomics needs masks: it guides from round 1
    assert list(r1["sources"]) == ["radiomics", "constant"] and r1["heads"] == ["image", "fused", "const"]
    assert r1["sources"]["radiomics"]["cases"] > 0
    assert set(h.sources) == {"radiomics", "constant"} and h.heads == ["image", "const", "fused"]
    fig = chexradi.plot_history(h, tmp_path / "both.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "mean AUC" and "seconds per stage" in titles
    with pytest.raises(ValueError, match="unknown source"):
        chexradi.iterate(SPEC, rounds=1, out=tmp_path / "x", guidance={"sources": ["textbook"]}, **KW)


def test_a_source_collates_its_own_keys(tmp_path):
    """Variable-length item values reach the batch through the source's collate function, in training and in the
    evaluation of its head; without it torch's default collation cannot stack them."""
    RaggedSource.modules.clear()
    h = chexradi.iterate(SPEC, rounds=1, out=tmp_path / "r", guidance={"sources": ["ragged", "constant"],
                         "select_on": "image"}, **KW)
    assert h[0]["heads"] == ["image", "ragged", "const"] and 0.0 <= h.mean_auc(0, "ragged") <= 1.0
    seen = sorted({x for m in RaggedSource.modules for batch in m.lengths for x in batch})
    assert seen == [1.0, 2.0, 3.0]  # each item's own length: the padding added nothing
    RaggedSource.collates = False
    try:
        with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
            chexradi.iterate(SPEC, rounds=1, out=tmp_path / "r2", guidance={"sources": ["ragged"],
                             "select_on": "image"}, **KW)
    finally:
        RaggedSource.collates = True


def test_two_sources_collating_one_key_are_refused():
    from chexradi.guidance import batch_collate

    a, b = RaggedSource(), RaggedSource()
    with pytest.raises(ValueError, match="both collate the item key 'ragged'"):
        batch_collate([(a, None), (b, None)])
    assert batch_collate([(ConstantSource(), None)]) is None
    batch = batch_collate([(a, None)])([{"x": torch.zeros(2), "ragged": torch.ones(1)},
                                        {"x": torch.ones(2), "ragged": torch.ones(3)}])
    assert batch["ragged"].tolist() == [[1, 0, 0], [1, 1, 1]] and batch["x"].shape == (2, 2)
    with pytest.raises(ValueError, match=r"item key 'x' is in the batch's first item but not in item\(s\) \[1\]"):
        batch_collate([(a, None)])([{"x": torch.zeros(2), "ragged": torch.ones(1)}, {"ragged": torch.ones(3)}])


def test_round0_of_a_static_source_is_not_shared(tmp_path):
    ctl = tmp_path / "ctl"
    chexradi.iterate(SPEC, rounds=1, out=ctl, guidance={"enabled": False}, **KW)
    with pytest.raises(ValueError, match="guide round 0 too"):
        chexradi.iterate(SPEC, rounds=2, out=tmp_path / "c", guidance={"sources": ["constant"], "select_on": "image"},
                         round0_from=ctl, **KW)


@pytest.mark.slow
def test_the_loop_names_no_source_and_imports_no_radiomics_module():
    loop = REPO / "chexradi" / "loop"
    for f in sorted(loop.glob("*.py")):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                assert "radiomics" not in mod, f"{f.name} imports {mod}"
            if isinstance(node, ast.Import):
                assert not any("radiomics" in a.name for a in node.names), f.name
    code = ("import sys, chexradi.loop, chexradi.loop.run, chexradi.loop.training, chexradi.loop.regions; "
            "sys.exit(any(m.startswith('chexradi.radiomics') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
