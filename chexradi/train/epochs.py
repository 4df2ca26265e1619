"""One epoch of :func:`~chexradi.train.fit`: training, validation, and the progress ``last.pt`` resumes from."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import CLASSIFIER_KEYS, _batch_len, _to_device
from .distributed import Dist, _DataParallel
from .evaluators import Evaluation, Evaluator, checked_evaluation
from .runtime import _autocast, _progress, _rng_states, _set_mode, _set_rng_states


@dataclass
class _Parts:
    """What every epoch of one :func:`~chexradi.train.fit` call works with."""

    model: nn.Module
    objective: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    show: bool
    dist: Dist = field(default_factory=Dist)
    parallel: Optional[_DataParallel] = None
    #: The item keys the objective's loss reads (its ``required_keys``; a classifier's by default).
    required: tuple[str, ...] = CLASSIFIER_KEYS

    @property
    def pin(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class _Progress:
    """Where a run stands after its last finished epoch (0: none yet); saved in ``last.pt``."""

    epoch: int = 0
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    stopped_early: bool = False

    def close_epoch(self, epoch: int, score: float, *, min_delta: float, patience: Optional[int],
                    at_end: bool) -> bool:
        """Record that ``epoch`` scored ``score``: the best so far, early stopping, the end. True if it improved."""
        improved = score > self.best_score + min_delta
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        self.stopped_early = not improved and patience is not None and self.bad_epochs >= patience and not at_end
        self.finished = self.stopped_early or at_end
        self.epoch = epoch
        return improved


def _restore(parts: _Parts, ts: Mapping[str, Any]) -> _Progress:
    """Put the weights, optimizer, scheduler, scaler, objective and RNG states of ``last.pt`` back."""
    parts.model.load_state_dict(ts["state_dict"])
    parts.optimizer.load_state_dict(ts["optimizer"])
    parts.scheduler.load_state_dict(ts["scheduler"])
    if ts.get("scaler") and parts.scaler.is_enabled():
        parts.scaler.load_state_dict(ts["scaler"])
    if ts.get("objective") is not None and callable(getattr(parts.objective, "load_state_dict", None)):
        parts.objective.load_state_dict(ts["objective"])
    _set_rng_states(ts.get("rng", {}))
    return _Progress(epoch=int(ts["epoch"]), global_step=int(ts["global_step"]),
                     best_score=float(ts["best_score"]), best_epoch=int(ts["best_epoch"]),
                     bad_epochs=int(ts["bad_epochs"]), history=list(ts["history"]),
                     finished=bool(ts["finished"]), stopped_early=bool(ts["stopped_early"]))


def _train_state(parts: _Parts, run: _Progress) -> dict[str, Any]:
    """``last.pt``'s ``train_state``: what :func:`_restore` needs to continue after ``run.epoch``."""
    objective = parts.objective
    return {
        "epoch": run.epoch, "global_step": run.global_step, "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict(),
        "objective": objective.state_dict() if callable(getattr(objective, "state_dict", None)) else None,
        "best_score": run.best_score, "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
        "history": run.history, "finished": run.finished, "stopped_early": run.stopped_early,
        "rng": _rng_states(),
    }


def _train_epoch(parts: _Parts, loader: DataLoader, run: _Progress, *, epoch: int, total_steps: int,
                 desc: str) -> float:
    """One pass over ``loader`` (or up to ``total_steps``), counting ``run.global_step``; the mean loss."""
    model, objective, optimizer, scaler, dev = parts.model, parts.objective, parts.optimizer, parts.scaler, parts.device
    _set_mode(model, objective, True)
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    seen = 0
    bar = _progress(loader, parts.show, desc)
    for raw in bar:
        batch = _to_device(raw, "train", dev, required=parts.required, non_blocking=parts.pin)
        with _autocast(dev, parts.amp_dtype):
            loss, _ = objective.loss(model, batch)
        if loss.dim() != 0:
            raise ValueError(f"objective.loss must return a scalar loss, got shape {tuple(loss.shape)}")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss is {float(loss)} at epoch {epoch}, step "
                                     f"{run.global_step + 1}; lower lr or check the inputs for NaN/inf")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        parts.scheduler.step()
        run.global_step += 1
        n = _batch_len(batch, parts.required)
        loss_sum += loss.detach().double() * n
        seen += n
        if parts.show and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", refresh=False)
        if run.global_step >= total_steps:
            break
    if seen == 0:
        raise ValueError("train gave no batches; pass a non-empty training set")
    return float(loss_sum) / seen


