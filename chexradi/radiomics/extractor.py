"""The extractor: pre-processing, ROI checks, and the feature classes, for one (image, mask) case.

``Extractor(settings).execute(image, mask)`` follows PyRadiomics' ``execute()``
step by step so that both engines see the same voxels:

1. load image and mask (:mod:`chexradi.radiomics.imageio`); the label must be present
   (plain NRRD files that need none of steps 2-3 are checked on their arrays, without
   SimpleITK: ``Extractor._load_plain``);
2. ``normalize`` (z-score, ``removeOutliers``, ``normalizeScale``);
3. resampling to ``resampledPixelSpacing`` (or ``preCrop``) around the ROI;
4. mask checks: geometry (``correctMask``, ``geometryTolerance``),
   ``minimumROIDimensions``, ``minimumROISize``; non-finite pixels in the ROI are refused;
5. ``resegmentRange`` (``resegmentMode``); shape uses the resegmented mask only
   with ``resegmentShape``;
6. shape / shape2D on the mask cropped to the ROI's bounding box;
7. the other classes, for every image of every ``imageType`` (the original image, and
   filtered ones: :mod:`chexradi.radiomics.filters`, with the values PyRadiomics' filters
   give on the whole pre-processed image, computed for the ROI's bounding box only), on
   image and mask cropped to the bounding box,
   discretized once per image (``binWidth``/``binCount``, the image type's own when it sets
   them) and shared by every class; features named ``<image>_<class>_<Feature>``
   (``original_glcm_Contrast``, ``log-sigma-1-0-mm-3D_firstorder_Mean``, ``wavelet-LHL_...``).

``engine="pyradiomics"`` runs steps 1 and 4's input checks here, then hands the
same SimpleITK images to PyRadiomics' own ``execute()``.

``Extractor(settings).feature_maps(image, mask)`` is PyRadiomics' ``execute(..., voxelBased=True)``: steps
1-5, then one map per feature of the non-shape classes, on the ROI's box padded by ``kernelRadius``
(:mod:`chexradi.radiomics.voxel`).
"""
from __future__ import annotations

import logging
import platform
import time
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..names import ENGINES
from . import imageio
from .discretize import resegment_mask
from .features import get_feature_module
from .filters import NUMBA_IMAGE_TYPES, filtered_images
from .preprocess import (Geometry, bounding_box, check_label, check_mask, crop_sitk, geometry_of, geometry_tolerance,
                         normalize_image, resample, roi_extent, roi_from_arrays, same_geometry)
from .settings import Settings, SourceLike, feature_names, load_settings
from .voxel import VOXEL_CLASSES, class_maps, padded_box

__all__ = ["Extractor", "PreparedCase", "extract", "extract_feature_maps", "versions", "ENGINES"]

logger = logging.getLogger("chexradi.radiomics")



def versions() -> dict[str, str]:
    """Versions of the packages that produce the numbers (recorded in every output)."""
    import numba

    from .. import __version__

    out = {
        "chexradi": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "SimpleITK": sitk.Version.VersionString(),
    }
    try:
        import radiomics

        out["pyradiomics"] = str(radiomics.__version__)
    except ImportError:
        out["pyradiomics"] = "not installed"
    return out


class PreparedCase:
    """A case after steps 1-5: what the feature classes need, and what ``--validate`` reports.

    ``image_arr`` (the pixels after steps 2-3, numpy order; may be read-only), the masks and box of the ROI,
    the image's dimensionality ``ndim`` and ``spacing`` (numpy order), and ``raw``: the loaded SimpleITK
    inputs before normalisation / resampling (what PyRadiomics starts from), None when the case was
    prepared from plain NRRD arrays (:meth:`Extractor.prepare`); ``geometry``: the grid of ``image_arr``
    (SimpleITK order), for feature maps.
    """

    def __init__(self, label: int, image_arr: np.ndarray, texture_mask: np.ndarray,
                 texture_box: tuple[slice, ...], shape_mask: np.ndarray, ndim: int, spacing: tuple[float, ...],
                 raw: Optional[tuple[sitk.Image, sitk.Image]], geometry: Optional[Geometry] = None) -> None:
        self.raw = raw
        self.geometry = geometry
        self.label = label
        self.image_arr = image_arr
        self.texture_mask = texture_mask
        self.texture_box = texture_box
        self.shape_mask = shape_mask
        self.ndim = ndim
        self.spacing = spacing

    @property
    def voxels(self) -> int:
        return int(self.texture_mask.sum())


