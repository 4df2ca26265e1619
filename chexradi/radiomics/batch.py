"""Many (image, mask) cases: worker processes, a journal on disk, resume.

:func:`extract_batch` runs :class:`~chexradi.radiomics.extractor.Extractor` on
every case of a cases CSV (PyRadiomics' batch format: columns ``Image``,
``Mask``, optional ``Label``; every other column is carried through to the
output) or of a list of dicts.

How a batch runs
----------------
1. Everything is checked before the first case: the settings (by building the
   extractor), the cases (columns, empty file, labels, duplicate rows), the
   output folder (must be writable) and, when resuming, the journal (it must
   have been written with the same settings and engine).
2. Cases run in ``jobs`` worker processes (:mod:`~chexradi.radiomics.workers`;
   ``spawn`` start method: safe with numba and SimpleITK's threads; each worker
   builds its extractor once), or in the workers of a
   :class:`~chexradi.radiomics.workers.WorkerPool` given as ``pool=``. With
   ``jobs=1`` they run in this process. With ``scheduler="dask"`` they run on a
   local Dask cluster of ``jobs`` workers, with ``scheduler="dask:ADDRESS"`` on
   a running Dask cluster (see :mod:`chexradi.radiomics.dask_backend`).
3. As each case finishes, one JSON line is appended to the journal
   ``<out>.journal.jsonl`` (flushed at once, fsynced at least every second).
   Workers get a few consecutive cases per task (cases that share an image
   file read it once) and report them together when the task ends. A bad case (missing file,
   unreadable image, label absent, empty mask, geometry mismatch, NaN pixels...)
   is recorded with its row and the error message; the batch goes on.
4. At the end the output (``fmt="csv"``: one row per successful case, the
   carried columns then the feature columns; ``fmt="json"``: metadata plus a
   list of records) and the sidecar ``<out>.meta.json`` (settings, engine,
   package versions, counts, every failure) are written atomically.

Resume: running again with the same ``out`` skips the cases the journal holds
as done, retries the failed ones and never duplicates a case. A case is
identified by its resolved Image and Mask paths, its Label and its other
columns (not by its row number, so rows may be reordered or appended).

Rows are numbered from 1: row 1 is the first case (for a CSV, the first line
after the header).
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .._io import atomic_write
from .._progress import progress_bar
from .workers import Cells, WorkerPool, csv_cells, process_case, record_json, resolve_jobs, run_in_pool, split_cells

__all__ = [
    "BatchReport",
    "CaseFailure",
    "extract_batch",
    "load_cases",
    "check_output_path",
    "write_meta",
    "journal_path",
    "meta_path",
    "FORMATS",
]

logger = logging.getLogger("chexradi.radiomics.batch")

FORMATS: tuple[str, ...] = ("csv", "json")
JOURNAL_SUFFIX = ".journal.jsonl"
META_SUFFIX = ".meta.json"
_JOURNAL_KIND = "chexradi-batch-journal"
_JOURNAL_VERSION = 1
_RESERVED_PREFIXES = ("original_", "diagnostics_")
# Journal lines are flushed to the OS at once (a killed process loses none) and fsynced in groups: at most
# this many lines or seconds can be lost to a power cut (they are recomputed on resume).
_FSYNC_EVERY_LINES = 256
_FSYNC_EVERY_S = 1.0
# What the output needs of at most this many cases is kept in memory to write it at the end (a CSV's cells, about
# 4 kB a case; for a JSON output the values, about 17 kB); the values of the others are read back from the journal
# (about 0.06 ms a case), so the driver's memory stays bounded however many cases a batch has (about 1 kB a case
# remains: the case list and the journal index).
_HELD_RESULTS = 10_000

PathLike = Union[str, "os.PathLike[str]"]
CasesLike = Union[PathLike, Sequence[Mapping[str, Any]]]


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Case:
    """One (image, mask) case of a batch (internal)."""

    row: int                     # 1-based
    image: str                   # resolved path (what is read)
    mask: str
    label: Optional[int]         # None: the ``label`` setting
    image_given: str             # as written in the cases CSV / dict
    mask_given: str
    columns: dict[str, Any]      # every input column, in input order (carried to the output)
    key: str                     # identity for resume


@dataclass(frozen=True)
class CaseFailure:
    """A case that failed: its row (1-based), Image and Mask as given, the label used, and the reason."""

    row: int
    image: str
    mask: str
    label: Optional[int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "image": self.image, "mask": self.mask, "label": self.label, "reason": self.reason}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _parse_label(value: Any, where: str) -> Optional[int]:
    if _blank(value):
        return None
    bad = ValueError(f"{where}: Label {value!r} is not an integer > 0; fix the Label column "
                     "(leave the cell empty to use the `label` setting).")
    if isinstance(value, bool):
        raise bad
    try:
        f = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except ValueError:
        raise bad from None
    if not math.isfinite(f) or not f.is_integer() or f <= 0:
        raise bad
    return int(f)


def _resolve(value: Any, base: Path) -> str:
    s = os.path.expanduser(str(value).strip())  # os.path, not pathlib: a fifth of the time, for every case
    if not os.path.isabs(s):
        s = os.path.join(base, s)
    return os.path.normpath(s)


def case_key(identity: str) -> str:
    """A case's resume key: a 128-bit digest of its identity (resolved Image and Mask, Label and the other
    columns, as sorted JSON): 32 characters held per case instead of the whole text. Journals written before
    hold the text itself; :meth:`_Journal.load` digests those, so they resume as they are."""
    return hashlib.blake2b(identity.encode("utf-8"), digest_size=16).hexdigest()


def _carried_value(v: Any) -> Any:
    """A value that JSON can hold: str/int/float/bool/None as is, anything else (Path...) as str."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _read_cases_csv(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"cases file not found: {path}; pass a CSV with columns Image, Mask "
                                "(and optionally Label).")
    if path.is_dir():
        raise ValueError(f"cases file {path} is a directory; pass a CSV with columns Image, Mask "
                         "(and optionally Label).")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"cases file {path} is empty; it needs a header line with the columns Image and Mask "
                             "(optionally Label) and one line per case.") from None
        except csv.Error as exc:
            raise ValueError(f"cases file {path} is not a readable CSV ({exc}).") from None
        header = [h.strip() for h in header]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise ValueError(f"cases file {path}: column(s) {', '.join(map(repr, dup))} appear more than once in "
                             "the header; give every column a unique name.")
        if any(not h for h in header):
            raise ValueError(f"cases file {path}: the header has an empty column name (column "
                             f"{header.index('') + 1}); name every column.")
        rows: list[dict[str, Any]] = []
        try:
            for n, values in enumerate(reader, start=1):
                if not values or all(not v.strip() for v in values):
                    continue  # blank line
                if len(values) > len(header):
                    raise ValueError(f"cases file {path}, row {len(rows) + 1} (line {reader.line_num}): "
                                     f"{len(values)} values but the header has {len(header)} columns; quote values "
                                     "that contain commas.")
                values = values + [""] * (len(header) - len(values))
                rows.append(dict(zip(header, values)))
        except csv.Error as exc:
            raise ValueError(f"cases file {path} is not a readable CSV (line {reader.line_num}: {exc}).") from None
    return rows, header


