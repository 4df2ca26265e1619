"""The run behind :func:`~chexradi.train.fit`: state, resume, the epochs, the record of each, the best weights.

``_Trainer`` holds one run's parts (model, objective, evaluator, optimizer,
schedule, scaler, process group) and moves through it in the order the seams
fall: ``start`` (fresh or from ``last.pt``), ``epoch``
(train, validate, record, checkpoint) until the run finishes, then
``finish`` (the best weights, eval mode).
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from .checkpoints import _best_weights, _json_float, _load_resume, _normalization, _write_epoch
from .data import CLASSIFIER_KEYS, _make_loader, _rank_batches
from .distributed import Dist, _broadcast_buffers, _DataParallel
from .epochs import _Parts, _Progress, _restore, _train_epoch, _train_epoch_distributed, _train_state, _validate
from .evaluators import Evaluator
from .options import FitOptions
from .runtime import _adamw, _cosine_schedule, _derive_seeds, _objective_parameters, _seed_all

logger = logging.getLogger("chexradi.train")


class _Trainer:
    """One :func:`~chexradi.train.fit` run; see the module docstring."""

    def __init__(self, model: nn.Module, train: Any, val: Any, *, options: FitOptions, objective: Any,
                 evaluator: Evaluator, collate_fn: Optional[Callable[[list[Any]], Any]], device: torch.device,
                 amp_dtype: Optional[torch.dtype], use_amp: bool, steps: int, settings: dict[str, Any],
                 meta: Mapping[str, Any], out_dir: Optional[Path], show: bool, dist: Dist,
                 on_epoch_end: Optional[Callable[[dict[str, Any]], Any]]) -> None:
        self.train, self.val, self.o = train, val, options
        self.evaluator, self.collate_fn = evaluator, collate_fn
        self.total_steps, self.settings, self.out_dir = steps, settings, out_dir
        self.meta = {"class_names": list(getattr(model, "class_names", []) or []), "normalization": _normalization(),
                     **dict(meta), "fit": settings}
        self.on_epoch_end = on_epoch_end
        self.d = dist
        self.info = logger.info if dist.is_main else logger.debug
        model.to(device)
        if isinstance(objective, nn.Module):
            objective.to(device)
        optimizer = _adamw(list(model.parameters()) + _objective_parameters(objective), lr=options.lr,
                           weight_decay=options.weight_decay)
        settings["optimizer"] = "AdamW (fused)" if optimizer.defaults.get("fused") else "AdamW"
        self.parts = _Parts(model=model, objective=objective, optimizer=optimizer,
                            scheduler=_cosine_schedule(optimizer, steps),
                            scaler=torch.amp.GradScaler("cuda", enabled=use_amp and device.type == "cuda"),
                            device=device, amp_dtype=amp_dtype, show=show, dist=dist,
                            required=tuple(getattr(objective, "required_keys", None) or CLASSIFIER_KEYS))
        self.run = _Progress()
        self.best_state: Optional[dict[str, Tensor]] = None
        self.best_objective: Any = None
        self.last_path = None if out_dir is None else out_dir / "last.pt"
        self.best_path = None if out_dir is None else out_dir / "best.pt"
        self.criterion = "unknown"
        self._warned = False

    # -- start

    def start(self) -> None:
        """Seed the run and, when ``out`` holds ``last.pt`` and ``resume`` is on, continue from it."""
        _seed_all(self.o.seed)
        last = self.last_path
        has_last = last is not None and bool(self.d.broadcast_object(last.is_file()))
        if last is not None and self.o.resume and has_last:
            self.run = _restore(self.parts, _load_resume(last, self.parts.model, self.settings))
            r = self.run
            self.info("resuming %s after epoch %d (best epoch %d, score %.4f)%s", last, r.epoch, r.best_epoch,
                      r.best_score, "; the run had finished" if r.finished else "")
        elif has_last:
            self.info("resume=False: starting over in %s (existing checkpoints are overwritten)", self.out_dir)
        if self.run.history:
            self.criterion = self.run.history[-1]["criterion"]

    @property
    def done(self) -> bool:
        return self.run.finished or self.run.epoch >= self.o.epochs

    # -- one epoch

    def epoch(self) -> None:
        """Train one epoch, validate, record, checkpoint; tell ``on_epoch_end``."""
        o, run, d, parts = self.o, self.run, self.d, self.parts
        epoch = run.epoch + 1
        t0 = time.perf_counter()
        global_seed, order_seed = _derive_seeds(o.seed, epoch)
        train_loss = self._train(epoch, global_seed, order_seed)
        last_lr = float(parts.optimizer.param_groups[0]["lr"])
        val_data = self.val if not d.is_distributed else Subset(self.val, list(d.shard(len(self.val))))
        val_loader = _make_loader(val_data, batch_size=o.batch_size, shuffle=False, seed=order_seed,
                                  num_workers=o.num_workers, pin_memory=parts.pin, collate_fn=self.collate_fn)
        ev = _validate(parts, val_loader, self.evaluator, desc=f"val {epoch}")
        if ev.warning and not self._warned and d.is_main:
            logger.warning("%s", ev.warning)
            self._warned = True
        self.criterion = ev.criterion
        improved = run.close_epoch(epoch, ev.score, min_delta=o.min_delta, patience=o.patience,
                                   at_end=epoch >= o.epochs or run.global_step >= self.total_steps)
        record = {"epoch": epoch, "train_loss": _json_float(train_loss), **ev.metrics,
                  "score": _json_float(ev.score), "criterion": ev.criterion, "improved": bool(improved),
                  "lr": last_lr, "steps": run.global_step, "seconds": round(time.perf_counter() - t0, 3)}
        record = d.broadcast_object(record)  # the same history on every rank (rank 0's seconds)
        run.history.append(record)
        self.info("epoch %d/%d: train loss %.4f, %s, lr %.3g, %.1f s%s", epoch, o.epochs, train_loss, ev.summary,
                  last_lr, record["seconds"], " (best)" if improved else "")
        self._checkpoint(improved)
        if run.stopped_early:
            self.info("stopping early: no improvement of the %s in %d epoch(s); best epoch %d (%.4f)",
                      ev.criterion, o.patience, run.best_epoch, run.best_score)
        if self.on_epoch_end is not None:
            self.on_epoch_end(copy.deepcopy(record))

    def _train(self, epoch: int, global_seed: int, order_seed: int) -> float:
        """The training half of an epoch (one process, or this rank's share of a DDP run); its mean loss."""
        o, parts, d = self.o, self.parts, self.d
        desc = f"epoch {epoch}/{o.epochs}"
        if not d.is_distributed:
            _seed_all(global_seed)
            loader = _make_loader(self.train, batch_size=o.batch_size, shuffle=True, seed=order_seed,
                                  num_workers=o.num_workers, pin_memory=parts.pin, collate_fn=self.collate_fn)
            return _train_epoch(parts, loader, self.run, epoch=epoch, total_steps=self.total_steps, desc=desc)
        _seed_all((global_seed + d.rank) % 2 ** 63)
        batches, weights = _rank_batches(len(self.train), o.batch_size, order_seed, d.rank, d.world_size)
        loader = _make_loader(self.train, batch_size=o.batch_size, shuffle=False,
                              seed=(order_seed + d.rank) % 2 ** 63, num_workers=o.num_workers, pin_memory=parts.pin,
                              batch_sampler=batches, collate_fn=self.collate_fn)
        if parts.parallel is None:
            parts.parallel = _DataParallel(parts.model, parts.objective, parts.device, d,
                                           _objective_parameters(parts.objective))
        loss = _train_epoch_distributed(parts, loader, weights, self.run, epoch=epoch,
                                        total_steps=self.total_steps, desc=desc)
        _broadcast_buffers([parts.model, parts.objective], d)  # every rank holds rank 0's buffers
        self.settings["find_unused_parameters"] = parts.parallel.find_unused
        return loss

    def _checkpoint(self, improved: bool) -> None:
        """``best.pt`` / ``last.pt`` / ``history.json`` (rank 0), or the best weights in memory without ``out``."""
        parts = self.parts
        if self.out_dir is not None:
            if self.d.is_main:
                _write_epoch(self.out_dir, parts.model, self.meta, self.settings, _train_state(parts, self.run),
                             improved=improved, criterion=self.criterion)
            self.d.barrier()  # no rank reads a checkpoint rank 0 is writing
        elif improved:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in parts.model.state_dict().items()}
            self.best_objective = _objective_state(parts.objective)

    # -- the end

    def finish(self) -> None:
        """Load the best epoch's weights (and objective state) and put the model in eval mode."""
        parts, run = self.parts, self.run
        if self.best_path is not None and self.last_path is not None and run.best_epoch > 0:
            self.best_state, self.best_objective = _best_weights(self.best_path, self.last_path, run.best_epoch)
        if self.best_state is not None:
            parts.model.load_state_dict(self.best_state)
            if self.best_objective is not None:
                parts.objective.load_state_dict(self.best_objective)
        parts.model.eval()
        parts.parallel = None  # drop DDP (its hooks) before returning the plain model


def _objective_state(objective: Any) -> Any:
    """A detached copy of the objective's state (None when it has none), to restore with the best weights."""
    saves = callable(getattr(objective, "state_dict", None))
    if not saves or not callable(getattr(objective, "load_state_dict", None)):
        return None
    return copy.deepcopy(objective.state_dict())
