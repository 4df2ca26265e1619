r"""Generated lung-field masks for chest radiographs (no trained model).

The demo and the benchmarks need lung masks for real radiographs, and nothing may
be downloaded, so the masks are made by classical image processing
(:func:`lung_field_mask`). They are lung *fields* as a radiologist would outline
them on a frontal (PA/AP) film: two regions, bounded by the chest wall, the
clavicles, the diaphragm and the mediastinum/heart, excluding the outside air.
They are not a substitute for a trained segmentation model: severe consolidation,
effusion or a white-out lung can shrink a field or make it vanish, in which case
:func:`lung_field_mask` raises :class:`ValueError` instead of guessing.

Public functions
----------------
read_radiograph(path) -> (image, spacing)
    Re-exported from :mod:`chexradi.data.readers`.
lung_field_mask(image, \*, spacing=None, separate=False, ...) -> uint8 mask
    Generated lung-field mask of a frontal chest radiograph.
save_mask(mask, like_path_or_spacing, out_path)
    NRRD via SimpleITK with the image's pixel spacing, written atomically.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._nrrd import write_nrrd
from .readers import _check_file, _valid_spacing, image_shape_and_spacing, read_radiograph

__all__ = ["read_radiograph", "lung_field_mask", "save_mask"]

logger = logging.getLogger("chexradi.data.lungs")

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------
# Lung fields
# ---------------------------------------------------------------------------


def _working_shape(shape: tuple[int, int], spacing: tuple[float, float], work_size: int) -> tuple[int, int]:
    """Shape with (nearly) isotropic pixels whose longer side is ``work_size``."""
    extent = np.array(shape, float) * np.array(spacing, float)
    scale = work_size / extent.max()
    return tuple(max(16, int(round(e * scale))) for e in extent)  # type: ignore[return-value]


def _basin_depth(g: np.ndarray, pad: int = 4) -> np.ndarray:
    """Depth of every dark basin not connected to the image border.

    Grey-level hole filling (morphological reconstruction by erosion seeded from
    the border): each basin is filled up to the level at which it would spill
    towards the border; depth = filled - image. Outside air, and anything reachable
    from the border without crossing brighter tissue, has depth 0.
    """
    from skimage.morphology import reconstruction

    gp = np.pad(g, pad, mode="edge")
    seed = gp.copy()
    seed[pad + 1 : -pad - 1, pad + 1 : -pad - 1] = gp.max()
    filled = reconstruction(seed, gp, method="erosion")
    return (filled - gp)[pad:-pad, pad:-pad]


def _midline(g: np.ndarray) -> int:
    """Column of the mediastinum: the brightest column in the central 40% (rows 15-75%)."""
    from scipy import ndimage as ndi

    h, w = g.shape
    prof = g[int(0.15 * h) : int(0.75 * h)].mean(axis=0)
    prof = ndi.uniform_filter1d(prof, size=max(3, w // 32))
    lo, hi = int(0.3 * w), int(0.7 * w)
    return lo + int(np.argmax(prof[lo:hi]))


def _fill_lateral(m: np.ndarray, lateral_is_left: bool) -> np.ndarray:
    """Extend each row of a lung out to its convex hull on the lateral side only.

    The lateral border of a lung field follows the rib cage and is convex; the
    threshold leaves notches where ribs cross it. Filling them row by row towards
    the hull, and only laterally, keeps the medial (heart) and diaphragmatic
    concavities as they are.
    """
    from skimage.morphology import convex_hull_image

    if not m.any():
        return m
    hull = convex_hull_image(m)
    out = m.copy()
    cols = np.arange(m.shape[1])
    for r in np.nonzero(m.any(axis=1))[0]:
        lc = cols[m[r]]
        hc = cols[hull[r]]
        if lateral_is_left:
            out[r, hc.min() : lc.min()] = True
        else:
            out[r, lc.max() + 1 : hc.max() + 1] = True
    return out


def _disk(radius: int) -> np.ndarray:
    from skimage.morphology import disk

    return disk(max(1, int(radius))).astype(bool)


def lung_field_mask(
    image: np.ndarray,
    *,
    spacing: Optional[Sequence[float]] = None,
    separate: bool = False,
    work_size: int = 256,
    min_fraction: float = 0.02,
    require_both: bool = True,
) -> np.ndarray:
    """Generated lung-field mask of a frontal chest radiograph (classical image processing).

    Steps, on a working grid with isotropic pixels and ``work_size`` pixels along
    the longer side:

    1. normalise: clip to the 0.5 and 99.5 percentiles and scale to [0, 1];
    2. contrast-limited adaptive histogram equalisation (CLAHE), which flattens
       the large-scale brightness gradient (soft tissue over the lower zones) so
       the lung bases stay darker than their surroundings; Gaussian smoothing,
       sigma = ``work_size``/128 pixels;
    3. basin depth: grey-level hole filling seeded from the image border
       (morphological reconstruction by erosion), depth = filled - image. The
       outside air is connected to the border and gets depth 0; the lungs, enclosed
       by chest wall, clavicles, diaphragm and mediastinum, are deep basins;
    4. threshold the depth (Otsu over the positive depths, hysteresis down to 0.3
       of it), cut along the mediastinum column (the brightest central column),
       morphological opening;
    5. on each side of the mediastinum keep the largest plausible component (not
       touching the border, at least ``min_fraction`` of the image, centroid in the
       middle 80% of the rows, taller than 0.8 of its width); the two fields must
       share at least 40% of their rows, with a brighter strip (mediastinum) between
       them narrower than 30% of the image width;
    6. per lung: closing (radius ``work_size``/21), hole filling, opening; rib
       notches on the lateral side filled row by row up to the convex hull (the
       medial and diaphragmatic concavities are kept); a Gaussian-smoothed outline,
       resized back to the input shape (bilinear on the smoothed outline, 0.5
       iso-line) and keep the two lungs at least one pixel apart.

    Deterministic: no random numbers, no state.

    Parameters
    ----------
    image : numpy.ndarray
        2-D radiograph, higher = denser (as returned by :func:`read_radiograph`).
        Any size from about 128 to several thousand pixels per side.
    spacing : sequence of two floats, optional
        Pixel spacing (row, column) in mm; only the ratio matters (anisotropic
        pixels are made square on the working grid). Default ``(1.0, 1.0)``.
    separate : bool
        ``False`` (default): 1 inside either lung field. ``True``: 1 = the right
        lung (on the image's left side, standard PA/AP display), 2 = the left lung.
    work_size : int
        Pixels along the longer side of the working grid (64 to 1024; default 256).
    min_fraction : float
        Smallest area of a lung field, as a fraction of the image area (default 0.02).
    require_both : bool
        ``True`` (default): raise when a lung field is found on one side only.
        ``False``: return the one that was found and log a warning.

    Returns
    -------
    numpy.ndarray
        uint8 mask with the shape of ``image``.

    Raises
    ------
    ValueError
        If ``image`` is not a finite 2-D array, has no contrast (e.g. constant), or
        no plausible lung field is found (or only one while ``require_both``).
    """
    from scipy import ndimage as ndi
    from skimage import exposure
    from skimage.filters import apply_hysteresis_threshold, gaussian, threshold_otsu
    from skimage.measure import label, regionprops
    from skimage.transform import resize

    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(
            f"image must be a 2-D radiograph, got shape {img.shape}; read files with read_radiograph(), "
            "which converts RGB to grey."
        )
    if not np.issubdtype(img.dtype, np.number) or np.issubdtype(img.dtype, np.complexfloating):
        raise ValueError(f"image must be a real numeric array, got dtype {img.dtype}.")
    if min(img.shape) < 32:
        raise ValueError(f"image of shape {img.shape} is too small for a lung-field mask; need at least 32 pixels per side.")
    img = img.astype(np.float64, copy=False)
    if not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or infinite values; replace them (e.g. numpy.nan_to_num) first.")
    sp = (1.0, 1.0) if spacing is None else _valid_spacing(spacing)
    if sp is None:
        raise ValueError(f"spacing must be two positive finite numbers (row, column) in mm, got {spacing!r}.")
    if not (64 <= int(work_size) <= 1024):
        raise ValueError(f"work_size must be between 64 and 1024 pixels, got {work_size}.")
    if not (0.0 < min_fraction < 0.5):
        raise ValueError(f"min_fraction must be in (0, 0.5), got {min_fraction}.")

    lo, hi = np.percentile(img, [0.5, 99.5])
    if not hi > lo:
        raise ValueError(
            "No plausible lung field: the image has no contrast (its 0.5 and 99.5 percentiles are equal, "
            f"{lo:g}). Pass a chest radiograph."
        )
    scale = int(work_size) / 256.0
    wshape = _working_shape(img.shape, sp, int(work_size))
    w = resize(np.clip((img - lo) / (hi - lo), 0.0, 1.0), wshape, order=1, anti_aliasing=True)
    w = exposure.equalize_adapthist(w, clip_limit=0.01)
    g = gaussian(w, sigma=2.0 * scale)

    depth = _basin_depth(g)
    pos = depth[depth > 0.01]
    if pos.size < 0.01 * depth.size or np.ptp(pos) <= 0:
        raise ValueError(
            "No plausible lung field: the image has no dark region enclosed by brighter tissue. "
            "Pass a frontal (PA/AP) chest radiograph with higher values = denser tissue "
            "(MONOCHROME1 DICOM must be inverted; read_radiograph does that)."
        )
    t = threshold_otsu(pos)
    cand = apply_hysteresis_threshold(depth, 0.3 * t, t)
    mid = _midline(g)
    cand[:, max(0, mid - 1) : mid + 1] = False
    cand = ndi.binary_opening(cand, structure=_disk(round(3 * scale)))

    H, W = wshape
    lab = label(cand, connectivity=1)
    min_area = min_fraction * H * W
    best: list[Optional[object]] = [None, None]
    for r in regionprops(lab):
        r0, c0, r1, c1 = r.bbox
        if r0 == 0 or c0 == 0 or r1 == H or c1 == W or r.area < min_area:
            continue
        cy, cx = r.centroid
        if not (0.1 * H <= cy <= 0.9 * H) or (r1 - r0) < 0.8 * (c1 - c0):
            continue  # lung fields sit in the middle rows and are taller than wide
        side = 0 if cx < mid else 1
        if best[side] is None or r.area > best[side].area:  # type: ignore[union-attr]
            best[side] = r
    found = [b is not None for b in best]
    if not any(found):
        raise ValueError(
            "No plausible lung field found: no dark region enclosed by chest wall, diaphragm and mediastinum "
            f"covering at least {min_fraction:.0%} of the image on either side. Is this a frontal chest radiograph "
            "with higher values = denser tissue?"
        )
    if not all(found):
        missing = "right (image left)" if not found[0] else "left (image right)"
        msg = (
            f"Only one lung field found; none plausible for the {missing} lung (white-out, effusion, "
            "lateral view or cropped image?)."
        )
        if require_both:
            raise ValueError(msg + " Pass require_both=False to accept a single lung field.")
        logger.warning(msg)
    if all(found):
        (a0, _, a1, ar), (b0, bl, b1, _) = best[0].bbox, best[1].bbox  # type: ignore[union-attr]
        overlap = (min(a1, b1) - max(a0, b0)) / min(a1 - a0, b1 - b0)
        lungs = (lab == best[0].label) | (lab == best[1].label)  # type: ignore[union-attr]
        strip = g[max(a0, b0) : min(a1, b1), ar:bl] if bl > ar else np.empty(0)
        gap = (bl - ar) / W  # mediastinum width at its narrowest, as a fraction of the image width
        if overlap < 0.4 or gap > 0.3 or strip.size == 0 or strip.mean() < g[lungs].mean() + 0.05:
            raise ValueError(
                "No plausible lung fields: the two dark regions found are not side by side with a brighter "
                "mediastinum between them. Pass a frontal (PA/AP) chest radiograph, upright, with higher "
                "values = denser tissue."
            )

    out = np.zeros(img.shape, np.uint8)
    close_r = round(12 * scale)
    pad = close_r + 2
    for k, r in enumerate(best, start=1):
        if r is None:
            continue
        m = np.pad(lab == r.label, pad)  # type: ignore[union-attr]
        m = ndi.binary_closing(m, structure=_disk(close_r))
        m = ndi.binary_fill_holes(m)
        m = ndi.binary_opening(m, structure=_disk(round(3 * scale)))[pad:-pad, pad:-pad]
        m = _fill_lateral(m, lateral_is_left=(k == 1))
        smooth = gaussian(m.astype(np.float64), sigma=1.5 * scale)
        big = resize(smooth, img.shape, order=1, anti_aliasing=False) >= 0.5
        big = ndi.binary_fill_holes(big)
        lb, n = ndi.label(big)
        if n > 1:
            big = lb == (1 + int(np.argmax(ndi.sum_labels(big, lb, index=np.arange(1, n + 1)))))
        if k == 2 and out.any():
            big &= ~ndi.binary_dilation(out > 0, structure=np.ones((3, 3), bool))
        out[big] = k
    out[0, :] = out[-1, :] = 0
    out[:, 0] = out[:, -1] = 0
    if not separate:
        out = (out > 0).astype(np.uint8)
    return out


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def save_mask(
    mask: np.ndarray,
    like_path_or_spacing: Union[PathLike, Sequence[float]],
    out_path: PathLike,
    *,
    sync: bool = True,
) -> Path:
    """Write a 2-D label mask as NRRD with the image's pixel spacing, atomically.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D integer or boolean mask (labels 0-255), numpy order.
    like_path_or_spacing : path or sequence of two floats
        The radiograph the mask belongs to (its spacing is read from the DICOM
        header, 1.0 mm for PNG/JPEG, and its shape must match ``mask``), or the
        pixel spacing (row, column) in mm.
    out_path : path
        Destination ending in ``.nrrd``; parent folders are created. The file is
        written under a temporary name in the same folder, then renamed over
        ``out_path`` (``os.replace``), so readers never see a partial file.
    sync : bool
        fsync the file and its folder before returning (default), so a power cut loses
        nothing. A writer of many masks (the loop) passes False and makes them durable
        once at the end.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    FileNotFoundError
        If ``like_path_or_spacing`` is a path that does not exist.
    ValueError
        If the mask is not 2-D integer/boolean with labels in 0-255, the spacing is
        invalid, the shapes differ, or ``out_path`` does not end in ``.nrrd``.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}.")
    if m.dtype != bool and not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"mask must be boolean or integer labels, got dtype {m.dtype}; round or cast it first.")
    if m.size and (m.min() < 0 or m.max() > 255):
        raise ValueError(f"mask labels must be in 0..255, got {m.min()}..{m.max()}.")

    if isinstance(like_path_or_spacing, (str, os.PathLike)):
        like = _check_file(like_path_or_spacing)
        shape, sp = image_shape_and_spacing(like)
        if tuple(shape) != m.shape:
            raise ValueError(
                f"mask shape {m.shape} differs from the shape {tuple(shape)} of {like}; "
                "pass the radiograph the mask was made from."
            )
    else:
        sp_ = _valid_spacing(like_path_or_spacing)
        if sp_ is None:
            raise ValueError(
                "like_path_or_spacing must be an image path or two positive spacings (row, column) in mm, "
                f"got {like_path_or_spacing!r}."
            )
        sp = sp_

    out = Path(os.fspath(out_path))
    if out.suffix.lower() != ".nrrd":
        raise ValueError(f"out_path must end in .nrrd, got {out}.")
    if out.is_dir():
        raise ValueError(f"out_path {out} is a directory; give a file name ending in .nrrd.")
    out.parent.mkdir(parents=True, exist_ok=True)

    return write_nrrd(out, m.astype(np.uint8, copy=False), (float(sp[0]), float(sp[1])), sync=sync)