def load_cases(cases: CasesLike, *, label: int = 1) -> list[Case]:
    """Read and check the cases of a batch (no image is read).

    Parameters
    ----------
    cases : a CSV path (columns ``Image``, ``Mask``, optional ``Label``, any
        other column carried through; relative paths are resolved from the
        CSV's folder) or a list of dicts with the same keys (relative paths are
        resolved from the current directory).
    label : the ``label`` setting, used for rows without a Label to detect
        duplicate rows.

    Raises
    ------
    FileNotFoundError
        The CSV does not exist.
    ValueError
        Missing Image/Mask column, empty file, empty Image/Mask cell, invalid
        Label, duplicate rows (same Image, Mask and Label; rows are named), or
        a column that would collide with feature names.
    """
    if isinstance(cases, (str, os.PathLike)):
        path = Path(cases)
        raw_rows, columns = _read_cases_csv(path)
        base = path.parent.absolute()
        where = f"cases file {path}"
        missing = [c for c in ("Image", "Mask") if c not in columns]
        if missing:
            hint = ""
            lower = {c.lower(): c for c in columns}
            near = [lower[m.lower()] for m in missing if m.lower() in lower]
            if near:
                hint = f" (column names are case-sensitive: rename {', '.join(map(repr, near))})"
            raise ValueError(f"{where} has no {' or '.join(map(repr, missing))} column{hint}; columns found: "
                             f"{', '.join(columns) or 'none'}. The header needs Image and Mask (optionally Label).")
        if not raw_rows:
            raise ValueError(f"{where} has a header but no case rows; add one line per case.")
    elif isinstance(cases, Sequence) and not isinstance(cases, (bytes, bytearray)):
        base = Path.cwd()
        where = "cases"
        raw_rows = []
        columns = []
        for i, item in enumerate(cases):
            if not isinstance(item, Mapping):
                raise ValueError(f"cases[{i}] is a {type(item).__name__}; each case must be a dict with keys "
                                 "'Image' and 'Mask' (optionally 'Label').")
            for k in ("Image", "Mask"):
                if k not in item:
                    raise ValueError(f"cases[{i}] (row {i + 1}) has no {k!r} key; each case needs 'Image' and 'Mask' "
                                     f"(optionally 'Label'); keys found: {', '.join(map(str, item)) or 'none'}.")
            raw_rows.append(dict(item))
            for k in item:
                if k not in columns:
                    columns.append(str(k))
        if not raw_rows:
            raise ValueError("cases is an empty list; give at least one {'Image': ..., 'Mask': ...} case.")
    else:
        raise ValueError(f"cases must be a CSV path or a list of dicts, got {type(cases).__name__}.")

    clash = [c for c in columns if c.startswith(_RESERVED_PREFIXES)]
    if clash:
        raise ValueError(f"{where}: column(s) {', '.join(map(repr, clash[:5]))} would collide with feature names "
                         "(original_*/diagnostics_*); rename or drop them (is this a features file rather than a "
                         "cases file?).")

    out: list[Case] = []
    seen: dict[str, str] = {}  # one string object per distinct text (an image's K masks, split/class columns)
    share = seen.setdefault
    for n, raw in enumerate(raw_rows, start=1):
        rwhere = f"{where}, row {n}"
        for k in ("Image", "Mask"):
            v = raw.get(k)
            if _blank(v):
                raise ValueError(f"{rwhere}: the {k} cell is empty; give a file path.")
            if not isinstance(v, (str, os.PathLike)):
                raise ValueError(f"{rwhere}: {k} must be a file path, got {type(v).__name__}.")
        lab = _parse_label(raw.get("Label"), rwhere)
        carried = {c: _carried_value(raw.get(c)) for c in columns}
        for c, v in carried.items():
            if isinstance(v, str):
                carried[c] = share(v, v)
        image_given, mask_given = str(raw["Image"]).strip(), str(raw["Mask"]).strip()
        image_given = share(image_given, image_given)
        image, mask = _resolve(image_given, base), _resolve(mask_given, base)
        image = image_given if image == image_given else share(image, image)  # absolute paths: one string
        mask = mask_given if mask == mask_given else mask
        ident = {"Image": image, "Mask": mask, "Label": lab}
        ident.update({str(c): ("" if v is None else str(v)) for c, v in carried.items()
                      if c not in ("Image", "Mask", "Label")})
        out.append(Case(row=n, image=image, mask=mask, label=lab, image_given=image_given, mask_given=mask_given,
                        columns=carried, key=case_key(json.dumps(ident, sort_keys=True, ensure_ascii=False))))

    groups: dict[tuple[str, str, int], list[int]] = {}
    for c in out:
        groups.setdefault((c.image, c.mask, c.label if c.label is not None else int(label)), []).append(c.row)
    dups = [(k, rows) for k, rows in groups.items() if len(rows) > 1]
    if dups:
        parts = []
        for (img, msk, lab), rows in dups[:5]:
            rs = (", ".join(map(str, rows[:-1])) + f" and {rows[-1]}" if len(rows) <= 8
                  else ", ".join(map(str, rows[:8])) + f" and {len(rows) - 8} more")
            parts.append(f"rows {rs} (Image {img}, Mask {msk}, label {lab})")
        more = f" and {len(dups) - 5} more group(s)" if len(dups) > 5 else ""
        raise ValueError(f"{where} has duplicate cases (same Image, Mask and Label): {'; '.join(parts)}{more}. "
                         "Remove the repeated rows, or give each a different Label.")
    return out


