"""Reading reports: IU X-ray / OpenI XML, a CSV with a text column, or ``.txt`` files.

Every reader yields, in a stable order, either a :class:`Report` or a :class:`ReportError`
(a report that cannot be read: the file or row, what is wrong and the fix), so that one bad
report never stops the others.

``iu-xml``
    A folder of ``ecgen-radiology/*.xml`` files (searched recursively), one ``.xml`` file,
    or the ``.tgz`` / ``.tar.gz`` / ``.tar`` archive they are distributed in
    (``NLMCXR_reports.tgz``). The text is every ``AbstractText`` as ``LABEL: text`` (so
    the Findings and Impression are found as sections), the report id is ``uId/@id``,
    the images are the ``parentImage/@id`` values, and ``MeSH/major`` terms go to
    ``meta["mesh"]``.
``csv``
    One report per row; ``text_col`` names the text column (several, comma-separated,
    are joined as sections: ``findings,impression``), ``id_col`` the report id and
    ``image_col`` the image.
``txt``
    One report per file, a folder of them (recursively) or one file; the id is the path
    relative to the folder, without ``.txt``.
"""
from __future__ import annotations

import csv
import os
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union
from ..names import REPORT_FORMATS as FORMATS

__all__ = ["Report", "ReportError", "FORMATS", "guess_format", "read_reports", "SourceError"]

PathLike = Union[str, "os.PathLike[str]"]
_TEXT_COLS = ("report", "text", "Report", "Text", "report_text", "findings_impression")
_ID_COLS = ("id", "report_id", "study_id", "study", "dicom_id", "Image Index", "Image", "image", "path", "Path")
_ARCHIVES = (".tgz", ".tar.gz", ".tar")


class SourceError(ValueError):
    """A whole source cannot be read (missing file, unknown format, missing column): no report from it."""


@dataclass
class Report:
    """One report: its id, its text, the images it describes, where it came from and extra fields."""

    id: str
    text: str
    images: list[str] = field(default_factory=list)
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportError:
    """A report that could not be read: ``where`` (file, row) and ``message`` (what and the fix)."""

    id: str
    where: str
    message: str


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def guess_format(source: PathLike) -> str:
    """``iu-xml``, ``csv`` or ``txt`` from a path's name or a folder's files."""
    p = Path(source)
    name = p.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".xml") or name.endswith(_ARCHIVES):
        return "iu-xml"
    if name.endswith(".txt"):
        return "txt"
    if p.is_dir():
        suffixes = {f.suffix.lower() for f in p.rglob("*")}
        if ".xml" in suffixes:  # XML wins over notes that may sit beside it
            return "iu-xml"
        if ".txt" in suffixes:
            return "txt"
        raise SourceError(f"{p}: no .xml or .txt reports in this folder; pass --format, or the right folder.")
    raise SourceError(f"{p}: cannot tell the format from the name; pass --format iu-xml, csv or txt.")


# ------------------------------------------------------------------------------------------------
# IU X-ray / OpenI XML
# ------------------------------------------------------------------------------------------------
def _text_of(el: Optional[ET.Element]) -> str:
    return "" if el is None else " ".join("".join(el.itertext()).split())


