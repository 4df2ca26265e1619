"""Localisation accuracy at T(IoU) / T(IoBB), box overlaps.

Localisation (Wang et al., CVPR 2017, ChestX-ray14)
---------------------------------------------------
Boxes are ``(x, y, w, h)`` in pixels, the ChestX-ray14 ``BBox_List_2017`` convention
(``x`` = column and ``y`` = row of the top-left corner), with continuous coordinates:
a box covers ``[x, x + w) x [y, y + h)`` and its area is ``w * h``. For a ground-truth
box ``G`` and a predicted (detected) box ``P``:

- ``IoU(P, G) = |P ∩ G| / |P ∪ G| = |P ∩ G| / (|P| + |G| - |P ∩ G|)``;
- ``IoBB(P, G) = |P ∩ G| / |P|`` (intersection over the *detected* box's area).

A ground-truth box of class ``c`` in image ``i`` is localised correctly at threshold
``T`` when at least one predicted box of class ``c`` in image ``i`` has ``IoU > T``
(or ``IoBB > T``; the comparison is strict). The accuracy of class ``c`` is the number
of its correctly localised ground-truth boxes over the number of its ground-truth boxes.
Wang et al. report T(IoU) in :data:`IOU_THRESHOLDS` and T(IoBB) in
:data:`IOBB_THRESHOLDS`.

This module imports numpy only; never torch.
"""
from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

__all__ = ["IOU_THRESHOLDS", "IOBB_THRESHOLDS", "LOCALIZATION_METRICS", "box_iou", "box_iobb",
           "localization_accuracy", "LocalizationTable"]

IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
"""T(IoU) of Wang et al. 2017, Table 3."""
IOBB_THRESHOLDS = (0.1, 0.25, 0.5, 0.75, 0.9)
"""T(IoBB) of Wang et al. 2017, Table 3."""
LOCALIZATION_METRICS = ("iou", "iobb")


# ----------------------------------------------------------------------------- boxes
BoxLike = Any  # a Box (anything with x, y, w, h attributes), or a sequence / 1-D array (x, y, w, h[, score])