# ---------------------------------------------------------------------------------------------
# files: output checks, atomic writes, journal
# ---------------------------------------------------------------------------------------------
def journal_path(out: PathLike) -> Path:
    """The journal of a batch writing ``out``: ``<out>.journal.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + JOURNAL_SUFFIX)


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


def _jsonable(params: Any) -> Any:
    return json.loads(json.dumps(params, default=str))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _diff(old: Any, new: Any) -> list[str]:
    """Differences between two parameter dicts, as 'name: old -> new' (settings by bare name)."""
    fa, fb = _flatten(old or {}), _flatten(new or {})
    out = []
    for k in sorted(set(fa) | set(fb)):
        va, vb = fa.get(k, "<absent>"), fb.get(k, "<absent>")
        if va != vb:
            name = k[len("setting."):] if k.startswith("setting.") else k
            out.append(f"{name}: {va!r} -> {vb!r}")
    return out


class _Journal:
    """Append-only JSON-lines journal; one line per finished case, fsynced.

    Of the cases done by an earlier run only where each last ok line starts (its byte offset) and
    the feature names are kept (:attr:`done`); :meth:`read_features` reads a case's values back
    when the output is written."""

    def __init__(self, path: Path, header: dict[str, Any], *, resume: bool) -> None:
        self.path = path
        self.done: dict[str, tuple[int, tuple[str, ...]]] = {}  # key -> (offset of its last ok line, names)
        self.n_lines = 0
        self._size = 0
        self._names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._reader: Any = None
        self._unsynced = 0
        self._synced_at = time.monotonic()
        self._fh = open(path, "a+b")
        try:
            self._lock()
            self._fh.seek(0)
            keep = self._load(header) if resume else 0
            self._fh.truncate(keep)
            self._fh.seek(0, os.SEEK_END)
            self._size = keep
            if keep == 0:  # nothing kept: _load found no valid line, so done is empty
                self._write(header)
        except BaseException:
            self._fh.close()
            raise

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another chexradi batch is writing {self.path}; wait for it to finish or use a "
                             "different --out / out=.") from None

    def names(self, features: Mapping[str, Any]) -> tuple[str, ...]:
        """The feature names of a result, as one shared tuple per distinct list of names."""
        t = tuple(features)
        return self._names.setdefault(t, t)

    def _load(self, header: dict[str, Any]) -> int:
        """Read an existing journal line by line (from the start of ``self._fh``); returns the byte length to
        keep (complete, valid lines) and fills :attr:`done`."""
        keep = 0
        for i, line in enumerate(self._fh):
            if not line.endswith(b"\n"):
                logger.info("journal %s: ignoring an incomplete last line (%d bytes) left by an interrupted run",
                            self.path, len(line))
                break
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError):
                rest = self._fh.read()
                if b"\n" not in rest:  # the last complete line (maybe before an incomplete one)
                    logger.info("journal %s: ignoring a damaged last line (line %d)", self.path, i + 1)
                    if rest:
                        logger.info("journal %s: ignoring an incomplete last line (%d bytes) left by an interrupted "
                                    "run", self.path, len(rest))
                    break
                raise ValueError(f"journal {self.path} is damaged at line {i + 1} (not a JSON record); use a new "
                                 "--out / out=, or --no-resume / resume=False to recompute every case.") from None
            if i == 0:
                self._check_header(rec, header)
            elif rec.get("type") == "case" and rec.get("status") == "ok" and isinstance(rec.get("key"), str):
                key = rec["key"]
                self.done[case_key(key) if key.startswith("{") else key] = (keep, self.names(rec.get("features") or {}))
            keep += len(line)
            self.n_lines += 1
        return keep

    def _check_header(self, head: dict[str, Any], header: dict[str, Any]) -> None:
        if head.get("type") != "header" or head.get("kind") != _JOURNAL_KIND:
            raise ValueError(f"{self.path} exists but is not a chexradi batch journal; use a new --out / out=, or "
                             "--no-resume / resume=False to overwrite it.")
        changes = []
        if head.get("engine") != header["engine"]:
            changes.append(f"engine: {head.get('engine')!r} -> {header['engine']!r}")
        changes += _diff(head.get("settings"), header["settings"])
        if changes:
            shown = "; ".join(changes[:8]) + (f"; and {len(changes) - 8} more" if len(changes) > 8 else "")
            raise ValueError(f"the journal {self.path} of a previous run was written with different settings/engine "
                             f"({shown}). Refusing to mix results: use a new --out / out= for the new settings, or "
                             "--no-resume / resume=False to recompute every case and overwrite the old results.")
        if head.get("versions") != header.get("versions"):
            logger.warning("journal %s was written with other package versions (%s); resuming anyway",
                           self.path, head.get("versions"))

    def _write(self, record: dict[str, Any], *, sync: bool = True) -> int:
        """Append one record as a line; returns its byte offset."""
        return self._write_text(record_json(record), sync=sync)

    def _write_text(self, text: str, *, sync: bool) -> int:
        data = (text + "\n").encode("utf-8")
        offset = self._size
        self._fh.write(data)
        self._fh.flush()  # in the OS from here on: a killed process loses nothing
        self._size += len(data)
        self.n_lines += 1
        self._unsynced += 1
        now = time.monotonic()
        if sync or self._unsynced >= _FSYNC_EVERY_LINES or now - self._synced_at >= _FSYNC_EVERY_S:
            self.sync()
        return offset

    def read_features(self, offset: int) -> dict[str, Any]:
        """The features of the ok case whose line starts at ``offset``."""
        if self._reader is None:
            self._reader = open(self.path, "rb")
        self._reader.seek(offset)
        return json.loads(self._reader.readline())["features"]

    def sync(self) -> None:
        """fsync the lines written so far (also against a power cut)."""
        if self._unsynced:
            os.fsync(self._fh.fileno())
            self._unsynced = 0
        self._synced_at = time.monotonic()

    def append_case(self, head: dict[str, Any], rec: dict[str, Any], text: Optional[str] = None) -> int:
        """Append the record ``{**head, **rec}``; returns its line's byte offset. ``text``: ``rec`` already
        encoded (``workers.record_json``, in the worker), joined to ``head``'s text without decoding it:
        the same bytes as encoding the whole record here."""
        if text is None or not rec or not head or not head.keys().isdisjoint(rec):
            return self._write({**head, **rec}, sync=False)
        return self._write_text(record_json(head)[:-1] + ", " + text[1:], sync=False)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._fh.close()
            if self._reader is not None:
                self._reader.close()


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------
def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _feature_columns(name_lists: Iterable[Iterable[str]], classes: Sequence[str] = ()) -> list[str]:
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


def _write_csv(path: Path, columns: list[str], features: list[str],
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


def _write_json(path: Path, metadata: dict[str, Any], columns: list[str], features: list[str],
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
        json.dump(_jsonable_strict(meta), fh, indent=2, allow_nan=False)
        fh.write("\n")


def _jsonable_strict(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable_strict(v) for v in obj]
    if isinstance(obj, float):
        return _finite_or_none(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------------------------------
# the public entry point
# ---------------------------------------------------------------------------------------------
@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    n_total : cases in the batch.
    n_ok : cases with features in the output (including those taken from the
        journal of an earlier run); with ``validate_only``, cases that passed.
    n_failed : cases that failed (not in the output; listed in ``failures``).
    n_skipped_resumed : cases not recomputed because the journal held them.
    failures : one :class:`CaseFailure` per failed case, by row.
    out, meta_path, journal : the files written (None with ``validate_only``).
    elapsed : seconds.
    validate_only : True when nothing was computed.
    """

    n_total: int
    n_ok: int
    n_failed: int
    n_skipped_resumed: int
    failures: list[CaseFailure] = field(default_factory=list)
    out: Optional[Path] = None
    meta_path: Optional[Path] = None
    journal: Optional[Path] = None
    elapsed: float = 0.0
    validate_only: bool = False

    @property
    def ok(self) -> bool:
        """True when every case succeeded."""
        return self.n_failed == 0


