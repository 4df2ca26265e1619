r"""Voxel-based feature maps: PyRadiomics' ``execute(..., voxelBased=True)`` with chexradi's kernels.

For every ROI voxel, a feature class is computed in the kernel around it and the value is written at
that voxel: one map per feature. The steps follow PyRadiomics:

1. the case is prepared as for segment-based extraction (loading, ``normalize``, resampling, mask checks,
   ``resegmentRange``; :meth:`~chexradi.radiomics.extractor.Extractor.prepare`); shape classes are skipped;
2. each image of each ``imageType`` (filters run on the whole pre-processed image) is cropped to the ROI's
   bounding box padded by ``kernelRadius`` (clipped to the image), the maps' grid;
3. per class, the crop is discretized over the ROI (``maskedKernel: true``, the default) or over the whole
   crop (``maskedKernel: false``), and the class's matrix is built in the box ``[c - r, c + r]`` around
   each ROI voxel ``c`` (one slice thick along the force2D axis), from the voxels of that mask only
   (:mod:`chexradi.radiomics.kernels.voxel`);
4. the ROI voxels are processed in batches of ``voxelBatch`` (all at once when ``-1``). The batch matters
   where PyRadiomics makes it matter: an angle without a pair in any kernel of the batch is dropped before
   GLCM's ``JointAverage`` (a plain mean over angles) is taken; and when some kernel of the batch has an
   empty angle that is not dropped, PyRadiomics' eigenvalue routine fails on its NaN and the batch's
   ``MCC`` keeps ``initValue`` (as PyRadiomics' maps do);
5. voxels outside the ROI hold ``initValue`` (default 0).

The settings (PyRadiomics names, also read from a parameter file's ``voxelSetting`` section):

==================  =======  ==================================================================
``kernelRadius``    1        kernel half-size in voxels (integer >= 1); the kernel is a cube of side
                             ``2 r + 1`` (a square with ``force2D`` or a 2-D image)
``maskedKernel``    true     count only ROI voxels in a kernel (false: every voxel of the crop)
``initValue``       0        the maps' value outside the ROI (any number, NaN included)
``voxelBatch``      -1       ROI voxels per batch (-1: all; an integer >= 1)
==================  =======  ==================================================================

Memory: the maps themselves, ``8 B x crop voxels`` each (a 512 x 512 x 100 crop: 210 MB per feature,
so the 93 features of the six classes need 19.5 GB); per batch, ``N x 8 B`` per feature column plus, per
thread, one kernel's matrices (GLCM ``m^2 x 13 x 8 B`` for the ``m`` gray levels present in the kernel).
``voxelBatch`` bounds the per-batch part; ``Extractor.iter_feature_maps`` (what ``chexradi extract --maps``
uses) hands the maps over one class at a time, and ``featureClass`` bounds the number of maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from .features import gldm as _gldm
from .features import glszm as _glszm
from .features import zones
from .features.base import ROI
from .features.glcm import angle_weights as glcm_weights
from .features.glrlm import angle_weights as glrlm_weights
from .kernels import voxel as vk
from .kernels.angles import generate_angles
from .kernels.glcm import mcc_q
from .preprocess import roi_from_arrays

__all__ = ["VOXEL_CLASSES", "ClassMaps", "class_maps", "padded_box"]

#: The classes PyRadiomics computes voxel by voxel (shape classes have no voxel-based form).
VOXEL_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

_EPS = float(np.spacing(1))


def padded_box(box: Sequence[slice], shape: Sequence[int], radius: int) -> tuple[slice, ...]:
    """The ROI's bounding box ``box`` grown by ``radius`` on every side, clipped to an image of ``shape``
    (PyRadiomics' ``cropToTumorMask(..., padDistance=kernelRadius)``): the maps' grid."""
    return tuple(slice(max(b.start - radius, 0), min(b.stop + radius, n)) for b, n in zip(box, shape))


@dataclass
class ClassMaps:
    """One class's values at the ROI voxels of one image: ``values[name]`` is ``(N,)`` in the order of
    ``centres`` ``(N, 3)`` (numpy order of the 3-D layout of the crop; a 2-D image has ``z = 0``)."""

    centres: np.ndarray
    values: dict[str, np.ndarray]


class _Kernels:
    """What every class needs: the crop as an :class:`~chexradi.radiomics.features.base.ROI` discretized
    over the class's mask, the ROI voxels, and the voxel-based settings."""

    def __init__(self, image: np.ndarray, roi_mask: np.ndarray, spacing: Sequence[float], settings: dict) -> None:
        self.radius = int(settings["kernelRadius"])
        self.masked = bool(settings["maskedKernel"])
        bin_mask = roi_mask if self.masked else np.ones_like(roi_mask, dtype=bool)
        self.roi: ROI = roi_from_arrays(image, bin_mask, spacing=spacing, settings=settings, crop=False)
        roi3 = roi_mask if roi_mask.ndim == 3 else roi_mask[None]
        self.roi_mask = np.ascontiguousarray(roi3, dtype=bool)
        # row-major, as PyRadiomics' numpy.where; argwhere returns a transposed (F-ordered) array
        self.centres = np.ascontiguousarray(np.argwhere(self.roi_mask), dtype=np.int64)
        self.binned = np.ascontiguousarray(self.roi.binned, dtype=np.int32)
        self.mask = np.ascontiguousarray(self.roi.mask, dtype=np.bool_)
        plane = self.roi.plane_axis
        self.collapse = -1 if plane is None else int(plane)
        self.levels = self.roi.grey_levels.astype(np.float64)
        self.lut = np.ascontiguousarray(self.roi.level_index, dtype=np.int64)
        self.distances = tuple(int(d) for d in np.atleast_1d(settings.get("distances", [1]) or [1]))

    def angles(self, distances: Sequence[int], bidirectional: bool, what: str) -> np.ndarray:
        angles = generate_angles(self.binned.shape, distances, bidirectional=bidirectional,
                                 force2D_dimension=self.roi.plane_axis)
        if len(angles) == 0:
            raise ValueError(f"{what}: the crop {tuple(self.binned.shape)} (z, y, x) admits no neighbour at distances "
                             f"{list(distances)}; PyRadiomics fails here too. Use a larger mask or drop force2D.")
        return np.ascontiguousarray(angles, dtype=np.int64)

    def batches(self, size: int):
        n = len(self.centres)
        step = n if size < 0 else int(size)
        for lo in range(0, n, max(step, 1)):
            yield slice(lo, min(lo + step, n))


def _batched(k: _Kernels, names: Sequence[str], settings: dict, cols: dict[str, int],
             run: Callable[[np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """``run(centres)`` (a driver's ``(N, columns)`` result) over the batches of ``voxelBatch`` ROI voxels,
    the columns ``cols`` of ``names`` joined: name -> ``(N,)``."""
    out: dict[str, list] = {n: [] for n in names}
    for b in k.batches(settings["voxelBatch"]):
        vals = run(k.centres[b])
        for n in names:
            out[n].append(vals[:, cols[n]])
    return {n: np.concatenate(v) for n, v in out.items()}


def _firstorder(k: _Kernels, names: Sequence[str], settings: dict, ndim: int) -> dict[str, np.ndarray]:
    roi = k.roi
    image = np.array(roi.image, dtype=np.float64)
    image[~k.mask] = np.nan
    # PyRadiomics' kernel: its angles up to kernelRadius inside min(extent, 2r + 1), then the centre
    extent = (np.ptp(k.centres, axis=0) + 1) if k.masked else np.array(k.binned.shape)
    size = np.minimum(extent, 2 * k.radius + 1)
    offsets = generate_angles(tuple(int(v) for v in size), range(1, k.radius + 1), bidirectional=True,
                              force2D_dimension=roi.plane_axis)
    offsets = np.ascontiguousarray(np.vstack([offsets.reshape(-1, 3), np.zeros((1, 3), np.int64)]), dtype=np.int64)
    spacing = tuple(roi.spacing[-ndim:])[::-1]
    volume = float(np.multiply.reduce(np.asarray(spacing, dtype=np.float64)))
    shift = float(settings.get("voxelArrayShift", 0))
    cols = {n: i for i, n in enumerate(vk.FIRSTORDER_COLUMNS)}
    return _batched(k, names, settings, cols, lambda c: vk.firstorder_voxels(
        image, k.binned, c, offsets, k.lut, len(k.levels), shift, volume, _EPS))


def _mcc_exact(k: _Kernels, centre: np.ndarray, angles: np.ndarray, keep: np.ndarray, symmetric: bool,
               weights: np.ndarray) -> float:
    """PyRadiomics' MCC of one kernel with its own eigenvalue routine (for a second eigenvalue near 0)."""
    p = vk.glcm_voxel_probabilities(k.binned, k.mask, centre, k.radius, k.collapse, angles, k.lut, len(k.levels),
                                    symmetric, weights)[:, :, keep]
    P = np.ascontiguousarray(p[None])
    px = P.sum(2, keepdims=True)
    py = P.sum(1, keepdims=True)
    q = mcc_q(np.ascontiguousarray(P[0]), np.ascontiguousarray(px[0, :, 0, :]), np.ascontiguousarray(py[0, 0, :, :]),
              _EPS)
    with np.errstate(invalid="ignore"):
        ev = np.linalg.eigvals(q[None])
        ev.sort()
        return float(np.nanmean(np.sqrt(ev[:, :, -2]), 1).real[0]) if ev.shape[1] else float("nan")


def _glcm(k: _Kernels, names: Sequence[str], settings: dict, init: float) -> dict[str, np.ndarray]:
    norm = settings.get("weightingNorm")
    angles = k.angles(k.distances, False, "GLCM")
    weights = (np.ascontiguousarray(glcm_weights(angles, k.roi.spacing, norm), dtype=np.float64) if norm is not None
               else np.zeros(0))
    symmetric = bool(settings.get("symmetricalGLCM", True))
    cols = {n: i for i, n in enumerate(vk.GLCM_COLUMNS)}
    ng = int(k.levels[-1])
    out = {n: [] for n in names}
    for b in k.batches(settings["voxelBatch"]):
        centres = k.centres[b]
        feats, ux, mcc, near = vk.glcm_voxels(k.binned, k.mask, centres, k.radius, k.collapse, angles, len(k.levels),
                                             ng, symmetric, weights, _EPS)
        # PyRadiomics drops an angle only when no kernel of the batch has a pair along it (several angles)
        keep = ~np.all(np.isnan(ux), axis=0) if ux.shape[1] > 1 else np.ones(ux.shape[1], dtype=bool)
        for n in names:
            if n == "JointAverage":
                kept = np.ascontiguousarray(ux[:, keep])
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[n].append(kept.mean(1) if kept.shape[1] else np.full(len(centres), np.nan))
            elif n == "MCC":
                if np.isnan(ux[:, keep]).any():
                    # an empty angle kept for the batch: PyRadiomics' eigenvalue routine fails on the NaN (before
                    # its one-level rule below)
                    vals = np.full(len(centres), init)
                elif len(k.levels) < 2:
                    vals = np.ones(len(centres))  # PyRadiomics: "flat region"
                else:
                    vals = mcc.copy()
                    for v in np.flatnonzero(near):
                        vals[v] = _mcc_exact(k, centres[v], angles, keep, symmetric, weights)
                out[n].append(vals)
            else:
                out[n].append(feats[:, cols[n]])
    return {n: np.concatenate(v) for n, v in out.items()}


def _glrlm(k: _Kernels, names: Sequence[str], settings: dict) -> dict[str, np.ndarray]:
    norm = settings.get("weightingNorm")
    angles = k.angles((1,), False, "GLRLM")
    weights = (np.ascontiguousarray(glrlm_weights(angles, k.roi.spacing, norm), dtype=np.float64) if norm is not None
               else np.zeros(0))
    cols = {n: i for i, n in enumerate(vk.GLRLM_COLUMNS)}
    return _batched(k, names, settings, cols, lambda c: vk.glrlm_voxels(
        k.binned, k.mask, c, k.radius, k.collapse, angles, int(k.levels[-1]), weights, _EPS))


def _zone_column(funcs: dict[str, Callable], name: str) -> int:
    """The column of :func:`~chexradi.radiomics.kernels.voxel.glszm_voxels` / ``gldm_voxels`` for a feature:
    its function's place in :data:`~chexradi.radiomics.features.zones.COMPILED`, or the last (ZonePercentage,
    GLSZM's one feature outside it)."""
    f = funcs[name]
    return zones.COMPILED.index(f) if f in zones.COMPILED else len(zones.COMPILED)


def _zone_class(k: _Kernels, names: Sequence[str], settings: dict, cls: str) -> dict[str, np.ndarray]:
    shape = tuple(int(v) for v in k.binned.shape)
    ng = int(k.levels[-1])
    if cls == "glszm":
        angles = k.angles((1,), True, "GLSZM")
        cols = {n: _zone_column(_glszm.FUNCS, n) for n in names}
        return _batched(k, names, settings, cols, lambda c: vk.glszm_voxels(
            k.binned, k.mask, c, k.radius, k.collapse, shape, angles, ng, _EPS))
    angles = k.angles(k.distances, True, "GLDM")
    alpha = int(min(max(np.floor(float(settings.get("gldm_a", 0))), -1), 2 ** 31 - 1))
    cols = {n: _zone_column(_gldm.FUNCS, n) for n in names}
    return _batched(k, names, settings, cols, lambda c: vk.gldm_voxels(
        k.binned, k.mask, c, k.radius, k.collapse, shape, angles, int(np.abs(angles).max()), ng, alpha, _EPS))


def _ngtdm(k: _Kernels, names: Sequence[str], settings: dict) -> dict[str, np.ndarray]:
    shape = tuple(int(v) for v in k.binned.shape)
    angles = k.angles(k.distances, True, "NGTDM")
    cols = {n: i for i, n in enumerate(vk.NGTDM_COLUMNS)}
    return _batched(k, names, settings, cols, lambda c: vk.ngtdm_voxels(
        k.binned, k.mask, c, k.radius, k.collapse, shape, angles, int(np.abs(angles).max()), int(k.levels[-1])))


def class_maps(image: np.ndarray, roi_mask: np.ndarray, *, spacing: Sequence[float], settings: dict,
               classes: Sequence[tuple[str, Sequence[str]]], ndim: int) -> Iterator[tuple[str, ClassMaps]]:
    """Voxel-based values of ``classes`` (``[(class, feature names), ...]``) on one cropped image, one class at
    a time (the crop is discretized once, when the first class is asked for).

    ``image`` and ``roi_mask`` are the crop (:func:`padded_box`) of one pre-processed (filtered) image and of
    the ROI; ``settings`` the image type's settings, the voxel-based ones included (``kernelRadius``, ...);
    ``ndim`` the input's dimensionality (TotalEnergy's voxel volume). A deprecated GLCM/GLDM feature named in
    ``classes`` (PyRadiomics computes no value for it) holds ``initValue`` everywhere, as PyRadiomics' map of
    it does. Yields ``(class, ClassMaps)``.
    """
    k = _Kernels(image, roi_mask, spacing, settings)
    init = float(settings["initValue"])
    for cls, names in classes:
        if cls not in VOXEL_CLASSES:
            raise ValueError(f"feature class {cls!r} has no voxel-based form; voxel-based classes: "
                             f"{', '.join(VOXEL_CLASSES)}.")
        if cls == "firstorder":
            wanted = [n for n in names if n in vk.FIRSTORDER_COLUMNS]
            vals = _firstorder(k, wanted, settings, ndim)
        elif cls == "glcm":
            wanted = [n for n in names if n in vk.GLCM_COLUMNS or n in ("JointAverage", "MCC")]
            vals = _glcm(k, wanted, settings, init)
        elif cls == "glrlm":
            vals = _glrlm(k, list(names), settings)
        elif cls in ("glszm", "gldm"):
            funcs = _glszm.FUNCS if cls == "glszm" else _gldm.FUNCS
            vals = _zone_class(k, [n for n in names if n in funcs], settings, cls)
        else:
            vals = _ngtdm(k, list(names), settings)
        for n in names:  # deprecated names without a value: PyRadiomics' map keeps initValue
            if n not in vals:
                vals[n] = np.full(len(k.centres), init)
        yield cls, ClassMaps(k.centres, {n: vals[n] for n in names})
