"""The loop's settings: ``train``, ``heatmap``, ``guidance`` and one group per guidance source, defaults and checks.

Each group is a dict; :func:`resolve` merges what the user gives over the defaults,
refuses unknown keys (the message lists the valid ones) and checks values, so a run
fails before any work rather than after an hour of training. A guidance source's group
(``radiomics``, or any registered source's name) has the source's own defaults and checks
(:mod:`chexradi.guidance.source`, :func:`chexradi.guidance.source_defaults`).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any, Optional

from ..guidance.source import DEFAULT_SOURCES

__all__ = ["DEFAULTS", "resolve", "defaults", "GROUPS"]

#: Default settings of every group; see docs/loop.md for what each one does.
DEFAULTS: dict[str, dict[str, Any]] = {
    "train": {
        "epochs": 8,             # maximum epochs per round (early stopping on validation mean AUC)
        "batch_size": 32,
        "lr": 1e-3,              # AdamW peak learning rate (cosine to 0 per round)
        "weight_decay": 1e-4,
        "patience": 3,           # epochs without improvement before stopping; None: never
        "class_weights": None,   # None, "balanced" or K numbers (positive-class weights)
        "warm_start": True,      # round k >= 1 starts from round k-1's weights (False: from scratch)
        "device": None,          # None: CUDA when available, else CPU
        "amp": None,             # None: on for CUDA
        "num_workers": 0,        # DataLoader worker processes
        "weights": None,         # optional local torchvision state_dict for round 0's backbone
        "output_stride": 16,     # input side / final feature map side: 32, 16 or 8 (dilated last stages)
    },
    "heatmap": {
        "method": "cam",         # "cam", "gradcam", "gradcampp"; "tandem" with the tandem source
        "target_layer": None,    # Grad-CAM layer; None: the model's feature layer
        "threshold": "fraction",  # heatmap -> mask: "fraction", "otsu", "percentile", "fixed"
        "value": None,           # the threshold's parameter (None: its default, fraction 0.5)
        "sigma": 0.0,            # Gaussian smoothing before thresholding, pixels
        "keep": "strongest",     # "strongest", "largest" or "all" connected components
        "min_size": 1,
        "region": "mask",        # radiomics inside the thresholded "mask" or its bounding "box"
        "batch_size": 64,        # images per heatmap batch
    },
    "guidance": {
        "enabled": True,         # False: rounds >= 1 retrain on images alone (the control arm; no radiomics)
        "sources": list(DEFAULT_SOURCES),  # guidance sources of guided rounds (chexradi.guidance.list_sources())
        "masks": "cam",          # where the radiomics masks come from: "cam", "truth", "random", "lungs"
        "alignment": "ntxent",   # "ntxent", "mse" or None
        "align_weight": 0.5,
        "temperature": 0.1,
        "hidden": 256,           # radiomics MLP width
        "proj_dim": 128,         # NT-Xent projection width
        "dropout": 0.1,
        "fuse": True,            # train (and evaluate) the fused image + radiomics head
        "select_on": "fused",    # which head's validation AUC picks the best epoch: "fused" or "image"
        "label": None,           # the arm's name in comparisons (None: control, the masks, or the sources)
    },
}

GROUPS = tuple(DEFAULTS)


def _fail(group: str, key: str, value: Any, want: str) -> None:
    raise ValueError(f"{group}[{key!r}] = {value!r} is invalid: {want}")


def _positive_int(group: str, key: str, v: Any, minimum: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        _fail(group, key, v, f"give an integer >= {minimum}")


def _positive_float(group: str, key: str, v: Any, *, allow_zero: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 if allow_zero else v > 0):
        _fail(group, key, v, "give a number " + (">= 0" if allow_zero else "> 0"))


def _check(group: str, s: dict[str, Any]) -> None:
    if group == "train":
        _positive_int(group, "epochs", s["epochs"])
        _positive_int(group, "batch_size", s["batch_size"])
        _positive_float(group, "lr", s["lr"])
        _positive_float(group, "weight_decay", s["weight_decay"], allow_zero=True)
        if s["patience"] is not None:
            _positive_int(group, "patience", s["patience"])
        _positive_int(group, "num_workers", s["num_workers"], 0)
        if not isinstance(s["warm_start"], bool):
            _fail(group, "warm_start", s["warm_start"], "give True or False")
        if s["amp"] is not None and not isinstance(s["amp"], bool):
            _fail(group, "amp", s["amp"], "give None, True or False")
        from ..nn.device import resolve_device
        from ..train.objectives import _class_weights_setting

        try:
            _class_weights_setting(s["class_weights"], None)
            resolve_device(s["device"])
        except ValueError as exc:
            raise ValueError(f"train settings: {exc}") from exc
        if s["weights"] is not None and not isinstance(s["weights"], (str, os.PathLike)):
            _fail(group, "weights", s["weights"], "give None or the path of a local torchvision state_dict")
        from ..nn.models import OUTPUT_STRIDES

        if isinstance(s["output_stride"], bool) or s["output_stride"] not in OUTPUT_STRIDES:
            _fail(group, "output_stride", s["output_stride"], f"use one of {', '.join(map(str, OUTPUT_STRIDES))}")
    elif group == "heatmap":
        from ..cam.masks import check_mask_options

        from ..names import LOOP_HEATMAP_METHODS, SOURCE_HEATMAP_METHODS

        if s["method"] not in LOOP_HEATMAP_METHODS:
            _fail(group, "method", s["method"], f"use one of {', '.join(LOOP_HEATMAP_METHODS)} ("
                  + ", ".join(f"{m!r} with the {src!r} guidance source" for m, src in SOURCE_HEATMAP_METHODS.items())
                  + ")")
        if s["target_layer"] is not None and not (isinstance(s["target_layer"], str) and s["target_layer"]):
            _fail(group, "target_layer", s["target_layer"], "give None or a module name such as 'backbone.layer4'")
        if s["region"] not in ("mask", "box"):
            _fail(group, "region", s["region"], "use 'mask' or 'box'")
        _positive_int(group, "batch_size", s["batch_size"])
        try:
            check_mask_options(method=s["threshold"], value=s["value"], sigma=s["sigma"], keep=s["keep"],
                               min_size=s["min_size"], connectivity=2)
        except ValueError as exc:
            raise ValueError(f"heatmap settings: {exc}") from exc
    elif group == "guidance":
        from ..guidance import ALIGNMENTS

        from .arms import MASK_ARMS

        from ..guidance import list_sources

        if not isinstance(s["enabled"], bool):
            _fail(group, "enabled", s["enabled"], "give True or False")
        srcs = s["sources"]
        if isinstance(srcs, str):
            srcs = s["sources"] = [x.strip() for x in srcs.split(",") if x.strip()]
        if not isinstance(srcs, (list, tuple)) or not srcs or not all(isinstance(x, str) for x in srcs):
            _fail(group, "sources", srcs, f"give a non-empty list of source names ({', '.join(list_sources())})")
        unknown = [x for x in srcs if x not in list_sources()]
        if unknown:
            _fail(group, "sources", srcs, f"unknown source(s) {unknown}; registered: {', '.join(list_sources())}")
        if len(set(srcs)) != len(srcs):
            _fail(group, "sources", srcs, "name each source once")
        s["sources"] = list(srcs)
        if s["masks"] not in MASK_ARMS:
            _fail(group, "masks", s["masks"], f"use one of {', '.join(MASK_ARMS)} (the control arm is "
                                              f"enabled=False, --no-guidance)")
        if s["alignment"] not in ALIGNMENTS:
            _fail(group, "alignment", s["alignment"], f"use one of {ALIGNMENTS}")
        _positive_float(group, "align_weight", s["align_weight"], allow_zero=True)
        _positive_float(group, "temperature", s["temperature"])
        _positive_int(group, "hidden", s["hidden"])
        _positive_int(group, "proj_dim", s["proj_dim"])
        _positive_float(group, "dropout", s["dropout"], allow_zero=True)
        if not s["dropout"] < 1:
            _fail(group, "dropout", s["dropout"], "give a number in [0, 1)")
        if not isinstance(s["fuse"], bool):
            _fail(group, "fuse", s["fuse"], "give True or False")
        if s["select_on"] not in ("fused", "image"):
            _fail(group, "select_on", s["select_on"], "use 'fused' or 'image'")
        if s["select_on"] == "fused" and not s["fuse"]:
            _fail(group, "select_on", s["select_on"], "'fused' needs fuse=True; use 'image'")
        if s["label"] is not None and not (isinstance(s["label"], str) and s["label"].strip()
                                           and "," not in s["label"]):
            _fail(group, "label", s["label"], "give None or a non-empty name without commas (e.g. 'tandem-drop0')")


def defaults(group: str) -> dict[str, Any]:
    """A copy of the defaults of ``group``: a loop group or a registered guidance source's.

    Raises
    ------
    ValueError
        Neither (the message lists the groups and sources).
    """
    if group in DEFAULTS:
        return copy.deepcopy(DEFAULTS[group])
    from ..guidance import list_sources, source_defaults

    if group in list_sources():
        return source_defaults(group)
    raise ValueError(f"unknown settings group {group!r}; valid: {', '.join(GROUPS)} and the guidance sources "
                     f"{', '.join(list_sources())}")


def resolve(group: str, given: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The defaults of ``group`` updated with ``given``, checked (a source's group by its own check).

    Raises
    ------
    ValueError
        ``given`` is not a mapping, has a key the group does not know (the message
        lists the valid keys) or a value out of range.
    """
    out = defaults(group)
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ValueError(f"{group} must be a dict of settings (keys: {', '.join(out)}), "
                         f"got {type(given).__name__}")
    unknown = sorted(set(given) - set(out))
    if unknown:
        raise ValueError(f"unknown {group} setting(s) {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(out)}")
    out.update(copy.deepcopy(dict(given)))
    if group in ("train", "heatmap", "guidance"):
        _check(group, out)
    else:
        from ..guidance import get_source

        get_source(group).check_settings(out)
    return out
