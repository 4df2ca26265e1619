"""Training and inference for one round of the loop: :func:`fit` and :func:`predict`.

:func:`fit` trains a multi-label classifier (a :class:`~chexradi.nn.Classifier`)
with AdamW and a per-step cosine schedule, validates every epoch (loss, AUC per
class), stops early on the validation mean AUC, and keeps the best weights. With
``out=DIR`` it writes ``DIR/last.pt`` (everything needed to resume) after every
epoch, ``DIR/best.pt`` when the validation score improves, and
``DIR/history.json``; a run that was stopped resumes from ``last.pt`` and
reproduces, weight for weight, the run that was not stopped.

:func:`predict` returns probabilities, logits, targets and, on request,
heatmaps (CAM / Grad-CAM from :mod:`chexradi.cam.methods`) and embeddings.

What the loss is lives in an *objective*, the extension point for guidance
(radiomics vectors, report text): any object with

``loss(model, batch) -> (loss, logits)``
    the scalar training loss of a batch and the ``(B, K)`` logits it used;
``logits(model, batch) -> logits``
    the ``(B, K)`` logits for evaluation (validation AUC and loss);

and optionally ``parameters()`` (extra trainable tensors, added to the
optimizer), ``state_dict()`` / ``load_state_dict(state)`` (saved in ``last.pt``
and restored on resume). An objective that is a :class:`torch.nn.Module` is
moved to the device and switched between train and eval mode with the model.
``batch`` is a dict of the collated items, tensors on the device; it holds
``"image"`` ``(B, C, H, W)`` float32, ``"target"`` ``(B, K)`` float32 (NaN =
unknown) and every other key the dataset items carry (``"index"``, radiomics
vectors, ...). The default objective is :class:`BCEObjective`.

Reproducibility: at the start of epoch ``e`` the Python, NumPy and torch random
generators are seeded from ``(seed, e)`` and the shuffle order comes from a
generator seeded the same way, so epoch ``e`` does not depend on how the run got
there. Together with the optimizer, scheduler, scaler and objective states in
``last.pt`` this is what makes a resumed run identical to an uninterrupted one
(on CPU bit for bit; on CUDA as far as the kernels are deterministic: cuDNN is
put in deterministic mode during :func:`fit` and restored afterwards).
"""
from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, Union, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from . import metrics

__all__ = ["fit", "predict", "FitResult", "Prediction", "ArrayDataset", "BCEObjective", "Objective",
           "masked_bce_with_logits", "balanced_pos_weight", "BALANCED_CLIP"]

logger = logging.getLogger("chexradi.train")

PathLike = Union[str, Path]

#: ``class_weights="balanced"`` clips ``neg / pos`` to this range: a class is never
#: down-weighted below 1, and a class with (almost) no positives gets at most 100.
BALANCED_CLIP = (1.0, 100.0)

#: Fit settings that change the training trajectory: a resume must use the same.
_TRAJECTORY_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "class_weights", "seed", "max_steps",
                    "objective")

_HISTORY_FORMAT = "chexradi-history/1"


# ----------------------------------------------------------------------------- objective

@runtime_checkable
class Objective(Protocol):
    """What :func:`fit` trains: see the module docstring for the optional methods."""

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Scalar training loss of ``batch`` and the ``(B, K)`` logits it used."""
        ...

    def logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        """``(B, K)`` logits for evaluation."""
        ...


def masked_bce_with_logits(logits: Tensor, targets: Tensor, *, pos_weight: Optional[Tensor] = None) -> Tensor:
    """Binary cross-entropy with logits, averaged over the known (non-NaN) targets.

    ``loss = sum_{n,k known} l_nk / #known`` with
    ``l_nk = -(w_k y_nk log s(x_nk) + (1 - y_nk) log(1 - s(x_nk)))``, ``s`` the
    sigmoid and ``w_k`` the ``pos_weight`` of class ``k`` (1 when None). Unknown
    targets contribute neither to the sum nor to the count; with no known target
    the loss is 0 (and so is its gradient).

    Raises
    ------
    ValueError
        ``logits`` and ``targets`` differ in shape, or ``pos_weight`` is not ``(K,)``.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(targets.shape)} must have the same "
                         f"shape (B, K); check that the targets have one column per model class")
    logits = logits.float()
    targets = targets.to(device=logits.device, dtype=torch.float32)
    known = ~torch.isnan(targets)
    if pos_weight is not None:
        pos_weight = pos_weight.to(device=logits.device, dtype=torch.float32)
        if pos_weight.shape != logits.shape[-1:]:
            raise ValueError(f"pos_weight has shape {tuple(pos_weight.shape)}, "
                             f"expected ({logits.shape[-1]},)")
    per = F.binary_cross_entropy_with_logits(logits, torch.where(known, targets, torch.zeros_like(targets)),
                                             pos_weight=pos_weight, reduction="none")
    return (per * known).sum() / known.sum().clamp(min=1)