def extract_batch(
    cases: CasesLike,
    *,
    out: Optional[PathLike],
    params: Any = None,
    engine: str = "numba",
    jobs: int = 1,
    scheduler: Optional[str] = None,
    fmt: str = "csv",
    resume: bool = True,
    validate_only: bool = False,
    progress: Optional[bool] = None,
    pool: Optional[WorkerPool] = None,
    **settings: Any,
) -> BatchReport:
    """Radiomics features of many (image, mask) cases, in processes, resumable.

    Parameters
    ----------
    cases : a cases CSV (columns ``Image``, ``Mask``, optional ``Label``; other
        columns are carried to the output; relative paths are resolved from the
        CSV's folder), or a list of dicts with those keys.
    out : output file. The journal ``<out>.journal.jsonl`` and the metadata
        ``<out>.meta.json`` are written next to it. May be None with
        ``validate_only``.
    params : settings: a dict, a YAML/JSON parameter file or ``Settings``.
    engine : ``"numba"`` (default) or ``"pyradiomics"``.
    jobs : worker processes (1: run in this process; 0: one per CPU). With
        ``scheduler="dask"``: the workers of the local Dask cluster.
    scheduler : where the cases run. None or ``"processes"``: ``jobs`` worker
        processes. ``"dask"``: a local Dask cluster (``jobs`` worker processes,
        one thread each), started and closed by this call.
        ``"dask:ADDRESS"`` (e.g. ``"dask:tcp://10.0.0.5:8786"``): the workers
        of a running Dask cluster (left running; its workers need chexradi and
        must see the case files). Needs ``pip install chexradi[dask]``. Not
        part of the journal's identity: a batch started with one scheduler can
        be resumed with another.
    fmt : ``"csv"`` (one row per successful case: carried columns, then
        features) or ``"json"`` (``{"metadata": ..., "records": [...]}``;
        non-finite values are written as null).
    resume : skip the cases an earlier run with the same ``out`` completed
        (its journal must have the same settings and engine); False starts a
        new journal.
    validate_only : load and check every case (``Extractor.prepare``),
        compute nothing and write nothing.
    progress : show a progress bar on stderr (default: only when stderr is a
        terminal).
    pool : a :class:`~chexradi.radiomics.workers.WorkerPool` started earlier
        (built with the same settings and engine): its workers run the cases
        and stay running afterwards; ``jobs`` is then the pool's.
    **settings : PyRadiomics settings by name, overriding ``params``.

    Returns
    -------
    BatchReport
        Counts, failures (row and reason) and the paths written. A failed case
        does not raise: check ``report.ok`` / ``report.failures``.

    Raises
    ------
    ImportError
        ``scheduler="dask..."`` without dask/distributed installed.
    ValueError
        Before any case runs: invalid settings/engine/options/scheduler, a cases file
        without Image/Mask columns, empty, or with duplicate rows, an output
        folder that cannot be written, or a journal written with different
        settings (use a new ``out`` or ``resume=False``).
    FileNotFoundError
        The cases CSV or the parameter file does not exist.

    Examples
    --------
    >>> report = extract_batch("cases.csv", out="features.csv", jobs=4, binWidth=10)  # doctest: +SKIP
    >>> report.n_ok, [(f.row, f.reason) for f in report.failures]                     # doctest: +SKIP
    """
    t_start = time.perf_counter()
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is unknown; use one of {', '.join(FORMATS)}.")
    jobs = resolve_jobs(jobs)
    if progress not in (None, True, False):
        raise ValueError(f"progress={progress!r} is invalid: use None (only on a terminal), True or False.")
    from .dask_backend import parse_scheduler, require_dask

    sched_kind, sched_address = parse_scheduler(scheduler)
    if sched_kind == "dask":
        require_dask()  # before anything is written
    sched_name = "processes" if sched_kind == "processes" else (
        "dask" if sched_address is None else f"dask:{sched_address}")
    if out is None and not validate_only:
        raise ValueError("out is required: give the path of the features file to write (e.g. out='features.csv').")

    from .extractor import Extractor, versions

    ext = Extractor(params, engine=engine, **settings)  # settings are validated here, before any case
    settings_obj = ext.settings
    if pool is not None:
        if not isinstance(pool, WorkerPool):
            raise ValueError(f"pool={pool!r} is not a WorkerPool; give chexradi.radiomics.workers.WorkerPool(...) "
                             "or leave it out.")
        if sched_kind == "dask":
            raise ValueError("pool= runs the cases in local worker processes; it cannot be combined with "
                             f"scheduler={scheduler!r}. Drop one of them.")
        if not pool.matches(settings_obj, engine):
            raise ValueError("pool= was started with other settings or another engine than this batch's; build the "
                             "WorkerPool with the batch's params/settings and engine.")
        jobs = pool.jobs
    case_list = load_cases(cases, label=int(settings_obj["label"]))
    n_total = len(case_list)
    source = str(Path(cases).absolute()) if isinstance(cases, (str, os.PathLike)) else f"{n_total} cases (list)"

    out_path = check_output_path(out) if out is not None else None
    mode = "validate" if validate_only else "extract"
    params_json = _jsonable(settings_obj.to_params())
    vers = versions()

    journal: Optional[_Journal] = None
    done: dict[str, dict[str, Any]] = {}
    if not validate_only:
        assert out_path is not None
        header = {"type": "header", "kind": _JOURNAL_KIND, "version": _JOURNAL_VERSION, "engine": engine,
                  "settings": params_json, "versions": vers,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        journal = _Journal(journal_path(out_path), header, resume=resume)
        done = journal.done

    try:
        # key -> (journal offset, feature names, what the output needs: CSV cells or values, or None) of an ok
        # case (True when only validating); beyond _HELD_RESULTS cases that is left in the journal and read back
        # at the end
        results: dict[str, Any] = {}
        held = 0
        resumed = 0
        todo: list[Case] = []
        for c in case_list:
            if c.key in done:
                results[c.key] = (*done[c.key], None)
                resumed += 1
            else:
                todo.append(c)
        if resumed:
            logger.info("resuming: %d of %d case(s) already done in %s", resumed, n_total,
                        journal.path if journal else "")
        failures: dict[int, CaseFailure] = {}
        bar = progress_bar(progress, total=n_total, initial=resumed, desc="validate" if validate_only else "extract",
                           unit="case")

        def on_result(case: Case, rec: dict[str, Any], text: Optional[str] = None,
                      cells: Optional[Cells] = None) -> None:
            nonlocal held
            offset = None
            if journal is not None:
                head = {"type": "case", "key": case.key, "row": case.row, "image": case.image, "mask": case.mask,
                        "label": case.label}
                offset = journal.append_case(head, rec, text)
            if rec["status"] == "ok":
                if journal is None:
                    results[case.key] = True
                else:
                    kept = None
                    if held < _HELD_RESULTS:  # what the output needs: the values, or a CSV's cells (from the worker)
                        held += 1
                        kept = rec["features"] if fmt != "csv" else (
                            cells if cells is not None else csv_cells(rec["features"]))
                    results[case.key] = (offset, journal.names(rec["features"]), kept)
                logger.debug("row %d done in %.3f s", case.row, rec.get("seconds", 0.0))
            else:
                label = case.label if case.label is not None else int(settings_obj["label"])
                failures[case.row] = CaseFailure(case.row, case.image_given, case.mask_given, label, rec["reason"])
                logger.info("row %d failed (%s / %s): %s", case.row, case.image_given, case.mask_given, rec["reason"])
                if rec.get("traceback"):
                    logger.debug("row %d traceback:\n%s", case.row, rec["traceback"])
            if bar is not None:
                bar.update(1)
                if failures:
                    bar.set_postfix(failed=len(failures), refresh=False)

        try:
            if todo:
                if sched_kind == "dask":
                    from .dask_backend import run_on_dask

                    run_on_dask(todo, settings=settings_obj, engine=engine, jobs=jobs, mode=mode,
                                cells=fmt == "csv", on_result=on_result, address=sched_address)
                elif jobs == 1 or len(todo) == 1:
                    from .imageio import reuse_reads

                    with reuse_reads():
                        for case in todo:
                            on_result(case, process_case(ext, case.image, case.mask, case.label, mode))
                else:
                    run_in_pool(todo, settings=settings_obj, engine=engine, jobs=jobs, mode=mode,
                                cells=fmt == "csv", on_result=on_result, pool=pool)
        finally:
            if bar is not None:
                bar.close()

        fail_list = [failures[r] for r in sorted(failures)]
        n_ok = sum(1 for c in case_list if c.key in results)
        elapsed = time.perf_counter() - t_start
        report = BatchReport(n_total=n_total, n_ok=n_ok, n_failed=len(fail_list), n_skipped_resumed=resumed,
                             failures=fail_list, elapsed=elapsed, validate_only=validate_only)
        if validate_only:
            return report

        assert out_path is not None and journal is not None
        ok_cases = [c for c in case_list if c.key in results]
        name_lists = list({id(results[c.key][1]): results[c.key][1] for c in ok_cases}.values())  # input order
        columns: list[str] = []
        for c in case_list:
            for k in c.columns:
                if k not in columns:
                    columns.append(k)
        features = _feature_columns(name_lists, list(settings_obj.feature_classes))
        mpath = meta_path(out_path)
        meta = {
            "kind": "chexradi-batch-output",
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cases": source,
            "output": str(out_path),
            "format": fmt,
            "journal": str(journal.path),
            "engine": engine,
            "settings": params_json,
            "versions": vers,
            "counts": {"total": n_total, "ok": n_ok, "failed": len(fail_list), "resumed": resumed},
            "columns": {"carried": columns, "features": len(features)},
            "jobs": jobs,
            "scheduler": sched_name,
            "elapsed_s": round(elapsed, 3),
            "failures": [f.to_dict() for f in fail_list],
        }

        def output_values(entry: tuple[int, tuple[str, ...], Any]) -> Any:
            offset, _, kept = entry  # what is not held is read back from the journal, one case at a time
            if kept is not None:
                return kept
            values = journal.read_features(offset)
            return csv_cells(values) if fmt == "csv" else values

        if fmt == "csv":
            _write_csv(out_path, columns, features,
                       ((c, results[c.key][1], output_values(results[c.key])) for c in ok_cases))
        else:
            _write_json(out_path, _jsonable_strict(meta), columns, features,
                        ((c, output_values(results[c.key])) for c in ok_cases))
        write_meta(mpath, meta)
        report.out = out_path
        report.meta_path = mpath
        report.journal = journal.path
        report.elapsed = time.perf_counter() - t_start
        logger.info("batch done: %d ok (%d resumed), %d failed, of %d; wrote %s", n_ok, resumed, len(fail_list),
                    n_total, out_path)
        return report
    finally:
        if journal is not None:
            journal.close()