def _train_epoch_distributed(parts: _Parts, loader: DataLoader, weights: list[tuple[float, int]],
                             run: _Progress, *, epoch: int, total_steps: int, desc: str) -> float:
    """:func:`_train_epoch` for one rank of a DDP run: ``loader`` gives this rank's part of each global batch.

    ``weights`` holds ``(scale, n_real)`` per batch (see :func:`~chexradi.train.data._rank_batches`).
    Every rank sees the same steps, the same non-finite check and the same mean
    loss (summed over the ranks' real items).
    """
    model, objective, optimizer, scaler, dev = parts.model, parts.objective, parts.optimizer, parts.scaler, parts.device
    par, d = parts.parallel, parts.dist
    assert par is not None
    _set_mode(model, objective, True)
    par.ddp.train(True)
    totals = torch.zeros(2, dtype=torch.float64)
    steps = 0
    for raw, (scale, n_real) in zip(_progress(loader, parts.show, desc), weights):
        batch = _to_device(raw, "train", dev, required=parts.required, non_blocking=parts.pin)
        with _autocast(dev, parts.amp_dtype):
            loss, _ = par.loss(batch)
        if loss.dim() != 0:
            raise ValueError(f"objective.loss must return a scalar loss, got shape {tuple(loss.shape)}")
        value = loss.detach().double()
        finite = bool(torch.isfinite(value))
        stat = d.all_reduce_sum(np.array([float(value) * n_real if finite else 0.0, n_real, 0.0 if finite else 1.0]))
        if stat[2] > 0:
            raise FloatingPointError(f"the training loss is not finite on {int(stat[2])} rank(s) (here: "
                                     f"{float(value)}) at epoch {epoch}, step {run.global_step + 1}; lower lr "
                                     f"or check the inputs for NaN/inf")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss if scale == 1.0 else loss * scale).backward()
        par.after_backward()
        scaler.step(optimizer)
        scaler.update()
        parts.scheduler.step()
        par.after_step()
        run.global_step += 1
        steps += 1
        totals += torch.from_numpy(stat[:2])
        if run.global_step >= total_steps:
            break
    if steps == 0 or totals[1] == 0:
        raise ValueError("train gave no batches; pass a non-empty training set")
    return float(totals[0] / totals[1])


def _validate(parts: _Parts, loader: DataLoader, evaluator: Evaluator, *, desc: str) -> Evaluation:
    """One pass over the validation ``loader`` in eval mode: ``evaluator.step`` per batch, then ``finish``.

    In a DDP run ``loader`` holds this rank's contiguous shard of the validation set;
    the pieces of all ranks are gathered in rank order (that is, item order), so
    every rank computes the same evaluation.
    """
    model, objective, dev, d = parts.model, parts.objective, parts.device, parts.dist
    _set_mode(model, objective, False)
    required = tuple(evaluator.required_keys)
    pieces: list[Any] = []
    with torch.no_grad():
        for raw in _progress(loader, parts.show, desc):
            batch = _to_device(raw, "val", dev, required=required, non_blocking=parts.pin)
            with _autocast(dev, parts.amp_dtype):
                pieces.append(evaluator.step(model, objective, batch))
    if d.is_distributed:
        pieces = [p for shard in d.all_gather_object(pieces) for p in shard]
    return checked_evaluation(evaluator.finish(pieces), evaluator)
