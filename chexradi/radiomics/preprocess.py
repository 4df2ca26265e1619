"""Crop and discretize: turn an (image, mask) pair into the :class:`ROI` the feature classes use."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .discretize import discretize
from .features.base import ROI

__all__ = ["bounding_box", "crop_to_mask", "roi_from_arrays"]


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the tight bounding box of ``mask`` (numpy order)."""
    idx = np.nonzero(mask)
    if len(idx[0]) == 0:
        raise ValueError("The mask selects no voxel; check the mask file and `label`.")
    return tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)


def crop_to_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` and ``mask`` to the bounding box of ``mask`` (no padding)."""
    bb = bounding_box(mask)
    return image[bb], mask[bb]


def roi_from_arrays(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Optional[Sequence[float]] = None,
    settings: Optional[dict[str, Any]] = None,
) -> ROI:
    """Build an :class:`ROI` from numpy arrays in numpy order.

    ``image`` and ``mask`` are 2-D ``(y, x)`` or 3-D ``(z, y, x)``; ``mask`` is a
    boolean array (already compared with the label). ``spacing`` is in numpy
    order too (default 1.0 per axis). No resampling or normalisation happens
    here: the extractor does that first.
    """
    settings = dict(settings or {})
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ.")
    ndim = image.ndim
    if ndim not in (2, 3):
        raise ValueError(f"images must be 2-D or 3-D, got {ndim}-D.")
    if spacing is None:
        spacing = (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim:
        raise ValueError(f"spacing {spacing} does not match a {ndim}-D image.")
    if ndim == 2:
        image = image[None]
        mask = mask[None]
        spacing3 = (1.0,) + spacing
    else:
        spacing3 = spacing
    image, mask = crop_to_mask(image, mask)
    binned, edges = discretize(
        image,
        mask,
        bin_width=float(settings.get("binWidth", 25)),
        bin_count=settings.get("binCount"),
    )
    return ROI(
        image=np.ascontiguousarray(image),
        mask=np.ascontiguousarray(mask),
        spacing=spacing3,  # type: ignore[arg-type]
        ndim=ndim,
        binned=np.ascontiguousarray(binned),
        bin_edges=edges,
        settings=settings,
    )
