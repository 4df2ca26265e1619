"""The cases of a batch: read, checked and identified, before any image is read.

:func:`load_cases` turns a cases CSV (PyRadiomics' batch format: columns ``Image``,
``Mask``, optional ``Label``; every other column is carried through to the output) or
a list of dicts into :class:`Case` objects: paths resolved, labels parsed, duplicate
rows refused, and each case given its resume key (:func:`case_key`). A case that fails
later is reported as a :class:`CaseFailure`.

Rows are numbered from 1: row 1 is the first case (for a CSV, the first line after the
header).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

__all__ = ["Case", "CaseFailure", "CasesLike", "case_key", "load_cases"]

PathLike = Union[str, "os.PathLike[str]"]
CasesLike = Union[PathLike, Sequence[Mapping[str, Any]]]
_RESERVED_PREFIXES = ("original_", "diagnostics_")
#: A feature name of any image type: <image>_<class>_<Feature> (log-sigma-1-0-mm-3D_glcm_Contrast, wavelet-LHL_...).
_FEATURE_NAME = re.compile(r"^[^_]+_(shape|shape2D|firstorder|glcm|glrlm|glszm|gldm|ngtdm)_\w+$")


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
    hold the text itself; :class:`~chexradi.radiomics.journal.Journal` digests those when it loads them, so
    they resume as they are."""
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

    clash = [c for c in columns if c.startswith(_RESERVED_PREFIXES) or _FEATURE_NAME.match(c)]
    if clash:
        raise ValueError(f"{where}: column(s) {', '.join(map(repr, clash[:5]))} would collide with feature names "
                         "(original_*, <image type>_<class>_*, diagnostics_*); rename or drop them (is this a "
                         "features file rather than a cases file?).")

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