# column names accepted in dict rows: ours (regions.csv) first, then BBox_List_2017.csv's
_ROW_KEYS = {
    "image": ("image", "Image Index"),
    "class": ("class", "Finding Label"),
    "x": ("x", "Bbox [x"),
    "y": ("y",),
    "w": ("w",),
    "h": ("h", "h]"),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _as_box(box: BoxLike, name: str) -> tuple[float, float, float, float]:
    """``(x, y, w, h)`` as floats, checked: finite, ``w > 0``, ``h > 0``."""
    if all(hasattr(box, a) for a in ("x", "y", "w", "h")):
        vals = [box.x, box.y, box.w, box.h]
    else:
        try:
            arr = np.asarray(box, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"`{name}` is not a box ({box!r}); pass a Box or a sequence "
                             f"(x, y, w, h) of numbers") from exc
        if arr.ndim != 1 or arr.size not in (4, 5):
            raise ValueError(f"`{name}` must be one box (x, y, w, h) or (x, y, w, h, score), "
                             f"got shape {arr.shape}: {box!r}")
        vals = arr[:4].tolist()
    try:
        x, y, w, h = (float(v) for v in vals)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` has a non-numeric coordinate ({vals!r}); x, y, w, h must be "
                         f"numbers") from exc
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"`{name}` has a NaN/inf coordinate: (x, y, w, h) = {(x, y, w, h)}; "
                         f"drop or fix that box")
    if w <= 0 or h <= 0:
        raise ValueError(f"`{name}` must have w > 0 and h > 0 (pixels), got (x, y, w, h) = "
                         f"{(x, y, w, h)}; boxes are (x, y, width, height), not corner pairs")
    return x, y, w, h


def _overlap(pred: np.ndarray, truth: np.ndarray, metric: str) -> np.ndarray:
    """``(n_truth, n_pred)`` IoU or IoBB of every pair; rows of ``pred`` / ``truth`` are (x, y, w, h)."""
    px, py, pw, ph = (pred[None, :, i] for i in range(4))
    tx, ty, tw, th = (truth[:, None, i] for i in range(4))
    iw = np.clip(np.minimum(px + pw, tx + tw) - np.maximum(px, tx), 0.0, None)
    ih = np.clip(np.minimum(py + ph, ty + th) - np.maximum(py, ty), 0.0, None)
    inter = iw * ih
    if metric == "iobb":
        return inter / (pw * ph)
    return inter / (pw * ph + tw * th - inter)


def box_iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two boxes.

    ``IoU(A, B) = |A ∩ B| / (|A| + |B| - |A ∩ B|)``, with ``|A| = w * h`` and the box
    covering ``[x, x + w) x [y, y + h)`` (continuous coordinates, so boxes that only
    touch along an edge have IoU 0). Symmetric; 1 for identical boxes.

    Parameters
    ----------
    a, b:
        Boxes: a :class:`chexradi.cam.masks.Box` (anything with ``x, y, w, h``), or a
        sequence / 1-D array ``(x, y, w, h)`` (a fifth value, the score, is ignored).

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        A box that is not 4 (or 5) numbers, has a NaN/inf coordinate, or ``w <= 0`` / ``h <= 0``.
    """
    pa = np.array([_as_box(a, "a")])
    pb = np.array([_as_box(b, "b")])
    return float(_overlap(pa, pb, "iou")[0, 0])


def box_iobb(pred: BoxLike, truth: BoxLike) -> float:
    """Intersection over the detected bounding box's area (Wang et al. 2017).

    ``IoBB(P, G) = |P ∩ G| / |P|``, where ``P`` is the predicted (detected) box and ``G``
    the ground truth: 1 when the prediction lies inside the ground truth, however small.
    Not symmetric.

    Parameters
    ----------
    pred, truth:
        Boxes, as for :func:`box_iou`.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        As :func:`box_iou`, naming ``pred`` or ``truth``.
    """
    p = np.array([_as_box(pred, "pred")])
    t = np.array([_as_box(truth, "truth")])
    return float(_overlap(p, t, "iobb")[0, 0])


# ----------------------------------------------------------------------------- localisation accuracy
@dataclass
class LocalizationTable:
    """Localisation accuracy per class and threshold (Wang et al. 2017, Table 3 layout).

    Attributes
    ----------
    metric : str
        ``"iou"`` or ``"iobb"``.
    thresholds : tuple of float
        Increasing, each in (0, 1); a box is correct when its score is ``> T``.
    classes : list of str
        Row order of the arrays.
    accuracy : numpy.ndarray
        ``(n_classes, n_thresholds)``: ``hits / counts``; NaN for a class with no
        ground-truth box.
    counts : numpy.ndarray
        ``(n_classes,)`` int: ground-truth boxes of each class (the denominator).
    hits : numpy.ndarray
        ``(n_classes, n_thresholds)`` int: correctly localised ground-truth boxes.
    mean : numpy.ndarray
        ``(n_thresholds,)``: accuracy averaged over the classes that have ground truth
        (unweighted, ``nanmean``); NaN when no class has any.
    """

    metric: str
    thresholds: tuple
    classes: list
    accuracy: np.ndarray
    counts: np.ndarray
    hits: np.ndarray
    mean: np.ndarray

    @property
    def columns(self) -> list[str]:
        """Column name of each threshold in :meth:`to_rows` / :meth:`to_csv`, e.g. ``"iou>0.1"``."""
        return [f"{self.metric}>{t:g}" for t in self.thresholds]

    def to_rows(self, *, include_mean: bool = True) -> list[dict[str, Any]]:
        """One dict per class: ``class``, ``n`` (ground-truth boxes), then one accuracy per threshold.

        Threshold columns are named ``"<metric>><T>"`` (:attr:`columns`, e.g. ``"iobb>0.25"``).
        With ``include_mean`` a last row ``class="mean"`` holds :attr:`mean`, with ``n`` the
        total number of ground-truth boxes.
        """
        rows = []
        for i, c in enumerate(self.classes):
            row: dict[str, Any] = {"class": c, "n": int(self.counts[i])}
            row.update({col: float(a) for col, a in zip(self.columns, self.accuracy[i])})
            rows.append(row)
        if include_mean:
            row = {"class": "mean", "n": int(self.counts.sum())}
            row.update({col: float(a) for col, a in zip(self.columns, self.mean)})
            rows.append(row)
        return rows

    def to_csv(self, path: Union[str, "os.PathLike[str]"], *, include_mean: bool = True) -> None:
        """Write :meth:`to_rows` as CSV, atomically (``chexradi._io.atomic_write``).

        Accuracies are written in full precision (``repr``); NaN as ``nan``, which
        ``float()`` reads back.
        """
        from .._io import atomic_write

        rows = self.to_rows(include_mean=include_mean)
        with atomic_write(path, newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["class", "n"] + self.columns)
            w.writeheader()
            w.writerows(rows)

    def __str__(self) -> str:
        label = {"iou": "T(IoU)", "iobb": "T(IoBB)"}.get(self.metric, self.metric)
        names = [str(c) for c in self.classes] + ["mean"]
        wc = max(len(label), *(len(n) for n in names))
        wn = max(1, len(str(int(self.counts.sum()))))
        cols = [f"{t:g}" for t in self.thresholds]
        wt = max(6, *(len(c) for c in cols))

        def fmt(a: float) -> str:
            return f"{'-':>{wt}}" if np.isnan(a) else f"{a:>{wt}.4f}"

        overlap = {"iou": "IoU", "iobb": "IoBB"}.get(self.metric, self.metric)
        lines = [f"Localization accuracy: a ground-truth box is found when {overlap} > {label} "
                 f"(Wang et al. 2017 protocol)",
                 f"{label:<{wc}}  {'n':>{wn}}  " + "  ".join(f"{c:>{wt}}" for c in cols)]
        for i, c in enumerate(self.classes):
            lines.append(f"{str(c):<{wc}}  {int(self.counts[i]):>{wn}}  "
                         + "  ".join(fmt(a) for a in self.accuracy[i]))
        lines.append(f"{'mean':<{wc}}  {int(self.counts.sum()):>{wn}}  " + "  ".join(fmt(a) for a in self.mean))
        return "\n".join(lines)


def _check_thresholds(thresholds: Any, metric: str) -> tuple[float, ...]:
    if thresholds is None:
        return IOU_THRESHOLDS if metric == "iou" else IOBB_THRESHOLDS
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable):
        raise ValueError(f"`thresholds` must be a sequence of numbers in (0, 1), got {thresholds!r}; "
                         f"e.g. {IOU_THRESHOLDS}")
    vals = list(np.asarray(thresholds, dtype=object).ravel()) if isinstance(thresholds, np.ndarray) \
        else list(thresholds)
    if not vals:
        raise ValueError("`thresholds` is empty; pass at least one value in (0, 1), or None for Wang et al.'s")
    if not all(_is_number(t) for t in vals):
        raise ValueError(f"`thresholds` must hold real numbers only, got {vals!r}")
    vals = [float(t) for t in vals]
    bad = [t for t in vals if not (0.0 < t < 1.0)]  # also catches NaN
    if bad:
        raise ValueError(f"`thresholds` must lie in the open interval (0, 1), got {bad}; "
                         f"an overlap > 0 or > 1 is not a useful criterion")
    if any(b <= a for a, b in zip(vals, vals[1:])):
        raise ValueError(f"`thresholds` must be strictly increasing (sorted, no repeats), got {vals}; "
                         f"pass sorted(set(thresholds))")
    return tuple(vals)


def _box_list(value: Any, name: str) -> list[tuple[float, float, float, float]]:
    """One box or a sequence of boxes (a list, an ``(n, 4)`` array) -> list of checked boxes."""
    if value is None:
        return []
    if all(hasattr(value, a) for a in ("x", "y", "w", "h")):
        return [_as_box(value, name)]
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return [] if value.size == 0 else [_as_box(value, name)]
        if value.ndim == 2:
            return [_as_box(r, f"{name}[{i}]") for i, r in enumerate(value)]
        raise ValueError(f"`{name}` must be one box (x, y, w, h) or an (n, 4) array of boxes, "
                         f"got an array of shape {value.shape}")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"`{name}` must be a box or a list of boxes, got {value!r}")
    items = list(value)
    if items and all(_is_number(v) for v in items):
        return [_as_box(items, name)]
    return [_as_box(b, f"{name}[{i}]") for i, b in enumerate(items)]


def _row_value(row: Mapping, field: str) -> Any:
    for k in _ROW_KEYS[field]:
        if k in row:
            return row[k]
    raise KeyError(field)


def _is_blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (_is_number(v) and math.isnan(float(v)))


def _check_class(c: Any, name: str) -> str:
    if not isinstance(c, str) or not c:
        raise ValueError(f"`{name}` has a class name {c!r} that is not a non-empty string; "
                         f"use the class names (e.g. 'Atelectasis')")
    return c


def _collect(boxes: Any, name: str, *, skip_blank: bool) -> dict[tuple[Any, str], list]:
    """``{(image, class): [(x, y, w, h), ...]}`` from a mapping or from dict rows."""
    if hasattr(boxes, "to_dict") and hasattr(boxes, "columns"):  # a pandas DataFrame
        boxes = boxes.to_dict("records")
    out: dict[tuple[Any, str], list] = {}
    if isinstance(boxes, Mapping):
        for key, value in boxes.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"`{name}` keys must be (image_id, class_name) tuples, got {key!r}; "
                                 f"or pass dict rows with image, class, x, y, w, h")
            image, cls = key[0], _check_class(key[1], name)
            out.setdefault((image, cls), []).extend(_box_list(value, f"{name}[{key!r}]"))
        return out
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Iterable):
        raise ValueError(f"`{name}` must be a mapping {{(image, class): boxes}} or an iterable of dict "
                         f"rows with image, class, x, y, w, h; got {type(boxes).__name__}")
    for i, row in enumerate(boxes):
        where = f"{name} row {i}"
        if not isinstance(row, Mapping):
            raise ValueError(f"`{name}` row {i} is a {type(row).__name__}, not a dict; rows need the keys "
                             f"image, class, x, y, w, h (csv.DictReader rows work)")
        try:
            image, cls = _row_value(row, "image"), _row_value(row, "class")
            coords = [_row_value(row, f) for f in ("x", "y", "w", "h")]
        except KeyError as exc:
            raise ValueError(f"`{name}` row {i} has no {exc.args[0]!r} column (keys: {sorted(map(str, row))}); "
                             f"rows need image, class, x, y, w, h (or BBox_List_2017 names)") from None
        cls = _check_class(cls, name)
        key = (image, cls)
        if all(_is_blank(v) for v in coords):
            if not skip_blank:
                raise ValueError(f"`{where}` ({image!r}, {cls!r}) has no box (x, y, w, h all blank); "
                                 f"every ground-truth row needs one")
            out.setdefault(key, [])
            continue
        try:
            nums = [float(v) for v in coords]
        except (TypeError, ValueError):
            raise ValueError(f"`{where}` ({image!r}, {cls!r}) has a non-numeric coordinate "
                             f"(x, y, w, h) = {coords!r}") from None
        out.setdefault(key, []).append(_as_box(nums, where))
    return out


def localization_accuracy(predicted: Any, truth: Any, *, metric: str = "iou",
                          thresholds: Optional[Sequence[float]] = None,
                          classes: Optional[Sequence[str]] = None) -> LocalizationTable:
    """Localisation accuracy per class at each threshold, by Wang et al.'s (CVPR 2017) protocol.

    For every ground-truth box ``G`` of class ``c`` in image ``i``, its score is the best
    overlap with the predicted boxes of the same image and class,
    ``s(G) = max_P IoU(P, G)`` (or ``max_P IoBB(P, G)`` with ``IoBB = |P ∩ G| / |P|``), and
    0 when there is none. ``G`` is correct at threshold ``T`` when ``s(G) > T`` (strict).
    Then, per class and threshold,

    ``accuracy(c, T) = #{G of class c : s(G) > T} / #{G of class c}``.

    Several predicted boxes for an (image, class) are allowed: any one of them counts.
    Several ground-truth boxes of a class in one image are judged one by one (each is a
    separate entry in the denominator), and one predicted box may localise several.
    A ground-truth (image, class) with no prediction is a miss; predictions for an
    (image, class) without ground truth are ignored (the protocol measures recall of
    findings, not false positives).

    Parameters
    ----------
    predicted, truth:
        Either a mapping ``{(image_id, class_name): boxes}``, where ``boxes`` is one box
        or a list of boxes (an ``(n, 4)`` array too; an empty list or None = no box), a box
        being a :class:`~chexradi.cam.masks.Box` or ``(x, y, w, h)`` numbers; or an iterable
        of dict rows with keys ``image``, ``class``, ``x``, ``y``, ``w``, ``h`` -- the rows of
        ``chexradi heatmap``'s ``regions.csv`` or ``csv.DictReader`` rows (strings are
        parsed); ``BBox_List_2017.csv``'s column names (``Image Index``, ``Finding Label``,
        ``Bbox [x``, ``y``, ``w``, ``h]``) are accepted too, and so is a pandas DataFrame.
        One row is one box; other keys are ignored. A ``predicted`` row whose x, y, w, h are
        all blank (a heatmap without a box) counts as no box. Image ids are compared as
        given (``regions.csv`` holds image paths, ``BBox_List`` file names: make them
        agree first), and so are class names (ChestX-ray14's ``BBox_List`` spells
        "Infiltrate" where the labels say "Infiltration").
    metric : {"iou", "iobb"}
        Overlap criterion.
    thresholds : sequence of float, optional
        Strictly increasing values in (0, 1); default :data:`IOU_THRESHOLDS` for
        ``"iou"``, :data:`IOBB_THRESHOLDS` for ``"iobb"``.
    classes : sequence of str, optional
        Rows of the table, in this order; ground truth of other classes is left out. A
        listed class without ground truth gets NaN (and ``counts`` 0) and is left out of
        the mean. Default: every class in ``truth``, sorted.

    Returns
    -------
    LocalizationTable

    Raises
    ------
    ValueError
        Unknown ``metric``; ``thresholds`` empty, out of (0, 1), not increasing or not
        numbers; ``classes`` not distinct non-empty strings; ``predicted`` / ``truth`` of
        another shape, keys that are not (image, class) pairs, rows without the needed
        columns, a ground-truth row without a box, or a box with a NaN/inf coordinate or
        ``w <= 0`` / ``h <= 0`` (the message names the argument and the entry).
    """
    if metric not in LOCALIZATION_METRICS:
        raise ValueError(f"`metric` must be one of {', '.join(LOCALIZATION_METRICS)}, got {metric!r}")
    ts = _check_thresholds(thresholds, metric)
    if classes is not None:
        if isinstance(classes, str) or not isinstance(classes, Iterable):
            raise ValueError(f"`classes` must be a sequence of class names, got {classes!r}; "
                             f"wrap a single name in a list")
        classes = list(classes)
        if not classes or not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
            raise ValueError(f"`classes` must be distinct non-empty strings, got {classes!r}")
    gt = _collect(truth, "truth", skip_blank=False)
    pred = _collect(predicted, "predicted", skip_blank=True)
    names = sorted({c for (_, c), b in gt.items() if b}) if classes is None else classes
    row = {c: i for i, c in enumerate(names)}

    counts = np.zeros(len(names), dtype=np.int64)
    hits = np.zeros((len(names), len(ts)), dtype=np.int64)
    t_arr = np.asarray(ts)
    for (image, cls), gboxes in gt.items():
        if cls not in row or not gboxes:
            continue
        k = row[cls]
        counts[k] += len(gboxes)
        pboxes = pred.get((image, cls), [])
        if not pboxes:
            continue
        best = _overlap(np.asarray(pboxes), np.asarray(gboxes), metric).max(axis=1)  # (n_truth,)
        hits[k] += (best[:, None] > t_arr[None, :]).sum(axis=0)

    accuracy = np.full(hits.shape, np.nan)
    has = counts > 0
    accuracy[has] = hits[has] / counts[has, None]
    mean = accuracy[has].mean(axis=0) if has.any() else np.full(len(ts), np.nan)
    return LocalizationTable(metric=metric, thresholds=ts, classes=list(names), accuracy=accuracy,
                             counts=counts, hits=hits, mean=mean)
