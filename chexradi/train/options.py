"""The arguments of :func:`~chexradi.train.fit`, checked before any work: ``FitOptions``, the settings record."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..nn.registry import model_name
from .data import _check_collate_fn, _check_data, _length
from .distributed import Dist, current
from .evaluators import check_evaluator
from .objectives import _class_weights_setting
from .runtime import _check_float, _check_int, _check_progress


@dataclass(frozen=True)
class FitOptions:
    """:func:`~chexradi.train.fit`'s numeric and switch arguments, validated (see its docstring)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    class_weights: Any  # None, "balanced" or a list of K floats
    patience: Optional[int]
    min_delta: float
    seed: int
    num_workers: int
    max_steps: Optional[int]
    resume: bool
    progress: Optional[bool]

    @classmethod
    def check(cls, *, epochs: Any, batch_size: Any, lr: Any, weight_decay: Any, class_weights: Any, patience: Any,
              min_delta: Any, seed: Any, num_workers: Any, max_steps: Any, resume: Any, progress: Any,
              num_classes: Optional[int]) -> "FitOptions":
        """The options, or a ValueError naming the first bad argument and what it accepts."""
        if patience is not None:
            patience = _check_int(patience, "patience", 1, " (or None to never stop early)")
        if max_steps is not None:
            max_steps = _check_int(max_steps, "max_steps", 1, " (or None for epochs * steps per epoch)")
        if not isinstance(resume, bool):
            raise ValueError(f"resume must be True or False, got {resume!r}")
        _check_progress(progress)
        return cls(epochs=_check_int(epochs, "epochs", 1), batch_size=_check_int(batch_size, "batch_size", 1),
                   lr=_check_float(lr, "lr", positive=True),
                   weight_decay=_check_float(weight_decay, "weight_decay", positive=False),
                   class_weights=_class_weights_setting(class_weights, num_classes), patience=patience,
                   min_delta=_check_float(min_delta, "min_delta", positive=False), seed=_check_int(seed, "seed", 0),
                   num_workers=_check_int(num_workers, "num_workers", 0), max_steps=max_steps, resume=resume,
                   progress=progress)


def check_parts(model: Any, train: Any, val: Any, *, objective: Any, evaluator: Any, collate_fn: Any,
                options: FitOptions, out_dir: Optional[Path], meta: Any, on_epoch_end: Any) -> None:
    """The checks of :func:`~chexradi.train.fit` on what is not a number: model, data, objective, evaluator, out."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (e.g. chexradi.nn.create_model(...)), "
                         f"got {type(model).__name__}")
    _check_data(train, "train")
    _check_data(val, "val")
    if meta is not None and not isinstance(meta, Mapping):
        raise ValueError(f"meta must be a dict of extra facts for the checkpoints, got {type(meta).__name__}")
    if meta is not None and "fit" in meta:
        raise ValueError("meta must not have a 'fit' key: fit records its settings there")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise ValueError(f"on_epoch_end must be callable or None, got {on_epoch_end!r}")
    _check_collate_fn(collate_fn)
    if evaluator is not None:
        check_evaluator(evaluator)
    if objective is not None:
        if not (callable(getattr(objective, "loss", None)) and callable(getattr(objective, "logits", None))):
            raise ValueError(f"objective must have loss(model, batch) -> (loss, logits) and "
                             f"logits(model, batch) -> logits methods; got {type(objective).__name__}")
        if options.class_weights is not None:
            raise ValueError("class_weights configures the default BCEObjective; with your own objective, "
                             "give the weights to it (see chexradi.train.balanced_pos_weight)")
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"out={str(out_dir)!r} exists and is not a directory; pass a directory path")
        if model_name(model) is None:
            raise ValueError("fit(out=...) saves checkpoints with chexradi.nn.save_checkpoint, which needs a "
                             "chexradi model (model.config with its registered name); build the model with "
                             "chexradi.nn.create_model, or register yours with chexradi.nn.register_model")


def distributed_setup(train: Any, val: Any, batch_size: int) -> Dist:
    """The process group :func:`fit` runs in, checked to suit the data (one process: a trivial :class:`Dist`)."""
    d = current()
    if not d.is_distributed:
        world = os.environ.get("WORLD_SIZE", "1").strip() or "1"
        if world.isdigit() and int(world) > 1:
            raise ValueError(f"WORLD_SIZE={world} (this process was started by torchrun) but no torch.distributed "
                             f"process group is initialised; call chexradi.train.distributed.init_from_env() "
                             f"before fit, or run a single process without torchrun")
        return d
    w = d.world_size
    for name, data in (("train", train), ("val", val)):
        if isinstance(data, DataLoader):
            raise ValueError(f"{name} is a DataLoader, which fit cannot shard across the {w} processes of a "
                             f"distributed run; pass its Dataset (fit batches and shards it)")
        if isinstance(data, torch.utils.data.IterableDataset) or _length(data) is None:
            raise ValueError(f"{name} has no length (an iterable dataset), which fit cannot shard across the "
                             f"{w} processes of a distributed run; pass a map-style Dataset")
    if batch_size % w:
        raise ValueError(f"batch_size={batch_size} is not divisible by the world size {w}: in a distributed run "
                         f"each of the {w} processes takes batch_size / {w} images of every batch; use a "
                         f"batch_size that is a multiple of {w}")
    return d


def total_steps(train: Any, *, batch_size: int, epochs: int, max_steps: Optional[int]) -> int:
    """Optimizer steps in the whole run, what the cosine schedule spans."""
    train_len: Optional[int]  # optimizer steps per epoch
    if isinstance(train, DataLoader):
        try:
            train_len = len(train)
        except TypeError:
            train_len = None
    else:
        n_train = _length(train)
        train_len = None if n_train is None else -(-n_train // batch_size)
    if train_len == 0:
        raise ValueError("train gives no batches (an empty DataLoader); pass a non-empty training set")
    if train_len is None and max_steps is None:
        raise ValueError("train has no length (an iterable dataset); pass max_steps to fix the schedule")
    return (epochs * train_len if max_steps is None else
            max_steps if train_len is None else min(max_steps, epochs * train_len))


def settings_record(o: FitOptions, *, device: torch.device, amp: bool, amp_dtype: Optional[torch.dtype],
                    objective: Any, evaluator: Any, collate_fn: Optional[Callable[..., Any]], steps: int,
                    train: Any, val: Any, d: Dist) -> dict[str, Any]:
    """What ``history.json`` and the checkpoints record as ``fit``: the options and what they resolved to."""
    settings: dict[str, Any] = {
        "epochs": o.epochs, "batch_size": o.batch_size, "lr": o.lr, "weight_decay": o.weight_decay,
        "class_weights": o.class_weights, "patience": o.patience, "min_delta": o.min_delta, "device": str(device),
        "amp": amp, "amp_dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "seed": o.seed, "resume": o.resume, "num_workers": o.num_workers, "progress": o.progress,
        "max_steps": o.max_steps, "objective": type(objective).__qualname__,
        "evaluator": type(evaluator).__qualname__,
        "collate_fn": None if collate_fn is None else getattr(collate_fn, "__qualname__", type(collate_fn).__name__),
        "optimizer": "AdamW", "schedule": "cosine per step to 0, no warm-up", "total_steps": steps,
        "n_train": _length(train), "n_val": _length(val), "world_size": d.world_size, "backend": d.backend,
    }
    if d.is_distributed:
        settings["find_unused_parameters"] = None  # decided by the first step
    return settings