def _plain_geometry(got: "imageio.NrrdArray") -> Geometry:
    """The :class:`~chexradi.radiomics.preprocess.Geometry` of a plain NRRD file's contents."""
    return Geometry(got.array.shape[::-1], tuple(got.origin), tuple(got.spacing), tuple(got.direction))


def _match_single_slice(img: sitk.Image, msk: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """A one-slice 3-D image (e.g. a single-frame DICOM radiograph) paired with a 2-D mask, or the
    reverse, is reduced to 2-D so that image and mask agree."""
    if img.GetDimension() == 3 and msk.GetDimension() == 2 and img.GetSize()[2] == 1:
        img = img[:, :, 0]
    elif msk.GetDimension() == 3 and img.GetDimension() == 2 and msk.GetSize()[2] == 1:
        msk = msk[:, :, 0]
    return img, msk


def _check_finite_for_normalize(img: sitk.Image, msk: sitk.Image, label: int, image_in: Any) -> None:
    """normalize=True z-scores with every pixel of the image: one NaN/inf anywhere spoils them all."""
    if img.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return
    arr = sitk.GetArrayViewFromImage(img)
    bad = ~np.isfinite(arr)
    n = int(np.count_nonzero(bad))
    if n == 0:
        return
    where = ""
    if msk.GetSize() == img.GetSize():
        inside = int(np.count_nonzero(bad & (sitk.GetArrayViewFromImage(msk) == label)))
        if inside:
            raise ValueError(f"image {imageio.describe(image_in)} has {inside} NaN/inf pixel(s) inside the ROI "
                             f"(label {label}); fix the image or exclude those pixels from the mask.")
        where = " outside the ROI"
    raise ValueError(f"image {imageio.describe(image_in)} has {n} NaN/inf pixel(s){where}; normalize=True z-scores "
                     "with every pixel of the image, so fix the image (e.g. set those pixels to a finite value) or "
                     "set normalize=False.")


class Extractor:
    """Reusable radiomics extractor.

    Parameters
    ----------
    params : None, a dict (flat settings or PyRadiomics sections), a YAML/JSON
        parameter file, or :class:`~chexradi.radiomics.settings.Settings`.
    engine : ``"numba"`` (default; chexradi's kernels) or ``"pyradiomics"`` (the
        real PyRadiomics on the same inputs).
    **settings : settings by PyRadiomics name, overriding ``params``
        (``featureClass={"glcm": [], "firstorder": ["Mean"]}`` is accepted).

    Raises
    ------
    ValueError
        Invalid settings or engine (raised here, before any image is read).
    FileNotFoundError
        ``params`` names a file that does not exist.

    Examples
    --------
    >>> ext = Extractor(binWidth=10, featureClass={"firstorder": ["Mean"]})
    >>> features = ext.execute("image.nrrd", "mask.nrrd")   # doctest: +SKIP
    """

    def __init__(self, params: SourceLike = None, *, engine: str = "numba", **settings: Any) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r} is unknown; use one of {', '.join(ENGINES)}.")
        self.engine = engine
        self.settings: Settings = load_settings(params, **settings)
        if engine == "numba":
            other = sorted(set(self.settings.image_types) - set(NUMBA_IMAGE_TYPES))
            if other:
                raise ValueError(f"imageType {', '.join(other)} is not computed by the numba engine (it computes "
                                 f"{', '.join(NUMBA_IMAGE_TYPES)}); drop it or use engine='pyradiomics'.")
        else:
            from .reference import require_pyradiomics

            require_pyradiomics()
        self.last_timings: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"Extractor(engine={self.engine!r}, classes={list(self.settings.feature_classes)})"

    # ------------------------------------------------------------------ preparation
    def prepare(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                spacing: Optional[Sequence[float]] = None, label: Optional[int] = None) -> PreparedCase:
        """Load, pre-process and check one case (steps 1-5); computes no feature.

        Raises ``FileNotFoundError`` / ``ValueError`` naming the input and the fix.
        """
        s = self.settings.values
        label = int(s["label"] if label is None else label)
        if label <= 0:
            raise ValueError(f"label={label} is invalid: labels are integers > 0.")
        plain = self._load_plain(image, mask, spacing=spacing, label=label)
        if plain is not None:
            image_arr, roi, box, ndim, spacing_np, geometry = plain
            raw = None
        else:
            image_arr, roi, box, ndim, spacing_np, raw, geometry = self._load_general(image, mask, spacing=spacing,
                                                                                      label=label)
        if image_arr.dtype.kind == "f" and not np.all(np.isfinite(values := image_arr[roi])):
            bad = int(np.count_nonzero(~np.isfinite(values)))
            resampled = s["interpolator"] is not None and s["resampledPixelSpacing"] is not None
            why = (" after resampling (resampledPixelSpacing interpolates the pixels around the ROI too)"
                   if resampled else "")
            raise ValueError(f"image {imageio.describe(image)} has {bad} NaN/inf pixel(s) inside the ROI (label "
                             f"{label}){why}; fix the image or exclude those pixels from the mask.")
        shape_mask = roi
        texture_mask = roi
        if s["resegmentRange"] is not None:
            # in the image's own pixel type, as PyRadiomics (a float32 image gives float32 thresholds)
            texture_mask = resegment_mask(image_arr, roi, resegment_range=s["resegmentRange"], mode=s["resegmentMode"])
            box = bounding_box(texture_mask)
            sizes = [b.stop - b.start for b in box]
            ndims = sum(1 for n in sizes if n > 1)
            if ndims < int(s["minimumROIDimensions"]) or ndims == 0:
                raise ValueError(f"after resegmentation (resegmentRange={s['resegmentRange']}) the ROI spans {ndims} "
                                 f"dimension(s), fewer than minimumROIDimensions={s['minimumROIDimensions']}; "
                                 "widen the range.")
            if s["minimumROISize"] is not None and texture_mask.sum() <= s["minimumROISize"]:
                raise ValueError(f"after resegmentation the ROI has {int(texture_mask.sum())} voxels, not more than "
                                 f"minimumROISize={s['minimumROISize']}; widen resegmentRange.")
            if s["resegmentShape"]:
                shape_mask = texture_mask
        return PreparedCase(label, image_arr, texture_mask, box, shape_mask, ndim, spacing_np, raw, geometry)

    def _load_general(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                      spacing: Optional[Sequence[float]], label: int):
        """Steps 1-4 on SimpleITK images, for any input and settings: (pixels, ROI, its box (numpy order),
        ndim, spacing (numpy order), the images as loaded, the pre-processed image's geometry)."""
        s = self.settings.values
        img = imageio.load_image(image, spacing=spacing)
        msk = imageio.load_mask(mask, spacing=spacing if isinstance(mask, np.ndarray) else None,
                                label_channel=int(s["label_channel"]))
        img, msk = _match_single_slice(img, msk)
        if img.GetDimension() != msk.GetDimension():
            raise ValueError(f"image {imageio.describe(image)} is {img.GetDimension()}-D but mask "
                             f"{imageio.describe(mask)} is {msk.GetDimension()}-D; give a mask with the image's "
                             "dimensionality.")
        check_label(msk, label, name=f"mask {imageio.describe(mask)}")
        raw = (img, msk)
        if s["normalize"]:
            _check_finite_for_normalize(img, msk, label, image)
            img = normalize_image(img, scale=s["normalizeScale"], remove_outliers=s["removeOutliers"])
        if s["interpolator"] is not None and s["resampledPixelSpacing"] is not None:
            img, msk = resample(img, msk, spacing=s["resampledPixelSpacing"], interpolator=s["interpolator"],
                                pad=int(s["padDistance"]), label=label)
        elif s["preCrop"]:
            lo, size, msk = self._check(img, msk, label, image, mask)
            img, msk = crop_sitk(img, msk, lo, size, int(s["padDistance"]))
        lo, size, msk = self._check(img, msk, label, image, mask)
        box = tuple(slice(int(a), int(a + n)) for a, n in zip(lo[::-1], size[::-1]))
        spacing_np = tuple(float(v) for v in reversed(img.GetSpacing()))
        return (sitk.GetArrayFromImage(img), sitk.GetArrayViewFromImage(msk) == label, box, img.GetDimension(),
                spacing_np, raw, geometry_of(img))

    def _load_plain(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                    spacing: Optional[Sequence[float]], label: int):
        """Steps 1-4 as :meth:`_load_general`, without SimpleITK, for the common case of the numba engine: image
        and mask are plain NRRD files (:func:`~chexradi.radiomics.imageio.read_plain`; the loop's), the mask
        an integer label map on the image's grid holding ``label`` in a ROI that passes the checks, and no
        step 2-3 setting (normalize, resampling, preCrop) is on. Creating the SimpleITK images would then
        cost more than some feature classes (about 0.1 ms each on a 96-pixel radiograph).

        Returns what :meth:`_load_general` does without the images, or None when the case is not that common
        case; the general path then gives the same result, or the error that names the problem. The pixels
        are the file's, read-only."""
        s = self.settings.values
        if (self.engine != "numba" or spacing is not None or s["normalize"] or s["preCrop"]
                or (s["interpolator"] is not None and s["resampledPixelSpacing"] is not None)):
            return None
        img = imageio.read_plain(image, "image")
        msk = imageio.read_plain(mask, "mask") if img is not None else None
        if msk is None or msk.array.dtype.kind not in "ui" or msk.array.ndim != img.array.ndim:
            return None
        tol = geometry_tolerance(s["geometryTolerance"])
        if same_geometry(_plain_geometry(img), _plain_geometry(msk), tol) is not None:
            return None
        roi = msk.array == label
        if not roi.any():
            return None
        first, last, problem = roi_extent(roi, label=label, minimum_dims=int(s["minimumROIDimensions"]),
                                          minimum_size=s["minimumROISize"])
        if problem is not None:
            return None
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(first, last))
        return (img.array, roi, box, img.array.ndim, tuple(float(v) for v in reversed(img.spacing)),
                _plain_geometry(img))

    def _check(self, img: sitk.Image, msk: sitk.Image, label: int, image_in: Any, mask_in: Any):
        s = self.settings.values
        try:
            return check_mask(img, msk, label=label, minimum_dims=int(s["minimumROIDimensions"]),
                              minimum_size=s["minimumROISize"], correct_mask=bool(s["correctMask"]),
                              tolerance=s["geometryTolerance"])
        except ValueError as exc:
            raise ValueError(f"{imageio.describe(image_in)} / {imageio.describe(mask_in)}: {exc}") from None

    # ------------------------------------------------------------------ execution
    def execute(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                spacing: Optional[Sequence[float]] = None, label: Optional[int] = None) -> dict[str, float]:
        """Features of one case: ``{"<image>_<class>_<Feature>": value}`` (``original_glcm_Contrast``, and for
        filtered image types ``log-sigma-1-0-mm-3D_glcm_Contrast``, ``wavelet-LHL_...``).

        Parameters
        ----------
        image, mask : numpy arrays (numpy order), SimpleITK images or file paths.
        spacing : voxel spacing in numpy order, for numpy inputs (default 1.0).
        label : label value of the ROI in the mask (default: the ``label`` setting).
        """
        case = self.prepare(image, mask, spacing=spacing, label=label)
        if self.engine == "pyradiomics":
            return self._execute_pyradiomics(case)
        return self._execute_numba(case)

    def _class_list(self) -> list[tuple[str, list[str], list[str]]]:
        """(class, names to compute, their result keys) with shape classes first, deprecated features only when
        named. Worked out once per settings object (it is the same for every case)."""
        cached = getattr(self, "_classes", None)
        if cached is not None and cached[0] is self.settings:
            return cached[1]
        out = []
        order = sorted(self.settings.feature_classes, key=lambda c: (0 if c.startswith("shape") else 1))
        for cls in order:
            requested = self.settings.feature_classes[cls]
            if requested:
                names = list(requested)
            else:
                names = [n for n, dep in feature_names(cls).items() if not dep]
            out.append((cls, names, [f"original_{cls}_{n}" for n in names]))
        self._classes = (self.settings, out)
        return out

    def _execute_numba(self, case: PreparedCase) -> dict[str, float]:
        s = self.settings.values
        ndim = case.ndim
        spacing = case.spacing
        result: dict[str, float] = {}
        timings: dict[str, float] = {}
        textures = []
        for cls, names, keys in self._class_list():
            if not cls.startswith("shape"):
                textures.append((cls, names))
                continue
            t0 = time.perf_counter()
            if cls == "shape" and ndim != 3:
                logger.info("shape (3-D) features skipped: the input is 2-D (use shape2D)")
                continue
            if cls == "shape2D" and ndim == 3:
                f2d = int(s["force2Ddimension"])
                if not s["force2D"]:
                    logger.info("shape2D skipped: set force2D=True for 3-D input")
                    continue
                if case.shape_mask[case.texture_box].shape[f2d] > 1:
                    logger.warning("shape2D skipped: the ROI spans %d slices along force2Ddimension=%d; "
                                   "shape2D needs a single slice", case.shape_mask[case.texture_box].shape[f2d], f2d)
                    continue
            roi = roi_from_arrays(case.image_arr[case.texture_box], case.shape_mask[case.texture_box],
                                  spacing=spacing, settings=s, crop=False, discretized=False)
            values = get_feature_module(cls).compute(roi, names)
            for n, key in zip(names, keys):
                if n in values:  # PyRadiomics gives no value for some deprecated features; neither do we
                    result[key] = float(values[n])
            timings[cls] = timings.get(cls, 0.0) + time.perf_counter() - t0
        if textures:
            texture_names = tuple(cls for cls, _ in textures)
            # the texture classes on every image of every image type (PyRadiomics' order: the types as given,
            # each with the general settings updated by its own), each image cropped to the ROI's box
            for image_type, args in self.settings.image_types.items():
                t0 = time.perf_counter()
                images = filtered_images(case.image_arr, spacing, image_type, {**s, **args}, mask=case.texture_mask,
                                         box=case.texture_box)
                for arr, name, kw in images:
                    if image_type != "Original":
                        timings["filters"] = timings.get("filters", 0.0) + time.perf_counter() - t0
                    t0 = time.perf_counter()
                    roi = roi_from_arrays(arr, case.texture_mask[case.texture_box],
                                          spacing=spacing, settings=kw, crop=False)
                    roi.classes = texture_names  # lets classes share work on this image (ROI.pair_counts)
                    for cls, names in textures:
                        values = get_feature_module(cls).compute(roi, names)
                        for n in names:
                            if n in values:
                                result[f"{name}_{cls}_{n}"] = float(values[n])
                        t1 = time.perf_counter()
                        timings[cls] = timings.get(cls, 0.0) + t1 - t0
                        t0 = t1
        self.last_timings = timings
        return result

    # ------------------------------------------------------------------ voxel-based
    def feature_maps(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                     spacing: Optional[Sequence[float]] = None, label: Optional[int] = None) -> dict[str, sitk.Image]:
        """Voxel-based feature maps of one case (PyRadiomics' ``execute(..., voxelBased=True)``).

        One float64 SimpleITK image per feature of the non-shape classes, keyed as :meth:`execute`'s
        features (``original_glcm_Contrast``); the grid is the pre-processed image cropped to the ROI's
        bounding box padded by ``kernelRadius`` (clipped to the image); ROI voxels hold the feature of the
        kernel around them, the others ``initValue``. Settings: ``kernelRadius``, ``maskedKernel``,
        ``initValue``, ``voxelBatch`` (:mod:`chexradi.radiomics.voxel`). Shape classes are skipped, as in
        PyRadiomics. Same inputs and errors as :meth:`execute`. Every map is held in memory;
        :meth:`iter_feature_maps` hands them over one class at a time.
        """
        return dict(self.iter_feature_maps(image, mask, spacing=spacing, label=label))

    def iter_feature_maps(self, image: imageio.ImageLike, mask: imageio.ImageLike, *,
                          spacing: Optional[Sequence[float]] = None,
                          label: Optional[int] = None) -> Iterator[tuple[str, sitk.Image]]:
        """:meth:`feature_maps` as ``(name, map)`` pairs, computed one class of one image at a time, so that a
        caller that writes each map and lets it go (``chexradi extract --maps``) holds one class's maps at
        most. The case is loaded and checked, and its errors raised, when this is called."""
        if not any(cls in VOXEL_CLASSES for cls in self.settings.feature_classes):
            raise ValueError(f"no voxel-based feature class requested ({', '.join(self.settings.feature_classes)}); "
                             f"feature maps exist for {', '.join(VOXEL_CLASSES)} (shape classes have none).")
        case = self.prepare(image, mask, spacing=spacing, label=label)
        if self.engine == "pyradiomics":
            return iter(self._maps_pyradiomics(case).items())
        return self._maps_numba(case)

    def _maps_numba(self, case: PreparedCase) -> Iterator[tuple[str, sitk.Image]]:
        s = self.settings.values
        classes = [(cls, names) for cls, names, _ in self._class_list() if cls in VOXEL_CLASSES]
        skipped = [cls for cls, _, _ in self._class_list() if cls not in VOXEL_CLASSES]
        if skipped:
            logger.info("feature maps: %s skipped (no voxel-based form)", ", ".join(skipped))
        crop = padded_box(case.texture_box, case.image_arr.shape, int(s["kernelRadius"]))
        shape = tuple(b.stop - b.start for b in crop)
        t0 = time.perf_counter()
        for image_type, args in self.settings.image_types.items():
            for arr, name, kw in filtered_images(case.image_arr, case.spacing, image_type, {**s, **args},
                                                 mask=case.texture_mask, box=crop):
                if not kw["maskedKernel"]:
                    bad = int(np.count_nonzero(~np.isfinite(arr))) if arr.dtype.kind == "f" else 0
                    if bad:
                        raise ValueError(f"{name} image: {bad} NaN/inf pixel(s) in the ROI's box padded by "
                                         f"kernelRadius ({shape}, numpy order); maskedKernel=False bins and counts "
                                         "every voxel there, so fix those pixels or use maskedKernel=True.")
                # one class at a time: its values, then its maps, are let go before the next is computed
                for cls, cm in class_maps(arr, case.texture_mask[crop], spacing=case.spacing, settings=kw,
                                          classes=classes, ndim=case.ndim):
                    where = tuple(cm.centres.T) if case.ndim == 3 else tuple(cm.centres[:, 1:].T)
                    for n, vals in cm.values.items():
                        m = np.full(shape, float(kw["initValue"]), dtype=np.float64)
                        m[where] = vals
                        yield f"{name}_{cls}_{n}", self._map_image(m, case, crop)
        self.last_timings = {"total": time.perf_counter() - t0}

    @staticmethod
    def _map_image(values: np.ndarray, case: PreparedCase, crop: tuple[slice, ...]) -> sitk.Image:
        """``values`` (numpy order, the crop's shape) as a SimpleITK image on the crop's grid."""
        img = sitk.GetImageFromArray(values)
        g = case.geometry
        if g is None:
            raise ValueError("feature maps need the case's grid: give PreparedCase a geometry (Extractor.prepare "
                             "sets it).")
        dim = len(g.size)
        direction = np.asarray(g.direction, dtype=np.float64).reshape(dim, dim)
        start = np.array([b.start for b in reversed(crop)], dtype=np.float64)
        origin = np.asarray(g.origin, dtype=np.float64) + direction @ (start * np.asarray(g.spacing, dtype=np.float64))
        img.SetSpacing(tuple(g.spacing))
        img.SetDirection(tuple(g.direction))
        img.SetOrigin(tuple(float(v) for v in origin))
        return img

    def _maps_pyradiomics(self, case: PreparedCase) -> dict[str, sitk.Image]:
        from radiomics import featureextractor

        t0 = time.perf_counter()
        ext = featureextractor.RadiomicsFeatureExtractor(**self.settings.pyradiomics_settings())
        ext.disableAllFeatures()
        ext.enableFeaturesByName(**{c: list(n) for c, n in self.settings.feature_classes.items()
                                    if c in VOXEL_CLASSES})
        ext.disableAllImageTypes()
        ext.enableImageTypes(**self.settings.image_types)
        image, mask = case.raw
        out = ext.execute(image, mask, label=case.label, voxelBased=True)
        self.last_timings = {"total": time.perf_counter() - t0}
        return {k: v for k, v in out.items() if not k.startswith("diagnostics_")}

    def _execute_pyradiomics(self, case: PreparedCase) -> dict[str, float]:
        from radiomics import featureextractor

        t0 = time.perf_counter()
        ext = featureextractor.RadiomicsFeatureExtractor(**self.settings.pyradiomics_settings())
        ext.disableAllFeatures()
        ext.enableFeaturesByName(**{c: list(n) for c, n in self.settings.feature_classes.items()})
        ext.disableAllImageTypes()
        ext.enableImageTypes(**self.settings.image_types)
        # PyRadiomics re-runs its own pre-processing from the loaded (un-normalised, un-resampled) images.
        image, mask = case.raw
        out = ext.execute(image, mask, label=case.label)
        self.last_timings = {"total": time.perf_counter() - t0}
        return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def extract(image: imageio.ImageLike, mask: imageio.ImageLike, *, spacing: Optional[Sequence[float]] = None,
            params: SourceLike = None, engine: str = "numba", label: Optional[int] = None,
            **settings: Any) -> dict[str, float]:
    """Radiomics features of one (image, mask) case.

    Parameters
    ----------
    image, mask : numpy arrays (2-D ``(y, x)`` or 3-D ``(z, y, x)``), SimpleITK
        images, or file paths (NRRD, NIfTI, PNG, JPEG, DICOM, ...).
    spacing : voxel spacing in numpy order for array inputs (default 1.0 per axis).
    params : a dict or a YAML/JSON PyRadiomics parameter file.
    engine : ``"numba"`` (default) or ``"pyradiomics"``.
    label : ROI label in the mask (default: the ``label`` setting, 1).
    **settings : PyRadiomics settings by name, e.g. ``binWidth=10``,
        ``force2D=True``, ``featureClass={"glcm": [], "firstorder": ["Mean"]}``.

    Returns
    -------
    dict mapping ``<image>_<class>_<Feature>`` (``original_...`` for the original image) to float.

    Raises
    ------
    FileNotFoundError
        An input file does not exist.
    ValueError
        Invalid settings, unreadable input, mask/label/geometry problems.
    """
    return Extractor(params, engine=engine, **settings).execute(image, mask, spacing=spacing, label=label)


def extract_feature_maps(image: imageio.ImageLike, mask: imageio.ImageLike, *,
                         spacing: Optional[Sequence[float]] = None, params: SourceLike = None, engine: str = "numba",
                         label: Optional[int] = None, **settings: Any) -> dict[str, sitk.Image]:
    """Voxel-based feature maps of one case: :meth:`Extractor.feature_maps` with :func:`extract`'s arguments.

    ``kernelRadius`` (default 1), ``maskedKernel`` (True), ``initValue`` (0) and ``voxelBatch`` (-1) are
    settings like any other (or a parameter file's ``voxelSetting`` section).

    Returns
    -------
    dict mapping ``<image>_<class>_<Feature>`` to a float64 SimpleITK image.
    """
    return Extractor(params, engine=engine, **settings).feature_maps(image, mask, spacing=spacing, label=label)
