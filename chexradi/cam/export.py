"""What ``chexradi heatmap`` does: model + radiographs -> overlays, masks, boxes, tables.

For every image: read it (:func:`chexradi.data.readers.read_radiograph`), bring
it to the network (:func:`chexradi.data.transforms.to_model_input`, the
normalisation the checkpoint was trained with), score every class, and for each
*predicted* class (probability >= ``min_prob``; or every selected class with
``all_classes=True``) compute the heatmap (CAM or Grad-CAM), resize it to the
radiograph's own size, threshold it into a mask (:func:`~chexradi.cam.masks.heatmap_to_mask`)
and write:

``OUT/<image>/<class>.png``
    the overlay (radiograph | heatmap on it, with the box and mask contour);
``OUT/<image>/<class>_mask.nrrd``
    the mask, label 1, with the radiograph's pixel spacing (not written when empty);
``OUT/predictions.csv``
    one row per image: the probability of every class;
``OUT/regions.csv``
    one row per (image, class) heatmap: probability, threshold, box, flags, files;
``OUT/cases.csv``
    the usable (neither empty nor full) masks as a ``chexradi extract --batch`` cases file;
``OUT/heatmap.json``
    the model, its config, every setting, package versions and the failures.

An unreadable image is reported and skipped; the others are still written.
All files are written atomically. The overlays and masks are written without an fsync each; their
folders are made durable at once (``_io.sync_folders``) before the tables and ``heatmap.json``, so
``regions.csv`` never names a file that a power cut could lose.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._io import atomic_write, sync_folders
from .._progress import progress_on
from .masks import THRESHOLD_METHODS, MaskWarning, check_mask_options, heatmap_to_mask
from ..names import CAM_METHODS
from .overlay import render_overlay, save_overlay

__all__ = ["write_heatmaps", "HeatmapReport", "CAM_METHODS"]

logger = logging.getLogger("chexradi.cam")
PathLike = Union[str, Path]


@dataclass
class HeatmapReport:
    """What :func:`write_heatmaps` did."""

    out: Path
    n_images: int
    n_ok: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (image, reason)
    regions: list[dict[str, Any]] = field(default_factory=list)
    flagged: int = 0  # heatmaps whose mask was empty or covered the whole image

    @property
    def n_failed(self) -> int:
        return len(self.failures)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """Output folder per image: its stem, made unique with the parent folder or a counter."""
    names: list[str] = []
    seen: set[str] = set()
    for p in paths:
        base = _safe(p.stem)
        name = base if base not in seen else _safe(f"{p.parent.name}_{p.stem}")
        k = 2
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        names.append(name)
    return names


def write_heatmaps(
    model: Any,
    images: Sequence[PathLike],
    out: PathLike,
    *,
    method: str = "gradcam",
    target_layer: Optional[str] = None,
    classes: Optional[Sequence[Union[str, int]]] = None,
    min_prob: float = 0.5,
    all_classes: bool = False,
    threshold: str = "fraction",
    value: Optional[float] = None,
    sigma: float = 0.0,
    keep: str = "strongest",
    size: Optional[int] = None,
    device: Optional[str] = None,
    batch_size: int = 8,
    progress: Optional[bool] = None,
) -> HeatmapReport:
    """Heatmaps, masks, boxes and overlays for ``images``; see the module docstring for the files.

    Parameters
    ----------
    model:
        A checkpoint path (from :func:`chexradi.train.fit` or
        :func:`chexradi.nn.save_checkpoint`) or a :class:`chexradi.nn.Classifier`.
    images:
        Radiograph files (PNG/JPEG 8/16-bit, DICOM).
    out:
        Output folder (created).
    method:
        ``"gradcam"``, ``"cam"`` or ``"gradcampp"`` (:data:`~chexradi.names.CAM_METHODS`).
    target_layer:
        Grad-CAM layer name (default: the model's final feature map).
    classes:
        Class names or indices to consider (default: all).
    min_prob:
        A class is "predicted" for an image when its probability is at least this.
    all_classes:
        Write every considered class, predicted or not.
    threshold, value, sigma, keep:
        Passed to :func:`chexradi.cam.masks.heatmap_to_mask`.
    size:
        Network input side; default: the checkpoint's ``meta["image_size"]``, else 224.
    device:
        ``"cpu"``, ``"cuda"``...; default: cuda when available.
    batch_size:
        Images per forward pass.
    progress:
        Progress bar (default: when stderr is a terminal).

    Raises
    ------
    ValueError
        An invalid option (named), or no image given.
    FileNotFoundError
        The checkpoint does not exist.
    """
    import torch

    from ..data.readers import read_radiograph
    from ..data.transforms import NORMALIZATION, resize, to_model_input
    from ..nn import class_indices, load_model, resolve_device
    from ..nn.checkpoint import versions
    from ..nn.models import Classifier
    from .methods import heatmaps

    if method not in CAM_METHODS:
        raise ValueError(f"method must be one of {', '.join(CAM_METHODS)}, got {method!r}")
    if threshold not in THRESHOLD_METHODS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLD_METHODS)}, got {threshold!r}")
    check_mask_options(method=threshold, value=value, sigma=sigma, keep=keep)
    if not 0.0 <= float(min_prob) <= 1.0:
        raise ValueError(f"min_prob must be in [0, 1], got {min_prob}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    paths = [Path(p) for p in images]
    if not paths:
        raise ValueError("no images given; pass one or more radiograph files")

    meta: dict[str, Any] = {}
    model_source = "in-memory model"
    if isinstance(model, (str, Path)):
        model_source = str(Path(model).absolute())
        model, ckpt = load_model(model)
        meta = dict(ckpt.get("meta") or {})
    elif not isinstance(model, Classifier):
        raise ValueError(f"model must be a checkpoint path or a chexradi.nn.Classifier, got {type(model).__name__}")
    if meta.get("normalization", NORMALIZATION) != NORMALIZATION:
        raise ValueError(f"the checkpoint was trained with the normalisation {meta['normalization']!r}, "
                         f"but this chexradi uses {NORMALIZATION!r}")
    size = int(size or meta.get("image_size") or 224)
    dev = resolve_device(device)
    class_names = model.class_names
    selected = sorted(set(class_indices(model, classes))) if classes is not None else list(range(len(class_names)))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = _unique_names(paths)
    settings = {"method": method, "target_layer": target_layer or model.feature_layer,
                "classes": [class_names[i] for i in selected], "min_prob": float(min_prob),
                "all_classes": bool(all_classes), "threshold": threshold, "value": value, "sigma": float(sigma),
                "keep": keep, "size": size, "normalization": NORMALIZATION}
    report = HeatmapReport(out=out, n_images=len(paths), n_ok=0)
    predictions: list[dict[str, Any]] = []
    written: set[Path] = set()  # the image folders that got an overlay or a mask

    from tqdm.auto import tqdm

    show = progress_on(progress)
    was_training = model.training
    model.to(dev).eval()
    try:
        bar = tqdm(total=len(paths), desc="heatmaps", unit="image", disable=not show)
        for start in range(0, len(paths), batch_size):
            chunk = list(range(start, min(start + batch_size, len(paths))))
            loaded = []
            for i in chunk:
                try:
                    img, spacing = read_radiograph(paths[i])
                    loaded.append((i, img, spacing, to_model_input(img, size=size)))
                except (OSError, ValueError) as exc:
                    report.failures.append((str(paths[i]), str(exc)))
                    logger.warning("%s: skipped: %s", paths[i], exc)
            bar.update(len(chunk) - len(loaded))
            if not loaded:
                continue
            x = torch.from_numpy(np.stack([item[3] for item in loaded])).to(dev)
            maps, logits = heatmaps(model, x, method=method, classes=selected, target_layer=target_layer)
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            maps = maps.float().cpu().numpy()
            for row, (i, img, spacing, _) in enumerate(loaded):
                predictions.append({"image": str(paths[i]), "name": names[i],
                                    **{f"prob_{c}": f"{probs[row, k]:.6g}" for k, c in enumerate(class_names)}})
                for col, k in enumerate(selected):
                    p = float(probs[row, k])
                    if not all_classes and p < min_prob:
                        continue
                    heat = np.clip(resize(maps[row, col], img.shape), 0.0, 1.0)
                    region = _write_region(out / names[i], paths[i], img, spacing, heat, class_names[k], p,
                                           settings)
                    written.add(out / names[i])
                    report.flagged += int(region["empty"] or region["full"])
                    report.regions.append(region)
                report.n_ok += 1
                bar.update(1)
        bar.close()
    finally:
        model.train(was_training)

    sync_folders(sorted(written))
    _write_tables(out, report, predictions, class_names)
    manifest = {"kind": "chexradi-heatmap-output", "created": _dt.datetime.now().isoformat(timespec="seconds"),
                "model": model_source, "config": model.config, "checkpoint_meta": meta, "settings": settings,
                "n_images": report.n_images, "n_ok": report.n_ok, "n_regions": len(report.regions),
                "n_flagged": report.flagged, "failures": [{"image": a, "reason": b} for a, b in report.failures],
                "versions": versions()}
    with atomic_write(out / "heatmap.json") as fh:
        json.dump(manifest, fh, indent=2, default=str)
    return report


def _write_region(folder: Path, image_path: Path, img: np.ndarray, spacing: tuple[float, float],
                  heat: np.ndarray, class_name: str, prob: float, settings: dict[str, Any]) -> dict[str, Any]:
    from ..data.lungs import save_mask

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskWarning)
        res = heatmap_to_mask(heat, method=settings["threshold"], value=settings["value"],
                              sigma=settings["sigma"], keep=settings["keep"])
    for w in caught:
        if not issubclass(w.category, MaskWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    stem = _safe(class_name)
    box = res.boxes[0] if res.boxes else None
    caption = (f"{class_name}  p={prob:.3f}  {settings['method']}  {res.method} thr={res.threshold:.3g}"
               + ("  [EMPTY MASK]" if res.empty else "  [MASK COVERS IMAGE]" if res.full else ""))
    overlay = save_overlay(render_overlay(img, heat, boxes=res.boxes, mask=res.mask, caption=caption),
                           folder / f"{stem}.png", sync=False)
    mask_path = None if res.empty else save_mask(res.mask, spacing, folder / f"{stem}_mask.nrrd", sync=False)
    return {"image": str(image_path), "name": folder.name, "class": class_name, "probability": round(prob, 6),
            "method": settings["method"], "threshold_method": res.method,
            "threshold": float(res.threshold), "x": box.x if box else "", "y": box.y if box else "",
            "w": box.w if box else "", "h": box.h if box else "",
            "score": round(box.score, 6) if box else "", "n_boxes": len(res.boxes),
            "n_components": res.n_components, "mask_pixels": int(res.mask.sum()),
            "empty": res.empty, "full": res.full, "overlay": str(overlay),
            "mask": str(mask_path) if mask_path else "", "params": res.params}


def _write_tables(out: Path, report: HeatmapReport, predictions: list[dict[str, Any]],
                  class_names: Sequence[str]) -> None:
    pred_cols = ["image", "name"] + [f"prob_{c}" for c in class_names]
    with atomic_write(out / "predictions.csv", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=pred_cols)
        w.writeheader()
        w.writerows(predictions)
    reg_cols = ["image", "name", "class", "probability", "method", "threshold_method", "threshold", "x", "y", "w",
                "h", "score", "n_boxes", "n_components", "mask_pixels", "empty", "full", "overlay", "mask"]
    with atomic_write(out / "regions.csv", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=reg_cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(report.regions)
    with atomic_write(out / "cases.csv", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Image", "Mask", "Label", "Class", "Probability"])
        for r in report.regions:
            if r["mask"] and not r["full"]:
                w.writerow([str(Path(r["image"]).absolute()), str(Path(r["mask"]).absolute()), 1, r["class"],
                            r["probability"]])
