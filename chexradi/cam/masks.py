"""Class heatmaps (e.g. Grad-CAM maps at the image size) to binary masks and bounding boxes.

A heatmap is thresholded into a ``uint8`` mask with label 1 that the radiomics engine
(:func:`chexradi.extract`) accepts, and its connected components become boxes in the
ChestX-ray14 ``BBox_List`` convention (``x`` = column and ``y`` = row of the top-left corner,
``w``, ``h`` in pixels) for the localisation protocol of Wang et al., CVPR 2017.

Threshold methods (the threshold is always in the units of the heatmap that is thresholded,
i.e. the smoothed one when ``sigma > 0``; pixels ``>= threshold`` are foreground):

- ``"fraction"``: ``min + value * (max - min)``, ``value`` in (0, 1], default 0.5. For a
  heatmap min-max scaled to [0, 1] this is ``value * max`` -- the ChexRadiNet authors'
  rule (blur, threshold at half of the maximum, keep the strongest contour).
- ``"otsu"``: :func:`skimage.filters.threshold_otsu`; takes no ``value``.
- ``"percentile"``: ``numpy.percentile(heatmap, value)``, ``value`` in [0, 100], default 95.
- ``"fixed"``: Wang et al.'s fixed thresholds on the heatmap min-max rescaled to 0-255:
  ``min + value * (max - min) / 255``, ``value`` in [0, 255], default 180 (they used 60
  and 180); reported back in heatmap units.

A constant heatmap (``min == max``) has the threshold ``min`` for every method, so its mask
is full (and flagged). The ``"fraction"`` and ``"fixed"`` thresholds are clipped to
``[min, max]`` against rounding, so ``value=1`` / ``value=255`` always keep the maximum.

This module uses numpy, scipy and scikit-image only (never torch).
"""
from __future__ import annotations

import logging
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from skimage.filters import threshold_otsu

from ..names import KEEP_MODES, THRESHOLD_METHODS

__all__ = ["THRESHOLD_METHODS", "KEEP_MODES", "MaskWarning", "Box", "MaskResult",
           "heatmap_to_mask", "mask_to_boxes", "threshold_value", "check_mask_options", "mask_iou", "place_mask"]

log = logging.getLogger("chexradi.cam")

_DEFAULT_VALUE = {"fraction": 0.5, "otsu": None, "percentile": 95.0, "fixed": 180.0}


class MaskWarning(UserWarning):
    """A heatmap gave an empty or a full mask (the result is returned and flagged)."""


@dataclass(frozen=True)
class Box:
    """One bounding box, ChestX-ray14 ``BBox_List`` convention.

    Attributes
    ----------
    x, y : int
        Column and row of the top-left pixel.
    w, h : int
        Width (columns) and height (rows) in pixels, both >= 1.
    score : float
        Maximum heat inside the component (or its area fraction when no heatmap was given).
    """

    x: int
    y: int
    w: int
    h: int
    score: float

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> int:
        """``w * h`` in pixels (of the box, not of the component)."""
        return self.w * self.h


@dataclass
class MaskResult:
    """A thresholded heatmap.

    Attributes
    ----------
    mask : numpy.ndarray
        ``uint8`` array of 0/1, the shape of the heatmap.
    threshold : float
        Threshold applied, in the units of the (smoothed) heatmap.
    method : str
        One of :data:`THRESHOLD_METHODS`.
    params : dict
        Everything needed to reproduce the mask: method, value, sigma, keep, min_size,
        connectivity.
    boxes : list of Box
        One per kept component, strongest (highest max heat) first.
    n_components : int
        Connected components above the threshold, before ``keep`` / ``min_size`` filtering.
    empty, full : bool
        No pixel kept / every pixel kept.
    """

    mask: np.ndarray
    threshold: float
    method: str
    params: dict
    boxes: list = field(default_factory=list)
    n_components: int = 0
    empty: bool = False
    full: bool = False

    @property
    def ok(self) -> bool:
        """True when the mask is neither empty nor full."""
        return not (self.empty or self.full)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable record of the result, without the mask array."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "threshold": float(self.threshold),
            "shape": [int(s) for s in self.mask.shape],
            "n_pixels": int(np.count_nonzero(self.mask)),
            "n_components": int(self.n_components),
            "empty": bool(self.empty),
            "full": bool(self.full),
            "ok": bool(self.ok),
            "boxes": [asdict(b) for b in self.boxes],
        }


