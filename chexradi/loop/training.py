"""Loop stage 1 (and evaluation): train one round, then score the evaluation split with each head.

Round 0 trains the image model alone (:class:`chexradi.train.BCEObjective`) unless a
static guidance source (one that needs no masks) is configured, and so does every round of a
control run (``guidance={"enabled": False}``). A guided round wraps every split in each active
source's dataset (``GuidanceSource.wrap``: its items carry the
source's batch keys) and trains a :class:`chexradi.guidance.GuidedObjective`: the image
head plus each source's terms and heads, starting from round ``k-1``'s weights
(``warm_start``) or from scratch. Weights are always read back from the previous round's
checkpoint on disk, so a resumed run and an uninterrupted one start every round from the
same bytes. Evaluation scores every head of the objective by name (``"image"``: the model
alone, what is deployed).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

logger = logging.getLogger("chexradi.loop")

__all__ = ["RoundModel", "train_round", "evaluate"]


@dataclass
class RoundModel:
    """A trained round: the model (best epoch, eval mode), its objective (None without guidance), fit's result,
    and each split's dataset as the objective reads it (the sources' wrapping; empty without guidance)."""

    model: nn.Module
    objective: Optional[nn.Module]
    fit: Any
    guided: dict[str, Any] = field(default_factory=dict)
    #: How the guided datasets' items reach a batch (:func:`chexradi.guidance.batch_collate`); None — torch's default.
    collate_fn: Any = None


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


def train_round(k: int, splits: Mapping[str, Any], *, model_name: str, class_names: Sequence[str],
                sources: Sequence[tuple[Any, Any]], train: Mapping[str, Any], guidance: Mapping[str, Any],
                round_dir: Path, prev_best: Optional[Path], seed: int, progress: Optional[bool],
                meta: Mapping[str, Any]) -> RoundModel:
    """Train round ``k`` into ``round_dir/fit`` (resuming there); see the module docstring.

    ``sources`` are the round's active guidance sources with what each prepared
    (``(source, Prepared)``, in the configured order); none trains on images alone. Under
    ``torchrun`` :func:`chexradi.train.fit` trains data-parallel.
    """
    from ..guidance import GuidedObjective, batch_collate
    from ..nn import create_model, load_model
    from ..train import class_pos_weight, fit

    round_seed = seed + 1000 * k
    if k > 0 and train["warm_start"] and prev_best is not None:
        model, _ = load_model(prev_best)
        model.train()
    else:
        _seeded(round_seed)
        model = create_model(model_name, num_classes=len(class_names), in_chans=1, class_names=list(class_names),
                             weights=train["weights"], output_stride=train["output_stride"])
    objective = None
    collate_fn = None
    guided: dict[str, Any] = {}
    data = {"train": splits["train"], "val": splits["val"]}
    if sources:
        for s, ds in splits.items():
            for src, prepared in sources:
                ds = src.wrap(ds, prepared, s)
            guided[s] = ds
        pos_weight = class_pos_weight(train["class_weights"], splits["train"], len(class_names))
        _seeded(round_seed + 1)
        modules = {src.name: src.module(prepared, num_features=model.num_features, num_classes=len(class_names),
                                        guidance=guidance, pos_weight=pos_weight) for src, prepared in sources}
        heads = {h for m in modules.values() for h in getattr(m, "heads", ())}
        select = guidance["select_on"] if guidance["select_on"] in heads else "image"  # e.g. round 0 of a text source
        objective = GuidedObjective(modules, len(class_names), pos_weight=pos_weight, select_on=select)
        data = {"train": guided["train"], "val": guided["val"]}
        collate_fn = batch_collate(sources)
    result = fit(model, data["train"], data["val"], epochs=train["epochs"], batch_size=train["batch_size"],
                 lr=train["lr"], weight_decay=train["weight_decay"],
                 class_weights=None if objective is not None else train["class_weights"],
                 patience=train["patience"], device=train["device"], amp=train["amp"], seed=round_seed,
                 out=round_dir / "fit", resume=True, num_workers=train["num_workers"], progress=progress,
                 objective=objective, meta={**dict(meta), "round": k}, collate_fn=collate_fn)
    return RoundModel(model=model, objective=objective, fit=result, guided=guided, collate_fn=collate_fn)


def evaluate(rm: RoundModel, ds: Any, split: str, class_names: Sequence[str], *, train: Mapping[str, Any],
             progress: Optional[bool], dist: Any = None) -> dict[str, Any]:
    """AUC per class and mean on ``ds`` for every head: the image head (the model alone) and each head the
    round's objective adds (``"fused"`` in a radiomics-guided round), which reads the split as the sources
    wrapped it.

    Returns ``{"split", "targets", "probs": {head: (N, K)}, "auc": {head: {class: AUC or None}},
    "mean_auc": {head: mean or None}}``. With ``dist`` (a :class:`chexradi.train.distributed.Dist` of several
    ranks) each rank scores its shard of ``ds`` and the probabilities are gathered, so every rank returns the
    same numbers.
    """
    from torch.utils.data import Subset

    from ..guidance import IMAGE_HEAD
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
    out: dict[str, Any] = {"split": split, "targets": p_img.targets, "probs": {IMAGE_HEAD: p_img.probs},
                           "auc": {}, "mean_auc": {}}
    out["auc"][IMAGE_HEAD], out["mean_auc"][IMAGE_HEAD] = report(p_img.probs, p_img.targets)
    obj = rm.objective
    for head in (obj.heads if obj is not None else (IMAGE_HEAD,)):
        if head == IMAGE_HEAD:
            continue
        p = predict(rm.model, rm.guided[split], objective=obj, head=head, collate_fn=rm.collate_fn, **kw)
        assert p.targets is not None
        out["probs"][head] = p.probs
        out["auc"][head], out["mean_auc"][head] = report(p.probs, p.targets)
    return out
