"""A fast path for the plain NRRD files chexradi and SimpleITK write (the loop's masks and images).

SimpleITK takes about 0.5 ms to open a small NRRD file whatever its size, more than some
of the feature classes take on a 96-pixel mask. :func:`read_simple_nrrd` parses the header
itself and builds the same ``SimpleITK.Image`` (pixel type, values, spacing, origin,
direction) in a fraction of that time, for a deliberately narrow subset of the format:

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
"""
from __future__ import annotations

import math
import re
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

__all__ = ["read_simple_nrrd"]

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


def read_simple_nrrd(path: Path) -> Optional[sitk.Image]:
    """The image in ``path`` when it is a plain NRRD file (see the module docstring), else ``None``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    end = raw.find(b"\n\n", 0, _MAX_HEADER)
    if not raw.startswith(b"NRRD000") or end < 0:
        return None
    try:
        lines = raw[:end].decode("ascii").split("\n")
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
    data = raw[end + 2:]
    if encoding in ("gzip", "gz"):
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = d.decompress(data)
            if not d.eof:
                return None
        except zlib.error:
            return None
    elif encoding != "raw":
        return None
    itemsize = int(dtype[1])
    if itemsize > 1:
        endian = fields.get("endian", "").lower()
        if endian not in ("little", "big"):
            return None
        dtype = ("<" if endian == "little" else ">") + dtype
    if len(data) != math.prod(sizes) * itemsize:
        return None  # short or long data: let SimpleITK give its own error
    arr = np.frombuffer(data, dtype=dtype).reshape(sizes[::-1])
    img = sitk.GetImageFromArray(arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder == ">" else arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin[0])
    img.SetDirection([float(np.sign(dirs[j][i])) for i in range(dim) for j in range(dim)])
    return img
