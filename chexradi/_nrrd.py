"""Plain NRRD files, read and written without SimpleITK: the loop's masks and images.

SimpleITK takes about 0.5 ms to open or write a small NRRD file whatever its size, more than
some of the feature classes take on a 96-pixel mask, and the loop writes and reads one file
per (image, class) every round.

:func:`read_simple_nrrd` parses the header itself and builds the same ``SimpleITK.Image``
(pixel type, values, spacing, origin, direction) in a fraction of that time
(:func:`read_nrrd_array` gives the array and geometry alone), for a deliberately narrow
subset of the format:

- one attached file (``NRRD0001``-``NRRD0005``), ``raw`` or ``gzip`` encoding, any endian;
- 2 or 3 dimensions, scalar pixels of a fixed-size integer or float type;
- ``space directions`` given for every axis, each along one coordinate axis (flips and
  permutations allowed; oblique directions go to SimpleITK), ``space origin`` optional,
  ``space`` absent (``space dimension`` instead) or left-posterior-superior (ITK's own frame);
- every axis ``kinds`` ``domain`` or ``space``;
- no other field and no ``key:=value`` pairs.

Anything else returns ``None`` and the caller reads the file with SimpleITK, so what can be
read never changes, only how fast. ``tests/test_nrrd_fast.py`` compares both readers
on written files and on PyRadiomics' own test cases.

:func:`write_nrrd` writes an array in the header layout SimpleITK writes (gzip-encoded),
atomically; SimpleITK, PyRadiomics and :func:`read_simple_nrrd` read it back unchanged.
"""
from __future__ import annotations

import functools
import math
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional, Sequence, Union

import numpy as np

from ._io import atomic_write_bytes

if TYPE_CHECKING:
    import SimpleITK as sitk

__all__ = ["NrrdArray", "read_nrrd_array", "read_simple_nrrd", "write_nrrd"]

_TYPES = {
    "signed char": "i1", "int8": "i1", "int8_t": "i1",
    "uchar": "u1", "unsigned char": "u1", "uint8": "u1", "uint8_t": "u1",
    "short": "i2", "short int": "i2", "signed short": "i2", "signed short int": "i2", "int16": "i2",
    "int16_t": "i2",
    "ushort": "u2", "unsigned short": "u2", "unsigned short int": "u2", "uint16": "u2", "uint16_t": "u2",
    "int": "i4", "signed int": "i4", "int32": "i4", "int32_t": "i4",
    "uint": "u4", "unsigned int": "u4", "uint32": "u4", "uint32_t": "u4",
    "float": "f4", "double": "f8",
}
_FIELDS = {"type", "dimension", "space dimension", "space", "sizes", "space directions", "kinds", "encoding",
           "endian", "space origin"}
_LPS = ("left-posterior-superior", "lps")
_VECTOR = re.compile(r"\(([^()]*)\)")
_MAX_HEADER = 4096


def _vectors(text: str, n: int, dim: int) -> Optional[list[list[float]]]:
    found = _VECTOR.findall(text)
    if len(found) != n or _VECTOR.sub("", text).strip():
        return None
    out = []
    for v in found:
        try:
            comps = [float(c) for c in v.split(",")]
        except ValueError:
            return None
        if len(comps) != dim or not all(math.isfinite(c) for c in comps):
            return None
        out.append(comps)
    return out


class NrrdArray(NamedTuple):
    """What :func:`read_nrrd_array` gives: the pixels in numpy order ``(z, y, x)`` (native byte order) and the
    geometry in SimpleITK's order ``(x, y, z)``: spacing, origin, and the direction matrix row by row."""

    array: np.ndarray
    spacing: list[float]
    origin: list[float]
    direction: list[float]


def read_simple_nrrd(path: Path) -> Optional["sitk.Image"]:
    """The image in ``path`` when it is a plain NRRD file (see the module docstring), else ``None``."""
    import SimpleITK as sitk

    got = read_nrrd_array(path)
    if got is None:
        return None
    img = sitk.GetImageFromArray(got.array)
    img.SetSpacing(got.spacing)
    img.SetOrigin(got.origin)
    img.SetDirection(got.direction)
    return img