# ----------------------------------------------------------------------------- input checks
def _as_heatmap(heatmap: ArrayLike, name: str = "heatmap") -> np.ndarray:
    try:
        arr = np.asarray(heatmap)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"`{name}` could not be converted to an array ({exc}); "
                         f"pass a 2-D numeric array") from exc
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be a real numeric array, got dtype {arr.dtype}; "
                         f"convert it with np.asarray(..., dtype=float)")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (rows, cols) or (1, rows, cols), got shape "
                         f"{arr.shape}; pass one class map, e.g. cams[i]")
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty (shape {arr.shape}); pass a non-empty 2-D array")
    arr = arr.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"`{name}` has {bad} non-finite value(s) (NaN or inf); replace them, "
                         f"e.g. np.nan_to_num(heatmap), before thresholding")
    with np.errstate(over="ignore"):
        span = float(arr.max()) - float(arr.min())
    if not np.isfinite(span):
        raise ValueError(f"`{name}` spans {arr.min():.3g} to {arr.max():.3g}: the range overflows float64 and no "
                         f"threshold can be computed; rescale the heatmap first, e.g. heatmap / np.abs(heatmap).max()")
    return arr


def _check_connectivity(connectivity: Any) -> int:
    if isinstance(connectivity, bool) or connectivity not in (1, 2):
        raise ValueError(f"`connectivity` must be 1 (4-neighbour) or 2 (8-neighbour), "
                         f"got {connectivity!r}")
    return int(connectivity)


def _check_min_size(min_size: Any) -> int:
    if isinstance(min_size, bool) or not isinstance(min_size, numbers.Integral) or min_size < 1:
        raise ValueError(f"`min_size` must be an integer >= 1 (pixels), got {min_size!r}")
    return int(min_size)


def _check_value(method: str, value: Any) -> Optional[float]:
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"unknown threshold `method` {method!r}; valid methods: "
                         f"{', '.join(THRESHOLD_METHODS)}")
    if method == "otsu":
        if value is not None:
            raise ValueError(f"`value` is not used by method='otsu' (got {value!r}); "
                             f"leave it as None")
        return None
    if value is None:
        return _DEFAULT_VALUE[method]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"`value` must be a finite real number for method={method!r}, "
                         f"got {value!r}")
    value = float(value)
    if method == "fraction" and not 0.0 < value <= 1.0:
        raise ValueError(f"`value` for method='fraction' must be in (0, 1] (a fraction of the "
                         f"heatmap range), got {value}; e.g. 0.5")
    if method == "percentile" and not 0.0 <= value <= 100.0:
        raise ValueError(f"`value` for method='percentile' must be in [0, 100], got {value}; "
                         f"e.g. 95")
    if method == "fixed" and not 0.0 <= value <= 255.0:
        raise ValueError(f"`value` for method='fixed' must be in [0, 255] (the heatmap is "
                         f"rescaled to 0-255), got {value}; Wang et al. used 60 and 180")
    return value


def _threshold(arr: np.ndarray, method: str, value: Optional[float]) -> float:
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        return lo
    if method == "fraction":
        return min(lo + value * (hi - lo), hi)
    if method == "fixed":
        return min(lo + value * (hi - lo) / 255.0, hi)
    if method == "percentile":
        return float(np.percentile(arr, value))
    return float(threshold_otsu(arr))


