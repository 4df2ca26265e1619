"""Loop stage 2: heatmaps -> masks and boxes for every image of every split, written to the round folder.

For each split, the model's class heatmaps (:func:`chexradi.train.predict` with
``heatmaps="cam"``, ``"gradcam"`` or ``"gradcampp"``, in chunks so memory does not grow with the data
set) are thresholded into masks (:func:`chexradi.cam.masks.heatmap_to_mask`) for every
class the model scores. Each mask is written as ``masks/<split>/<index>_<k>.nrrd``
(label 1, at the network input's 1 x 1 pixel grid; with ``region="box"`` the filled
bounding box of the kept component instead), and one row per (image, class) goes to
``regions.csv`` as it is made (nothing per row is kept in memory but the boxes of the
split the caller evaluates on). When the previous round's masks exist, the IoU between
the two masks of each (image, class) is averaged into "how far the masks moved".

A distributed run's ranks each write the rows of their shard to ``regions.rank<r>.csv``;
:func:`merge_region_files` concatenates them, split by split, into the ``regions.csv`` one
process would write.
"""
from __future__ import annotations

import csv
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
from torch import nn
from torch.utils.data import Subset

from .._io import atomic_write, sync_folders

logger = logging.getLogger("chexradi.loop")

__all__ = ["Regions", "make_regions", "merge_region_files", "read_regions", "image_id", "mask_file",
           "REGION_COLUMNS"]

#: Columns of ``regions.csv``.
REGION_COLUMNS = ["split", "index", "image_id", "class", "prob", "x", "y", "w", "h", "threshold", "empty", "full",
                  "mask"]

#: Images per chunk = heatmap batch size x this.
_CHUNK_BATCHES = 8


@dataclass
class Regions:
    """What :func:`make_regions` produced.

    Attributes
    ----------
    n_rows : int
        Rows written, one per (split, image, class) (:data:`REGION_COLUMNS`: ``split``,
        ``index``, ``image_id``, ``class``, ``prob``, ``x``, ``y``, ``w``, ``h`` (blank
        without a box), ``threshold``, ``empty``, ``full``, ``mask``, the path relative to
        the round folder).
    boxes : dict
        ``(split, index, class) -> [(x, y, w, h)]`` (empty list when the mask is empty), for
        the images of ``boxes_for`` only.
    n_empty, n_full : int
        Masks that came out empty / covering the whole image.
    mask_iou : float or None
        Mean IoU with the previous round's masks over the (image, class) pairs where
        either is non-empty; None without a previous round.
    n_compared : int
        Pairs that entered ``mask_iou``.
    seconds_cam, seconds_masks : float
        Wall time computing heatmaps (the model's forward/backward) and turning them into
        masks, boxes and files (thresholds, components, NRRD writes, mask IoU).
    truth_iou_sum, truth_iou_n : dict
        Per split, the sum and count of the IoU of each present finding's heatmap mask with
        its ground truth (masks or filled boxes; data without either has none):
        :attr:`truth_iou` is their ratio, how close this round's masks are to the lesions.
    """

    n_rows: int = 0
    boxes: dict[tuple[str, int, str], list[tuple[float, float, float, float]]] = field(default_factory=dict)
    n_empty: int = 0
    n_full: int = 0
    mask_iou: Optional[float] = None
    n_compared: int = 0
    seconds_cam: float = 0.0
    seconds_masks: float = 0.0
    truth_iou_sum: dict[str, float] = field(default_factory=dict)
    truth_iou_n: dict[str, int] = field(default_factory=dict)

    @property
    def truth_iou(self) -> dict[str, float]:
        """Split -> mean IoU of the heatmap masks of present findings with their ground truth."""
        return {s: self.truth_iou_sum[s] / n for s, n in self.truth_iou_n.items() if n}

    @classmethod
    def merged(cls, parts: Sequence["Regions"]) -> "Regions":
        """The regions of disjoint shards (e.g. one per rank of a distributed run): counts add up; boxes are
        merged; ``mask_iou`` is the pair-weighted mean; the seconds are the slowest shard's (they ran at once).
        The rows are in the shards' files (:func:`merge_region_files`).
        """
        out = cls()
        iou_sum = 0.0
        for p in parts:
            out.n_rows += p.n_rows
            out.boxes.update(p.boxes)
            out.n_empty += p.n_empty
            out.n_full += p.n_full
            out.n_compared += p.n_compared
            iou_sum += (p.mask_iou or 0.0) * p.n_compared
            out.seconds_cam = max(out.seconds_cam, p.seconds_cam)
            out.seconds_masks = max(out.seconds_masks, p.seconds_masks)
            for s, v in p.truth_iou_sum.items():
                out.truth_iou_sum[s] = out.truth_iou_sum.get(s, 0.0) + v
                out.truth_iou_n[s] = out.truth_iou_n.get(s, 0) + p.truth_iou_n[s]
        if out.n_compared:
            out.mask_iou = iou_sum / out.n_compared
        return out


