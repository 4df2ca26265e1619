"""Model checkpoints: one file that rebuilds the model and says what produced it.

A checkpoint is a ``torch.save`` dict::

    {"format": "chexradi-model/1", "config": model.config, "state_dict": ...,
     "meta": {...}, "versions": {...}, "model_module": ..., ...}

Any registered model (:mod:`chexradi.nn.registry`: a classifier, a text encoder, a
report generator) is saved and loaded the same way: ``config["name"]`` says which,
``model_module`` which module registers it.

``meta`` carries what inference needs besides the weights (image size,
intensity normalisation); :mod:`chexradi.train` adds optimizer and scheduler
state under its own keys for resuming. Files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .._io import atomic_path
from .registry import list_models, model_from_config, model_name, model_spec

__all__ = ["FORMAT", "versions", "save_checkpoint", "read_checkpoint", "load_model"]

FORMAT = "chexradi-model/1"
PathLike = Union[str, Path]


def versions() -> dict[str, str]:
    """Versions of chexradi, torch, torchvision and numpy, recorded in every model output."""
    import numpy
    import torchvision

    from .. import __version__

    return {"chexradi": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__}


def save_checkpoint(path: PathLike, model: nn.Module, *, meta: Optional[dict[str, Any]] = None,
                    **extra: Any) -> Path:
    """Write ``model`` (config + weights), ``meta`` and ``extra`` keys to ``path`` atomically.

    ``model.config`` (a dict with the model's ``"name"``) is what :func:`load_model`
    rebuilds it from; a model whose name is not registered
    (:func:`~chexradi.nn.register_model`) is saved, but loading it by name needs its
    factory registered first (the checkpoint records its module).

    Raises
    ------
    ValueError
        ``model`` has no ``config`` dict with a ``"name"`` (build it with
        :func:`~chexradi.nn.create_model`).
    """
    name = model_name(model)
    if name is None:
        raise ValueError(f"save_checkpoint needs a chexradi model (model.config with its registered name); "
                         f"got a {type(model).__name__} without one: build it with chexradi.nn.create_model, "
                         f"or register its factory with chexradi.nn.register_model")
    config = model.config
    module = model_spec(name).module if name in list_models() else type(model).__module__
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "config": dict(config), "state_dict": state,
               "meta": dict(meta or {}), "versions": versions(), "model_module": module, **extra}
    with atomic_path(p) as tmp:
        torch.save(payload, tmp)
    return p


def read_checkpoint(path: PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``path``, checked to be a chexradi model checkpoint.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a readable chexradi checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model checkpoint not found: {p} (pass the best.pt/last.pt written by "
                                f"chexradi.train.fit or chexradi.nn.save_checkpoint)")
    kind = _other_kind(p)
    if kind is not None:
        raise ValueError(f"{p} is {kind}, not a model checkpoint; pass the best.pt/last.pt written by "
                         f"chexradi.train.fit (`chexradi heatmap MODEL.pt IMAGE...`: the checkpoint comes first)")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        detail = (str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__).rstrip(".")
        raise ValueError(f"cannot read model checkpoint {p} ({p.stat().st_size} bytes): {detail}. The file is "
                         f"truncated or not a torch.save file (an interrupted copy or download?); copy it again, "
                         f"or pass the best.pt/last.pt written by chexradi.train.fit") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "config" not in ckpt:
        raise ValueError(f"{p} is not a chexradi model checkpoint (expected format {FORMAT!r}); "
                         f"a plain torchvision state_dict goes to create_model(..., weights=PATH)")
    if not isinstance(ckpt["config"], dict):
        raise ValueError(f"{p} has a malformed model config ({type(ckpt['config']).__name__}, expected a dict); "
                         f"use the checkpoint as written by chexradi.train.fit")
    return ckpt


# Leading bytes of files that are often passed where a checkpoint belongs.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"NRRD", "an NRRD image"),
          (b"{", "a JSON/text file"), (b"\x1f\x8b", "a gzip file"))


def _other_kind(p: Path) -> Optional[str]:
    """What ``p`` is when its first bytes say it is an image or text rather than a torch file, else None."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if len(head) == 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def load_model(path: PathLike, *, map_location: Any = "cpu",
               expect: Optional[str] = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` by its registered name; returns ``(model, checkpoint_dict)`` in eval mode.

    Parameters
    ----------
    expect:
        When given, the model name the caller expects (e.g. ``"resnet50_ta"``); a
        checkpoint of another model raises instead of loading.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, not a checkpoint, an unregistered or unexpected model, or
        weights that do not fit.
    """
    ckpt = read_checkpoint(path, map_location=map_location)
    cfg = dict(ckpt["config"])
    name = cfg.get("name")
    if expect is not None and expect != name:
        raise ValueError(f"checkpoint {path} holds a {name} model, not {expect}; "
                         f"pass a checkpoint of {expect} or build the model as {name}")
    model = model_from_config(cfg, module=ckpt.get("model_module"), source=f"checkpoint {path}")
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {path} do not fit a {name} model: {str(exc).splitlines()[0]}; "
                         f"its config and weights disagree (an edited or mixed-up file): use the checkpoint "
                         f"as written by chexradi.train.fit") from exc
    model.eval()
    return model, ckpt
