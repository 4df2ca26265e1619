"""Heatmaps, and heatmaps turned into masks and boxes.

- :class:`CAM`, :class:`GradCAM`, :class:`GradCAMPlusPlus`, :func:`heatmaps` (``chexradi.cam.methods``, torch):
  class activation maps for a batch, upsampled to the input and min-max scaled;
  hooks live inside a context manager.
- :func:`heatmap_to_mask`, :func:`mask_to_boxes`, :class:`MaskResult`, :class:`Box`
  (``chexradi.cam.masks``, numpy only): thresholds (fraction of the maximum, Otsu,
  percentile, Wang et al.'s fixed 0-255 values), connected components, boxes.
- :func:`render_overlay` (``chexradi.cam.overlay``): the PNG a person looks at.
- :func:`write_heatmaps` (``chexradi.cam.export``): what ``chexradi heatmap`` does.

Names are imported lazily, so ``chexradi.cam.masks`` never pulls in torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BaseCAM": "base", "CAM": "methods", "GradCAM": "methods", "GradCAMPlusPlus": "methods", "METHODS": "methods",
    "heatmaps": "methods",
    "heatmap_to_mask": "masks", "mask_to_boxes": "masks", "threshold_value": "masks", "MaskResult": "masks",
    "Box": "masks", "MaskWarning": "masks", "THRESHOLD_METHODS": "masks", "check_mask_options": "masks",
    "render_overlay": "overlay", "save_overlay": "overlay",
    "write_heatmaps": "export", "HeatmapReport": "export",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