def image_id(ds: Any, i: int) -> str:
    """The image's id in its source (file name, or ``#i``)."""
    ids = getattr(ds, "ids", None)
    if ids is not None:
        return str(ids[i])
    recs = getattr(ds, "records", None)
    if recs is not None:
        return str(recs[i].image_id)
    return f"#{i}"


def mask_folder(split: str) -> str:
    """Relative path (under the round folder) of the folder holding the masks of ``split``."""
    return f"masks/{split}"


def mask_file(split: str, index: int, k: int) -> str:
    """Relative path of the mask of class ``k`` of image ``index`` of ``split``."""
    return f"{mask_folder(split)}/{index:06d}_{k:02d}.nrrd"


def _read_mask(path: Path) -> Optional[np.ndarray]:
    """The mask in ``path`` as a bool array; None when there is no such file."""
    from .._nrrd import read_nrrd_array

    if not path.is_file():
        return None
    got = read_nrrd_array(path)  # the masks the loop writes; any other NRRD goes to SimpleITK
    if got is not None:
        return got.array > 0
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0


def make_regions(model: nn.Module, splits: Mapping[str, Any], class_names: Sequence[str], *,
                 settings: Mapping[str, Any], round_dir: Path, prev_round_dir: Optional[Path],
                 device: Any = None, progress: Optional[bool] = None,
                 indices: Optional[Mapping[str, range]] = None, rows_file: str = "regions.csv",
                 boxes_for: Optional[str] = None, heatmap_fn: Any = None) -> Regions:
    """Heatmaps, masks, boxes and ``regions.csv`` for every image of ``splits`` (see the module docstring).

    ``heatmap_fn`` is the heatmap of a method a guidance source's module offers (``fn(model, x) -> (maps,
    logits)``; TandemNet's attention), used instead of the CAM method ``settings["method"]`` names.

    ``settings`` is the loop's resolved ``heatmap`` group. ``indices`` (split -> range of image indices)
    restricts the work to a shard (a rank of a distributed run), whose rows go to ``rows_file`` (in the
    round folder; :func:`merge_region_files` joins the shards). Boxes are kept for the images of the split
    ``boxes_for`` (None: every split).
    """
    out = Regions()
    cam_log = logging.getLogger("chexradi.cam")
    old_level = cam_log.level
    cam_log.setLevel(logging.ERROR)  # empty/full masks are counted here, not logged one by one
    with atomic_write(round_dir / rows_file, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(REGION_COLUMNS)
        try:
            iou_sum = _regions(model, splits, class_names, settings, round_dir, prev_round_dir, device, progress,
                               indices, boxes_for, out, writer, heatmap_fn)
        finally:
            cam_log.setLevel(old_level)
        t0 = time.perf_counter()
        # the masks were written without an fsync each (one per file costs more than making the mask on a
        # local disk, far more on a network one): made durable here, at once, before regions.csv
        sync_folders([round_dir / mask_folder(split) for split in splits])
        out.seconds_masks += time.perf_counter() - t0
    if out.n_compared:
        out.mask_iou = iou_sum / out.n_compared
    if out.n_empty or out.n_full:
        logger.info("%d empty and %d full mask(s) of %d", out.n_empty, out.n_full, out.n_rows)
    return out


def _regions(model: nn.Module, splits: Mapping[str, Any], class_names: Sequence[str], settings: Mapping[str, Any],
             round_dir: Path, prev_round_dir: Optional[Path], device: Any, progress: Optional[bool],
             indices: Optional[Mapping[str, range]], boxes_for: Optional[str], out: Regions, writer: Any,
             heatmap_fn: Any = None) -> float:
    """The work of :func:`make_regions`: fills ``out``, writes each row with ``writer``; returns the IoU sum."""
    from ..cam.masks import MaskWarning, heatmap_to_mask, mask_iou
    from ..data.lungs import save_mask
    from ..train import predict
    from ..data.truth import has_truth, truth_masks

    chunk = int(settings["batch_size"]) * _CHUNK_BATCHES
    iou_sum = 0.0
    for split, ds in splits.items():
        known = has_truth(ds)
        todo = range(len(ds)) if indices is None else indices.get(split, range(0))
        for a in range(todo.start, todo.stop, chunk):
            part = Subset(ds, range(a, min(todo.stop, a + chunk)))
            t0 = time.perf_counter()
            pred = predict(model, part, batch_size=int(settings["batch_size"]), device=device,
                           heatmaps=heatmap_fn if heatmap_fn is not None else settings["method"],
                           target_layer=settings["target_layer"] if heatmap_fn is None else None,
                           progress=progress)
            assert pred.heatmaps is not None
            t1 = time.perf_counter()
            out.seconds_cam += t1 - t0
            for j in range(len(part)):
                idx = a + j  # predict returns the part's items in order
                iid = image_id(ds, idx)
                truth = truth_masks(ds, idx, tuple(pred.heatmaps.shape[-2:])) if known else {}
                for k, cls in enumerate(class_names):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", MaskWarning)
                        res = heatmap_to_mask(pred.heatmaps[j, k], method=settings["threshold"],
                                              value=settings["value"], sigma=settings["sigma"],
                                              keep=settings["keep"], min_size=settings["min_size"])
                    out.n_empty += int(res.empty)
                    out.n_full += int(res.full)
                    box = None
                    if res.boxes:
                        b = max(res.boxes, key=lambda bb: bb.score)
                        box = (float(b.x), float(b.y), float(b.w), float(b.h))
                    mask = res.mask.astype(bool)
                    if settings["region"] == "box":
                        mask = np.zeros_like(mask)
                        for b in res.boxes:
                            mask[b.y:b.y + b.h, b.x:b.x + b.w] = True
                    if cls in truth:
                        v = mask_iou(mask, truth[cls])
                        if v == v:
                            out.truth_iou_sum[split] = out.truth_iou_sum.get(split, 0.0) + v
                            out.truth_iou_n[split] = out.truth_iou_n.get(split, 0) + 1
                    rel = mask_file(split, idx, k)
                    save_mask(mask.view(np.uint8), (1.0, 1.0), round_dir / rel, sync=False)
                    if prev_round_dir is not None:
                        prev = _read_mask(prev_round_dir / rel)
                        if prev is not None and prev.shape == mask.shape:
                            union = np.count_nonzero(prev | mask)
                            if union:
                                iou_sum += np.count_nonzero(prev & mask) / union
                                out.n_compared += 1
                    if boxes_for is None or split == boxes_for:
                        out.boxes[(split, idx, cls)] = [box] if box is not None else []
                    writer.writerow([split, idx, iid, cls, float(pred.probs[j, k]),
                                     *(("", "", "", "") if box is None else box), float(res.threshold),
                                     bool(res.empty), bool(res.full), rel])
                    out.n_rows += 1
            out.seconds_masks += time.perf_counter() - t1
    return iou_sum


def merge_region_files(paths: Sequence[Path], out: Path, split_order: Sequence[str]) -> None:
    """Join the ``regions.csv`` rows of disjoint shards (one file per rank, each covering one contiguous block
    of every split's images, in rank order) into ``out``, as one process writes them: split by split in
    ``split_order``, and within a split shard by shard. Reads each file once per split; holds one row."""
    with atomic_write(out, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(REGION_COLUMNS)
        for split in split_order:
            for p in paths:
                with open(p, newline="") as src:
                    r = csv.reader(src)
                    next(r, None)
                    w.writerows(row for row in r if row and row[0] == split)


def read_regions(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a ``regions.csv``, one at a time (``empty`` as a bool). A missing file is refused here, not
    at the first row."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing but its round is marked finished; delete the round folder "
                                f"{path.parent} and resume")
    return _region_rows(path)


def _region_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            row["empty"] = row["empty"] == "True"
            yield row
