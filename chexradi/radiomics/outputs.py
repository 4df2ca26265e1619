"""A batch's outputs: the features file (CSV or JSON) and its metadata sidecar, written atomically.

:func:`check_output_path` checks before the first case that the output can be written.
At the end of a batch :func:`write_csv` (one row per successful case: the carried
columns, then the feature columns in :func:`feature_columns`' order) or
:func:`write_json` (``{"metadata": ..., "records": [...]}``, non-finite values as null)
writes the features, and :func:`write_meta` the sidecar ``<out>.meta.json``. Rows and
records are written one at a time from an iterable, so the values of a large batch need
not all be in memory.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .._io import atomic_path, atomic_write, sync_folders
from .cases import Case
from .workers import Cells, split_cells

__all__ = ["FORMATS", "META_SUFFIX", "check_output_path", "feature_columns", "jsonable_strict", "meta_path",
           "check_maps_folder", "write_feature_maps",
           "write_csv", "write_json", "write_meta"]

PathLike = Union[str, "os.PathLike[str]"]

FORMATS: tuple[str, ...] = ("csv", "json")
META_SUFFIX = ".meta.json"


def meta_path(out: PathLike) -> Path:
    """The metadata sidecar of ``out``: ``<out>.meta.json``."""
    out = Path(out)
    return out.with_name(out.name + META_SUFFIX)


def check_output_path(out: PathLike, *, name: str = "out") -> Path:
    """Check that ``out`` can be written (creating its folder); return it as an absolute Path.

    Raises
    ------
    ValueError
        ``out`` is a directory, or its folder cannot be created or written.
    """
    p = Path(out).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    if p.is_dir():
        raise ValueError(f"{name}={out} is a directory; give a file path such as {Path(out) / 'features.csv'}.")
    parent = p.parent
    try:  # the nearest existing ancestor must be a folder: a file there blocks mkdir with a cryptic "File exists"
        blocker: Optional[Path] = next((a for a in (parent, *parent.parents) if a.exists()), None)
    except OSError:  # e.g. no permission to look: mkdir below says why
        blocker = None
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f"cannot create the folder of {name}={out} ({parent}): {blocker} is a file, not a folder; "
                         "choose a writable location.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the folder of {name}={out} ({parent}): {exc.strerror or exc}; "
                         "choose a writable location.") from None
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"the folder of {name}={out} ({parent}) is not writable: {exc.strerror or exc}; "
                         "choose a writable location.") from None
    return p


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def feature_columns(name_lists: Iterable[Iterable[str]], classes: Sequence[str] = ()) -> list[str]:
    """Union of the feature names of all cases (each case's names, or its feature dict), in a stable order.

    Names ``<imageType>_<class>_<Feature>`` are ordered by image type (first seen), then class in the
    extractor's order (``classes``; shape classes first), then the order the extractor returns them. Cases
    with fewer features (a 2-D case has shape2D, a 3-D case shape) do not change the order.
    """
    seen: dict[str, int] = {}
    for d in name_lists:
        for k in d:
            seen.setdefault(k, len(seen))
    order = [c for c in classes if c.startswith("shape")] + [c for c in classes if not c.startswith("shape")]
    class_rank = {c: i for i, c in enumerate(order)}
    type_rank: dict[str, int] = {}

    def key(name: str) -> tuple[int, int, int]:
        parts = name.split("_", 2)
        itype, cls = (parts[0], parts[1]) if len(parts) == 3 else (name, "")
        return type_rank.setdefault(itype, len(type_rank)), class_rank.get(cls, len(class_rank)), seen[name]

    for name in seen:  # image types ranked by first appearance
        key(name)
    return sorted(seen, key=key)


def write_csv(path: Path, columns: list[str], features: list[str],
              rows: Iterable[tuple[Case, tuple[str, ...], Cells]]) -> None:
    """One row per case from ``(case, feature names, their cells)`` (``workers.csv_cells``): the carried
    columns, then the features (an empty cell for a feature the case lacks)."""
    same: dict[int, bool] = {}  # id(names) -> names are the columns, in order (so cells go as they are)
    head = io.StringIO()
    head_writer = csv.writer(head, lineterminator="\n")  # the same quoting as `w` (it depends on the terminator)
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns + features)
        for case, names, cells in rows:
            row = [case.columns.get(c) for c in columns]
            in_order = same.get(id(names))
            if in_order is None:  # once per distinct list of names
                in_order = same[id(names)] = list(names) == features
            if (in_order and len(row) > 1 and isinstance(cells, str) and cells
                    and '"' not in cells and "\n" not in cells and "\r" not in cells):
                # cells joined by commas (none inside a cell: workers.csv_cells) that need no quotes: the text the
                # writer would write for them, without splitting them first
                head.seek(0)
                head.truncate()
                head_writer.writerow(row)
                fh.write(head.getvalue()[:-1] + "," + cells + "\n")
                continue
            if in_order:
                row += split_cells(cells)
            else:
                by_name = dict(zip(names, split_cells(cells)))
                row += [by_name.get(f) for f in features]
            w.writerow(row)


def write_json(path: Path, metadata: dict[str, Any], columns: list[str], features: list[str],
               rows: Iterable[tuple[Case, Mapping[str, float]]]) -> None:
    """``{"metadata": ..., "records": [...]}`` with one-space indents, as ``json.dump(..., indent=1)`` writes it,
    one record at a time."""
    def dumps(obj: Any, depth: int) -> str:
        return json.dumps(obj, indent=1, allow_nan=False, default=str).replace("\n", "\n" + " " * depth)

    with atomic_write(path) as fh:
        fh.write('{\n "metadata": ' + dumps(metadata, 1) + ',\n "records": [')
        n = 0
        for case, feats in rows:
            rec = {c: case.columns.get(c) for c in columns}
            rec.update({f: _finite_or_none(feats.get(f)) for f in features})
            fh.write(("\n  " if n == 0 else ",\n  ") + dumps(rec, 2))
            n += 1
        fh.write("\n ]\n}\n" if n else "]\n}\n")


def write_meta(path: PathLike, meta: Mapping[str, Any]) -> None:
    """Write a metadata sidecar atomically (strict JSON)."""
    with atomic_write(path) as fh:
        json.dump(jsonable_strict(meta), fh, indent=2, allow_nan=False)
        fh.write("\n")


def jsonable_strict(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable_strict(v) for v in obj]
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def check_maps_folder(folder: PathLike, *, name: str = "maps") -> Path:
    """Check that feature maps can be written into ``folder`` (created when missing); return it absolute.

    Raises ``ValueError`` when ``folder`` is a file or cannot be created or written.
    """
    p = Path(folder).expanduser()
    if not p.is_absolute():
        p = Path.cwd() / p
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name}={folder} is a file; give a folder for the feature maps, e.g. "
                         f"{Path(folder).stem}_maps.")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the folder {name}={folder}: {exc.strerror or exc}; "
                         "give a writable folder.") from None
    if not os.access(p, os.W_OK):
        raise ValueError(f"cannot write into {name}={folder}; give a writable folder.")
    return p


def write_feature_maps(maps: Union[Mapping[str, Any], Iterable[tuple[str, Any]]], folder: PathLike) -> list[Path]:
    """Write each SimpleITK feature map to ``folder/<feature>.nrrd`` (atomically: a map is either complete or
    absent), then make them durable at once. ``maps``: a mapping, or ``(name, map)`` pairs as
    :meth:`~chexradi.radiomics.extractor.Extractor.iter_feature_maps` yields them (each map is let go once
    written). Returns the paths, in the maps' order."""
    import SimpleITK as sitk

    folder = check_maps_folder(folder)
    paths = []
    for name, image in (maps.items() if isinstance(maps, Mapping) else maps):
        path = folder / f"{name}.nrrd"
        with atomic_path(path, suffix=".tmp.nrrd", sync=False) as tmp:
            sitk.WriteImage(image, str(tmp), True)
        paths.append(path)
    sync_folders([folder])
    return paths
