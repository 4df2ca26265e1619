"""Data for :func:`~chexradi.train.fit` and :func:`~chexradi.train.predict`: items, checks, loaders, devices."""
from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger("chexradi.train")


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


#: What a classifier's items carry; :func:`~chexradi.train.fit` asks its objective and evaluator for theirs.
CLASSIFIER_KEYS = ("image", "target")


def _item_dict(item: Any, name: str, what: str, *, required: tuple[str, ...] = CLASSIFIER_KEYS) -> dict[str, Any]:
    """A dataset item or a collated batch as a dict holding the ``required`` keys."""
    if isinstance(item, Mapping):
        d = dict(item)
    elif isinstance(item, (tuple, list)) and len(item) in (1, 2):
        d = {"image": item[0]} if len(item) == 1 else {"image": item[0], "target": item[1]}
    elif isinstance(item, (Tensor, np.ndarray)):
        d = {"image": item}
    else:
        raise ValueError(f"{name} {what} must be a dict with {', '.join(map(repr, required))} or an "
                         f"(image, target) tuple, got {type(item).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        hint = ("items must be dicts with 'image' (C, H, W) and 'target' (K,), or (image, target) tuples"
                if tuple(required) == CLASSIFIER_KEYS else
                f"the objective and evaluator read {', '.join(map(repr, required))}")
        raise ValueError(f"{name} {what} has no {' or '.join(repr(m) for m in missing)} "
                         f"(keys: {sorted(map(str, d))}); {hint}")
    return d


def _check_collate_fn(collate_fn: Any) -> None:
    """Refuse a ``collate_fn`` that is neither None nor callable."""
    if collate_fn is not None and not callable(collate_fn):
        raise ValueError(f"collate_fn must be callable (a list of items -> a batch dict) or None, got {collate_fn!r}")


def _peek(data: Any, name: str, model: nn.Module, *, required: tuple[str, ...] = CLASSIFIER_KEYS,
          collate_fn: Optional[Callable[[list[Any]], Any]] = None) -> None:
    """Check the first item of a map-style dataset before any work starts.

    With a ``collate_fn`` the item may be anything it accepts: the check is of
    ``collate_fn([item 0])``, the batch the objective will see (a batch of one).
    """
    if isinstance(data, DataLoader) or isinstance(data, torch.utils.data.IterableDataset):
        return
    n = _length(data)
    if n is None:
        return
    if n == 0:
        raise ValueError(f"{name} is empty; pass a dataset with at least one item")
    if collate_fn is not None:
        try:
            batch = collate_fn([data[0]])
        except Exception as exc:  # noqa: BLE001 - the user's collate function may raise anything
            raise ValueError(f"{name}: collate_fn failed on item 0 ({type(exc).__name__}: {exc}); it must take "
                             f"a list of items and return a batch dict") from exc
        _item_dict(batch, name, "batch of item 0", required=required)
        return
    d = _item_dict(data[0], name, "item 0", required=required)
    if "image" not in d:
        return
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
            rows.append(np.asarray(_item_dict(batch, "train", "batch")["target"],
                                   dtype=np.float64))
    else:
        for i in range(len(ds)):
            rows.append(np.asarray(_item_dict(ds[i], "train", f"item {i}")["target"],
                                   dtype=np.float64)[None])
    return np.concatenate(rows, axis=0)


def _seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed NumPy and Python from the worker's torch seed."""
    s = torch.initial_seed() % 2 ** 32
    np.random.seed(s)
    random.seed(s)


def _make_loader(data: Any, *, batch_size: int, shuffle: bool, seed: int, num_workers: int,
                 pin_memory: bool, batch_sampler: Optional[list[list[int]]] = None,
                 collate_fn: Optional[Callable[[list[Any]], Any]] = None) -> DataLoader:
    """A DataLoader over ``data`` (a DataLoader is returned as given); ``batch_sampler`` fixes the batches,
    ``collate_fn`` (None: torch's default) makes a batch of a list of items."""
    if isinstance(data, DataLoader):
        return data
    g = torch.Generator()
    g.manual_seed(seed)
    if batch_sampler is not None:
        return DataLoader(data, batch_sampler=batch_sampler, generator=g, num_workers=num_workers,
                          worker_init_fn=_seed_worker if num_workers > 0 else None, pin_memory=pin_memory,
                          collate_fn=collate_fn)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=num_workers,
                      worker_init_fn=_seed_worker if num_workers > 0 else None, pin_memory=pin_memory,
                      drop_last=False, collate_fn=collate_fn)


def _shuffle_order(n: int, seed: int) -> list[int]:
    """The order ``_make_loader(..., shuffle=True, seed=seed)`` visits ``n`` items in.

    A DataLoader first draws its workers' base seed from its generator, then its
    RandomSampler draws ``torch.randperm(n)`` from the same generator; this repeats
    both draws.
    """
    g = torch.Generator()
    g.manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=g)  # the DataLoader's base seed
    return torch.randperm(n, generator=g).tolist()


def _rank_batches(n: int, batch_size: int, seed: int, rank: int, world: int
                  ) -> tuple[list[list[int]], list[tuple[float, int]]]:
    """This rank's part of every global batch of one shuffled epoch, and how to weigh it.

    The global batches are those one process takes (:func:`_shuffle_order`, cut
    into ``batch_size`` pieces, the last one possibly short). A global batch of
    ``L`` items is cut into ``world`` contiguous parts as equal as possible
    (``batch_size // world`` each for a full batch); rank ``r`` takes part ``r``.
    Each batch comes with ``(scale, n_real)``: the rank's loss is multiplied by
    ``scale = n_real * world / L`` so that the mean of the ranks' gradients is the
    gradient of the mean loss over the ``L`` items (1.0 for a full batch). When
    ``L < world`` a rank without a part takes the batch's item ``r % L`` with
    ``scale = 0``: it runs the step (every rank must) but adds nothing.
    """
    order = _shuffle_order(n, seed)
    batches: list[list[int]] = []
    weights: list[tuple[float, int]] = []
    for start in range(0, n, batch_size):
        glob = order[start:start + batch_size]
        size = len(glob)
        base, extra = divmod(size, world)
        a = rank * base + min(rank, extra)
        part = glob[a:a + base + (1 if rank < extra else 0)]
        if part:
            batches.append(part)
            weights.append((len(part) * world / size, len(part)))
        else:
            batches.append([glob[rank % size]])
            weights.append((0.0, 0))
    return batches, weights


def _to_device(batch: Any, name: str, device: torch.device, *, required: tuple[str, ...] = CLASSIFIER_KEYS,
               non_blocking: bool) -> dict[str, Any]:
    """A batch as a dict on ``device`` (``"image"`` and ``"target"`` as float32; other tensors keep their dtype)."""
    d = _item_dict(batch, name, "batch", required=required)
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


def _batch_len(batch: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    """The number of items in a batch: the first dimension of its first tensor among ``keys`` (then any key).

    Only when the batch holds no tensor at all is a list counted (a batch of strings); a list or tuple
    field of collated items is the items' fields transposed, so its length is not the number of items.
    """
    for key in (*keys, *batch):
        value = batch.get(key)
        if isinstance(value, Tensor) and value.dim() > 0:
            return int(value.shape[0])
    for key in (*keys, *batch):
        value = batch.get(key)
        if isinstance(value, list) and value and not isinstance(value[0], (list, tuple, Tensor)):
            return len(value)
    raise ValueError(f"cannot tell how many items a batch holds (keys {sorted(map(str, batch))}): give it a "
                     f"tensor with the items along the first dimension")
