"""Crop and discretize: turn an (image, mask) pair into the :class:`ROI` the feature classes use."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from .discretize import discretize
from .features.base import ROI

__all__ = ["bounding_box", "crop_to_mask", "roi_from_arrays"]


def bbox_bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) index per axis (numpy order) of the True voxels of ``mask``.

    Projects the mask on each axis (``any`` over the others) instead of listing
    every voxel: the same box, far less memory traffic on large images.
    """
    lo = np.empty(mask.ndim, dtype=np.int64)
    hi = np.empty(mask.ndim, dtype=np.int64)
    for ax in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != ax)
        proj = np.flatnonzero(mask.any(axis=others) if others else mask)
        if proj.size == 0:
            raise ValueError("The mask selects no voxel; check the mask file and `label`.")
        lo[ax] = proj[0]
        hi[ax] = proj[-1]
    return lo, hi


def bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """Slices of the tight bounding box of ``mask`` (numpy order)."""
    lo, hi = bbox_bounds(mask)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))


def crop_to_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` and ``mask`` to the bounding box of ``mask`` (no padding)."""
    bb = bounding_box(mask)
    return image[bb], mask[bb]


def roi_from_arrays(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Optional[Sequence[float]] = None,
    settings: Optional[dict[str, Any]] = None,
    crop: bool = True,
    discretized: bool = True,
) -> ROI:
    """Build an :class:`ROI` from numpy arrays in numpy order.

    ``image`` and ``mask`` are 2-D ``(y, x)`` or 3-D ``(z, y, x)``; ``mask`` is a
    boolean array (already compared with the label). ``spacing`` is in numpy
    order too (default 1.0 per axis). No resampling or normalisation happens
    here: the extractor does that first.

    ``crop=False`` keeps arrays the caller has already cropped;
    ``discretized=False`` skips binning (shape classes need none: ``binned`` is
    then all 0 and ``bin_edges`` empty).
    """
    settings = dict(settings or {})
    value_dtype = np.asarray(image).dtype  # bin edges are computed in it, as PyRadiomics does (float32!)
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ.")
    ndim = image.ndim
    if ndim not in (2, 3):
        raise ValueError(f"images must be 2-D or 3-D, got {ndim}-D.")
    if spacing is None:
        spacing = (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim:
        raise ValueError(f"spacing {spacing} does not match a {ndim}-D image.")
    if ndim == 2:
        image = image[None]
        mask = mask[None]
        spacing3 = (1.0,) + spacing
    else:
        spacing3 = spacing
    if crop:
        image, mask = crop_to_mask(image, mask)
    if discretized:
        binned, edges = discretize(
            image,
            mask,
            bin_width=float(settings.get("binWidth", 25)),
            bin_count=settings.get("binCount"),
            value_dtype=value_dtype if value_dtype.kind in "uif" else None,
        )
    else:
        binned, edges = np.zeros(image.shape, np.int32), np.zeros(0)
    return ROI(
        image=np.ascontiguousarray(image),
        mask=np.ascontiguousarray(mask),
        spacing=spacing3,  # type: ignore[arg-type]
        ndim=ndim,
        binned=np.ascontiguousarray(binned),
        bin_edges=edges,
        settings=settings,
    )


# --------------------------------------------------------------------------------------------
# SimpleITK-level pre-processing, in the order PyRadiomics' execute() applies it:
#   labels check -> normalize -> resample (or preCrop) -> geometry/ROI check -> resegment
# --------------------------------------------------------------------------------------------
import SimpleITK as sitk  # noqa: E402


def labels_present(mask_arr: np.ndarray) -> np.ndarray:
    """Sorted non-zero labels present in a label-map array."""
    flat = mask_arr.ravel()
    mx = int(flat.max()) if flat.size else 0
    if mx < 1 << 20:
        counts = np.bincount(flat, minlength=mx + 1)
        labels = np.nonzero(counts)[0]
    else:
        labels = np.unique(flat)
    return labels[labels != 0]


def check_label(mask: "sitk.Image", label: int, *, name: str = "mask") -> None:
    """Raise ValueError when the mask is empty or ``label`` is absent (listing the labels present)."""
    arr = sitk.GetArrayViewFromImage(mask)
    if (arr == label).any():
        return
    labels = labels_present(arr)
    if labels.size == 0:
        raise ValueError(f"{name} is empty (no voxel > 0): nothing is segmented. Check that the right mask file "
                         "was given.")
    if label not in labels:
        raise ValueError(f"label {label} is not present in {name}; labels present: "
                         f"{', '.join(str(int(v)) for v in labels[:20])}{' ...' if labels.size > 20 else ''}. "
                         "Set `label` to one of them.")


def normalize_image(image: "sitk.Image", *, scale: float = 1.0, remove_outliers: Optional[float] = None) -> "sitk.Image":
    """PyRadiomics' normalisation: z-score over the whole image, optional clipping at +-outliers, times ``scale``."""
    image = sitk.Normalize(image)
    if remove_outliers is not None:
        arr = sitk.GetArrayFromImage(image)
        arr[arr > remove_outliers] = remove_outliers
        arr[arr < -remove_outliers] = -remove_outliers
        new = sitk.GetImageFromArray(arr)
        new.CopyInformation(image)
        image = new
    return image * scale


def _label_bbox_itk(mask_arr: np.ndarray, label: int) -> tuple[np.ndarray, np.ndarray]:
    """(lower index, size) of the label's bounding box in ITK (x, y, z) order."""
    lo, hi = bbox_bounds(mask_arr == label)
    return lo[::-1], (hi - lo + 1)[::-1]


def check_roi_inside(image: "sitk.Image", mask: "sitk.Image", label: int, tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The label's bounding box (ITK order); ValueError if it lies outside the image's physical extent."""
    lo, size = _label_bbox_itk(sitk.GetArrayViewFromImage(mask), label)
    low_phys = mask.TransformContinuousIndexToPhysicalPoint((lo - 0.5).tolist())
    up_phys = mask.TransformContinuousIndexToPhysicalPoint((lo + size - 0.5).tolist())
    b = np.array([image.TransformPhysicalPointToContinuousIndex(low_phys),
                  image.TransformPhysicalPointToContinuousIndex(up_phys)])
    if np.any(np.min(b, axis=0) < -0.5 - tolerance) or np.any(np.max(b, axis=0) > np.array(image.GetSize()) - 0.5 + tolerance):
        raise ValueError(f"the ROI (label {label}) lies partly outside the image: ROI bounds in image index space "
                         f"{b.round(2).tolist()}, image size {image.GetSize()}. The mask does not belong to this image.")
    return lo, size


def crop_sitk(image: "sitk.Image", mask: "sitk.Image", lo: np.ndarray, size: np.ndarray, pad: int = 0):
    """Crop both images to the box [lo, lo+size) (ITK order) grown by ``pad`` voxels, clipped to the image."""
    full = np.array(mask.GetSize())
    a = np.maximum(lo - pad, 0)
    b = np.minimum(lo + size + pad, full)
    sl = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
    return image[sl], mask[sl]


def resample(image: "sitk.Image", mask: "sitk.Image", *, spacing: Sequence[float], interpolator: Any,
             pad: int, label: int) -> tuple["sitk.Image", "sitk.Image"]:
    """Resample image and mask to ``spacing`` (ITK order) on a grid around the ROI, as PyRadiomics does.

    The new grid covers the ROI's bounding box plus ``pad`` voxels (new spacing),
    its first voxel centred so that the old and new grids share their outer
    edge; the image uses ``interpolator``, the mask nearest neighbour. When the
    new spacing equals the image's, only the mask is resampled onto the image
    grid and both are cropped (with padding).
    """
    mask_spacing = np.array(mask.GetSpacing())
    image_spacing = np.array(image.GetSpacing())
    nd = mask.GetDimension()
    new_spacing = np.array([float(s) for s in spacing])
    if len(new_spacing) != nd:
        raise ValueError(f"resampledPixelSpacing has {len(new_spacing)} values but the mask is {nd}-D; give {nd}.")
    new_spacing = np.where(new_spacing == 0, mask_spacing, new_spacing)
    lo, size = check_roi_inside(image, mask, label)
    new_spacing = np.where(size != 1, new_spacing, mask_spacing)
    if np.allclose(image_spacing, new_spacing):
        rif = sitk.ResampleImageFilter()
        rif.SetReferenceImage(image)
        rif.SetInterpolator(sitk.sitkNearestNeighbor)
        mask = rif.Execute(mask)
        lo, size = _label_bbox_itk(sitk.GetArrayViewFromImage(mask), label)
        return crop_sitk(image, mask, lo, size, pad)
    ratio = mask_spacing / new_spacing
    low = np.floor((lo - 0.5) * ratio - pad)
    up = np.ceil((lo + size - 0.5) * ratio + pad)
    max_up = np.ceil(np.array(mask.GetSize()) * ratio) - 1
    low = np.where(low < 0, 0, low)
    up = np.where(up > max_up, max_up, up)
    new_size = np.array(up - low + 1, dtype=int).tolist()
    origin_index = 0.5 * (new_spacing - mask_spacing) / mask_spacing + low / ratio
    new_origin = mask.TransformContinuousIndexToPhysicalPoint(origin_index.tolist())
    if isinstance(interpolator, str):
        interpolator = getattr(sitk, interpolator)
    rif = sitk.ResampleImageFilter()
    rif.SetOutputSpacing(new_spacing.tolist())
    rif.SetOutputDirection(mask.GetDirection())
    rif.SetSize(new_size)
    rif.SetOutputOrigin(new_origin)
    rif.SetOutputPixelType(image.GetPixelID())
    rif.SetInterpolator(interpolator)
    new_image = rif.Execute(image)
    rif.SetOutputPixelType(mask.GetPixelID())
    rif.SetInterpolator(sitk.sitkNearestNeighbor)
    new_mask = rif.Execute(mask)
    return new_image, new_mask


class Geometry(NamedTuple):
    """An image's grid in SimpleITK's order (x first): size, origin, spacing and the direction matrix row by
    row."""

    size: tuple[int, ...]
    origin: tuple[float, ...]
    spacing: tuple[float, ...]
    direction: tuple[float, ...]


def geometry_of(image: "sitk.Image") -> Geometry:
    """The :class:`Geometry` of a SimpleITK image."""
    return Geometry(image.GetSize(), image.GetOrigin(), image.GetSpacing(), image.GetDirection())


def same_geometry(a: Geometry, b: Geometry, tol: float) -> Optional[str]:
    """None when grids a and b share size and physical space within ``tol``, else what differs."""
    if len(a.size) != len(b.size):
        return f"image is {len(a.size)}-D but mask is {len(b.size)}-D"
    if a.size != b.size:
        return f"image size {a.size} differs from mask size {b.size}"
    coord_tol = tol * abs(a.spacing[0])
    if not _close(a.origin, b.origin, coord_tol):
        return f"image origin {a.origin} differs from mask origin {b.origin}"
    if not _close(a.spacing, b.spacing, coord_tol):
        return f"image spacing {a.spacing} differs from mask spacing {b.spacing}"
    if not _close(a.direction, b.direction, tol):
        return f"image direction {a.direction} differs from mask direction {b.direction}"
    return None


def _close(a: Sequence[float], b: Sequence[float], atol: float) -> bool:
    """``np.allclose(a, b, rtol=0, atol=atol)`` for two short tuples (NaN is never close), in a tenth of its
    time: it runs on every case."""
    return all(abs(x - y) <= atol for x, y in zip(a, b))


def geometry_tolerance(tolerance: Optional[float]) -> float:
    """The ``geometryTolerance`` setting as a number (None: PyRadiomics' default, 1e-6)."""
    return 1e-6 if tolerance is None else float(tolerance)


def roi_extent(sel: np.ndarray, *, label: int, minimum_dims: int,
               minimum_size: Optional[int]) -> tuple[np.ndarray, np.ndarray, Optional[str]]:
    """(first, last) index per axis (numpy order) of the non-empty ROI ``sel``, and what keeps it from the
    features (None when it passes): a single voxel, fewer dimensions than ``minimum_dims``, not more voxels
    than ``minimum_size``."""
    first, last = bbox_bounds(sel)
    ndims = int(np.count_nonzero(last > first))
    if ndims == 0:
        return first, last, (f"the ROI (label {label}) is a single voxel; features need at least 2 voxels. "
                             "Check the mask or the label.")
    if ndims < minimum_dims:
        return first, last, (f"the ROI (label {label}) spans {ndims} dimension(s) but minimumROIDimensions="
                             f"{minimum_dims}; lower minimumROIDimensions (e.g. 1 for a line ROI) or fix the mask.")
    if minimum_size is not None:
        count = int(np.count_nonzero(sel))
        if count <= minimum_size:
            return first, last, (f"the ROI (label {label}) has {count} voxels, not more than minimumROISize="
                                 f"{minimum_size}; lower minimumROISize or fix the mask.")
    return first, last, None


def check_mask(image: "sitk.Image", mask: "sitk.Image", *, label: int, minimum_dims: int = 2,
               minimum_size: Optional[int] = None, correct_mask: bool = False,
               tolerance: Optional[float] = None) -> tuple[np.ndarray, np.ndarray, "sitk.Image"]:
    """PyRadiomics' ``checkMask``: geometry, label, ROI dimensionality and size.

    Returns ``(lo, size, mask)``: the ROI bounding box (ITK order) and the mask
    (resampled onto the image grid when ``correct_mask`` had to fix a mismatch).
    """
    problem = same_geometry(geometry_of(image), geometry_of(mask), geometry_tolerance(tolerance))
    if problem is not None:
        if image.GetDimension() != mask.GetDimension():
            raise ValueError(f"{problem}; give a mask with the image's dimensionality.")
        if not correct_mask:
            raise ValueError(f"image/mask geometry mismatch: {problem}. Fix: give the mask that belongs to this "
                             "image, or set correctMask=True to resample the mask onto the image grid "
                             "(or raise geometryTolerance for tiny rounding differences).")
        check_label(mask, label)
        check_roi_inside(image, mask, label)
        rif = sitk.ResampleImageFilter()
        rif.SetReferenceImage(image)
        rif.SetInterpolator(sitk.sitkNearestNeighbor)
        mask = rif.Execute(mask)
    sel = sitk.GetArrayViewFromImage(mask) == label
    if not sel.any():
        check_label(mask, label)  # raises with the labels present
    first, last, problem = roi_extent(sel, label=label, minimum_dims=minimum_dims, minimum_size=minimum_size)
    if problem is not None:
        raise ValueError(problem)
    lo = first[::-1]
    size = (last - first + 1)[::-1]
    return lo, size, mask
