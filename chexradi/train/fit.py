"""Training: :func:`fit`, from argument checks through the epochs to the best weights."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from .._progress import progress_on
from ..nn.device import resolve_device
from .data import CLASSIFIER_KEYS, _peek
from .evaluators import ClassifierEvaluator, Evaluator
from .objectives import BCEObjective, Objective, class_pos_weight
from .options import FitOptions, check_parts, distributed_setup, settings_record, total_steps
from .runtime import _cudnn_deterministic, _resolve_amp
from .trainer import _Trainer

PathLike = Union[str, Path]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    history:
        One dict per epoch (JSON-able; NaN as None): ``epoch`` (1-based),
        ``train_loss`` (the objective's loss, mean over the epoch's items), the
        evaluator's metrics (the default :class:`~chexradi.train.evaluators.ClassifierEvaluator`:
        ``val_loss``, unweighted masked BCE of the objective's logits over the
        known validation targets, ``val_auc`` per class and ``val_mean_auc``),
        ``score`` and ``criterion`` (``"val_mean_auc"`` or ``"-val_loss"`` for a
        classifier; the evaluator's name for its score otherwise),
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
    evaluator: Optional[Evaluator] = None,
    collate_fn: Optional[Callable[[list[Any]], Any]] = None,
) -> FitResult:
    """Train ``model`` on ``train``, select the epoch with the best validation score.

    Parameters
    ----------
    model:
        A :class:`~chexradi.nn.Classifier` or any model of the registry
        (:func:`chexradi.nn.register_model`: a text encoder, a report generator);
        without ``out`` any module the objective can call. It is moved to
        ``device``, trained in place, and left holding the best weights, in eval
        mode.
    train, val:
        torch Datasets or DataLoaders. For a classifier, items are dicts with
        ``"image"`` ``(C, H, W)`` and ``"target"`` ``(K,)`` (NaN = unknown; extra
        keys reach the objective) or ``(image, target)`` tuples; other models'
        items carry the keys the objective's and the evaluator's ``required_keys``
        name (report tokens, lengths). A Dataset is batched here (training order
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
        pos_k`` from the training targets, clipped to ``BALANCED_CLIP`` =
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
        max_steps, the objective's and the evaluator's classes) must match. False starts over and
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
    evaluator:
        What to compute on ``val`` and what selects the best epoch (see
        :mod:`chexradi.train.evaluators`): None is
        :class:`~chexradi.train.evaluators.ClassifierEvaluator` (mean AUC; over
        the objective's ``required_keys`` when they include ``"target"``);
        :class:`~chexradi.train.evaluators.LossEvaluator` selects on the
        objective's own validation loss (a text encoder, a generator); a text
        score plugs in the same way.
    collate_fn:
        Makes a batch of a list of items for the Datasets given (torch's default
        collation when None): e.g. padding variable-length token sequences. It must
        return a dict holding the keys the objective and evaluator read. A
        DataLoader passed as ``train``/``val`` keeps its own.
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
        Bad arguments, items without the keys the objective and evaluator read
        (``"image"``/``"target"`` for a classifier), shapes that do not
        fit the model, CUDA asked for but unavailable, or an ``out`` holding a run
        of another model or other settings (the message names the file). In a DDP
        run also: ``batch_size`` not divisible by the world size, a DataLoader or
        an iterable dataset (they cannot be sharded), ``WORLD_SIZE > 1`` in the
        environment without an initialised process group.
    FileNotFoundError
        A resumed run whose ``best.pt`` is missing.
    FloatingPointError
        The training loss became NaN/inf (lower ``lr``, check the inputs), or the
        evaluator's validation score did (e.g. a NaN validation loss).

    Notes
    -----
    Model selection: the score of an epoch is the evaluator's. For the default
    (a classifier) it is the validation mean AUC (the mean over the classes whose
    AUC is defined, on sigmoid outputs); when no class has both labels in ``val``
    it is ``-val_loss``, and a warning says so. The validation loss is the unweighted masked BCE of the objective's logits, so it
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
    contiguous blocks and the evaluator's pieces gathered, so every rank computes the same
    loss, AUC, early-stopping and best-epoch decisions; the history records are
    rank 0's (its ``seconds``). Rank 0 alone writes ``out`` (other ranks wait at a
    barrier after every epoch), so ``out`` must be on a file system every rank
    sees: a resumed run reads ``last.pt`` on every rank, and at the end every rank
    loads ``best.pt``. The saved weights are the plain model's (no ``module.``
    prefix); the returned :class:`FitResult` and the final weights are the same
    on every rank. The settings record ``world_size``, ``backend`` and whether DDP
    needed ``find_unused_parameters`` (decided on the first step).
    """
    out_dir = None if out is None else Path(out)
    num_classes = getattr(model, "num_classes", None)
    options = FitOptions.check(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                               class_weights=class_weights, patience=patience, min_delta=min_delta, seed=seed,
                               num_workers=num_workers, max_steps=max_steps, resume=resume, progress=progress,
                               num_classes=num_classes)
    check_parts(model, train, val, objective=objective, evaluator=evaluator, collate_fn=collate_fn,
                options=options, out_dir=out_dir, meta=meta, on_epoch_end=on_epoch_end)
    d = distributed_setup(train, val, options.batch_size)
    dev = resolve_device(device) if not d.is_distributed else d.device(device)
    use_amp, amp_dtype = _resolve_amp(amp, dev)
    train_keys = tuple(getattr(objective, "required_keys", None) or CLASSIFIER_KEYS)
    if evaluator is None:
        evaluator = ClassifierEvaluator(required_keys=train_keys if "target" in train_keys else CLASSIFIER_KEYS)
    _peek(train, "train", model, required=train_keys, collate_fn=collate_fn)
    _peek(val, "val", model, required=tuple(evaluator.required_keys), collate_fn=collate_fn)
    steps = total_steps(train, batch_size=options.batch_size, epochs=options.epochs, max_steps=options.max_steps)
    if objective is None:
        objective = BCEObjective(class_pos_weight(options.class_weights, train, num_classes))
    settings = settings_record(options, device=dev, amp=use_amp, amp_dtype=amp_dtype, objective=objective,
                              evaluator=evaluator, collate_fn=collate_fn, steps=steps, train=train, val=val, d=d)

    trainer = _Trainer(model, train, val, options=options, objective=objective, evaluator=evaluator,
                       collate_fn=collate_fn, device=dev, amp_dtype=amp_dtype, use_amp=use_amp, steps=steps,
                       settings=settings, meta=meta or {}, out_dir=out_dir,
                       show=progress_on(progress) and d.is_main, dist=d, on_epoch_end=on_epoch_end)
    trainer.start()
    with _cudnn_deterministic(dev):
        while not trainer.done:
            trainer.epoch()
    trainer.finish()
    run = trainer.run
    return FitResult(history=run.history, best_epoch=run.best_epoch, best_score=run.best_score,
                     criterion=trainer.criterion, stopped_early=run.stopped_early, best_path=trainer.best_path,
                     last_path=trainer.last_path, device=str(dev), amp=use_amp, world_size=d.world_size,
                     backend=d.backend)
