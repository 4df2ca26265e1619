"""Overlays a person can read: the radiograph, the heatmap on it, and the box.

:func:`render_overlay` returns an RGB ``uint8`` image with two panels side by
side and the caption below them:

- left: the radiograph (intensity-windowed grey) with the box(es) outlined;
- right: the same radiograph with the heatmap blended in a jet colour map
  (transparent where the heat is low, opaque red where it is highest), the
  box(es) outlined and the mask contour drawn.

Each panel is drawn between ``min_side`` (512) and ``max_side`` (1024) pixels on its
longer side: a 96-px phantom is enlarged (bilinear), a 3000-px radiograph reduced,
so boxes, contours and the caption are legible whatever the input. The caption is
set in Pillow's scalable default font, sized to the panel, and wrapped to the width
of the two panels; it never covers the image.

Only numpy and Pillow are used (no matplotlib).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._io import atomic_path
from .masks import Box

__all__ = ["jet", "panel_scale", "render_overlay", "save_overlay"]

BOX_COLOUR = (0, 255, 0)
CONTOUR_COLOUR = (255, 255, 255)
GAP = 8  # pixels between the two panels
MIN_SIDE = 512
MAX_SIDE = 1024


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


def panel_scale(shape: tuple[int, ...], min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> float:
    """The factor that brings the longer side of ``shape`` into ``[min_side, max_side]`` (1 when it is)."""
    long = max(int(shape[0]), int(shape[1]))
    if long < min_side:
        return min_side / long
    if long > max_side:
        return max_side / long
    return 1.0


def _scaled(arr: np.ndarray, scale: float) -> np.ndarray:
    from ..data.transforms import resize

    if scale == 1.0:
        return arr.astype(np.float32)
    shape = (max(1, round(arr.shape[0] * scale)), max(1, round(arr.shape[1] * scale)))
    return resize(arr, shape)


def _contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its edge."""
    from scipy import ndimage as ndi

    m = mask.astype(bool)
    inner = ndi.binary_erosion(m, iterations=width, border_value=1)
    return m & ~inner


def _font(size: int) -> Any:
    """Pillow's default font at ``size`` pixels (FreeType), or its small bitmap font without FreeType."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the 11-px bitmap font
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> int:
    box = font.getbbox(text)
    return int(box[2] - box[0])


def _wrap_to(text: str, font: Any, width: int) -> list[str]:
    """Split ``text`` into lines no wider than ``width`` pixels in ``font``, at spaces where possible."""
    import textwrap

    if not text:
        return []
    per_char = max(1, _text_width(font, "M" * 20) / 20)
    chars = max(8, int(width / per_char))
    lines = textwrap.wrap(text, width=chars, break_long_words=True) or [""]
    while chars > 8 and any(_text_width(font, ln) > width for ln in lines):
        chars -= 1
        lines = textwrap.wrap(text, width=chars, break_long_words=True)
    return lines


def render_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    boxes: Sequence[Box] = (),
    mask: Optional[np.ndarray] = None,
    caption: str = "",
    alpha: float = 0.5,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
) -> np.ndarray:
    """Two-panel RGB overlay of ``heatmap`` (and ``boxes``, ``mask``) on ``image``, caption below.

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
        Text written below the panels (class, probability, method), wrapped to their width.
    alpha:
        Largest opacity of the heatmap (reached where the heat is 1).
    min_side, max_side:
        Each panel's longer side is brought into ``[min_side, max_side]`` pixels
        (enlarged or reduced, bilinear; the mask by nearest neighbour).

    Returns
    -------
    numpy.ndarray
        ``uint8`` array ``(rows, columns, 3)``: ``columns = 2 * panel width + 8``.

    Raises
    ------
    ValueError
        Shapes differ, inputs are not 2-D, ``alpha`` is outside [0, 1], or the sides
        are not ``1 <= min_side <= max_side``.
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
    if not (isinstance(min_side, int) and isinstance(max_side, int) and 1 <= min_side <= max_side):
        raise ValueError(f"min_side and max_side must be integers with 1 <= min_side <= max_side, got "
                         f"{min_side!r} and {max_side!r}")
    scale = panel_scale(img.shape, min_side, max_side)
    grey = np.clip(_scaled(_grey(img), scale), 0.0, 1.0)
    heat_s = np.clip(_scaled(np.clip(np.nan_to_num(heat), 0.0, 1.0), scale), 0.0, 1.0)
    h, w = grey.shape
    line = max(1, round(max(h, w) / 256))  # box and contour width
    base = np.repeat(grey[..., None], 3, axis=-1)
    a = (alpha * heat_s)[..., None]
    blended = (1.0 - a) * base + a * jet(heat_s)
    if mask is not None:
        m = np.asarray(Image.fromarray(np.asarray(mask).astype(bool).astype(np.uint8) * 255).resize(
            (w, h), Image.NEAREST)) > 0
        blended[_contour(m, line)] = np.array(CONTOUR_COLOUR) / 255.0
    left = Image.fromarray((base * 255).round().astype(np.uint8))
    right = Image.fromarray((blended * 255).round().astype(np.uint8))
    for panel in (left, right):
        draw = ImageDraw.Draw(panel)
        for b in boxes:
            x0, y0 = b.x * scale, b.y * scale
            x1, y1 = (b.x + b.w) * scale - 1, (b.y + b.h) * scale - 1
            draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=BOX_COLOUR, width=line)
    width = 2 * w + GAP
    font = _font(max(14, round(max(h, w) / 28)))
    lines = _wrap_to(caption, font, width - 16)
    line_h = int(font.getbbox("Ag")[3]) + 6
    band = 12 + line_h * len(lines) if lines else 0
    canvas = Image.new("RGB", (width, h + band), (0, 0, 0))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (w + GAP, 0))
    draw = ImageDraw.Draw(canvas)
    for i, text in enumerate(lines):
        draw.text((8, h + 6 + line_h * i), text, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


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