def parse_iu_xml(data: bytes, where: str, default_id: str) -> Union[Report, ReportError]:
    """One OpenI ``ecgen-radiology`` XML document -> :class:`Report` (or :class:`ReportError`)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return ReportError(default_id, where, f"not well-formed XML ({exc}); re-extract the file from the archive "
                                              "or remove it.")
    uid = root.find(".//uId")
    rid = (uid.get("id") if uid is not None else None) or default_id
    parts = []
    for at in root.iter("AbstractText"):
        body = _text_of(at)
        if body:
            lab = (at.get("Label") or "").strip()
            parts.append(f"{lab.upper()}: {body}" if lab else body)
    images = [im.get("id") for im in root.iter("parentImage") if im.get("id")]
    mesh = [_text_of(m) for m in root.findall(".//MeSH/major")]
    text = "\n\n".join(parts)
    if not text.strip():
        if root.find(".//AbstractText") is None:
            return ReportError(rid, where, "no AbstractText element: not an OpenI ecgen-radiology report; "
                                           "pass --format for the right reader.")
        return ReportError(rid, where, "the report has no text (every AbstractText is empty); nothing to label.")
    return Report(rid, text, images, where, {"mesh": mesh})


def _read_iu(path: Path) -> Iterator[Union[Report, ReportError]]:
    name = path.name.lower()
    if path.is_file() and name.endswith(_ARCHIVES):
        try:
            tf = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SourceError(f"{path}: not a readable tar archive ({exc}); re-download it, or extract it and "
                              "pass the folder.") from None
        with tf:
            try:
                members = [m for m in tf.getmembers() if m.isfile() and m.name.lower().endswith(".xml")]
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise SourceError(f"{path}: the archive is damaged ({exc}); re-download it.") from None
            if not members:
                raise SourceError(f"{path}: no .xml files in the archive.")
            for m in sorted(members, key=lambda m: _natural(m.name)):
                where = f"{path}:{m.name}"
                try:
                    fh = tf.extractfile(m)
                    data = fh.read() if fh is not None else b""
                except (tarfile.TarError, OSError, EOFError) as exc:
                    yield ReportError(Path(m.name).stem, where, f"cannot read it from the archive ({exc}).")
                    continue
                yield parse_iu_xml(data, where, Path(m.name).stem)
        return
    files = [path] if path.is_file() else sorted((f for f in path.rglob("*") if f.suffix.lower() == ".xml"),
                                                 key=lambda f: _natural(str(f.relative_to(path))))
    if not files:
        raise SourceError(f"{path}: no .xml reports found; pass the ecgen-radiology folder or its .tgz.")
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            yield ReportError(f.stem, str(f), f"cannot read the file ({exc.strerror or exc}); check permissions.")
            continue
        yield parse_iu_xml(data, str(f), f.stem)


# ------------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------------
def _pick(header: list[str], wanted: Optional[str], defaults: Sequence[str], path: Path, what: str,
          option: str) -> Optional[int]:
    if wanted is not None:
        if wanted not in header:
            raise SourceError(f"{path}: no column {wanted!r} ({what}); its columns are {', '.join(header)}. "
                              f"Pass {option} with one of them.")
        return header.index(wanted)
    for d in defaults:
        if d in header:
            return header.index(d)
    return None


def _read_csv(path: Path, text_col: Optional[str], id_col: Optional[str],
              image_col: Optional[str]) -> Iterator[Union[Report, ReportError]]:
    import gzip

    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        fh = opener(path, "rt", encoding="utf-8-sig", newline="")
        reader = csv.reader(fh)
        header = next(reader, None)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise SourceError(f"{path}: cannot read the CSV ({exc}); check that it is UTF-8 text.") from None
    with fh:
        if not header:
            raise SourceError(f"{path}: empty CSV (no header row).")
        header = [h.strip() for h in header]
        cols = [c.strip() for c in text_col.split(",")] if text_col else None
        if cols:
            missing = [c for c in cols if c not in header]
            if missing:
                raise SourceError(f"{path}: no text column {', '.join(map(repr, missing))}; its columns are "
                                  f"{', '.join(header)}. Pass --text-col with the report column(s).")
            tidx = [header.index(c) for c in cols]
        else:
            t = _pick(header, None, _TEXT_COLS, path, "", "")
            if t is None:
                raise SourceError(f"{path}: no report text column (looked for {', '.join(_TEXT_COLS)}); its columns "
                                  f"are {', '.join(header)}. Pass --text-col NAME (or NAME1,NAME2 for sections).")
            tidx, cols = [t], [header[t]]
        iidx = _pick(header, id_col, _ID_COLS, path, "report id", "--id-col")
        gidx = _pick(header, image_col, (), path, "image", "--image-col")
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
                yield ReportError(f"line {line + 1}", f"{path} line {line + 1}", f"unreadable CSV row ({exc}); "
                                  "the rest of the file is skipped. Fix the quoting or the encoding.")
                return
            line += 1
            if not any(c.strip() for c in row):
                continue
            cell = (lambda j: row[j].strip() if j is not None and j < len(row) else "")
            rid = cell(iidx) or f"row{line}"
            where = f"{path} line {line}"
            if len(cols) == 1:
                text = cell(tidx[0])
            else:
                text = "\n\n".join(f"{c.upper()}: {cell(j)}" for c, j in zip(cols, tidx) if cell(j))
            if not text.strip():
                yield ReportError(rid, where, f"empty report text in column(s) {', '.join(cols)}; nothing to label.")
                continue
            img = cell(gidx) if gidx is not None else rid
            yield Report(rid, text, [img] if img else [], where, {})


# ------------------------------------------------------------------------------------------------
# text files
# ------------------------------------------------------------------------------------------------
def _read_txt(path: Path) -> Iterator[Union[Report, ReportError]]:
    if path.is_file():
        files, base = [path], path.parent
    else:
        files = sorted((f for f in path.rglob("*") if f.suffix.lower() == ".txt" and f.is_file()),
                       key=lambda f: _natural(str(f.relative_to(path))))
        base = path
        if not files:
            raise SourceError(f"{path}: no .txt reports found; pass the folder that holds them.")
    for f in files:
        rid = str(f.relative_to(base).with_suffix(""))
        try:
            text = f.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = f.read_text(encoding="latin-1")
            except OSError as exc:  # pragma: no cover - raced away
                yield ReportError(rid, str(f), f"cannot read the file ({exc}).")
                continue
        except OSError as exc:
            yield ReportError(rid, str(f), f"cannot read the file ({exc.strerror or exc}); check permissions.")
            continue
        if not re.search(r"\w", text):
            yield ReportError(rid, str(f), "the file has no text; nothing to label.")
            continue
        yield Report(rid, text, [rid], str(f), {})


def read_reports(source: PathLike, format: Optional[str] = None, *, text_col: Optional[str] = None,
                 id_col: Optional[str] = None, image_col: Optional[str] = None
                 ) -> Iterator[Union[Report, ReportError]]:
    """Reports from one source, in a stable order; see the module docstring.

    Raises
    ------
    SourceError
        The source does not exist, its format is unknown, it holds no reports, or a CSV
        lacks the named columns (raised when iteration starts).
    """
    p = Path(source)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder; check the path.")
    fmt = format or guess_format(p)
    if fmt not in FORMATS:
        raise SourceError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if fmt == "iu-xml":
        return _read_iu(p)
    if fmt == "csv":
        if p.is_dir():
            raise SourceError(f"{p} is a folder; --format csv needs the CSV file.")
        return _read_csv(p, text_col, id_col, image_col)
    return _read_txt(p)
