"""Training: :func:`fit`, from argument checks through the epochs to the best weights."""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from .._progress import progress_on
from ..nn.device import resolve_device
from .checkpoints import _best_weights, _json_float, _load_resume, _normalization, _write_epoch
from .data import _check_data, _length, _make_loader, _peek, _rank_batches
from .distributed import Dist, _broadcast_buffers, _DataParallel, current
from .epochs import _evaluate, _Parts, _Progress, _restore, _train_epoch, _train_epoch_distributed, _train_state
from .objectives import BCEObjective, Objective, _class_weights_setting, class_pos_weight
from .runtime import (_adamw, _check_float, _check_int, _cosine_schedule, _check_progress, _cudnn_deterministic,
                      _derive_seeds, _objective_parameters, _resolve_amp, _seed_all)

logger = logging.getLogger("chexradi.train")

PathLike = Union[str, Path]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    history:
        One dict per epoch (JSON-able; NaN as None): ``epoch`` (1-based),
        ``train_loss`` (the objective's loss, mean over the epoch's images),
        ``val_loss`` (unweighted masked BCE of the objective's logits, mean over
        the known validation targets), ``val_auc`` (per class), ``val_mean_auc``,
        ``score`` and ``criterion`` (``"val_mean_auc"`` or ``"-val_loss"``),
        ``improved``, ``lr`` (learning rate of the epoch's last step), ``steps``
        (optimizer steps so far), ``seconds``.
    best_epoch, best_score, criterion:
        The selected epoch (1-based), its score and what the score is.
    stopped_early:
        True when training stopped for lack of improvement (``patience``).
    best_path, last_path:
        ``out/best.pt`` and ``out/last.pt``, or None without ``out``.
    device, amp:
        Where and how this call ran (in a DDP run: this rank's device).
    world_size, backend:
        Processes that trained (1 without torch.distributed) and the process
        group's backend (None for one process).
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    criterion: str
    stopped_early: bool
    best_path: Optional[Path]
    last_path: Optional[Path]
    device: str
    amp: bool
    world_size: int = 1
    backend: Optional[str] = None


def fit(
    model: nn.Module,
    train: Any,
    val: Any,
    *,
    epochs: int = 10,
    batch_size: int = 16,
    lr: float = 1e-4,
    weight_decay: float = 1e-4,
    class_weights: Union[None, str, Sequence[float], Tensor, np.ndarray] = None,
    patience: Optional[int] = 3,
    min_delta: float = 0.0,
    device: Union[None, str, torch.device] = None,
    amp: Optional[bool] = None,
    seed: int = 0,
    out: Optional[PathLike] = None,
    resume: bool = True,
    num_workers: int = 0,
    progress: Optional[bool] = None,
    objective: Optional[Objective] = None,
    meta: Optional[Mapping[str, Any]] = None,
    max_steps: Optional[int] = None,
    on_epoch_end: Optional[Callable[[dict[str, Any]], Any]] = None,
) -> FitResult:
    """Train ``model`` on ``train``, select the epoch with the best validation score.

    Parameters
    ----------
    model:
        A :class:`~chexradi.nn.Classifier` (any module mapping ``(B, C, H, W)`` to
        ``(B, K)`` logits works without ``out``). It is moved to ``device``, trained
        in place, and left holding the best weights, in eval mode.
    train, val:
        torch Datasets or DataLoaders. Items are dicts with ``"image"`` ``(C, H, W)``
        and ``"target"`` ``(K,)`` (NaN = unknown; extra keys reach the objective) or
        ``(image, target)`` tuples. A Dataset is batched here (training order
        shuffled by a generator seeded from ``(seed, epoch)``; ``drop_last=False``;
        pinned memory on CUDA); a DataLoader is used as given (``batch_size`` and
        ``num_workers`` do not apply; with its own ``generator`` a resumed run no
        longer repeats the shuffle order).
    epochs:
        Maximum number of epochs.
    batch_size, num_workers:
        For Datasets: batch size and DataLoader worker processes.
    lr, weight_decay:
        AdamW learning rate (the peak of the schedule) and decoupled weight decay
        (applied to every parameter). The learning rate follows a cosine from
        ``lr`` to 0 over the total number of optimizer steps, stepped per batch,
        without warm-up.
    class_weights:
        For the default objective: None, ``"balanced"`` (``pos_weight_k = neg_k /
        pos_k`` from the training targets, clipped to :data:`BALANCED_CLIP` =
        [1, 100]; see :func:`balanced_pos_weight`) or K positive numbers.
    patience, min_delta:
        Stop after ``patience`` epochs whose score does not exceed the best by more
        than ``min_delta``; ``patience=None`` never stops early.
    device:
        None (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    amp:
        Mixed precision. None: on for CUDA (float16 autocast with a gradient
        scaler), off otherwise. True on CPU autocasts to bfloat16 (no scaler).
    seed:
        Seeds Python, NumPy and torch at the start and, derived with the epoch
        number, at every epoch start (see :mod:`chexradi.train`).
    out:
        Run directory for ``last.pt``, ``best.pt`` and ``history.json``; None keeps
        the best weights in memory only. Checkpoints are written with
        :func:`chexradi.nn.save_checkpoint` (atomic); their ``meta`` holds
        ``class_names``, ``normalization``, your ``meta`` and ``fit`` (these
        settings), and ``versions`` the package versions.
    resume:
        Continue from ``out/last.pt`` when it exists (a finished run returns its
        result without training). The model config and the settings that change
        the trajectory (epochs, batch_size, lr, weight_decay, class_weights, seed,
        max_steps, the objective's class) must match. False starts over and
        overwrites.
    progress:
        Progress bars: None shows them when stderr is a terminal.
    objective:
        What to minimise (see :class:`Objective`); default :class:`BCEObjective`.
    meta:
        Extra JSON-able facts for the checkpoints (image size, data set, round).
    max_steps:
        Stop after this many optimizer steps in all (the schedule then spans
        ``min(max_steps, epochs * steps_per_epoch)`` steps; required when ``train``
        has no length). The epoch it falls in is validated and checkpointed.
    on_epoch_end:
        Called with each epoch's history dict after its checkpoints are written
        (logging, plotting; an exception it raises stops the run, which can
        resume from ``last.pt``). In a DDP run it is called on every rank with the
        same record (check :attr:`Dist.is_main <chexradi.train.distributed.Dist.is_main>`
        to act once).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Bad arguments, items without ``"image"``/``"target"``, shapes that do not
        fit the model, CUDA asked for but unavailable, or an ``out`` holding a run
        of another model or other settings (the message names the file). In a DDP
        run also: ``batch_size`` not divisible by the world size, a DataLoader or
        an iterable dataset (they cannot be sharded), ``WORLD_SIZE > 1`` in the
        environment without an initialised process group.
    FileNotFoundError
        A resumed run whose ``best.pt`` is missing.
    FloatingPointError
        The training loss became NaN/inf (lower ``lr``, check the inputs).

    Notes
    -----
    Model selection: the score of an epoch is the validation mean AUC (the mean
    over the classes whose AUC is defined, on sigmoid outputs); when no class has
    both labels in ``val`` it is ``-val_loss``, and a warning says so. The
    validation loss is the unweighted masked BCE of the objective's logits, so it
    compares across objectives and class weights (the training loss is the
    objective's own). ``best.pt`` carries ``epoch``, ``score`` and ``criterion``;
    ``last.pt`` carries ``train_state`` (epoch, global step, optimizer, scheduler,
    scaler and objective states, best score and epoch, epochs without
    improvement, history, RNG states, finished / stopped_early).

    Distributed: when the default :mod:`torch.distributed` process group is
    initialised with ``W > 1`` processes (``torchrun``, then
    :func:`chexradi.train.distributed.init_from_env`; ``fit`` never initialises
    one), every process calls ``fit`` with the same arguments and the training is
    data-parallel with :class:`~torch.nn.parallel.DistributedDataParallel` around
    the model and the objective (an ``nn.Module`` objective's parameters are
    averaged by DDP, other objective parameters by hand). The global batch stays
    ``batch_size`` (so the number of steps and the learning-rate schedule are
    those of one process) and must be divisible by ``W``: each epoch's global
    order is the permutation one process would use, and rank ``r`` takes the
    ``r``-th contiguous ``batch_size / W`` items of every global batch. A short
    last batch of ``L`` items is split as evenly as possible, each rank's loss
    scaled by ``n_r W / L`` so that the averaged gradient is that of the mean
    over the ``L`` items; when ``L < W`` a rank without an item repeats one with
    weight 0 (every rank must step). For a loss that is a mean over items (BCE
    with every target known) and a model without batch-norm the result equals
    the single-process run up to floating-point rounding; batch-norm statistics
    are computed per rank over ``batch_size / W`` images (its running statistics
    are rank 0's, copied to every rank after each epoch), a masked BCE weighs
    the ranks' known targets slightly differently and a batch-level loss such as
    NT-Xent sees only the rank's part, so results then differ within the
    run-to-run noise. Rank ``r`` seeds the Python/NumPy/torch generators with the
    epoch seed plus ``r`` (dropout and augmentation differ by rank; rank 0 draws
    like one process) and its loader workers likewise. Validation is sharded in
    contiguous blocks and the logits gathered, so every rank computes the same
    loss, AUC, early-stopping and best-epoch decisions; the history records are
    rank 0's (its ``seconds``). Rank 0 alone writes ``out`` (other ranks wait at a
    barrier after every epoch), so ``out`` must be on a file system every rank
    sees: a resumed run reads ``last.pt`` on every rank, and at the end every rank
    loads ``best.pt``. The saved weights are the plain model's (no ``module.``
    prefix); the returned :class:`FitResult` and the final weights are the same
    on every rank. The settings record ``world_size``, ``backend`` and whether DDP
    needed ``find_unused_parameters`` (decided on the first step).
    """
    # -- validate everything before any work
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module (e.g. chexradi.nn.create_model(...)), "
                         f"got {type(model).__name__}")
    _check_data(train, "train")
    _check_data(val, "val")
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    lr = _check_float(lr, "lr", positive=True)
    weight_decay = _check_float(weight_decay, "weight_decay", positive=False)
    num_classes = getattr(model, "num_classes", None)
    cw_setting = _class_weights_setting(class_weights, num_classes)
    if patience is not None:
        patience = _check_int(patience, "patience", 1, " (or None to never stop early)")
    min_delta = _check_float(min_delta, "min_delta", positive=False)
    seed = _check_int(seed, "seed", 0)
    num_workers = _check_int(num_workers, "num_workers", 0)
    if max_steps is not None:
        max_steps = _check_int(max_steps, "max_steps", 1, " (or None for epochs * steps per epoch)")
    out_dir = None if out is None else Path(out)
    _check_fit_options(model, objective, cw_setting, out_dir, resume=resume, progress=progress, meta=meta,
                       on_epoch_end=on_epoch_end)
    d = _distributed_setup(train, val, batch_size)
    dev = resolve_device(device) if not d.is_distributed else d.device(device)
    use_amp, amp_dtype = _resolve_amp(amp, dev)
    _peek(train, "train", model, need_target=True)
    _peek(val, "val", model, need_target=True)
    pin = dev.type == "cuda"
    total_steps = _total_steps(train, batch_size=batch_size, epochs=epochs, max_steps=max_steps)
    if objective is None:
        objective = _default_objective(cw_setting, train, num_classes)

    settings: dict[str, Any] = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "class_weights": cw_setting, "patience": patience, "min_delta": min_delta, "device": str(dev),
        "amp": use_amp, "amp_dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "seed": seed, "resume": resume, "num_workers": num_workers, "progress": progress,
        "max_steps": max_steps, "objective": type(objective).__qualname__,
        "optimizer": "AdamW", "schedule": "cosine per step to 0, no warm-up", "total_steps": total_steps,
        "n_train": _length(train), "n_val": _length(val), "world_size": d.world_size, "backend": d.backend,
    }
    if d.is_distributed:
        settings["find_unused_parameters"] = None  # decided by the first step
    full_meta: dict[str, Any] = {"class_names": list(getattr(model, "class_names", []) or []),
                                 "normalization": _normalization(), **dict(meta or {}), "fit": settings}

    # -- state
    model.to(dev)
    if isinstance(objective, nn.Module):
        objective.to(dev)
    optimizer = _adamw(list(model.parameters()) + _objective_parameters(objective), lr=lr,
                       weight_decay=weight_decay)
    settings["optimizer"] = "AdamW (fused)" if optimizer.defaults.get("fused") else "AdamW"
    parts = _Parts(model=model, objective=objective, optimizer=optimizer,
                   scheduler=_cosine_schedule(optimizer, total_steps),
                   scaler=torch.amp.GradScaler("cuda", enabled=use_amp and dev.type == "cuda"),
                   device=dev, amp_dtype=amp_dtype, show=progress_on(progress) and d.is_main, dist=d)
    run = _Progress()
    best_state: Optional[dict[str, Tensor]] = None
    best_objective: Any = None
    last_path = best_path = None
    if out_dir is not None:
        last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    _seed_all(seed)
    info = logger.info if d.is_main else logger.debug
    has_last = last_path is not None and bool(d.broadcast_object(last_path.is_file()))
    if last_path is not None and resume and has_last:
        run = _restore(parts, _load_resume(last_path, model, settings))
        info("resuming %s after epoch %d (best epoch %d, score %.4f)%s", last_path, run.epoch,
             run.best_epoch, run.best_score, "; the run had finished" if run.finished else "")
    elif has_last:
        info("resume=False: starting over in %s (existing checkpoints are overwritten)", out_dir)

    # -- the epochs
    criterion = run.history[-1]["criterion"] if run.history else "val_mean_auc"
    warned_nan = False
    with _cudnn_deterministic(dev):
        while not run.finished and run.epoch < epochs:
            epoch = run.epoch + 1
            t0 = time.perf_counter()
            global_seed, order_seed = _derive_seeds(seed, epoch)
            if not d.is_distributed:
                _seed_all(global_seed)
                loader = _make_loader(train, batch_size=batch_size, shuffle=True, seed=order_seed,
                                      num_workers=num_workers, pin_memory=pin)
                train_loss = _train_epoch(parts, loader, run, epoch=epoch, total_steps=total_steps,
                                          desc=f"epoch {epoch}/{epochs}")
                val_data = val
            else:
                train_loss = _distributed_epoch(parts, train, run, seed=(global_seed, order_seed),
                                                batch_size=batch_size, num_workers=num_workers, pin=pin,
                                                total_steps=total_steps, desc=f"epoch {epoch}/{epochs}")
                settings["find_unused_parameters"] = parts.parallel.find_unused if parts.parallel else None
                val_data = Subset(val, list(d.shard(len(val))))
            last_lr = float(optimizer.param_groups[0]["lr"])
            val_loader = _make_loader(val_data, batch_size=batch_size, shuffle=False, seed=order_seed,
                                      num_workers=num_workers, pin_memory=pin)
            val_loss, aucs, mean = _evaluate(parts, val_loader, desc=f"val {epoch}")
            if math.isfinite(mean):
                score, criterion = mean, "val_mean_auc"
            else:
                score, criterion = -val_loss, "-val_loss"
                if not warned_nan and d.is_main:
                    logger.warning("validation mean AUC is undefined (every class has a single label in "
                                   "val); selecting the model on -val_loss instead")
                    warned_nan = True
            improved = run.close_epoch(epoch, score, min_delta=min_delta, patience=patience,
                                       at_end=epoch >= epochs or run.global_step >= total_steps)
            record = {
                "epoch": epoch, "train_loss": _json_float(train_loss), "val_loss": _json_float(val_loss),
                "val_auc": [_json_float(a) for a in aucs], "val_mean_auc": _json_float(mean),
                "score": _json_float(score), "criterion": criterion, "improved": bool(improved),
                "lr": last_lr, "steps": run.global_step, "seconds": round(time.perf_counter() - t0, 3),
            }
            record = d.broadcast_object(record)  # the same history on every rank (rank 0's seconds)
            run.history.append(record)
            info("epoch %d/%d: train loss %.4f, val loss %.4f, val mean AUC %s, lr %.3g, %.1f s%s",
                 epoch, epochs, train_loss, val_loss,
                 "n/a" if not math.isfinite(mean) else f"{mean:.4f}", last_lr, record["seconds"],
                 " (best)" if improved else "")
            if out_dir is not None:
                if d.is_main:
                    _write_epoch(out_dir, model, full_meta, settings, _train_state(parts, run), improved=improved,
                                 criterion=criterion)
                d.barrier()  # no rank reads a checkpoint rank 0 is writing
            elif improved:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                best_objective = _objective_state(objective)
            if run.stopped_early:
                info("stopping early: no improvement of the %s in %d epoch(s); best epoch %d (%.4f)",
                     criterion, patience, run.best_epoch, run.best_score)
            if on_epoch_end is not None:
                on_epoch_end(copy.deepcopy(record))

    # -- the best weights, in eval mode
    if best_path is not None and last_path is not None and run.best_epoch > 0:
        best_state, best_objective = _best_weights(best_path, last_path, run.best_epoch)
    if best_state is not None:
        model.load_state_dict(best_state)
        if best_objective is not None:
            objective.load_state_dict(best_objective)
    model.eval()
    parts.parallel = None  # drop DDP (its hooks) before returning the plain model
    return FitResult(history=run.history, best_epoch=run.best_epoch, best_score=run.best_score,
                     criterion=criterion, stopped_early=run.stopped_early, best_path=best_path,
                     last_path=last_path, device=str(dev), amp=use_amp, world_size=d.world_size,
                     backend=d.backend)


