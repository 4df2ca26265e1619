"""Overlays a person can read: the radiograph, the heatmap on it, and the box.

:func:`render_overlay` returns an RGB ``uint8`` image with two panels side by
side under a caption line:

- left: the radiograph (intensity-windowed grey) with the box(es) outlined;
- right: the same radiograph with the heatmap blended in a jet colour map
  (transparent where the heat is low, opaque red where it is highest), the
  box(es) outlined and the mask contour drawn.

Only numpy and Pillow are used (no matplotlib).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._io import atomic_path
from .masks import Box

__all__ = ["jet", "render_overlay", "save_overlay"]

BOX_COLOUR = (0, 255, 0)
CONTOUR_COLOUR = (255, 255, 255)
BAND = 22  # caption band height for a one-line caption (pixels)
LINE_HEIGHT = 12  # Pillow's default bitmap font
CHAR_WIDTH = 6


def jet(values: np.ndarray) -> np.ndarray:
    """The jet colour map: values in [0, 1] -> RGB float in [0, 1] (blue, cyan, yellow, red)."""
    v = np.clip(np.asarray(values, np.float64), 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4.0 * v - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * v - 1.0), 0.0, 1.0)
    return np.stack([r, g, b], axis=-1)


def _grey(image: np.ndarray) -> np.ndarray:
    from ..data.transforms import scale_intensity

    return scale_intensity(image)


def _fit(arr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale (never upscale) so the longer side is at most ``max_side``; returns the scale."""
    from ..data.transforms import resize

    scale = min(1.0, max_side / max(arr.shape))
    if scale >= 1.0:
        return arr.astype(np.float32), 1.0
    shape = (max(1, round(arr.shape[0] * scale)), max(1, round(arr.shape[1] * scale)))
    return resize(arr, shape), scale


def _contour(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


def render_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    boxes: Sequence[Box] = (),
    mask: Optional[np.ndarray] = None,
    caption: str = "",
    alpha: float = 0.5,
    max_side: int = 768,
) -> np.ndarray:
    """Two-panel RGB overlay of ``heatmap`` (and ``boxes``, ``mask``) on ``image``.

    Parameters
    ----------
    image:
        2-D radiograph, any range (windowed to its 0.5-99.5th percentiles).
    heatmap:
        2-D map of the same shape, values in [0, 1] (min-max scaled CAM).
    boxes:
        Boxes in ``image`` pixel coordinates, drawn in green.
    mask:
        Optional binary mask of the same shape; its contour is drawn in white.
    caption:
        Text written above the panels (class, probability, method).
    alpha:
        Largest opacity of the heatmap (reached where the heat is 1).
    max_side:
        Panels are downscaled so their longer side is at most this many pixels.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array ``(rows, columns, 3)``.

    Raises
    ------
    ValueError
        Shapes differ, inputs are not 2-D, or ``alpha`` is outside [0, 1].
    """
    from PIL import Image, ImageDraw

    img = np.asarray(image)
    heat = np.asarray(heatmap, np.float64)
    if img.ndim != 2 or heat.ndim != 2 or img.shape != heat.shape:
        raise ValueError(f"image and heatmap must be 2-D of the same shape, got {img.shape} and {heat.shape}")
    if mask is not None and np.asarray(mask).shape != img.shape:
        raise ValueError(f"mask shape {np.asarray(mask).shape} differs from the image shape {img.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    grey, scale = _fit(_grey(img), max_side)
    heat_s, _ = _fit(np.clip(np.nan_to_num(heat), 0.0, 1.0), max_side)
    heat_s = np.clip(heat_s, 0.0, 1.0)
    base = np.repeat(grey[..., None], 3, axis=-1)
    a = (alpha * heat_s)[..., None]
    blended = (1.0 - a) * base + a * jet(heat_s)
    if mask is not None:
        m, _ = _fit(np.asarray(mask, np.float32), max_side)
        blended[_contour(m >= 0.5)] = np.array(CONTOUR_COLOUR) / 255.0
    left = Image.fromarray((base * 255).round().astype(np.uint8))
    right = Image.fromarray((blended * 255).round().astype(np.uint8))
    for panel in (left, right):
        draw = ImageDraw.Draw(panel)
        width = max(1, round(max(panel.size) / 256))
        for b in boxes:
            x0, y0 = b.x * scale, b.y * scale
            x1, y1 = (b.x + b.w) * scale - 1, (b.y + b.h) * scale - 1
            draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=BOX_COLOUR, width=width)
    gap = 8
    h, w = grey.shape
    lines = _wrap(caption, max(8, (2 * w + gap - 8) // CHAR_WIDTH)) if caption else []
    band = BAND if len(lines) <= 1 else 6 + LINE_HEIGHT * len(lines)
    canvas = Image.new("RGB", (2 * w + gap, h + band), (0, 0, 0))
    canvas.paste(left, (0, band))
    canvas.paste(right, (w + gap, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, 4 + LINE_HEIGHT * i), line, fill=(255, 255, 255))
    return np.asarray(canvas)


def _wrap(text: str, width: int) -> list[str]:
    """Split ``text`` into lines of at most ``width`` characters, at spaces where possible."""
    import textwrap

    return textwrap.wrap(text, width=width, break_long_words=True) or [""]


def save_overlay(rgb: np.ndarray, path: Union[str, Path], *, sync: bool = True) -> Path:
    """Write an RGB ``uint8`` array as PNG, atomically (temporary name, then rename). ``sync``: fsync the
    folder after the rename (False: the caller makes many files durable at once, ``_io.sync_folders``)."""
    from PIL import Image

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"overlay path must end in .png, got {p}")
    with atomic_path(p, suffix=".tmp.png", sync=sync) as tmp:
        Image.fromarray(np.asarray(rgb, np.uint8)).save(tmp, format="PNG")
    return p
