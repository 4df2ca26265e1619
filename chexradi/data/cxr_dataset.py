"""Radiographs as network inputs: :class:`Record`, the torch ``Dataset`` :class:`CXRDataset`, :class:`Splits`.

The loaders of :mod:`chexradi.data.datasets` read a source's tables into
:class:`Record` objects (image path, labels, patient, boxes) and hand them to
:class:`CXRDataset`, which does the per-image work at training time: it checks
that the files exist, decodes an image with
:func:`~chexradi.data.readers.read_radiograph`, normalises it with
:func:`~chexradi.data.transforms.to_model_input` (the one documented
normalisation), keeps the result in an optional on-disk cache of decoded images,
and scales a record's boxes to the network input. Its items are what
:func:`chexradi.train.fit` takes: ``{"image": float32 (1, size, size), "target":
float32 (K,) with NaN for unknown, "index": int}``.

These names are also importable from :mod:`chexradi.data.datasets`, where they
were first documented.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .._io import atomic_path
from .readers import image_shape_and_spacing, looks_complete, read_radiograph
from .transforms import NORMALIZATION, to_model_input

__all__ = ["Record", "CXRDataset", "Splits", "Box", "ON_ERROR", "CACHE_DTYPES", "check_size", "check_choice",
           "show_paths"]

logger = logging.getLogger("chexradi.data.datasets")

PathLike = Union[str, "os.PathLike[str]"]
#: A box ``(x, y, w, h)``: x = column, y = row, in pixels.
Box = tuple[float, float, float, float]
ON_ERROR = ("fail", "skip")
CACHE_DTYPES = ("float32", "float16")


@dataclass
class Record:
    """One radiograph and what is known about it.

    Attributes
    ----------
    image_id : str
        The image's name in its source table (e.g. ``00000001_000.png``).
    path : pathlib.Path or None
        Where the image file is (or is expected to be); None for a record of a report without
        an image (:mod:`chexradi.data.reports_join`), which an image dataset refuses.
    labels : numpy.ndarray
        float32 ``(K,)`` in the order of the dataset's ``class_names``; 1 positive, 0
        negative, NaN unknown.
    patient : str or None
        Patient identifier, used to keep a patient's images in one split.
    boxes : dict
        Class -> list of ``(x, y, w, h)`` in original pixel coordinates (x = column,
        y = row). The frame is ``meta["box_frame"]`` ``(rows, columns)`` when set (1024 x
        1024 for ChestX-ray14, whatever size the image files have), else the image itself.
    meta : dict
        Other columns of the source table.
    report : ReportText or None
        The study's report (:class:`chexradi.data.reports_join.ReportText`: id, sections,
        text) when the source has one.
    """

    image_id: str
    path: Optional[Path]
    labels: np.ndarray
    patient: Optional[str] = None
    boxes: dict[str, list[Box]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    report: Optional[Any] = None


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return str(value)


def check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
        raise ValueError(f"size must be an integer >= 8 (the network input side in pixels), got {size!r}.")
    return int(size)


def show_paths(paths: Sequence[Any], k: int = 5) -> str:
    """The first ``k`` paths, comma-separated, and how many more there are (for messages)."""
    shown = ", ".join(str(p) for p in paths[:k])
    return shown + (f" and {len(paths) - k} more" if len(paths) > k else "")


class CXRDataset(Dataset):
    """Radiographs as network inputs: items ``{"image", "target", "index"}``.

    Parameters
    ----------
    records : sequence of Record
        The images; every ``labels`` must have one value per class.
    class_names : sequence of str
        The ``K`` classes ``labels`` refer to.
    size : int
        Network input side; items are float32 ``(1, size, size)`` from
        :func:`~chexradi.data.transforms.to_model_input`.
    cache_dir : path, optional
        Folder for decoded images. The first read of an image stores its normalised,
        resized array as ``<key>.npy`` (written atomically), the key being a hash of
        (resolved path, modification time, file size, ``size``,
        :data:`~chexradi.data.transforms.NORMALIZATION`, ``cache_dtype``); later epochs
        load the ``.npy`` instead of decoding. An edited image gets a new key. An
        unreadable cache file is ignored (logged) and rewritten.
    cache_dtype : {"float32", "float16"}
        Storage type of cached arrays; ``"float16"`` halves the disk use at about 1e-3
        absolute error. Items are float32 either way.
    on_error : {"fail", "skip"}
        What to do with records whose file does not exist, checked at construction
        (one ``stat`` per file, no decoding): ``"fail"`` raises ``FileNotFoundError``
        naming the missing path(s); ``"skip"`` drops them and logs how many. Files that
        exist but cannot be decoded are found by :meth:`validate` (header read, plus a full
        decode of files that look truncated), or raise ``ValueError`` naming the path when
        read by ``__getitem__`` under either setting.

    Raises
    ------
    FileNotFoundError
        ``on_error="fail"`` and some image files are missing.
    ValueError
        Bad ``size``/``on_error``/``cache_dtype``; labels of the wrong length; every
        record missing under ``on_error="skip"``.
    """

    def __init__(self, records: Sequence[Record], class_names: Sequence[str], *, size: int = 224,
                 cache_dir: Optional[PathLike] = None, on_error: str = "fail",
                 cache_dtype: str = "float32") -> None:
        self.size = check_size(size)
        self.on_error = check_choice(on_error, "on_error", ON_ERROR)
        self.cache_dtype = check_choice(cache_dtype, "cache_dtype", CACHE_DTYPES)
        self.class_names: tuple[str, ...] = tuple(class_names)
        if not self.class_names:
            raise ValueError("class_names is empty; give the classes the labels refer to.")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise ValueError(f"cache_dir {self.cache_dir} is a file; give a folder (it is created if missing).")
        k = len(self.class_names)
        recs = list(records)
        for r in recs:
            if not isinstance(r, Record):
                raise ValueError(f"records must be chexradi.data.datasets.Record objects, got {type(r).__name__}.")
            if np.shape(r.labels) != (k,):
                raise ValueError(f"record {r.image_id}: labels have shape {np.shape(r.labels)}, expected ({k},) "
                                 f"(one per class: {', '.join(self.class_names)}).")
        no_image = [r.image_id for r in recs if r.path is None]
        if no_image:
            raise ValueError(f"{len(no_image)} record(s) have a report but no image ({show_paths(no_image)}): an image "
                             f"dataset needs image files; give the image folder to the reader, or keep only "
                             f"Joined.with_images()")
        missing = [r for r in recs if not r.path.is_file()]
        if missing:
            paths = [str(r.path) for r in missing]
            if self.on_error == "fail":
                raise FileNotFoundError(
                    f"{len(missing)} of {len(recs)} image file(s) not found: {show_paths(paths)}. Fix the paths "
                    "(root, images folder) or pass on_error='skip' to drop these records.")
            if len(missing) == len(recs):
                raise ValueError(f"none of the {len(recs)} image file(s) exists (e.g. {show_paths(paths, 3)}); "
                                 "check the root folder and the image column.")
            logger.warning("skipping %d of %d record(s) whose image file is missing (e.g. %s)",
                           len(missing), len(recs), show_paths(paths, 3))
            gone = {id(r) for r in missing}
            recs = [r for r in recs if id(r) not in gone]
        self.records: list[Record] = recs
        self.skipped: int = len(missing)

    def __len__(self) -> int:
        return len(self.records)

    def report_at(self, index: int) -> Optional[Any]:
        """The report of image ``index`` (its record's :class:`~chexradi.data.reports_join.ReportText`), or None
        when its record has none."""
        return self.records[index].report

    @property
    def targets(self) -> np.ndarray:
        """float32 ``(N, K)`` labels of all records (NaN unknown)."""
        if not self.records:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.stack([np.asarray(r.labels, np.float32) for r in self.records])

    # -- images -------------------------------------------------------------------------------------
    def _cache_file(self, path: Path) -> Optional[Path]:
        if self.cache_dir is None:
            return None
        st = path.stat()
        key = "|".join([str(path.resolve()), str(st.st_mtime_ns), str(st.st_size), str(self.size),
                        NORMALIZATION, self.cache_dtype])
        return self.cache_dir / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}.npy"

    def load_image(self, index: int) -> np.ndarray:
        """The float32 ``(1, size, size)`` network input of record ``index`` (from the cache when present)."""
        return self.load_file(self.records[index].path)

    def load_file(self, path: PathLike) -> np.ndarray:
        """The float32 ``(1, size, size)`` network input of the image file ``path`` (a record's, or another view
        of its study), through the same decoded-image cache as :meth:`load_image`."""
        path = Path(path)
        cached = self._cache_file(path)
        shape = (1, self.size, self.size)
        if cached is not None and cached.is_file():
            try:
                arr = np.load(cached, allow_pickle=False)
                if arr.shape == shape:
                    return arr.astype(np.float32, copy=False)
                logger.warning("cache file %s has shape %s, expected %s; re-reading %s",
                               cached, arr.shape, shape, path)
            except (OSError, ValueError) as exc:
                logger.warning("cannot read cache file %s (%s); re-reading %s", cached, exc, path)
        image, _ = read_radiograph(path)
        arr = to_model_input(image, size=self.size)
        if cached is not None:
            with atomic_path(cached, suffix=".tmp.npy") as tmp:
                np.save(tmp, arr.astype(self.cache_dtype))
            if self.cache_dtype != "float32":
                arr = arr.astype(self.cache_dtype).astype(np.float32)  # identical to what later epochs load
        return arr

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.records)
        if not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise IndexError(f"index {index!r} out of range for a dataset of {n} image(s).")
        i = int(index) % n
        image = torch.from_numpy(np.ascontiguousarray(self.load_image(i)))
        target = torch.from_numpy(np.asarray(self.records[i].labels, np.float32).copy())
        return {"image": image, "target": target, "index": i}

    # -- boxes --------------------------------------------------------------------------------------
    def boxes_at(self, index: int, size: Optional[int] = None) -> dict[str, list[Box]]:
        """Boxes of record ``index`` scaled to a ``size x size`` network input (default ``self.size``).

        The source frame is ``meta["box_frame"]`` when set, else the image's own shape
        (read from its header once and kept in ``meta["shape"]``). Returns class ->
        list of ``(x, y, w, h)`` floats.
        """
        size = self.size if size is None else check_size(size)
        rec = self.records[index]
        if not rec.boxes:
            return {}
        frame = rec.meta.get("box_frame")
        if frame is None:
            frame = rec.meta.get("shape")
            if frame is None:
                frame, _ = image_shape_and_spacing(rec.path)
                rec.meta["shape"] = tuple(frame)
        rows, cols = float(frame[0]), float(frame[1])
        sx, sy = size / cols, size / rows
        return {c: [(x * sx, y * sy, w * sx, h * sy) for (x, y, w, h) in bs] for c, bs in rec.boxes.items()}

    # -- checks -------------------------------------------------------------------------------------
    def validate(self) -> tuple[bool, list[tuple[Path, str]]]:
        """Check that every image exists and can be opened, reading headers only (no pixel decoding).

        A file that looks cut short (:func:`~chexradi.data.readers.looks_complete`: a PNG
        without its IEND chunk, a JPEG without its end marker, an uncompressed DICOM
        shorter than its pixel data, as an interrupted copy leaves them) is decoded in
        full and reported when that fails. NRRD/NIfTI pixel data are not checked here.

        Returns
        -------
        ok : bool
            True when every file passed.
        bad : list of (path, reason)
            The files that failed, with the reader's message.
        """
        bad: list[tuple[Path, str]] = []
        for rec in self.records:
            if not rec.path.is_file():
                bad.append((rec.path, "file not found"))
                continue
            try:
                shape, _ = image_shape_and_spacing(rec.path)
            except (OSError, ValueError) as exc:
                bad.append((rec.path, str(exc)))
                continue
            if not looks_complete(rec.path):
                try:
                    read_radiograph(rec.path)
                except (OSError, ValueError) as exc:
                    bad.append((rec.path, str(exc)))
                    continue
            rec.meta.setdefault("shape", tuple(shape))
        if bad:
            logger.warning("%d of %d image(s) failed validation (e.g. %s)", len(bad), len(self.records),
                           show_paths([p for p, _ in bad], 3))
        return not bad, bad

    def __repr__(self) -> str:
        return (f"CXRDataset({len(self)} image(s), {len(self.class_names)} class(es), size={self.size}, "
                f"cache_dir={self.cache_dir})")


@dataclass
class Splits:
    """Train/validation/test datasets of one source; a split is None when the source has none."""

    train: Optional[CXRDataset]
    val: Optional[CXRDataset]
    test: Optional[CXRDataset]
    class_names: tuple[str, ...]

    def __iter__(self) -> Iterator[Optional[CXRDataset]]:
        return iter((self.train, self.val, self.test))