def _distributed_setup(train: Any, val: Any, batch_size: int) -> Dist:
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


def _distributed_epoch(parts: _Parts, train: Any, run: _Progress, *, seed: tuple[int, int], batch_size: int,
                       num_workers: int, pin: bool, total_steps: int, desc: str) -> float:
    """One training epoch of this rank of a DDP run; afterwards every rank holds rank 0's buffers."""
    d = parts.dist
    global_seed, order_seed = seed
    _seed_all((global_seed + d.rank) % 2 ** 63)
    batches, weights = _rank_batches(len(train), batch_size, order_seed, d.rank, d.world_size)
    loader = _make_loader(train, batch_size=batch_size, shuffle=False, seed=(order_seed + d.rank) % 2 ** 63,
                          num_workers=num_workers, pin_memory=pin, batch_sampler=batches)
    if parts.parallel is None:
        parts.parallel = _DataParallel(parts.model, parts.objective, parts.device, d,
                                       _objective_parameters(parts.objective))
    loss = _train_epoch_distributed(parts, loader, weights, run, epoch=run.epoch + 1, total_steps=total_steps,
                                    desc=desc)
    _broadcast_buffers([parts.model, parts.objective], d)
    return loss


def _check_fit_options(model: nn.Module, objective: Any, cw_setting: Any, out_dir: Optional[Path], *,
                       resume: Any, progress: Any, meta: Any, on_epoch_end: Any) -> None:
    """The argument checks of :func:`fit` that only accept or refuse."""
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    _check_progress(progress)
    if meta is not None and not isinstance(meta, Mapping):
        raise ValueError(f"meta must be a dict of extra facts for the checkpoints, got {type(meta).__name__}")
    if meta is not None and "fit" in meta:
        raise ValueError("meta must not have a 'fit' key: fit records its settings there")
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise ValueError(f"on_epoch_end must be callable or None, got {on_epoch_end!r}")
    if objective is not None:
        if not (callable(getattr(objective, "loss", None)) and callable(getattr(objective, "logits", None))):
            raise ValueError(f"objective must have loss(model, batch) -> (loss, logits) and "
                             f"logits(model, batch) -> logits methods; got {type(objective).__name__}")
        if cw_setting is not None:
            raise ValueError("class_weights configures the default BCEObjective; with your own objective, "
                             "give the weights to it (see chexradi.train.balanced_pos_weight)")
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"out={str(out_dir)!r} exists and is not a directory; pass a directory path")
        if not isinstance(getattr(model, "config", None), dict):
            raise ValueError("fit(out=...) saves checkpoints with chexradi.nn.save_checkpoint, which needs "
                             "a chexradi Classifier (model.config); build the model with "
                             "chexradi.nn.create_model")


def _total_steps(train: Any, *, batch_size: int, epochs: int, max_steps: Optional[int]) -> int:
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


def _default_objective(cw_setting: Any, train: Any, num_classes: Optional[int]) -> BCEObjective:
    """:class:`BCEObjective` weighted as ``class_weights`` says."""
    return BCEObjective(class_pos_weight(cw_setting, train, num_classes))


def _objective_state(objective: Any) -> Any:
    """A detached copy of the objective's state (None when it has none), to restore with the best weights."""
    saves = callable(getattr(objective, "state_dict", None))
    if not saves or not callable(getattr(objective, "load_state_dict", None)):
        return None
    return copy.deepcopy(objective.state_dict())
