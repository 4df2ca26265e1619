"""The one intensity normalisation between a radiograph and the network.

``to_model_input`` maps a 2-D radiograph of any bit depth to a float32
``(1, size, size)`` array:

1. window the intensities to their 0.5th-99.5th percentiles and scale to [0, 1]
   (robust to burnt-in text, collimator edges and 8/12/16-bit storage);
2. resize to ``size x size`` (bilinear, anti-aliased);
3. standardise with the ImageNet grey statistics ``(x - 0.449) / 0.226``
   (the mean and standard deviation of the RGB ImageNet statistics, which is
   what a stem summed over RGB for one channel expects).

Checkpoints record :data:`NORMALIZATION` and the size, so inference repeats
exactly what training did.
"""
from __future__ import annotations

import numpy as np

__all__ = ["MEAN", "STD", "NORMALIZATION", "scale_intensity", "to_model_input", "from_model_input", "resize"]

MEAN = 0.449
STD = 0.226
NORMALIZATION = "window p0.5-p99.5 -> [0,1] -> bilinear resize -> (x-0.449)/0.226"


def _check_2d(image: np.ndarray, name: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must be a 2-D grey radiograph, got shape {arr.shape}; "
                         f"convert colour images to grey first")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} has {bad} NaN/inf pixel(s); fix or mask them before use")
    return arr


def scale_intensity(image: np.ndarray, *, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Window ``image`` to its ``[low, high]`` percentiles and scale to [0, 1] (float32).

    A constant image maps to zeros.
    """
    arr = _check_2d(image)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    lo, hi = np.percentile(arr, [low, high])
    if hi <= lo:
        return np.zeros(arr.shape, np.float32)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear, anti-aliased resize of a 2-D float array to ``shape`` (float32)."""
    from skimage.transform import resize as sk_resize

    arr = np.asarray(image, np.float32)
    if arr.shape == tuple(shape):
        return arr.copy()
    down = arr.shape[0] > shape[0] or arr.shape[1] > shape[1]
    return sk_resize(arr, shape, order=1, mode="edge", anti_aliasing=down, preserve_range=True).astype(np.float32)


def to_model_input(image: np.ndarray, *, size: int = 224) -> np.ndarray:
    """A radiograph as the network sees it: float32 ``(1, size, size)``; see the module docstring."""
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 (the network input side in pixels), got {size!r}")
    x = resize(scale_intensity(image), (int(size), int(size)))
    return ((x - MEAN) / STD)[None].astype(np.float32)


def from_model_input(x: np.ndarray) -> np.ndarray:
    """The inverse of the normalisation in :func:`to_model_input`: ``(1, H, W)`` or ``(H, W)`` -> [0, 1] ``(H, W)``.

    Values are clipped to [0, 1] (the windowed, resized radiograph). Accepts a torch
    tensor's numpy view.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"x must be (1, H, W) or (H, W), got shape {a.shape}")
    return np.clip(a * STD + MEAN, 0.0, 1.0).astype(np.float32)