# ----------------------------------------------------------------------------- public API
def threshold_value(heatmap: ArrayLike, *, method: str, value: Optional[float] = None) -> float:
    """The threshold a method gives on a heatmap (no smoothing), in heatmap units.

    Parameters
    ----------
    heatmap : array_like
        2-D finite real array (a ``(1, rows, cols)`` array is squeezed).
    method : str
        One of :data:`THRESHOLD_METHODS`; see the module docstring for the rules.
    value : float, optional
        The method's parameter (default 0.5 / 95 / 180; must be None for ``"otsu"``).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``heatmap`` not 2-D, empty, non-numeric or non-finite; unknown ``method``;
        ``value`` out of range for the method, or given for ``"otsu"``.
    """
    arr = _as_heatmap(heatmap)
    return _threshold(arr, method, _check_value(method, value))


def mask_to_boxes(mask: ArrayLike, heatmap: Optional[ArrayLike] = None, *,
                  connectivity: int = 2, min_size: int = 1) -> list[Box]:
    """One box per connected component of a binary mask, highest score first.

    Parameters
    ----------
    mask : array_like
        2-D binary array: bool, or numbers that are all 0 or 1.
    heatmap : array_like, optional
        Same shape as ``mask``; a box's score is the maximum heat in its component. Without
        it the score is the component's area as a fraction of the image.
    connectivity : {1, 2}
        1: 4-neighbour, 2: 8-neighbour components.
    min_size : int
        Components with fewer pixels are skipped.

    Returns
    -------
    list of Box
        Sorted by score, then component area (both descending), then raster order. An
        empty mask gives ``[]``.

    Raises
    ------
    ValueError
        ``mask`` not 2-D or not binary; ``heatmap`` invalid or of another shape;
        bad ``connectivity`` or ``min_size``.
    """
    connectivity = _check_connectivity(connectivity)
    min_size = _check_min_size(min_size)
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"`mask` must be a non-empty 2-D array, got shape {m.shape}")
    if m.dtype.kind != "b":
        if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
            raise ValueError("`mask` must be binary (bool or values 0/1); got values "
                             f"{np.unique(m)[:10].tolist()}; use (mask == label) to select one")
        m = m == 1
    heat = None
    if heatmap is not None:
        heat = _as_heatmap(heatmap)
        if heat.shape != m.shape:
            raise ValueError(f"`heatmap` shape {heat.shape} differs from `mask` shape {m.shape}; "
                             f"resize the heatmap to the mask")
    return _boxes(m, heat, connectivity, min_size)


