"""Loop stage 1 (and evaluation): train one round, then score the evaluation split with each head.

Round 0 trains the image model alone (:class:`chexradi.train.BCEObjective`), and so
does every round of a control run (``guidance={"enabled": False}``). A guided round
``k >= 1`` standardises the guidance vectors with training-split statistics
(:class:`chexradi.guidance.Standardizer`), wraps every split in a
:class:`chexradi.guidance.GuidanceDataset` and trains with
:class:`chexradi.guidance.RadiomicsGuidance` (image head + fused head + alignment),
starting from round ``k-1``'s weights (``warm_start``) or from scratch. Weights are
always read back from the previous round's checkpoint on disk, so a resumed run and an
uninterrupted one start every round from the same bytes.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .._io import atomic_write

logger = logging.getLogger("chexradi.loop")

__all__ = ["RoundModel", "train_round", "evaluate"]


@dataclass
class RoundModel:
    """A trained round: the model (best epoch, eval mode), its objective (None in round 0) and fit's result."""

    model: nn.Module
    objective: Optional[nn.Module]
    fit: Any
    guided: dict[str, Any]  # split -> GuidanceDataset (empty in round 0)
    nonfinite: int          # non-finite radiomics values replaced (all splits)


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def train_round(k: int, splits: Mapping[str, Any], *, model_name: str, class_names: Sequence[str],
                vectors: Optional[Mapping[str, np.ndarray]], train: Mapping[str, Any], guidance: Mapping[str, Any],
                round_dir: Path, prev_best: Optional[Path], seed: int, progress: Optional[bool],
                meta: Mapping[str, Any], write: bool = True) -> RoundModel:
    """Train round ``k`` into ``round_dir/fit`` (resuming there); see the module docstring.

    ``vectors`` (split -> raw ``(N, D)`` radiomics) makes the round guided; None trains on images alone.
    Under ``torchrun`` :func:`chexradi.train.fit` trains data-parallel; ``write=False`` (the ranks but the
    first) leaves ``standardizer.json`` to rank 0.
    """
    from ..guidance import GuidanceDataset, RadiomicsGuidance, Standardizer
    from ..nn import create_model, load_model
    from ..train import fit
    from ..train import class_pos_weight

    round_seed = seed + 1000 * k
    if k > 0 and train["warm_start"] and prev_best is not None:
        model, _ = load_model(prev_best)
        model.train()
    else:
        _seeded(round_seed)
        model = create_model(model_name, num_classes=len(class_names), in_chans=1, class_names=list(class_names),
                             weights=train["weights"], output_stride=train["output_stride"])
    objective = None
    guided: dict[str, Any] = {}
    nonfinite = 0
    data = {"train": splits["train"], "val": splits["val"]}
    if vectors is not None:
        std = Standardizer().fit(vectors["train"])
        for s, ds in splits.items():
            guided[s] = GuidanceDataset(ds, vectors[s], standardizer=std)
            nonfinite += std.n_nonfinite  # counted by the transform the dataset just made
        if write:
            with atomic_write(round_dir / "standardizer.json") as fh:
                json.dump(std.state_dict(), fh)
        pos_weight = class_pos_weight(train["class_weights"], splits["train"], len(class_names))
        _seeded(round_seed + 1)
        objective = RadiomicsGuidance(model.num_features, std.dim, len(class_names),
                                      hidden=guidance["hidden"], proj_dim=guidance["proj_dim"],
                                      alignment=guidance["alignment"], align_weight=guidance["align_weight"],
                                      temperature=guidance["temperature"], fuse=guidance["fuse"],
                                      pos_weight=pos_weight, dropout=guidance["dropout"],
                                      mode=guidance["select_on"])
        data = {"train": guided["train"], "val": guided["val"]}
    result = fit(model, data["train"], data["val"], epochs=train["epochs"], batch_size=train["batch_size"],
                 lr=train["lr"], weight_decay=train["weight_decay"],
                 class_weights=None if objective is not None else train["class_weights"],
                 patience=train["patience"], device=train["device"], amp=train["amp"], seed=round_seed,
                 out=round_dir / "fit", resume=True, num_workers=train["num_workers"], progress=progress,
                 objective=objective, meta={**dict(meta), "round": k})
    return RoundModel(model=model, objective=objective, fit=result, guided=guided, nonfinite=nonfinite)


def evaluate(rm: RoundModel, ds: Any, split: str, class_names: Sequence[str], *, train: Mapping[str, Any],
             progress: Optional[bool], dist: Any = None) -> dict[str, Any]:
    """AUC per class and mean on ``ds`` for the image head and, in guided rounds, the fused head.

    With ``dist`` (a :class:`chexradi.train.distributed.Dist` of several ranks) each rank scores its shard
    of ``ds`` and the probabilities are gathered, so every rank returns the same numbers.
    """
    from torch.utils.data import Subset

    from ..metrics import auc_per_class
    from ..train import predict as _predict

    shard = dist.shard(len(ds)) if dist is not None and dist.is_distributed else None

    def predict(model: nn.Module, data: Any, **kw: Any) -> Any:
        if shard is None:
            return _predict(model, data, **kw)
        p = _predict(model, Subset(data, shard), **kw)
        parts = dist.all_gather_object((p.probs, p.targets))
        p.probs = np.concatenate([a for a, _ in parts])
        p.targets = np.concatenate([b for _, b in parts])
        return p

    def report(probs: np.ndarray, targets: np.ndarray) -> tuple[dict[str, Optional[float]], Optional[float]]:
        aucs = auc_per_class(targets, probs)
        per = {c: (None if not math.isfinite(a) else float(a)) for c, a in zip(class_names, aucs)}
        finite = [a for a in aucs if math.isfinite(a)]
        return per, (float(np.mean(finite)) if finite else None)

    kw = dict(batch_size=train["batch_size"], device=train["device"], amp=train["amp"], progress=progress)
    p_img = predict(rm.model, ds, **kw)
    assert p_img.targets is not None
    out: dict[str, Any] = {"split": split, "targets": p_img.targets, "probs_image": p_img.probs,
                           "probs_fused": None}
    out["auc_image"], out["mean_auc_image"] = report(p_img.probs, p_img.targets)
    out["auc_fused"], out["mean_auc_fused"] = None, None
    obj = rm.objective
    if obj is not None and getattr(obj, "fuse", False):
        old = obj.mode
        obj.mode = "fused"
        try:
            p_f = predict(rm.model, rm.guided[split], objective=obj, **kw)
        finally:
            obj.mode = old
        assert p_f.targets is not None
        out["probs_fused"] = p_f.probs
        out["auc_fused"], out["mean_auc_fused"] = report(p_f.probs, p_f.targets)
    return out