def balanced_pos_weight(targets: Any, *, clip: tuple[float, float] = BALANCED_CLIP) -> Tensor:
    """``class_weights="balanced"``: ``pos_weight_k = neg_k / pos_k`` clipped to ``clip``.

    ``pos_k`` / ``neg_k`` count the targets equal to 1 / 0 in column ``k`` (NaN =
    unknown is not counted). A class without positives gets ``clip[1]``.

    Returns
    -------
    torch.Tensor
        ``(K,)`` float32.

    Raises
    ------
    ValueError
        ``targets`` is not 2-D, or ``clip`` is not ``0 < low <= high``.
    """
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim != 2:
        raise ValueError(f"targets must be an (N, K) matrix to compute balanced class weights, "
                         f"got shape {t.shape}")
    low, high = (float(c) for c in clip)
    if not 0 < low <= high:
        raise ValueError(f"clip must satisfy 0 < low <= high, got {clip!r}")
    pos = np.sum(t == 1, axis=0).astype(np.float64)
    neg = np.sum(t == 0, axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(pos > 0, neg / np.maximum(pos, 1), high)
    return torch.as_tensor(np.clip(ratio, low, high), dtype=torch.float32)


class BCEObjective:
    """Multi-label binary cross-entropy over the model's logits, NaN targets masked out.

    Parameters
    ----------
    pos_weight:
        Optional ``(K,)`` positive-class weights (:func:`balanced_pos_weight`, or
        your own); see :func:`masked_bce_with_logits`.

    Raises
    ------
    ValueError
        ``pos_weight`` is not a 1-D sequence of positive finite numbers.
    """

    def __init__(self, pos_weight: Optional[Any] = None) -> None:
        self.pos_weight = None if pos_weight is None else _check_weights(pos_weight, "pos_weight")

    def logits(self, model: nn.Module, batch: dict[str, Any]) -> Tensor:
        return model(batch["image"])

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        logits = self.logits(model, batch)
        return masked_bce_with_logits(logits, batch["target"], pos_weight=self.pos_weight), logits

    def state_dict(self) -> dict[str, Any]:
        return {"pos_weight": None if self.pos_weight is None else self.pos_weight.detach().cpu().clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pw = state.get("pos_weight")
        self.pos_weight = None if pw is None else _check_weights(pw, "pos_weight")

    def __repr__(self) -> str:
        pw = None if self.pos_weight is None else [round(float(w), 4) for w in self.pos_weight]
        return f"BCEObjective(pos_weight={pw})"


def _check_weights(weights: Any, name: str, num_classes: Optional[int] = None) -> Tensor:
    try:
        w = torch.as_tensor(np.asarray(weights.detach().cpu() if isinstance(weights, Tensor) else weights,
                                       dtype=np.float64), dtype=torch.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of K positive numbers: {exc}") from exc
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(f"{name} must be a 1-D sequence of K positive numbers, got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w <= 0).any():
        raise ValueError(f"{name} must hold positive finite numbers, got {w.tolist()}")
    if num_classes is not None and w.numel() != num_classes:
        raise ValueError(f"{name} has {w.numel()} values but the model has {num_classes} classes; "
                         f"give one weight per class")
    return w


# ----------------------------------------------------------------------------- data

class ArrayDataset(Dataset):
    """Images and targets held in memory, as items ``{"image", "target", "index"}``.

    Parameters
    ----------
    images:
        ``(N, H, W)`` (one channel is added) or ``(N, C, H, W)`` numbers, already
        normalised as the network expects (see :mod:`chexradi.data.transforms`).
    targets:
        ``(N, K)`` targets in [0, 1], NaN for unknown; None for unlabelled images
        (items then have no ``"target"``, which :func:`predict` accepts).

    Raises
    ------
    ValueError
        Wrong dimensions, different N, non-finite pixels, or targets outside [0, 1].
    """

    def __init__(self, images: Any, targets: Optional[Any] = None) -> None:
        x = _as_float_tensor(images, "images")
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[0] == 0:
            raise ValueError(f"images must be (N, H, W) or (N, C, H, W) with N >= 1, "
                             f"got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("images hold NaN/inf pixels; fix or mask them before training")
        self.images = x
        self.targets: Optional[Tensor] = None
        if targets is not None:
            t = _as_float_tensor(targets, "targets")
            if t.dim() == 1:
                raise ValueError(f"targets must be (N, K), got shape {tuple(t.shape)}; "
                                 f"reshape a single class to (N, 1)")
            if t.dim() != 2 or t.shape[0] != x.shape[0]:
                raise ValueError(f"targets must be (N, K) with N = {x.shape[0]} (the number of images), "
                                 f"got shape {tuple(t.shape)}")
            known = t[~torch.isnan(t)]
            if known.numel() and (not torch.isfinite(known).all() or known.min() < 0 or known.max() > 1):
                raise ValueError("targets must lie in [0, 1] (NaN for unknown); map other codes "
                                 "(e.g. CheXpert's -1 for uncertain) first")
            self.targets = t

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        item: dict[str, Any] = {"image": self.images[i], "index": int(i)}
        if self.targets is not None:
            item["target"] = self.targets[i]
        return item


def _as_float_tensor(a: Any, name: str) -> Tensor:
    if isinstance(a, Tensor):
        t = a.detach().cpu()
    else:
        try:
            arr = np.asarray(a)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a numeric array: {exc}") from exc
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
            raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(torch.float32)


def _check_data(data: Any, name: str) -> None:
    if isinstance(data, DataLoader):
        return
    if isinstance(data, (np.ndarray, Tensor)) or not (hasattr(data, "__getitem__") or
                                                      isinstance(data, torch.utils.data.IterableDataset)):
        raise ValueError(f"{name} must be a torch Dataset or DataLoader, got {type(data).__name__}; "
                         f"wrap arrays as chexradi.train.ArrayDataset(images, targets)")


def _length(data: Any) -> Optional[int]:
    try:
        return len(data.dataset if isinstance(data, DataLoader) else data)
    except TypeError:
        return None


def _item_dict(item: Any, name: str, what: str, *, need_target: bool) -> dict[str, Any]:
    """A dataset item or a collated batch as a dict with "image" (and "target")."""
    if isinstance(item, Mapping):
        d = dict(item)
    elif isinstance(item, (tuple, list)) and len(item) in (1, 2):
        d = {"image": item[0]} if len(item) == 1 else {"image": item[0], "target": item[1]}
    elif isinstance(item, (Tensor, np.ndarray)):
        d = {"image": item}
    else:
        raise ValueError(f"{name} {what} must be a dict with 'image' and 'target' or an (image, target) "
                         f"tuple, got {type(item).__name__}")
    missing = [k for k in (("image", "target") if need_target else ("image",)) if k not in d]
    if missing:
        raise ValueError(f"{name} {what} has no {' or '.join(repr(m) for m in missing)} "
                         f"(keys: {sorted(map(str, d))}); items must be dicts with 'image' (C, H, W) and "
                         f"'target' (K,), or (image, target) tuples")
    return d


def _peek(data: Any, name: str, model: nn.Module, *, need_target: bool) -> None:
    """Check the first item of a map-style dataset before any work starts."""
    if isinstance(data, DataLoader) or isinstance(data, torch.utils.data.IterableDataset):
        return
    n = _length(data)
    if n is None:
        return
    if n == 0:
        raise ValueError(f"{name} is empty; pass a dataset with at least one item")
    d = _item_dict(data[0], name, "item 0", need_target=need_target)
    image = d["image"]
    if not isinstance(image, (Tensor, np.ndarray)):
        raise ValueError(f"{name} item 0: 'image' must be a tensor or array (C, H, W), "
                         f"got {type(image).__name__}")
    in_chans = getattr(model, "in_chans", None)
    if image.ndim != 3 or (in_chans is not None and image.shape[0] != in_chans):
        raise ValueError(f"{name} item 0: 'image' has shape {tuple(image.shape)}, expected (C, H, W) with "
                         f"C = {in_chans if in_chans is not None else 'the model input channels'}")
    if "target" in d and d["target"] is not None:
        target = d["target"]
        k = getattr(model, "num_classes", None)
        shape = tuple(np.shape(target))
        if len(shape) != 1 or (k is not None and shape[0] != k):
            raise ValueError(f"{name} item 0: 'target' has shape {shape}, expected ({k},): one value per "
                             f"model class")


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed NumPy and Python from the worker's torch seed."""
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


def _make_loader(data: Any, *, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                 pin_memory: bool) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=num_workers,
                      worker_init_fn=_seed_worker if num_workers > 0 else None, pin_memory=pin_memory,
                      drop_last=False)


def _to_device(batch: Any, name: str, device: torch.device, *, need_target: bool,
               non_blocking: bool) -> dict[str, Any]:
    d = _item_dict(batch, name, "batch", need_target=need_target)
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if isinstance(value, Tensor):
            if key in ("image", "target"):
                value = value.to(torch.float32)
            value = value.to(device, non_blocking=non_blocking)
        out[key] = value
    return out


# ----------------------------------------------------------------------------- settings

def _resolve_device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:1', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={str(device)!r} asks for CUDA, but torch.cuda.is_available() is False "
                             f"(no GPU, or a CPU-only torch); use device='cpu' or device=None")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={str(device)!r}: there are only {torch.cuda.device_count()} CUDA "
                             f"device(s); use 'cuda:0' .. 'cuda:{torch.cuda.device_count() - 1}'")
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device={str(device)!r} asks for MPS, which is not available; use 'cpu'")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
    return dev


def _resolve_amp(amp: Any, device: torch.device) -> tuple[bool, Optional[torch.dtype]]:
    """AMP on/off and its dtype: float16 (+ GradScaler) on CUDA, bfloat16 on CPU."""
    if amp is not None and not isinstance(amp, bool):
        raise ValueError(f"amp must be None (automatic: on for CUDA), True or False, got {amp!r}")
    on = device.type == "cuda" if amp is None else amp
    if not on:
        return False, None
    if device.type == "cuda":
        return True, torch.float16
    if device.type == "cpu":
        return True, torch.bfloat16
    raise ValueError(f"amp=True is supported on CUDA (float16) and CPU (bfloat16), not on {device.type}; "
                     f"pass amp=False")


def _progress_on(progress: Optional[bool]) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


def _check_int(value: Any, name: str, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}{hint}")
    return int(value)


def _check_float(value: Any, name: str, *, positive: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _class_weights_setting(class_weights: Any, num_classes: Optional[int]) -> Union[None, str, list[float]]:
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"unknown class_weights {class_weights!r}; use None, 'balanced' "
                             f"(neg/pos per class from the training targets) or K positive numbers")
        return "balanced"
    return [float(w) for w in _check_weights(class_weights, "class_weights", num_classes)]


def _training_targets(train: Any) -> np.ndarray:
    """The ``(N, K)`` training targets, for ``class_weights="balanced"``."""
    ds = train.dataset if isinstance(train, DataLoader) else train
    t = getattr(ds, "targets", None)
    if t is not None:
        return np.asarray(t.cpu() if isinstance(t, Tensor) else t, dtype=np.float64)
    logger.info("class_weights='balanced': reading the training targets (one pass over the data)")
    rows = []
    if isinstance(train, DataLoader):
        for batch in train:
            rows.append(np.asarray(_item_dict(batch, "train", "batch", need_target=True)["target"],
                                   dtype=np.float64))
    else:
        for i in range(len(ds)):
            rows.append(np.asarray(_item_dict(ds[i], "train", f"item {i}", need_target=True)["target"],
                                   dtype=np.float64)[None])
    return np.concatenate(rows, axis=0)


def _versions() -> dict[str, str]:
    import sklearn

    from .nn.checkpoint import versions as model_versions

    return {**model_versions(), "scikit-learn": sklearn.__version__}


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _derive_seeds(seed: int, epoch: int) -> tuple[int, int]:
    """Two 63-bit seeds (global generators, shuffle order) for ``epoch`` of a run seeded ``seed``."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(4, dtype=np.uint32).astype(np.uint64)
    a = int((state[0] << np.uint64(31)) ^ state[1]) & (2 ** 63 - 1)
    b = int((state[2] << np.uint64(31)) ^ state[3]) & (2 ** 63 - 1)
    return a, b


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "python" in states:
        random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _json_float(x: float) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _cudnn_deterministic(device: torch.device) -> Iterator[None]:
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def _autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _objective_parameters(objective: Any) -> list[Tensor]:
    params = getattr(objective, "parameters", None)
    if not callable(params):
        return []
    return [p for p in params() if isinstance(p, Tensor) and p.requires_grad]


def _adamw(params: list[Tensor], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel for all parameters; far faster on CPU) where this torch supports it."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def _set_mode(model: nn.Module, objective: Any, train: bool) -> None:
    model.train(train)
    if isinstance(objective, nn.Module):
        objective.train(train)


# ----------------------------------------------------------------------------- results

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
        Where and how this call ran.
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


@dataclass
class Prediction:
    """What :func:`predict` returns; arrays in dataset order.

    Attributes
    ----------
    probs, logits:
        ``(N, K)`` float32 sigmoid probabilities and logits.
    targets:
        ``(N, K)`` float32 when every item has a ``"target"``, else None.
    index:
        ``(N,)`` int64: the items' ``"index"`` when they carry one, else ``0 .. N-1``.
    class_names:
        The model's class names (column order).
    heatmaps:
        ``(N, k, H, W)`` float32 in [0, 1] when asked for, else None.
    heatmap_classes:
        The ``k`` class indices of ``heatmaps`` (None without heatmaps).
    embeddings:
        ``(N, C)`` float32 pooled features when asked for, else None.
    """

    probs: np.ndarray
    logits: np.ndarray
    targets: Optional[np.ndarray]
    index: np.ndarray
    class_names: list[str]
    heatmaps: Optional[np.ndarray] = None
    heatmap_classes: Optional[list[int]] = None
    embeddings: Optional[np.ndarray] = field(default=None)


# ----------------------------------------------------------------------------- fit

def _evaluate(model: nn.Module, objective: Any, loader: DataLoader, device: torch.device,
              amp_dtype: Optional[torch.dtype], *, non_blocking: bool, show: bool,
              desc: str) -> tuple[float, np.ndarray, np.ndarray]:
    """Validation loss (masked BCE over all known targets), logits and targets."""
    _set_mode(model, objective, False)
    logits_all, targets_all = [], []
    with torch.no_grad():
        for raw in _progress(loader, show, desc):
            batch = _to_device(raw, "val", device, need_target=True, non_blocking=non_blocking)
            with _autocast(device, amp_dtype):
                logits = objective.logits(model, batch)
            logits_all.append(logits.float().cpu())
            targets_all.append(batch["target"].float().cpu())
    if not logits_all:
        raise ValueError("val gave no batches; pass a non-empty validation set")
    logits_t, targets_t = torch.cat(logits_all), torch.cat(targets_all)
    if logits_t.shape != targets_t.shape:
        raise ValueError(f"val targets {tuple(targets_t.shape)} do not match the logits "
                         f"{tuple(logits_t.shape)}; give one target per model class")
    if torch.isnan(targets_t).all():
        raise ValueError("val has no known (non-NaN) targets; model selection needs labelled "
                         "validation images")
    loss = float(masked_bce_with_logits(logits_t, targets_t))
    return loss, logits_t.numpy(), targets_t.numpy()


def _progress(iterable: Iterable, show: bool, desc: str) -> Any:
    if not show:
        return iterable
    from tqdm.auto import tqdm

    total = None
    try:
        total = len(iterable)  # type: ignore[arg-type]
    except TypeError:
        pass
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


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
        number, at every epoch start (see the module docstring).
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
        resume from ``last.pt``).

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        Bad arguments, items without ``"image"``/``"target"``, shapes that do not
        fit the model, CUDA asked for but unavailable, or an ``out`` holding a run
        of another model or other settings (the message names the file).
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
    if not isinstance(resume, bool):
        raise ValueError(f"resume must be True or False, got {resume!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be None (automatic), True or False, got {progress!r}")
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
    out_dir = None if out is None else Path(out)
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"out={str(out_dir)!r} exists and is not a directory; pass a directory path")
        if not isinstance(getattr(model, "config", None), dict):
            raise ValueError("fit(out=...) saves checkpoints with chexradi.nn.save_checkpoint, which needs "
                             "a chexradi Classifier (model.config); build the model with "
                             "chexradi.nn.create_model")
    dev = _resolve_device(device)
    use_amp, amp_dtype = _resolve_amp(amp, dev)
    _peek(train, "train", model, need_target=True)
    _peek(val, "val", model, need_target=True)
    show = _progress_on(progress)
    pin = dev.type == "cuda"

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
    total_steps = (epochs * train_len if max_steps is None else
                   max_steps if train_len is None else min(max_steps, epochs * train_len))

    if objective is None:
        pos_weight = None
        if cw_setting == "balanced":
            pos_weight = balanced_pos_weight(_training_targets(train))
            if num_classes is not None and pos_weight.numel() != num_classes:
                raise ValueError(f"the training targets have {pos_weight.numel()} columns but the model has "
                                 f"{num_classes} classes")
            logger.info("class_weights='balanced': pos_weight %s", [round(float(w), 3) for w in pos_weight])
        elif cw_setting is not None:
            pos_weight = torch.tensor(cw_setting, dtype=torch.float32)
        objective = BCEObjective(pos_weight)

    settings: dict[str, Any] = {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "class_weights": cw_setting, "patience": patience, "min_delta": min_delta, "device": str(dev),
        "amp": use_amp, "amp_dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "seed": seed, "resume": resume, "num_workers": num_workers, "progress": progress,
        "max_steps": max_steps, "objective": type(objective).__qualname__,
        "optimizer": "AdamW", "schedule": "cosine per step to 0, no warm-up", "total_steps": total_steps,
        "n_train": _length(train), "n_val": _length(val),
    }
    full_meta: dict[str, Any] = {"class_names": list(getattr(model, "class_names", []) or []),
                                 "normalization": _normalization(), **dict(meta or {}), "fit": settings}

    # -- state
    model.to(dev)
    if isinstance(objective, nn.Module):
        objective.to(dev)
    params = list(model.parameters()) + _objective_parameters(objective)
    optimizer = _adamw(params, lr=lr, weight_decay=weight_decay)
    settings["optimizer"] = "AdamW (fused)" if optimizer.defaults.get("fused") else "AdamW"
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and dev.type == "cuda")

    start_epoch, global_step = 1, 0
    best_score, best_epoch, bad_epochs = -math.inf, 0, 0
    history: list[dict[str, Any]] = []
    finished = stopped_early = False
    best_state: Optional[dict[str, Tensor]] = None
    last_path = best_path = None
    if out_dir is not None:
        last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    _seed_all(seed)

    if last_path is not None and resume and last_path.is_file():
        ts = _load_resume(last_path, model, settings)
        model.load_state_dict(ts["state_dict"])
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        if ts.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ts["scaler"])
        if ts.get("objective") is not None and callable(getattr(objective, "load_state_dict", None)):
            objective.load_state_dict(ts["objective"])
        _set_rng_states(ts.get("rng", {}))
        start_epoch, global_step = int(ts["epoch"]) + 1, int(ts["global_step"])
        best_score, best_epoch = float(ts["best_score"]), int(ts["best_epoch"])
        bad_epochs = int(ts["bad_epochs"])
        history = list(ts["history"])
        finished, stopped_early = bool(ts["finished"]), bool(ts["stopped_early"])
        logger.info("resuming %s after epoch %d (best epoch %d, score %.4f)%s", last_path, start_epoch - 1,
                    best_epoch, best_score, "; the run had finished" if finished else "")
    elif last_path is not None and last_path.is_file():
        logger.info("resume=False: starting over in %s (existing checkpoints are overwritten)", out_dir)

    criterion = history[-1]["criterion"] if history else "val_mean_auc"
    warned_nan = False
    with _cudnn_deterministic(dev):
        epoch = start_epoch
        while not finished and epoch <= epochs:
            t0 = time.perf_counter()
            global_seed, order_seed = _derive_seeds(seed, epoch)
            _seed_all(global_seed)
            loader = _make_loader(train, batch_size=batch_size, shuffle=True, seed=order_seed,
                                  num_workers=num_workers, pin_memory=pin)
            _set_mode(model, objective, True)
            loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
            seen = 0
            bar = _progress(loader, show, f"epoch {epoch}/{epochs}")
            for raw in bar:
                batch = _to_device(raw, "train", dev, need_target=True, non_blocking=pin)
                with _autocast(dev, amp_dtype):
                    loss, _ = objective.loss(model, batch)
                if loss.dim() != 0:
                    raise ValueError(f"objective.loss must return a scalar loss, "
                                     f"got shape {tuple(loss.shape)}")
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the training loss is {float(loss)} at epoch {epoch}, step "
                                             f"{global_step + 1}; lower lr or check the inputs for NaN/inf")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                global_step += 1
                n = int(batch["image"].shape[0])
                loss_sum += loss.detach().double() * n
                seen += n
                if show and hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
                if global_step >= total_steps:
                    break
            if seen == 0:
                raise ValueError("train gave no batches; pass a non-empty training set")
            train_loss = float(loss_sum) / seen
            last_lr = float(optimizer.param_groups[0]["lr"])

            val_loader = _make_loader(val, batch_size=batch_size, shuffle=False, seed=order_seed,
                                      num_workers=num_workers, pin_memory=pin)
            val_loss, val_logits, val_targets = _evaluate(model, objective, val_loader, dev, amp_dtype,
                                                          non_blocking=pin, show=show, desc=f"val {epoch}")
            probs = 1.0 / (1.0 + np.exp(-val_logits.astype(np.float64)))
            aucs = metrics.auc_per_class(val_targets, probs)
            mean = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
            if math.isfinite(mean):
                score, criterion = mean, "val_mean_auc"
            else:
                score, criterion = -val_loss, "-val_loss"
                if not warned_nan:
                    logger.warning("validation mean AUC is undefined (every class has a single label in "
                                   "val); selecting the model on -val_loss instead")
                    warned_nan = True
            improved = score > best_score + min_delta
            if improved:
                best_score, best_epoch, bad_epochs = score, epoch, 0
            else:
                bad_epochs += 1
            at_end = epoch >= epochs or global_step >= total_steps
            stopped_early = not improved and patience is not None and bad_epochs >= patience and not at_end
            finished = stopped_early or at_end
            record = {
                "epoch": epoch, "train_loss": _json_float(train_loss), "val_loss": _json_float(val_loss),
                "val_auc": [_json_float(a) for a in aucs], "val_mean_auc": _json_float(mean),
                "score": _json_float(score), "criterion": criterion, "improved": bool(improved),
                "lr": last_lr, "steps": global_step, "seconds": round(time.perf_counter() - t0, 3),
            }
            history.append(record)
            logger.info("epoch %d/%d: train loss %.4f, val loss %.4f, val mean AUC %s, lr %.3g, %.1f s%s",
                        epoch, epochs, train_loss, val_loss,
                        "n/a" if not math.isfinite(mean) else f"{mean:.4f}", last_lr, record["seconds"],
                        " (best)" if improved else "")

            if out_dir is not None:
                if improved:
                    _save(best_path, model, full_meta, epoch=epoch, score=best_score, criterion=criterion)
                train_state = {
                    "epoch": epoch, "global_step": global_step, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                    "objective": (objective.state_dict() if callable(getattr(objective, "state_dict", None))
                                  else None),
                    "best_score": best_score, "best_epoch": best_epoch, "bad_epochs": bad_epochs,
                    "history": history, "finished": finished, "stopped_early": stopped_early,
                    "rng": _rng_states(),
                }
                _save(last_path, model, full_meta, train_state=train_state)
                _write_history(out_dir / "history.json", settings, model, history, best_epoch, best_score,
                               criterion, stopped_early, finished)
            elif improved:
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            if stopped_early:
                logger.info("stopping early: no improvement of the %s in %d epoch(s); best epoch %d (%.4f)",
                            criterion, patience, best_epoch, best_score)
            if on_epoch_end is not None:
                on_epoch_end(copy.deepcopy(record))
            epoch += 1

    # -- the best weights, in eval mode
    if best_path is not None and best_epoch > 0:
        if not best_path.is_file():
            raise FileNotFoundError(f"{best_path} is missing but {last_path} says epoch {best_epoch} was the "
                                    f"best; rerun with resume=False or a new out directory")
        from .nn.checkpoint import read_checkpoint

        model.load_state_dict(read_checkpoint(best_path)["state_dict"])
    elif best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(history=history, best_epoch=best_epoch, best_score=best_score, criterion=criterion,
                     stopped_early=stopped_early, best_path=best_path, last_path=last_path, device=str(dev),
                     amp=use_amp)


def _normalization() -> str:
    from .data.transforms import NORMALIZATION

    return NORMALIZATION


def _save(path: Path, model: nn.Module, meta: dict[str, Any], **extra: Any) -> None:
    from .nn.checkpoint import save_checkpoint

    save_checkpoint(path, model, meta=meta, **extra)  # type: ignore[arg-type]


def _write_history(path: Path, settings: dict[str, Any], model: nn.Module, history: list[dict[str, Any]],
                   best_epoch: int, best_score: float, criterion: str, stopped_early: bool,
                   finished: bool) -> None:
    _write_json(path, {
        "format": _HISTORY_FORMAT, "model": dict(getattr(model, "config", {})), "fit": settings,
        "versions": _versions(), "best_epoch": best_epoch, "best_score": _json_float(best_score),
        "criterion": criterion, "stopped_early": stopped_early, "finished": finished, "history": history,
    })


def _load_resume(path: Path, model: nn.Module, settings: dict[str, Any]) -> dict[str, Any]:
    from .nn.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    config = dict(getattr(model, "config", {}))
    if ckpt["config"] != config:
        theirs = ckpt["config"]
        diff = sorted(k for k in set(theirs) | set(config) if theirs.get(k) != config.get(k))
        raise ValueError(f"cannot resume from {path}: it holds a {theirs.get('name')} model whose config "
                         f"differs from this {config.get('name')} model in {diff}; use a new out directory, "
                         f"or resume=False to start over there")
    ts = ckpt.get("train_state")
    if not isinstance(ts, dict):
        raise ValueError(f"cannot resume from {path}: it has no training state (not written by "
                         f"chexradi.train.fit); use a new out directory, or resume=False")
    old = dict(ckpt.get("meta", {}).get("fit", {}))
    changed = [f"{k}: {old.get(k)!r} -> {settings[k]!r}" for k in _TRAJECTORY_KEYS
               if old.get(k) != settings[k]]
    if changed:
        raise ValueError(f"cannot resume from {path}: it was trained with other settings "
                         f"({'; '.join(changed)}); use a new out directory, or resume=False to start over")
    return {**ts, "state_dict": ckpt["state_dict"]}


# ----------------------------------------------------------------------------- predict

def _class_indices(classes: Any, model: nn.Module) -> list[int]:
    k = getattr(model, "num_classes", None)
    names = list(getattr(model, "class_names", []) or [])
    if isinstance(classes, (str, int, np.integer)):
        classes = [classes]
    if not isinstance(classes, Sequence) or len(classes) == 0:
        raise ValueError(f"classes must be a non-empty list of class indices or names, got {classes!r}")
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"unknown class name {c!r} in classes; the model's classes are {names}")
            out.append(names.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if k is not None and not 0 <= int(c) < k:
                raise ValueError(f"class index {c} in classes is out of range; the model has {k} classes "
                                 f"(0 .. {k - 1})")
            out.append(int(c))
        else:
            raise ValueError(f"classes must hold class indices or names, got {c!r}")
    return out


def predict(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 32,
    device: Union[None, str, torch.device] = None,
    amp: Optional[bool] = None,
    heatmaps: Optional[str] = None,
    classes: Optional[Sequence[Union[int, str]]] = None,
    target_layer: Any = None,
    embeddings: bool = False,
    num_workers: int = 0,
    progress: Optional[bool] = None,
) -> Prediction:
    """Probabilities (and optionally heatmaps and embeddings) for every item of ``data``, in order.

    Parameters
    ----------
    model:
        A :class:`~chexradi.nn.Classifier`. Run in eval mode; its train/eval mode
        and its device are restored afterwards.
    data:
        A Dataset (batched in order) or a DataLoader without shuffling; items as
        for :func:`fit`, ``"target"`` optional.
    batch_size, num_workers:
        For a Dataset.
    device, amp:
        As for :func:`fit` (amp applies to the forward pass; heatmaps are computed
        in float32).
    heatmaps:
        None, ``"cam"`` or ``"gradcam"``: per-class maps from
        :func:`chexradi.cam.methods.heatmaps`, upsampled to the input size.
    classes:
        Restrict the heatmaps to these classes (indices or names); default all.
    target_layer:
        Passed to the heatmap method (default: the model's feature layer).
    embeddings:
        Also return the ``(N, C)`` pooled features (what guidance aligns with).
    progress:
        Progress bar: None shows it when stderr is a terminal.

    Returns
    -------
    Prediction

    Raises
    ------
    ValueError
        Bad arguments, a shuffling DataLoader, unknown classes, items without ``"image"``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_data(data, "data")
    if isinstance(data, DataLoader) and isinstance(data.sampler, RandomSampler):
        raise ValueError("data is a shuffling DataLoader; predict returns results in dataset order, so pass "
                         "the Dataset or a DataLoader with shuffle=False")
    batch_size = _check_int(batch_size, "batch_size", 1)
    num_workers = _check_int(num_workers, "num_workers", 0)
    if heatmaps not in (None, "cam", "gradcam"):
        raise ValueError(f"unknown heatmaps {heatmaps!r}; use None, 'cam' or 'gradcam'")
    if classes is not None and heatmaps is None:
        raise ValueError("classes selects heatmap classes; pass heatmaps='cam' or 'gradcam' with it "
                         "(probabilities always cover every class)")
    if target_layer is not None and heatmaps is None:
        raise ValueError("target_layer applies to heatmaps; pass heatmaps='cam' or 'gradcam' with it")
    if not isinstance(embeddings, bool):
        raise ValueError(f"embeddings must be True or False, got {embeddings!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be None (automatic), True or False, got {progress!r}")
    if embeddings and not all(callable(getattr(model, m, None)) for m in
                              ("forward_features", "embed_features", "forward_head")):
        raise ValueError("embeddings=True needs a chexradi Classifier (forward_features / embed_features / "
                         "forward_head)")
    heat_classes = None
    if heatmaps is not None:
        k = getattr(model, "num_classes", None)
        heat_classes = _class_indices(classes, model) if classes is not None else (
            list(range(k)) if k is not None else None)
    dev = _resolve_device(device)
    _, amp_dtype = _resolve_amp(amp, dev)
    _peek(data, "data", model, need_target=False)
    cam_fn = None
    if heatmaps is not None:
        from .cam.methods import heatmaps as cam_fn  # noqa: F811 - lazy: the CAM stage is optional here

    was_training = model.training
    try:
        home = next(model.parameters()).device
    except StopIteration:
        home = dev
    pin = dev.type == "cuda"
    loader = _make_loader(data, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers,
                          pin_memory=pin)
    logits_all: list[Tensor] = []
    targets_all: list[Tensor] = []
    index_all: list[Tensor] = []
    maps_all: list[np.ndarray] = []
    emb_all: list[Tensor] = []
    have_targets = have_index = True
    n_seen = 0
    try:
        model.to(dev)
        model.eval()
        for raw in _progress(loader, _progress_on(progress), "predict"):
            batch = _to_device(raw, "data", dev, need_target=False, non_blocking=pin)
            x = batch["image"]
            b = int(x.shape[0])
            if heatmaps is not None:
                maps, logits = cam_fn(model, x, method=heatmaps, classes=heat_classes,
                                      target_layer=target_layer)
                maps_all.append(np.asarray(maps.detach().float().cpu() if isinstance(maps, Tensor) else maps,
                                           dtype=np.float32))
                logits = logits.detach()
            if heatmaps is None or embeddings:
                with torch.no_grad(), _autocast(dev, amp_dtype):
                    if embeddings:
                        emb = model.embed_features(model.forward_features(x))  # type: ignore[operator]
                        emb_all.append(emb.float().cpu())
                        if heatmaps is None:
                            logits = model.forward_head(emb)  # type: ignore[operator]
                    else:
                        logits = model(x)
            logits_all.append(logits.float().cpu())
            t = batch.get("target")
            if have_targets and isinstance(t, Tensor):
                targets_all.append(t.float().cpu().reshape(b, -1))
            else:
                have_targets = False
            idx = batch.get("index")
            if have_index and isinstance(idx, Tensor):
                index_all.append(idx.cpu().reshape(-1).long())
            else:
                have_index = False
            n_seen += b
    finally:
        if home != dev:
            model.to(home)
        model.train(was_training)
    if not logits_all:
        raise ValueError("data gave no batches; pass a non-empty dataset")
    logits_t = torch.cat(logits_all)
    return Prediction(
        probs=torch.sigmoid(logits_t).numpy().astype(np.float32),
        logits=logits_t.numpy().astype(np.float32),
        targets=torch.cat(targets_all).numpy().astype(np.float32) if have_targets and targets_all else None,
        index=(torch.cat(index_all).numpy().astype(np.int64) if have_index and index_all
               else np.arange(n_seen, dtype=np.int64)),
        class_names=list(getattr(model, "class_names", [])
                         or [f"class_{i}" for i in range(logits_t.shape[1])]),
        heatmaps=np.concatenate(maps_all).astype(np.float32, copy=False) if maps_all else None,
        heatmap_classes=heat_classes,
        embeddings=torch.cat(emb_all).numpy().astype(np.float32) if emb_all else None,
    )