def read_nrrd_array(path: Union[str, Path]) -> Optional[NrrdArray]:
    """The pixels and geometry in ``path`` when it is a plain NRRD file (see the module docstring), else
    ``None``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_HEADER)  # the header first: another file is not read whole
            end = raw.find(b"\n\n", 0, _MAX_HEADER)
            if not raw.startswith(b"NRRD000") or end < 0:
                return None
            head = _header(raw[:end])
            if head is None:
                return None
            data = raw[end + 2:] + fh.read()
    except OSError:
        return None
    if head.gzip:
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(data)
            if not d.eof:
                return None
        except zlib.error:
            return None
    if len(data) != math.prod(head.sizes) * head.dtype.itemsize:
        return None  # short or long data: let SimpleITK give its own error
    arr = np.frombuffer(data, dtype=head.dtype).reshape(head.sizes[::-1])
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return NrrdArray(arr, list(head.spacing), list(head.origin), list(head.direction))


class _Header(NamedTuple):
    dtype: np.dtype
    sizes: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    gzip: bool


@functools.lru_cache(maxsize=64)
def _header(head: bytes) -> Optional[_Header]:
    """The header's fields when they are in the subset read here (the files of one batch share a few
    headers: parsed once each)."""
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    if not re.fullmatch(r"NRRD000[1-5]", lines[0].strip()):
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("#"):
            continue
        if ":=" in line.split(": ", 1)[0]:
            return None
        key, sep, value = line.partition(": ")
        key = key.strip().lower()
        if not sep or key not in _FIELDS or key in fields:
            return None
        fields[key] = value.strip()
    dtype = _TYPES.get(fields.get("type", "").lower())
    try:
        dim = int(fields.get("dimension", ""))
        sizes = [int(s) for s in fields.get("sizes", "").split()]
    except ValueError:
        return None
    if dtype is None or dim not in (2, 3) or len(sizes) != dim or min(sizes) < 1:
        return None
    space = fields.get("space")
    if space is not None:
        if space.lower() not in _LPS or dim != 3 or "space dimension" in fields:
            return None
    elif fields.get("space dimension") != str(dim):
        return None
    kinds = fields.get("kinds", " ".join(["domain"] * dim)).split()
    if len(kinds) != dim or any(k not in ("domain", "space") for k in kinds):
        return None
    dirs = _vectors(fields.get("space directions", ""), dim, dim)
    origin = _vectors(fields["space origin"], 1, dim) if "space origin" in fields else [[0.0] * dim]
    if dirs is None or origin is None:
        return None
    if any(sum(c != 0 for c in v) != 1 for v in dirs):
        return None  # oblique axes: ITK's normalisation may differ in the last bit; SimpleITK reads those
    spacing = [abs(next(c for c in v if c != 0)) for v in dirs]
    encoding = fields.get("encoding", "").lower()
    if encoding not in ("gzip", "gz", "raw"):
        return None
    if int(dtype[1]) > 1:
        endian = fields.get("endian", "").lower()
        if endian not in ("little", "big"):
            return None
        dtype = ("<" if endian == "little" else ">") + dtype
    return _Header(np.dtype(dtype), tuple(sizes), tuple(spacing), tuple(origin[0]),
                   tuple(float(np.sign(dirs[j][i])) for i in range(dim) for j in range(dim)), encoding != "raw")


_WRITE_TYPES = {"u1": "unsigned char", "i1": "signed char", "u2": "unsigned short", "i2": "short",
                "u4": "unsigned int", "i4": "int", "f4": "float", "f8": "double"}


def write_nrrd(path: Union[str, Path], array: np.ndarray, spacing: Sequence[float], *, sync: bool = True) -> Path:
    """Write ``array`` (2-D ``(y, x)`` or 3-D ``(z, y, x)``, a type of :data:`_WRITE_TYPES`) to ``path`` as a
    gzip-encoded NRRD file with ``spacing`` (numpy order), origin 0 and identity directions: SimpleITK's own
    header layout.

    The file is written under a temporary name in the same folder, then renamed onto ``path``, so a reader
    never sees a partial file. ``sync``: fsync the file and its folder first (a power cut then loses
    nothing); a writer of many files passes False and syncs their folders once at the end
    (:func:`chexradi._io.sync_folders`). Parent folders are created. Returns ``path``.
    """
    path = Path(path)
    arr = np.ascontiguousarray(array)
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    code = f"{arr.dtype.kind}{arr.dtype.itemsize}"
    if code not in _WRITE_TYPES or arr.ndim not in (2, 3) or len(spacing) != arr.ndim:
        raise ValueError(f"cannot write {path}: write_nrrd writes a 2-D or 3-D array of {', '.join(_WRITE_TYPES)} "
                         f"with one spacing per axis; got {arr.dtype} {arr.shape} and spacing {tuple(spacing)}.")
    dim = arr.ndim
    sp = [float(s) for s in reversed(list(spacing))]  # NRRD/ITK order: x first
    dirs = " ".join("(" + ",".join(repr(sp[i]) if j == i else "0" for j in range(dim)) + ")" for i in range(dim))
    head = (f"NRRD0004\n"
            f"# Complete NRRD file format specification at:\n"
            f"# http://teem.sourceforge.net/nrrd/format.html\n"
            f"type: {_WRITE_TYPES[code]}\n"
            f"dimension: {dim}\n"
            + (f"space dimension: {dim}\n" if dim == 2 else "space: left-posterior-superior\n")
            + f"sizes: {' '.join(str(n) for n in arr.shape[::-1])}\n"
            f"space directions: {dirs}\n"
            f"kinds: {' '.join(['domain'] * dim)}\n"
            + (f"endian: {'little' if np.little_endian else 'big'}\n" if arr.dtype.itemsize > 1 else "")
            + "encoding: gzip\n"
            f"space origin: ({','.join(['0'] * dim)})\n\n")
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing, fastest level
    data = head.encode("ascii") + packer.compress(arr.tobytes()) + packer.flush()
    atomic_write_bytes(path, data, sync=sync)
    return path