def _label(fg: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    structure = ndimage.generate_binary_structure(2, connectivity)
    labels, n = ndimage.label(fg, structure=structure)
    return labels, int(n)


def _peaks(heat: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The largest heat of each component ``1..n`` of ``labels`` (what ``ndimage.maximum`` gives, without its
    sort: a tenth of the time on a 96-pixel heatmap)."""
    peak = np.full(n + 1, -np.inf)
    np.maximum.at(peak, labels.ravel(), heat.ravel())
    return peak[1:]


def _boxes(fg: np.ndarray, heat: Optional[np.ndarray], connectivity: int,
           min_size: int) -> list[Box]:
    labels, n = _label(fg, connectivity)
    if n == 0:
        return []
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    score = area / fg.size if heat is None else _peaks(heat, labels, n)
    return _component_boxes(labels, range(n), area, score, min_size)


def _component_boxes(labels: np.ndarray, components: Iterable[int], area: np.ndarray, score: np.ndarray,
                     min_size: int) -> list[Box]:
    """The boxes of ``components`` (0-based: label ``k + 1``) of ``labels``, highest score first (ties: larger
    area, then raster order), skipping those under ``min_size`` pixels."""
    slices = ndimage.find_objects(labels)
    boxes = []
    for i in sorted(components, key=lambda k: (-score[k], -area[k], k)):
        if area[i] < min_size:
            continue
        rows, cols = slices[i]
        boxes.append(Box(x=int(cols.start), y=int(rows.start), w=int(cols.stop - cols.start),
                         h=int(rows.stop - rows.start), score=float(score[i])))
    return boxes


def check_mask_options(*, method: str = "fraction", value: Optional[float] = None, sigma: float = 0.0,
                       keep: str = "strongest", min_size: int = 1,
                       connectivity: int = 2) -> tuple[Optional[float], int, int]:
    """Validate the options of :func:`heatmap_to_mask` before any work; returns ``(value, min_size, connectivity)``.

    Raises
    ------
    ValueError
        As :func:`heatmap_to_mask` does for its options.
    """
    value = _check_value(method, value)
    if (isinstance(sigma, bool) or not isinstance(sigma, numbers.Real)
            or not np.isfinite(sigma) or sigma < 0):
        raise ValueError(f"`sigma` must be a finite number >= 0 (pixels; 0 = no smoothing), "
                         f"got {sigma!r}")
    if keep not in KEEP_MODES:
        raise ValueError(f"`keep` must be one of {', '.join(KEEP_MODES)}, got {keep!r}")
    return value, _check_min_size(min_size), _check_connectivity(connectivity)


def heatmap_to_mask(heatmap: ArrayLike, *, method: str = "fraction",
                    value: Optional[float] = None, sigma: float = 0.0, keep: str = "strongest",
                    min_size: int = 1, connectivity: int = 2) -> MaskResult:
    """Threshold a class heatmap into a 0/1 ``uint8`` mask and boxes.

    Steps: optional Gaussian smoothing (``scipy.ndimage.gaussian_filter``, default
    ``mode="reflect"``), threshold by ``method`` (see the module docstring; pixels
    ``>= threshold`` are foreground), connected components, drop components under
    ``min_size`` pixels, keep by ``keep``.

    Parameters
    ----------
    heatmap : array_like
        2-D finite real array, any range (a ``(1, rows, cols)`` array is squeezed).
    method : str
        One of :data:`THRESHOLD_METHODS`: "fraction" (default), "otsu", "percentile", "fixed".
    value : float, optional
        The method's parameter: fraction in (0, 1] (default 0.5), percentile in [0, 100]
        (default 95), fixed level in [0, 255] (default 180); None for "otsu".
    sigma : float
        Gaussian smoothing in pixels before thresholding; 0 (default) for none.
    keep : {"strongest", "largest", "all"}
        "strongest": the component with the highest maximum heat (ties: larger heat sum,
        then larger area, then first in raster order); "largest": the largest area (ties
        as for "strongest" by heat); "all": every component.
    min_size : int
        Components with fewer pixels are dropped (before ``keep``).
    connectivity : {1, 2}
        1: 4-neighbour, 2: 8-neighbour components.

    Returns
    -------
    MaskResult
        Heat, thresholds and box scores are those of the smoothed heatmap.

    Raises
    ------
    ValueError
        ``heatmap`` not 2-D, empty, non-numeric or non-finite; unknown ``method`` or
        ``keep``; ``value`` out of range for the method (or given for "otsu"); negative or
        non-finite ``sigma``; ``min_size`` < 1; ``connectivity`` not 1 or 2.

    Warns
    -----
    MaskWarning
        The mask is empty (nothing kept) or full (every pixel kept); the result is still
        returned with ``empty`` / ``full`` set, and the same message is logged on the
        ``chexradi.cam`` logger.
    """
    arr = _as_heatmap(heatmap)
    value, min_size, connectivity = check_mask_options(method=method, value=value, sigma=sigma, keep=keep,
                                                       min_size=min_size, connectivity=connectivity)

    heat = ndimage.gaussian_filter(arr, float(sigma)) if sigma > 0 else arr
    thr = _threshold(heat, method, value)
    labels, n = _label(heat >= thr, connectivity)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    kept = [i for i in range(n) if area[i] >= min_size]
    peak = _peaks(heat, labels, n)
    if kept and keep != "all":
        total = np.bincount(labels.ravel(), weights=heat.ravel(), minlength=n + 1)[1:]  # as ndimage.sum
        if keep == "strongest":
            kept = [min(kept, key=lambda k: (-peak[k], -total[k], -area[k], k))]
        else:
            kept = [min(kept, key=lambda k: (-area[k], -peak[k], -total[k], k))]
    if len(kept) == 1:
        mask = (labels == kept[0] + 1).view(np.uint8)
    elif kept:
        mask = np.isin(labels, np.asarray(kept) + 1).view(np.uint8)
    else:
        mask = np.zeros(arr.shape, np.uint8)

    params = {"method": method, "value": value, "sigma": float(sigma), "keep": keep,
              "min_size": min_size, "connectivity": connectivity}
    n_on = int(np.count_nonzero(mask))
    result = MaskResult(mask=mask, threshold=float(thr), method=method, params=params,
                        # the kept components are the mask's own components (each is maximal in the
                        # labelling), with the same boxes and peaks
                        boxes=_component_boxes(labels, kept, area, peak, 1),
                        n_components=n, empty=n_on == 0, full=n_on == mask.size)
    if result.empty:
        msg = (f"empty mask: no component kept (method={method!r}, value={value}, threshold="
               f"{thr:.6g}, {n} component(s) above it, min_size={min_size}); try a lower "
               f"value, a smaller min_size, or another method such as 'otsu'")
    elif result.full:
        const = "; the heatmap is constant" if heat.min() == heat.max() else ""
        msg = (f"full mask: every pixel is >= the threshold (method={method!r}, value={value}, "
               f"threshold={thr:.6g}{const}); try a higher value or method='percentile'")
    else:
        return result
    warnings.warn(msg, MaskWarning, stacklevel=2)
    log.warning(msg)
    return result


def mask_iou(a: ArrayLike, b: ArrayLike) -> float:
    """Intersection over union of two binary masks of the same shape; NaN when both are empty.

    Raises
    ------
    ValueError
        The shapes differ.
    """
    a, b = np.asarray(a).astype(bool), np.asarray(b).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"mask_iou needs two masks of the same shape, got {a.shape} and {b.shape}")
    union = np.count_nonzero(a | b)
    return float("nan") if union == 0 else np.count_nonzero(a & b) / union


def place_mask(shape: ArrayLike, allowed: ArrayLike, rng: np.random.Generator) -> np.ndarray:
    """``shape`` moved to a random position, whole, inside ``allowed``: a region of the same area and outline.

    The non-empty mask ``shape`` is cropped to its bounding box and translated (never
    rotated, scaled or cut) to an offset drawn uniformly from those where every one of its
    pixels lies inside ``allowed``. Where it fits nowhere, the offsets with the fewest
    pixels outside ``allowed`` are drawn from instead, so the area is always kept.

    Parameters
    ----------
    shape:
        2-D binary mask with at least one pixel (any position).
    allowed:
        2-D binary mask of the same shape: where the region may lie (e.g. the lung fields
        without the image's findings).
    rng:
        The random generator that draws the offset.

    Returns
    -------
    numpy.ndarray
        bool mask of ``allowed``'s shape with ``count_nonzero(shape)`` pixels.

    Raises
    ------
    ValueError
        Not 2-D, shapes differ, or ``shape`` is empty.
    """
    from scipy.signal import fftconvolve

    s, ok = np.asarray(shape).astype(bool), np.asarray(allowed).astype(bool)
    if s.ndim != 2 or s.shape != ok.shape:
        raise ValueError(f"place_mask needs 2-D shape and allowed masks of the same shape, got {s.shape} and "
                         f"{ok.shape}")
    rows, cols = np.flatnonzero(s.any(axis=1)), np.flatnonzero(s.any(axis=0))
    if rows.size == 0:
        raise ValueError("place_mask: shape is empty; give a mask with at least one pixel")
    piece = s[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    # pixels of the piece outside `allowed` at every offset where the piece lies within the image
    outside = fftconvolve((~ok).astype(np.float64), piece[::-1, ::-1].astype(np.float64), mode="valid")
    outside = np.rint(outside)
    best = outside.min()
    cand = np.flatnonzero(outside.ravel() <= best)
    pick = int(cand[rng.integers(cand.size)])
    r0, c0 = divmod(pick, outside.shape[1])
    out = np.zeros(ok.shape, bool)
    out[r0:r0 + piece.shape[0], c0:c0 + piece.shape[1]] = piece
    return out
