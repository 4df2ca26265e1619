"""A batch's journal: one JSON line per finished case, appended as it finishes; what resume reads.

``<out>.journal.jsonl`` starts with a header line (kind, version, engine, settings,
package versions). Each case that finishes appends one line: its key, row, paths,
label, status and either its features or the reason it failed. Lines are flushed to
the OS at once (a killed process loses none) and fsynced in groups (at most
``_FSYNC_EVERY_LINES`` lines or ``_FSYNC_EVERY_S`` seconds can be lost to a power cut;
they are recomputed on resume).

Opening a journal to resume checks that its header was written with the same engine and
settings (other package versions only warn), keeps its complete valid lines (an
incomplete or damaged last line, left by an interrupted run, is dropped) and indexes the
cases done: the byte offset of each one's last ok line and its feature names, so that
resuming holds little per case and the values are read back only when the output is
written. The file is locked while a batch writes it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from .cases import case_key
from .workers import record_json

__all__ = ["Journal", "journal_path", "JOURNAL_SUFFIX", "JOURNAL_KIND", "JOURNAL_VERSION"]

logger = logging.getLogger("chexradi.radiomics.batch")

PathLike = Union[str, "os.PathLike[str]"]

JOURNAL_SUFFIX = ".journal.jsonl"
JOURNAL_KIND = "chexradi-batch-journal"
JOURNAL_VERSION = 1
# Journal lines are flushed to the OS at once (a killed process loses none) and fsynced in groups: at most
# this many lines or seconds can be lost to a power cut (they are recomputed on resume).
_FSYNC_EVERY_LINES = 256
_FSYNC_EVERY_S = 1.0


def journal_path(out: PathLike) -> Path:
    """The journal of a batch writing ``out``: ``<out>.journal.jsonl``."""
    out = Path(out)
    return out.with_name(out.name + JOURNAL_SUFFIX)


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


class Journal:
    """Append-only JSON-lines journal; one line per finished case, fsynced.

    Of the cases done by an earlier run only where each last ok line starts (its byte offset) and
    the feature names are kept (``done``); :meth:`read_features` reads a case's values back
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
        if head.get("type") != "header" or head.get("kind") != JOURNAL_KIND:
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
