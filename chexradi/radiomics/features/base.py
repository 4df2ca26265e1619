"""What every feature class receives, and how feature classes are registered.

A feature module (``chexradi/radiomics/features/<class>.py``) defines::

    CLASS_NAME = "glcm"                       # PyRadiomics' class name
    FEATURES: dict[str, bool]                 # feature name -> deprecated?
    def compute(roi: ROI, names: Sequence[str]) -> dict[str, float]

``compute`` returns one float per requested name, keyed by the bare feature
name (``"Contrast"``); the extractor adds the ``<image>_<class>_`` prefix (``original_glcm_``). A
deprecated feature for which PyRadiomics computes no value (GLDM's
``GrayLevelNonUniformityNormalized``, ``DependencePercentage``) is left out.
Deprecated features are only requested when the user names them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..kernels.firstorder import level_counts
from ..kernels.glcm import glcm_counts
from ..kernels.glszm import neighbourhood
from ..kernels.lines import line_counts

__all__ = ["ROI", "nanmean", "select_features"]


def select_features(label: str, features: Mapping[str, bool], funcs: Mapping[str, Any],
                    names: Sequence[str]) -> list[str]:
    """The requested names that have a value, in order; ``ValueError`` for an unknown name.

    ``features`` lists every name of the class (deprecated included); ``funcs``
    those that compute a value. A deprecated name without a value (PyRadiomics
    gives none either) is accepted and left out.
    """
    unknown = [n for n in names if n not in features]
    if unknown:
        raise ValueError(f"unknown {label} feature(s) {unknown}; valid: {', '.join(features)}")
    return [n for n in names if n in funcs]


def nanmean(x: np.ndarray, axis) -> np.ndarray:
    """``numpy.nanmean`` (same arithmetic) without its empty-slice warning."""
    x = np.array(x, copy=True)
    bad = np.isnan(x)
    x[bad] = 0
    cnt = np.sum(~bad, axis=axis, dtype=np.intp)
    tot = np.sum(x, axis=axis)
    return tot / cnt


@dataclass
class ROI:
    """A pre-processed, cropped region of interest.

    All arrays are 3-D in numpy order ``(z, y, x)`` (``SimpleITK.GetArrayFromImage``
    order), cropped to the bounding box of the mask without padding, exactly
    what PyRadiomics hands its feature classes after ``cropToTumorMask``. A 2-D
    input image arrives as ``z == 1`` with ``force2D`` set and
    ``force2D_dimension == 0``.

    Attributes
    ----------
    image : numpy.ndarray of float64
        Gray values (after normalisation / resampling).
    mask : numpy.ndarray of bool
        True inside the ROI.
    spacing : tuple of float
        Voxel spacing in numpy order ``(z, y, x)``, mm. For a 2-D input the
        z spacing is 1.0 and ``ndim == 2``.
    ndim : int
        Dimensionality of the input image as given by the user (2 or 3).
        PyRadiomics uses ``prod(spacing)`` over the input's own dimensions for
        ``TotalEnergy``; a 2-D image has a 2-D spacing.
    binned : numpy.ndarray of int32
        1-based gray levels inside the mask, 0 outside (see
        :mod:`chexradi.radiomics.discretize`).
    bin_edges : numpy.ndarray
        The edges that produced ``binned``.
    settings : dict
        The validated settings dict (PyRadiomics names).
    classes : tuple of str
        The texture classes that will be computed on this ROI, when the caller knows them (the extractor
        sets them), so that classes can share work: GLCM takes its pairs from GLRLM's walk along the same
        lines only when GLRLM will walk them (:meth:`pair_counts`). Empty: not known.
    """

    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    ndim: int
    binned: np.ndarray
    bin_edges: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def level_counts(self) -> np.ndarray:
        """``level_counts[g]``: the number of ROI voxels of gray level ``g`` (``g`` >= 1; index 0 counts the box
        voxels outside the mask), as ``numpy.bincount(binned)``."""
        if "level_counts" not in self._cache:
            self._cache["level_counts"] = level_counts(np.ascontiguousarray(self.binned).ravel())
        return self._cache["level_counts"]

    @property
    def grey_levels(self) -> np.ndarray:
        """Sorted unique gray levels present in the ROI (PyRadiomics' ``grayLevels``)."""
        if "grey_levels" not in self._cache:
            self._cache["grey_levels"] = np.flatnonzero(self.level_counts[1:]) + 1
        return self._cache["grey_levels"]

    @property
    def level_index(self) -> np.ndarray:
        """Lookup table gray level -> row of the level in :attr:`grey_levels` (-1 for absent levels)."""
        if "level_index" not in self._cache:
            levels = self.grey_levels
            lut = np.full(int(levels[-1]) + 1, -1, dtype=np.int64)
            lut[levels] = np.arange(len(levels), dtype=np.int64)
            self._cache["level_index"] = lut
        return self._cache["level_index"]

    def neighbourhood(self, distances: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The padded flat gray levels and neighbour offsets at ``distances`` in the ROI's plane
        (:func:`~chexradi.radiomics.kernels.glszm.neighbourhood`), made once per ROI for GLSZM, GLDM and
        NGTDM."""
        key = ("neighbourhood", tuple(int(d) for d in distances))
        if key not in self._cache:
            self._cache[key] = neighbourhood(self.binned, self.mask, key[1], self.plane_axis)
        return self._cache[key]

    def line_counts(self, angles: np.ndarray, *,
                    pairs: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run-length counts, co-occurrence counts (``pairs``; else possibly empty) and lone angles along
        ``angles`` (:func:`~chexradi.radiomics.kernels.lines.line_counts`: one walk along the ROI's segments),
        made once per ROI and angle set for GLRLM and, through :meth:`pair_counts`, GLCM. Read-only arrays."""
        angles, key = self._angles_key("lines", angles)
        cached = self._cache.get(key)
        if cached is None or (pairs and cached[1].shape[0] == 0):
            cached = line_counts(*self._counting_args(), angles, self.level_index, len(self.grey_levels), pairs)
            for arr in cached:
                arr.flags.writeable = False
            self._cache[key] = cached
        return cached

    def pair_counts(self, angles: np.ndarray, *, shared: bool) -> np.ndarray:
        """GLCM's asymmetric co-occurrence counts along ``angles`` ``(Ng', Ng', Na)`` int64, read-only. With
        ``shared`` (GLRLM will walk these very lines on this ROI) they come from that walk
        (:meth:`line_counts`); else from :func:`~chexradi.radiomics.kernels.glcm.glcm_counts`, which counts
        pairs alone faster than a walk that also counts runs. The same integers either way."""
        if shared:
            return self.line_counts(angles, pairs=True)[1]
        angles, key = self._angles_key("pairs", angles)
        if key not in self._cache:
            out = glcm_counts(*self._counting_args(), angles, self.level_index, len(self.grey_levels))
            out.flags.writeable = False
            self._cache[key] = out
        return self._cache[key]

    @staticmethod
    def _angles_key(name: str, angles: np.ndarray) -> tuple[np.ndarray, tuple]:
        """``angles`` as the kernels take them and the cache key of ``name`` for them."""
        angles = np.ascontiguousarray(angles, dtype=np.int64)
        return angles, (name, angles.shape, angles.tobytes())

    def _counting_args(self) -> tuple[np.ndarray, np.ndarray]:
        return np.ascontiguousarray(self.binned, dtype=np.int32), np.ascontiguousarray(self.mask, dtype=np.bool_)

    @property
    def ng(self) -> int:
        """The largest gray level present (PyRadiomics' ``Ng``), not the count."""
        return int(self.grey_levels[-1])

    @property
    def force2D(self) -> bool:
        return bool(self.settings.get("force2D", False)) or self.ndim == 2

    @property
    def force2D_dimension(self) -> Optional[int]:
        """Out-of-plane axis (numpy order) when force2D, else None."""
        if not self.force2D:
            return None
        return 0 if self.ndim == 2 else int(self.settings.get("force2Ddimension", 0))

    @property
    def plane_axis(self) -> Optional[int]:
        """Axis (numpy order of the 3-D arrays) that texture neighbours must not move along, or None.

        Same as :attr:`force2D_dimension` except for a 2-D input with ``force2D``
        set: PyRadiomics then applies ``force2Ddimension`` (default 0) to the 2-D
        array itself, so with the default only the x direction is left. In the
        ``(1, y, x)`` layout that is axis ``1 + force2Ddimension``; a dimension of
        2 does not exist in 2-D and restricts nothing beyond z.
        """
        if self.ndim == 2:
            if self.settings.get("force2D", False):
                d = int(self.settings.get("force2Ddimension", 0))
                if d in (0, 1):
                    return 1 + d
            return 0
        return self.force2D_dimension
