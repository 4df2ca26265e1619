"""Atomic file output shared by every stage: a temporary name in the same folder, then ``os.replace``.

Readers never see a half-written CSV, mask, PNG or checkpoint: a crash leaves the
previous file (or none) plus, at worst, a hidden ``.<name>.*.tmp`` file that no
reader trusts.

A writer of many files (masks, overlays, phantom images) writes them with ``sync=False`` and
makes them durable at once with :func:`sync_folders` before the table that names them.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence, Union

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_path", "sync_folders", "read_json"]

PathLike = Union[str, "os.PathLike[str]"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; the final file gets the mode a plain open() would give it.
_FILE_MODE = 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(str(folder), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike, *, suffix: str = ".tmp", sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer that takes a file name; rename it on success.

    ``suffix`` lets writers that pick a format from the extension (SimpleITK,
    Pillow) see the right one, e.g. ``".tmp.nrrd"``. Parent folders are created.
    ``sync``: fsync the folder after the rename (False: the caller syncs many files' folder once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        _fsync_dir(path.parent)


def _flush_to_disk(fh: IO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_write(path: PathLike, *, newline: Optional[str] = None) -> Iterator[IO[str]]:
    """Open a UTF-8 text file at a temporary name next to ``path``; on success fsync it and rename it onto ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
            yield fh
            _flush_to_disk(fh)


def atomic_write_bytes(path: PathLike, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary name next to it. ``sync``: fsync the file before the
    rename and its folder after (False: the caller makes many files durable at once)."""
    with atomic_path(path, sync=sync) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                _flush_to_disk(fh)


def sync_folders(folders: Sequence[Union[str, Path]]) -> None:
    """Make the files written in ``folders`` with ``sync=False`` durable: their data (``syncfs`` of each file
    system they are on, where the C library has it; else ``os.sync()``, every file system), then an fsync of
    each folder (their names). Folders that do not exist are skipped."""
    existing = [Path(f) for f in folders if Path(f).is_dir()]
    if not existing:
        return
    done: set[int] = set()
    for f in existing:
        dev = f.stat().st_dev
        if dev not in done:
            if not _syncfs(f):
                os.sync()
                break
            done.add(dev)
    for f in existing:
        _fsync_dir(f)


def _syncfs(folder: Path) -> bool:
    """``syncfs(2)`` on the file system holding ``folder``: flushes that one file system, not every one on the
    machine as ``os.sync()`` does. False where it is not available (not Linux/glibc) or fails."""
    fn = _libc_syncfs()
    if fn is None:
        return False
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return False
    try:
        return fn(fd) == 0
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _libc_syncfs():  # type: ignore[no-untyped-def]
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def read_json(path: PathLike, *, what: str, hint: str) -> Any:
    """The JSON document in ``path``.

    Raises
    ------
    FileNotFoundError
        No such file: the message says ``what`` it should be and ``hint`` (how to get it).
    ValueError
        Not UTF-8 JSON (the message names the file and ``hint``).
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p} ({hint})")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p} is not a readable {what} ({exc}); {hint}") from None
