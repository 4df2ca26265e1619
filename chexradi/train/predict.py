"""Inference: :func:`predict` (probabilities, logits and, on request, heatmaps and embeddings)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler

from .._progress import progress_on
from ..names import CAM_METHODS
from ..nn.device import resolve_device
from ..nn.models import class_indices
from .data import _check_collate_fn, _check_data, _make_loader, _peek, _to_device
from .runtime import _autocast, _check_int, _check_progress, _progress, _resolve_amp


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


class _SourceHeatmap:
    """A guidance module's heatmap ``fn(model, x) -> (maps, logits)`` called as the CAM methods are."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, model: nn.Module, x: Tensor, **_: Any) -> Any:
        return self.fn(model, x)


def predict(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 32,
    device: Union[None, str, torch.device] = None,
    amp: Optional[bool] = None,
    heatmaps: Union[None, str, Callable[..., Any]] = None,
    classes: Optional[Sequence[Union[int, str]]] = None,
    target_layer: Any = None,
    embeddings: bool = False,
    num_workers: int = 0,
    progress: Optional[bool] = None,
    objective: Any = None,
    head: Optional[str] = None,
    collate_fn: Optional[Callable[[list[Any]], Any]] = None,
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
        None, ``"cam"``, ``"gradcam"`` or ``"gradcampp"``: per-class maps from
        :func:`chexradi.cam.methods.heatmaps`, upsampled to the input size; or a function
        ``fn(model, x) -> (maps (B, K, H, W) in [0, 1], logits)`` (a guidance module's
        ``heatmap_methods``, e.g. TandemNet's image attention), whose logits are then the prediction.
    classes:
        Restrict the heatmaps to these classes (indices or names); default all.
    target_layer:
        Passed to the heatmap method (default: the model's feature layer).
    embeddings:
        Also return the ``(N, C)`` pooled features (what guidance aligns with).
    progress:
        Progress bar: None shows it when stderr is a terminal.
    objective:
        Score with ``objective.logits(model, batch)`` instead of ``model(image)``
        (e.g. a :class:`~chexradi.guidance.GuidedObjective`, with ``head=``,
        whose batches carry the guidance vectors). Not combined with ``heatmaps`` or
        ``embeddings``, which come from the model itself. A module objective is
        moved to the device and put in eval mode, and both are restored afterwards.
    head:
        With ``objective``: the head to score, by name (``objective.logits(model, batch,
        head=head)``; e.g. ``"image"`` or ``"fused"`` of a
        :class:`~chexradi.guidance.GuidedObjective`); None: the objective's default.
    collate_fn:
        Makes a batch of a list of items (torch's default collation when None), as
        for :func:`~chexradi.train.fit`: e.g. padding report tokens a guidance
        source adds to the items. A DataLoader keeps its own.

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
    if heatmaps is not None and not callable(heatmaps) and heatmaps not in CAM_METHODS:
        raise ValueError(f"unknown heatmaps {heatmaps!r}; use None, one of {', '.join(CAM_METHODS)} or a function "
                         f"fn(model, x) -> (maps, logits) (a guidance module's heatmap_methods)")
    if callable(heatmaps) and (classes is not None or target_layer is not None):
        raise ValueError("classes and target_layer apply to the CAM methods; a heatmap function gives every class "
                         "from its own layer")
    if classes is not None and heatmaps is None:
        raise ValueError("classes selects heatmap classes; pass heatmaps='cam', 'gradcam' or 'gradcampp' with it "
                         "(probabilities always cover every class)")
    if target_layer is not None and heatmaps is None:
        raise ValueError("target_layer applies to heatmaps; pass heatmaps='cam', 'gradcam' or 'gradcampp' with it")
    if not isinstance(embeddings, bool):
        raise ValueError(f"embeddings must be True or False, got {embeddings!r}")
    _check_progress(progress)
    _check_collate_fn(collate_fn)
    if head is not None and objective is None:
        raise ValueError(f"head={head!r} selects one of an objective's heads; pass objective= with it (the model "
                         f"alone has one head: call predict without head)")
    if objective is not None:
        if not callable(getattr(objective, "logits", None)):
            raise ValueError(f"objective must have a logits(model, batch) method, got {type(objective).__name__}")
        if heatmaps is not None or embeddings:
            raise ValueError("objective scores the batch its own way; heatmaps and embeddings come from the "
                             "model: call predict twice (once with objective, once with heatmaps/embeddings)")
    if embeddings and not all(callable(getattr(model, m, None)) for m in
                              ("forward_features", "embed_features", "forward_head")):
        raise ValueError("embeddings=True needs a chexradi Classifier (forward_features / embed_features / "
                         "forward_head)")
    heat_classes = None
    if heatmaps is not None:
        k = getattr(model, "num_classes", None)
        heat_classes = class_indices(model, classes) if classes is not None else (
            list(range(k)) if k is not None else None)
    dev = resolve_device(device)
    _, amp_dtype = _resolve_amp(amp, dev)
    # what the batches must carry: the image, or (an objective of another model: a report classifier) the keys
    # its logits read
    required = ("image",) if objective is None else tuple(
        k for k in (getattr(objective, "required_keys", None) or ("image",)) if k != "target")
    _peek(data, "data", model, required=required, collate_fn=collate_fn)
    cam_fn: Any = None
    if callable(heatmaps):
        cam_fn = _SourceHeatmap(heatmaps)
    elif heatmaps is not None:
        from ..cam.methods import heatmaps as cam_fn  # noqa: F811 - lazy: the CAM stage is optional here

    was_training = model.training
    obj_module = objective if isinstance(objective, nn.Module) else None
    obj_training = obj_module.training if obj_module is not None else False
    try:
        home = next(model.parameters()).device
    except StopIteration:
        home = dev
    try:
        obj_home = next(obj_module.parameters()).device if obj_module is not None else dev
    except StopIteration:
        obj_home = dev
    pin = dev.type == "cuda"
    loader = _make_loader(data, batch_size=batch_size, shuffle=False, seed=0, num_workers=num_workers,
                          pin_memory=pin, collate_fn=collate_fn)
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
        if obj_module is not None:
            obj_module.to(dev)
            obj_module.eval()
        for raw in _progress(loader, progress_on(progress), "predict"):
            batch = _to_device(raw, "data", dev, required=required, non_blocking=pin)
            x = batch.get("image")
            b = int(batch[required[0]].shape[0])
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
                    elif objective is not None:
                        logits = (objective.logits(model, batch) if head is None
                                  else objective.logits(model, batch, head=head))
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
        if obj_module is not None:
            if obj_home != dev:
                obj_module.to(obj_home)
            obj_module.train(obj_training)
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
