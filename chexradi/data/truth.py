"""Where a dataset's findings and anatomy are, when it knows: ground-truth masks, lung fields.

The loop's oracle and control arms (:mod:`chexradi.loop.arms`) and its measure of how close
the heatmap masks are to the lesions (:mod:`chexradi.loop.regions`) ask a dataset these
questions through the helpers here, so that neither reaches into a dataset's internals:

- a :class:`~chexradi.data.sources.PhantomDataset` knows every finding's mask
  (``masks_at``), the lung fields (``lungs_at``) and the heart (``heart_at``);
- a file dataset with ground-truth boxes (ChestX-ray14's ``BBox_List_2017.csv``) gives its
  boxes (``boxes_at``), filled as masks here; its lung fields are generated from the image
  (:func:`chexradi.data.lungs.lung_field_mask`).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

logger = logging.getLogger("chexradi.data")

__all__ = ["has_truth", "truth_masks", "lung_fields"]


def has_truth(ds: Any) -> bool:
    """Whether ``ds`` knows where some of its findings are: ground-truth masks, or at least one record with
    ground-truth boxes (a file dataset without any, CheXpert or MIMIC, knows none)."""
    if getattr(ds, "has_masks", False):
        return True
    if not callable(getattr(ds, "boxes_at", None)):
        return False
    records = getattr(ds, "records", None)
    return records is None or any(getattr(r, "boxes", None) for r in records)


def truth_masks(ds: Any, i: int, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Class -> bool mask of each finding of image ``i`` whose place is known: the dataset's ground-truth
    masks, else its boxes filled (boxes at the network input's size). Empty when nothing is known."""
    if getattr(ds, "has_masks", False):
        return {c: np.asarray(m, bool) for c, m in ds.masks_at(i).items()}
    boxes_at = getattr(ds, "boxes_at", None)
    if not callable(boxes_at):
        return {}
    out: dict[str, np.ndarray] = {}
    for c, bs in boxes_at(i).items():
        m = np.zeros(shape, bool)
        for (x, y, w, h) in bs:
            r0, c0 = max(0, int(np.floor(y))), max(0, int(np.floor(x)))
            m[r0:int(np.ceil(y + h)), c0:int(np.ceil(x + w))] = True
        if m.any():
            out[c] = m
    return out


def lung_fields(ds: Any, i: int, image: Callable[[], np.ndarray]) -> np.ndarray:
    """The bool lung fields of image ``i``: the dataset's own (``lungs_at``) or generated from the image
    (``image()`` gives it at the network input's size). Where generation fails, the whole image."""
    if getattr(ds, "has_masks", False):
        return np.asarray(ds.lungs_at(i), bool)
    from .lungs import lung_field_mask

    img = image()
    try:
        return np.asarray(lung_field_mask(img), bool)
    except ValueError as exc:  # no plausible lung fields in this image: fall back to all of it
        logger.info("no lung fields found in image %d (%s); the whole image is used", i, exc)
        return np.ones(img.shape, bool)
