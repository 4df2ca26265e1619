"""Filtered image types (PyRadiomics' ``imageType``): the images the texture classes also run on.

Each generator takes the pre-processed image (after normalisation and resampling, before cropping:
the image PyRadiomics filters) as a numpy array in numpy order with its spacing, and the box the
caller reads (the ROI's bounding box, padded by ``kernelRadius`` for feature maps), and yields
``(filtered array cropped to the box, image type name, settings)`` with the values PyRadiomics'
``get<Type>Image`` generators give on the whole image: the same library (SimpleITK, PyWavelets,
scikit-image), the same pixel type, the same order of operations and the same names
(``log-sigma-1-0-mm-3D``, ``wavelet-LHL``, ``wavelet2-LLH``, ``square``, ``lbp-2D`` ...).
chexradi's kernels then compute the features of each filtered image.

What each type computes to fill the box (every one is checked against the whole image cropped,
bit for bit, in ``tests/test_filters.py``):

- LoG: ITK's recursive Gaussian passes (:mod:`.kernels.recursive`), with ITK's coefficients,
  order of passes and of operations and pixel type, on the lines through the box only
  (:func:`laplacian_of_gaussian`); bit for bit SimpleITK's image there (on x86-64, where neither
  ITK's wheels nor numba fuse multiply-adds).
- Wavelet: ``swtn`` on the box widened by the levels' filter lengths, or on the whole axis
  where that would reach an end (the transform wraps around there).
- Gradient: on the box widened by one voxel, clipped to the image (whose edge it extends).
- LBP2D: on the slices from the image's start to the box's end widened by the sampling radius
  (scikit-image places its samples at absolute coordinates, so the slices keep their origin).
- Square, SquareRoot, Logarithm, Exponential (scaled by the whole image's largest value),
  LBP3D (computed at the ROI voxels), Original: computed as before, then cropped.

===========  ===============================================================================
image type   filter
===========  ===============================================================================
Original     the image itself
LoG          SimpleITK's ``LaplacianRecursiveGaussianImageFilter`` per ``sigma`` (mm), normalised
             across scale (its passes run in chexradi's kernel); a sigma too large for the
             image (size < ceil(sigma/spacing) + 1) or an image smaller than 4 voxels along an
             axis gives no image, as in PyRadiomics
Wavelet      PyWavelets ``swtn`` (stationary), ``wavelet`` (default coif1), ``level`` (1)
             levels after ``start_level`` (0); odd sizes padded by one (wrap) and cropped back;
             every detail combination per level, then the last approximation
Square       ``(x / sqrt(max|x|))^2``
SquareRoot   ``sign(x) sqrt(|x| max|x|)``
Logarithm    ``sign(x) log(|x| + 1)``, rescaled to the original ``max|x|``
Exponential  ``exp(x log(max|x|) / max|x|)``
Gradient     SimpleITK ``GradientMagnitudeImageFilter`` (``gradientUseSpacing``, default True)
LBP2D        scikit-image ``local_binary_pattern`` (``lbp2DRadius`` 1, ``lbp2DSamples`` 8,
             ``lbp2DMethod`` uniform), per slice along ``force2Ddimension`` for 3-D images
LBP3D        rotation-invariant 3-D LBP from spherical harmonics (Banerjee et al. 2013) at the ROI
             voxels: the image sampled on trimesh's icosphere (``lbp3DIcosphereRadius`` 1,
             ``lbp3DIcosphereSubdivision`` 1) around each voxel by SciPy's cubic
             ``map_coordinates``, thresholded at the voxel, projected on the spherical harmonics
             of ``lbp3DLevels`` (2) degrees: one image per degree (``lbp-3D-m1``, ...) and the
             samples' kurtosis (``lbp-3D-k``); 3-D images only (a 2-D image gives none, with a
             warning, as in PyRadiomics); needs ``trimesh`` (``pip install "chexradi[lbp3d]"``)
===========  ===============================================================================

LBP3D also receives the ROI mask (it is computed at the ROI voxels only).
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..about import install_hint
from .kernels.recursive import accumulate_scaled, coefficients, filter_lines
from .reference import legacy_sph_harm, to_sitk

__all__ = ["NUMBA_IMAGE_TYPES", "filtered_images", "laplacian_of_gaussian"]

logger = logging.getLogger("chexradi.radiomics.filters")

#: The image types the numba engine computes (all of PyRadiomics').
NUMBA_IMAGE_TYPES = ("Original", "LoG", "Wavelet", "Square", "SquareRoot", "Logarithm", "Exponential", "Gradient",
                     "LBP2D", "LBP3D")

Filtered = Iterator[tuple[np.ndarray, str, dict]]
Box = tuple[slice, ...]


def _original(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    yield image[box], "original", kw


def _log(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    size = np.array(image.shape[::-1])  # ITK order, as PyRadiomics reads it off the SimpleITK image
    sp = np.array([float(v) for v in reversed(tuple(spacing))])
    if np.min(size) < 4:
        logger.warning("image too small to apply the LoG filter (size %s): no LoG image", size)
        return
    for sigma in kw.get("sigma", []):
        if not sigma > 0:
            logger.warning("LoG sigma must be greater than 0, got %g: no image", sigma)
        elif np.all(size >= np.ceil(sigma / sp) + 1):
            yield (laplacian_of_gaussian(image, spacing, float(sigma), box),
                   "log-sigma-%s-mm-3D" % str(sigma).replace(".", "-"), kw)
        else:
            logger.warning("LoG sigma %g: sigma/spacing (%s) + 1 exceeds the image size %s; no image", sigma, sp,
                           size)


def _log_dtype(dtype: np.dtype) -> np.dtype:
    """The pixel type of SimpleITK's LaplacianRecursiveGaussian for an input of ``dtype`` (also the type
    ITK stores each pass in): asked of SimpleITK once per type, on a 4 x 4 image."""
    key = np.dtype(dtype).str
    if key not in _LOG_DTYPES:
        import SimpleITK as sitk

        f = sitk.LaplacianRecursiveGaussianImageFilter()
        _LOG_DTYPES[key] = sitk.GetArrayFromImage(f.Execute(to_sitk(np.zeros((4, 4), dtype=dtype)))).dtype
    return _LOG_DTYPES[key]


_LOG_DTYPES: dict[str, np.dtype] = {}


def _along(arr: np.ndarray, axis: int, coefs: np.ndarray, lo: int, hi: int, dtype: np.dtype) -> np.ndarray:
    """Positions ``[lo, hi)`` along ``axis`` of every line of ``arr`` along ``axis``, recursively filtered."""
    shape = arr.shape
    before, after = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    out = np.empty((before, hi - lo, after), dtype=dtype)
    filter_lines(np.ascontiguousarray(arr).reshape(before, shape[axis], after), coefs, lo, hi, out)
    return out.reshape(shape[:axis] + (hi - lo,) + shape[axis + 1:])


def laplacian_of_gaussian(image: np.ndarray, spacing: Sequence[float], sigma: float,
                          box: Optional[Box] = None) -> np.ndarray:
    """SimpleITK's ``LaplacianRecursiveGaussianImageFilter`` (normalised across scale) of ``image``, cropped to
    ``box`` (the whole image by default): the same values, bit for bit, computed on the lines through the box
    only. The image needs at least 4 voxels along every axis.

    ITK sums, for every axis ``d``, the recursive second derivative of the Gaussian along ``d`` followed by
    the recursive Gaussian along each other axis (ITK's axis order), each pass stored in the output's pixel
    type, divided by ``spacing[d]**2``. Each pass filters whole lines, but only the positions a later pass
    reads are kept: the derivative pass keeps the box's range along ``d``, the next keeps the box's range
    along its own axis as well, and the last one computes the box itself
    (:func:`~.kernels.recursive.filter_lines`). So a small ROI in a large image costs about one pass over
    the image per axis instead of ITK's ``ndim`` (and the passes over the box's slabs).
    """
    box = _checked_box(image.shape, box, "laplacian_of_gaussian")
    if min(image.shape) < 4:
        raise ValueError(f"laplacian_of_gaussian: the recursive Gaussian needs at least 4 voxels along every axis, "
                         f"the image is {image.shape} (SimpleITK refuses it too; PyRadiomics yields no LoG image)")
    nd = image.ndim
    dtype = _log_dtype(image.dtype)
    acc = np.zeros(tuple(b.stop - b.start for b in box), dtype=dtype)
    for d in range(nd):  # ITK's axis d is numpy's axis nd - 1 - d
        axis = nd - 1 - d
        chain = [(axis, 2)] + [(nd - 1 - j, 0) for j in range(nd) if j != d]
        cur = image
        for ax, order in chain:
            # the region cur holds is the box along the axes already filtered and whole along the others
            cur = _along(cur, ax, coefficients(sigma, float(spacing[ax]), order), box[ax].start, box[ax].stop,
                         dtype)
        accumulate_scaled(acc.reshape(-1), np.ascontiguousarray(cur).reshape(-1),
                          1.0 / (float(spacing[axis]) * float(spacing[axis])))
    return acc


def _wavelet(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    import pywt

    nd = image.ndim
    axes = list(range(nd - 1, -1, -1))
    if kw.get("force2D", False):
        f2d = kw.get("force2Ddimension", 0)
        if f2d not in axes:
            raise ValueError(f"Wavelet with force2D: force2Ddimension={f2d} is not an axis of this {nd}-D image; "
                             f"use one of {sorted(axes)} (or force2D=False).")
        axes.remove(f2d)
    axes_t = tuple(axes)
    wavelet = kw.get("wavelet", "coif1")
    level = kw.get("level", 1)
    start_level = kw.get("start_level", 0)
    w = wavelet if isinstance(wavelet, pywt.Wavelet) else pywt.Wavelet(wavelet)
    region = _wavelet_region(image.shape, box, axes_t, (start_level + level) * (w.dec_len + 1))
    shape = tuple(r.stop - r.start for r in region)
    data = np.pad(np.asarray(image)[region].copy(), tuple((0, 1 if n % 2 != 0 else 0) for n in shape), "wrap")
    back = _within(box, region)
    approx_key = "a" * len(axes_t)
    for _ in range(start_level):
        data = pywt.swtn(data, w, level=1, start_level=0, axes=axes_t)[0][approx_key].copy()
    levels = []
    for _ in range(start_level, start_level + level):
        dec = pywt.swtn(data, w, level=1, start_level=0, axes=axes_t)[0]
        data = dec[approx_key].copy()
        levels.append([(name.replace("a", "L").replace("d", "H"), arr[back].copy())
                       for name, arr in dec.items() if name != approx_key])
    for idx, details in enumerate(levels, start=1):
        prefix = "wavelet" if idx == 1 else f"wavelet{idx}"
        for name, arr in details:
            yield arr, f"{prefix}-{name}", kw
    prefix = "wavelet" if len(levels) == 1 else f"wavelet{len(levels)}"
    yield data[back].copy(), f"{prefix}-{'L' * len(axes_t)}", kw


def _wavelet_region(shape: Sequence[int], box: Box, axes: Sequence[int], margin: int) -> Box:
    """The part of the image the stationary wavelet runs on so that its values in ``box`` are those of the
    whole image's: along each transformed axis the box widened by ``margin`` (each level reads ``dec_len``
    neighbours of a position) to an even length, or the whole axis (padded by one, wrapped, where odd, as
    PyRadiomics pads) where that would reach an end, because the transform wraps around there; the box
    itself along an axis that is not transformed (force2D)."""
    region = []
    for ax, (n, b) in enumerate(zip(shape, box)):
        if ax not in axes:
            region.append(b)
            continue
        lo, hi = b.start - margin, b.stop + margin
        if (hi - lo) % 2:
            hi += 1
        region.append(slice(lo, hi) if lo >= 0 and hi <= n else slice(0, n))
    return tuple(region)


def _square(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    im = np.asarray(image).astype("float64")
    coeff = 1 / np.sqrt(np.max(np.abs(im)))
    yield ((coeff * im) ** 2)[box], "square", kw


def _square_root(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    im = np.asarray(image).astype("float64")
    coeff = np.max(np.abs(im))
    im[im > 0] = np.sqrt(im[im > 0] * coeff)
    im[im < 0] = -np.sqrt(-im[im < 0] * coeff)
    yield im[box], "squareroot", kw


def _logarithm(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    im = np.asarray(image).astype("float64")
    im_max = np.max(np.abs(im))
    im[im > 0] = np.log(im[im > 0] + 1)
    im[im < 0] = -np.log(-(im[im < 0] - 1))
    yield (im * (im_max / np.max(np.abs(im))))[box], "logarithm", kw


def _exponential(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    im = np.asarray(image).astype("float64")
    im_max = np.max(np.abs(im))
    coeff = np.log(im_max) / im_max
    yield np.exp(coeff * im)[box], "exponential", kw


def _gradient(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    import SimpleITK as sitk

    # central differences with the image's edge extended: on the box widened by one voxel (the whole image
    # where that reaches an end, so that the same edges are extended) the values in the box are the same
    region = _widened(image.shape, box, [1] * image.ndim)
    f = sitk.GradientMagnitudeImageFilter()
    f.SetUseImageSpacing(kw.get("gradientUseSpacing", True))
    yield sitk.GetArrayFromImage(f.Execute(to_sitk(image[region], spacing)))[_within(box, region)], "gradient", kw


def _widened(shape: Sequence[int], box: Box, margins: Sequence[int]) -> Box:
    """``box`` widened by ``margins`` voxels per axis, clipped to the image."""
    return tuple(slice(max(0, b.start - m), min(n, b.stop + m)) for n, b, m in zip(shape, box, margins))


def _within(box: Box, region: Box) -> Box:
    """``box`` relative to ``region``, which contains it."""
    return tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))


def _lbp2d(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box) -> Filtered:
    from skimage.feature import local_binary_pattern

    radius = kw.get("lbp2DRadius", 1)
    samples = kw.get("lbp2DSamples", 8)
    method = kw.get("lbp2DMethod", "uniform")
    axis = kw.get("force2Ddimension", 0) if image.ndim == 3 else None
    # each code reads the pixels within radius + 1 (bilinear samples), 0 beyond the image. scikit-image places
    # the samples at absolute coordinates (r + R sin, c + R cos), whose rounding depends on r and c, so the
    # slices keep their origin: they run from the image's start to the box's end widened by that reach (or the
    # image's end); along the slice axis the box itself
    reach = int(np.ceil(radius)) + 1
    region = tuple(b if ax == axis else slice(0, min(n, b.stop + reach))
                   for ax, (n, b) in enumerate(zip(image.shape, box)))
    arr = np.array(image[region], copy=True)  # the image's own pixel type: codes are written into it, as PyRadiomics
    if arr.ndim == 3:
        if not kw.get("force2D", False):
            logger.warning("LBP2D computed per 2-D slice but features extracted in 3-D; use with caution")
        arr = arr.swapaxes(0, axis)
        for i in range(arr.shape[0]):
            arr[i, ...] = local_binary_pattern(arr[i, ...], P=samples, R=radius, method=method)
        arr = arr.swapaxes(0, axis)
    else:
        arr = local_binary_pattern(arr, P=samples, R=radius, method=method)
    yield arr[_within(box, region)], "lbp-2D", kw


def _lbp3d(image: np.ndarray, spacing: Sequence[float], kw: dict, box: Box, mask: Optional[np.ndarray]) -> Filtered:
    if image.ndim != 3:
        logger.warning("LBP3D needs a 3-D image, got %d-D: no lbp-3D image (as in PyRadiomics)", image.ndim)
        return
    if mask is None:
        raise ValueError("LBP3D is computed at the ROI voxels: filtered_images needs the ROI mask (mask=...).")
    try:
        from trimesh.creation import icosphere
    except ImportError:
        raise ImportError("imageType LBP3D samples each voxel's neighbourhood on trimesh's icosphere, as PyRadiomics "
                          f"does: {install_hint('lbp3d')}.") from None
    from scipy.ndimage import map_coordinates
    from scipy.stats import kurtosis

    if kw.get("force2D", False):
        logger.warning("LBP3D is computed in 3-D but the features are extracted in 2-D (force2D); use with caution")
    levels = int(kw.get("lbp3DLevels", 2))
    radius = kw.get("lbp3DIcosphereRadius", 1)
    vertices = np.array(icosphere(kw.get("lbp3DIcosphereSubdivision", 1), radius).vertices)  # (Nv, 3)
    theta = np.arccos(np.true_divide(vertices[:, 2], radius))
    phi = np.arctan2(vertices[:, 1], vertices[:, 0])
    # SciPy's sph_harm(m, n, theta, phi) as PyRadiomics calls it (theta in the azimuth's place); SciPy 1.17
    # removed it, so it is built as SciPy built it (sph_harm_y agrees to about 1e-14, enough to move a value
    # across a percentile that RobustMeanAbsoluteDeviation tests)
    harmonics = [legacy_sph_harm(0, 0, theta, phi)]
    degree = [0]
    for n in range(1, levels):
        for m in range(-n, n + 1):
            degree.append(n)
            harmonics.append(legacy_sph_harm(m, n, theta, phi))
    Y = np.column_stack(harmonics)  # (Nv, harmonics)
    n_ix = np.array(degree)
    roi = np.where(mask)
    coords = np.array(roi).T[None, :, :] + vertices[:, None, :]  # (Nv, Np, 3)
    # cubic samples on the sphere, in the image's own pixel type (an integer image gives integer samples)
    f = map_coordinates(image, coords.T, order=3)  # (Np, Nv)
    k = kurtosis(f, axis=1)
    f = np.greater_equal(f, image[roi][:, None]).astype(int)
    c = np.multiply(f[:, :, None], Y[None, :, :]).sum(axis=1)  # (Np, harmonics)
    g = np.multiply(c[:, None, n_ix == 0], Y[None, :, n_ix == 0])
    for n in range(1, levels):
        g = np.concatenate((g, np.sum(np.multiply(c[:, None, n_ix == n], Y[None, :, n_ix == n]), axis=2,
                                      keepdims=True)), axis=2)  # (Np, Nv, levels)
    g = np.real(np.sqrt(np.sum(g ** 2, axis=1)))  # (Np, levels)
    # PyRadiomics leaves the voxels outside the ROI uninitialised; they are 0 here (only voxel-based maps with
    # maskedKernel=False read them)
    out = np.zeros(image.shape)
    for level in range(levels):
        out[roi] = g[:, level]
        yield out[box].copy(), f"lbp-3D-m{level + 1}", kw
    out[roi] = np.real(k)
    yield out[box], "lbp-3D-k", kw


def _checked_box(shape: Sequence[int], box: Optional[Box], caller: str) -> Box:
    """``box`` as slices with start and stop inside ``shape`` (the whole image for None); a box of another
    dimension, with a step or empty is an error."""
    if box is None:
        return tuple(slice(0, n) for n in shape)
    box = tuple(box)
    if len(box) != len(shape) or any(not isinstance(b, slice) or b.step not in (None, 1) for b in box):
        raise ValueError(f"{caller}: box {box} must be {len(shape)} slices with step 1 (numpy order), one per axis "
                         f"of the {tuple(shape)} image")
    out = tuple(slice(*b.indices(n)[:2]) for b, n in zip(box, shape))
    if any(b.stop <= b.start for b in out):
        raise ValueError(f"{caller}: box {box} is not a non-empty region of the {tuple(shape)} image")
    return out


_GENERATORS = {"Original": _original, "LoG": _log, "Wavelet": _wavelet, "Square": _square,
               "SquareRoot": _square_root, "Logarithm": _logarithm, "Exponential": _exponential,
               "Gradient": _gradient, "LBP2D": _lbp2d}


def filtered_images(image: np.ndarray, spacing: Sequence[float], image_type: str, settings: dict[str, Any], *,
                    mask: Optional[np.ndarray] = None, box: Optional[Box] = None) -> Filtered:
    """The images of one image type: ``(array in numpy order, name, settings)`` per image, in PyRadiomics' order.

    ``settings`` are the general settings updated with the image type's own (as PyRadiomics merges
    them); they are yielded back with each image, for its feature classes. ``mask``: the ROI (bool, the
    image's shape), which LBP3D needs. ``box``: the part of the image the caller reads (slices in numpy
    order; the whole image by default). Each image is yielded cropped to it, with the values the filter
    gives on the whole image; LoG, Wavelet, Gradient and LBP2D compute only what the box needs.
    """
    box = _checked_box(image.shape, box, "filtered_images")
    if image_type == "LBP3D":
        return _lbp3d(image, spacing, dict(settings), box, mask)
    if image_type not in _GENERATORS:
        raise ValueError(f"image type {image_type!r} is not computed by the numba engine (it computes "
                         f"{', '.join(NUMBA_IMAGE_TYPES)}); use engine='pyradiomics'.")
    return _GENERATORS[image_type](image, spacing, dict(settings), box)
