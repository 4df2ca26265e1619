"""Radiology reports joined to their images: records that carry image, labels and report together.

A :class:`~chexradi.data.cxr_dataset.Record` can carry its study's report
(:class:`ReportText`: id, sections, text) next to its image and labels. The readers here build
such records from the public report sources, from reports alone, images alone, or both, and
**count every join that fails** -- a report whose images are not there, an image no report
names, a report that cannot be read -- in a :class:`JoinReport`; with ``missing="fail"`` the
first kind stops the reader naming the files, with ``"skip"`` (default) they are left out and
counted. Nothing is dropped silently.

==========================  =========================================================================
:func:`iu_xray`             IU X-ray / OpenI: the report XML (``ecgen-radiology/*.xml``, a folder, one
                            file or ``NLMCXR_reports.tgz``) and, optionally, a folder of the NLMCXR PNGs
                            (``CXR<n>_<k>_IM-<m>-<v>.png``), joined through each report's
                            ``parentImage`` ids. Labels from chexradi's report labeler
                            (:func:`chexradi.reports.label`) or from the human MeSH indexing
                            (:func:`chexradi.reports.reference.mesh_reference`).
:func:`r2gen_iu_xray`       R2Gen's ``annotation.json`` (``id``, ``report``, ``image_path``, ``split``): the
                            2,069 / 296 / 590 split report-generation papers use; images optional
                            (R2Gen's ``<id>/0.png``, ``<id>/1.png`` layout).
:func:`mimic_cxr_reports`   MIMIC-CXR's free-text reports (``files/pXX/p<subject>/s<study>.txt`` or
                            ``mimic-cxr-reports.zip``) joined to MIMIC-CXR-JPG images by study.
:func:`csv_reports`         a CSV with an image column and one or more text columns.
==========================  =========================================================================

**Views.** IU X-ray's XML does not say which of a study's images is frontal and which lateral
(its caption is "Xray Chest PA and Lateral" for both): an IU record keeps the image's order in
its report (``meta["view_index"]``: the XML's ``figureId`` order) and ``meta["view"]`` is None;
R2Gen's layout keeps the same order (``0.png``, ``1.png``). MIMIC-CXR-JPG's metadata table
records each image's ``ViewPosition`` (PA, AP, LATERAL, LL): there ``meta["view"]`` is set and
``views=`` filters on it.
"""
from __future__ import annotations

import csv
import logging
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from .cxr_dataset import Record, check_choice

__all__ = ["ReportText", "JoinReport", "Joined", "iu_xray", "r2gen_iu_xray", "mimic_cxr_reports", "mimic_report_texts",
           "csv_reports", "sections_report",
           "report_text", "MISSING", "LABEL_SOURCES"]

logger = logging.getLogger("chexradi.data")

PathLike = Union[str, "os.PathLike[str]"]
MISSING = ("skip", "fail")
LABEL_SOURCES = ("labeler", "mesh", "none")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


@dataclass(frozen=True)
class ReportText:
    """A study's report: its id, its sections (lower-case names -> text) and the whole text.

    ``findings`` / ``impression`` are the two sections report generation and text guidance read
    (empty strings when the report has none).
    """

    id: str
    text: str
    sections: Mapping[str, str] = field(default_factory=dict)

    @property
    def findings(self) -> str:
        return self.sections.get("findings", "")

    @property
    def impression(self) -> str:
        return self.sections.get("impression", "")


def sections_report(rid: str, cells: Mapping[str, str]) -> Optional[ReportText]:
    """A :class:`ReportText` from section name -> text cells (spaces collapsed, empty cells dropped; the whole
    text is ``NAME: text`` per section, one per line), or None when every cell is empty."""
    secs = {k.lower(): " ".join((v or "").split()) for k, v in cells.items()}
    secs = {k: v for k, v in secs.items() if v}
    if not secs:
        return None
    return ReportText(id=str(rid), text="\n".join(f"{k.upper()}: {v}" for k, v in secs.items()), sections=secs)


def report_text(rid: str, text: str) -> ReportText:
    """A :class:`ReportText` with its sections found by :func:`chexradi.reports.text.find_sections`."""
    from ..reports.text import find_sections

    secs: dict[str, str] = {}
    for s in find_sections(text):
        body = " ".join(text[s.start:s.end].split())  # the section's text, after its header
        if body:
            secs[s.name or "text"] = (secs.get(s.name or "text", "") + " " + body).strip()
    return ReportText(id=str(rid), text=text, sections=secs)


@dataclass
class JoinReport:
    """What a reader read and joined, and what it left out, with reasons.

    Attributes
    ----------
    source : str
        The reader and its inputs.
    reports_read : int
        Reports parsed.
    reports_unreadable : list of ``(id, reason)``
        Reports that could not be read (malformed XML, no text...).
    images_found : int
        Image files found (0 when no image folder was given).
    records : int
        Records returned.
    joined : int
        Records with both an image file and a report.
    reports_without_image : list of ``(id, reason)``
        Reports none of whose images were found (left out, or kept as report-only records when
        no image folder was given).
    images_without_report : list of str
        Image files no report names.
    skipped : dict
        Other reasons -> count (e.g. a report without Findings when findings are required).
    """

    source: str
    reports_read: int = 0
    reports_unreadable: list[tuple[str, str]] = field(default_factory=list)
    images_found: int = 0
    records: int = 0
    joined: int = 0
    reports_without_image: list[tuple[str, str]] = field(default_factory=list)
    images_without_report: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The counts as one table row."""
        return {"source": self.source, "reports read": self.reports_read,
                "unreadable": len(self.reports_unreadable), "images found": self.images_found,
                "records": self.records, "joined": self.joined,
                "reports without image": len(self.reports_without_image),
                "images without report": len(self.images_without_report),
                **{f"skipped: {k}": v for k, v in sorted(self.skipped.items())}}

    def summary(self) -> str:
        r = self.row()
        return ", ".join(f"{k} {v}" for k, v in r.items() if k != "source") + f" ({self.source})"


@dataclass
class Joined:
    """Records with images and/or reports, their classes, and the :class:`JoinReport`.

    ``split`` maps a record's ``image_id`` to the split its source assigns (R2Gen), else empty.
    """

    records: list[Record]
    class_names: tuple[str, ...]
    report: JoinReport
    split: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def with_images(self) -> list[Record]:
        """The records that have an image file (what an image dataset can be built from)."""
        return [r for r in self.records if r.path is not None]

    def by_split(self) -> dict[str, list[Record]]:
        """Records per source split (``train`` / ``val`` / ``test``); all under ``""`` without one."""
        out: dict[str, list[Record]] = {}
        for r in self.records:
            out.setdefault(self.split.get(r.image_id, ""), []).append(r)
        return out


# ------------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------------
def _labels(text: str, mesh: Sequence[str], names: Sequence[str], source: str, label_set: str,
            uncertain: str) -> np.ndarray:
    out = np.full(len(names), np.nan, np.float32)
    if source == "none":
        return out
    if source == "mesh":
        from ..names import DERIVED_COLUMNS
        from ..reports.reference import mesh_reference

        ref = mesh_reference(mesh, labels=[n for n in names if n not in DERIVED_COLUMNS])
        if ref is None:
            return out
        return np.array([float(ref.get(n, np.nan)) for n in names], np.float32)
    from ..reports import label

    got = label(text, label_set)
    for k, n in enumerate(names):
        v = got.get(n)
        if v is None:
            out[k] = 0.0
        elif v == -1:
            out[k] = {"nan": np.nan, "zero": 0.0, "one": 1.0}[uncertain]
        else:
            out[k] = float(v)
    return out


def _class_names(source: str, label_set: str, classes: Optional[Sequence[str]]) -> tuple[str, ...]:
    if classes is not None:
        return tuple(classes)
    if source == "mesh":
        from ..reports.reference import IU_MESH_MAP

        return tuple(IU_MESH_MAP)
    from ..reports import load_label_set

    return tuple(load_label_set(label_set).labels)


def _check(missing: str, labels: str, uncertain: str) -> None:
    check_choice(missing, "missing", MISSING)
    check_choice(labels, "labels", LABEL_SOURCES)
    check_choice(uncertain, "uncertain", ("nan", "zero", "one"))


def _image_index(folder: Optional[Path]) -> dict[str, Path]:
    """Stem -> path of every image file under ``folder`` (recursively)."""
    if folder is None:
        return {}
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; give the folder of the images (or none, for "
                                f"reports only)")
    return {p.stem: p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES}


def _fail_missing(report: JoinReport, what: str) -> None:
    shown = "; ".join(f"{i}: {why}" for i, why in report.reports_without_image[:5])
    more = f" and {len(report.reports_without_image) - 5} more" if len(report.reports_without_image) > 5 else ""
    raise FileNotFoundError(f"{len(report.reports_without_image)} report(s) of {what} have no image file: {shown}{more}. "
                            f"Give the folder that holds them, or missing='skip' to leave those reports out "
                            f"(counted)")


# ------------------------------------------------------------------------------------------------
# IU X-ray / OpenI
# ------------------------------------------------------------------------------------------------
def iu_xray(reports: PathLike, *, images: Optional[PathLike] = None, labels: str = "labeler",
            label_set: str = "chestxray14", classes: Optional[Sequence[str]] = None, uncertain: str = "nan",
            missing: str = "skip", require_findings: bool = False) -> Joined:
    """IU X-ray reports (OpenI XML) joined to the NLMCXR PNGs: one record per image with its study's report.

    Parameters
    ----------
    reports:
        ``NLMCXR_reports.tgz``, a folder of ``ecgen-radiology/*.xml`` or one XML file.
    images:
        Folder of the NLMCXR PNGs (searched recursively; a file is found by its name, the report's
        ``parentImage`` id + ``.png``). None: one record per *report*, without an image
        (``path`` None): a dataset of reports alone.
    labels:
        ``"labeler"`` (chexradi's, on the Findings and Impression), ``"mesh"`` (the human
        indexers' MeSH major terms, mapped to the ChestX-ray14 labels) or ``"none"`` (NaN).
    label_set, classes, uncertain:
        The labeler's label set, the classes kept (default: all of the set), and what an
        uncertain (-1) value becomes (``"nan"``, ``"zero"``, ``"one"``).
    missing:
        A report whose images are all missing: ``"skip"`` (counted) or ``"fail"``.
    require_findings:
        Leave out reports without a Findings section (counted), as report generation does.

    Returns
    -------
    Joined
        Records: ``image_id`` the image name (or the report id without images), ``patient`` the
        report id (one study per patient in IU X-ray), ``report`` its :class:`ReportText`,
        ``meta`` ``{"report_id", "view_index", "view": None, "mesh"}``.

    Raises
    ------
    FileNotFoundError
        ``reports`` or ``images`` missing; with ``missing="fail"``, reports without images.
    ValueError
        Bad arguments; an unreadable archive.
    """
    _check(missing, labels, uncertain)
    from ..reports.sources import ReportError, read_reports

    src = Path(reports)
    if not src.exists():
        raise FileNotFoundError(f"IU X-ray reports not found: {src} (give NLMCXR_reports.tgz or its extracted "
                                f"ecgen-radiology folder)")
    folder = Path(images) if images is not None else None
    index = _image_index(folder)
    names = _class_names(labels, label_set, classes)
    jr = JoinReport(source=f"iu_xray({src.name}{', ' + folder.name if folder else ''})", images_found=len(index))
    records: list[Record] = []
    named: set[str] = set()
    for item in read_reports(src, format="iu-xml"):
        if isinstance(item, ReportError):
            jr.reports_unreadable.append((item.id, item.message))
            continue
        jr.reports_read += 1
        rt = report_text(item.id, item.text)
        if require_findings and not rt.findings:
            jr.skipped["no Findings section"] = jr.skipped.get("no Findings section", 0) + 1
            continue
        y = _labels(item.text, item.meta.get("mesh", []), names, labels, label_set, uncertain)
        meta_base = {"report_id": item.id, "mesh": list(item.meta.get("mesh", [])), "view": None}
        if folder is None:
            records.append(Record(image_id=item.id, path=None, labels=y, patient=item.id, report=rt,
                                  meta={**meta_base, "images": list(item.images), "view_index": None}))
            continue
        named.update(item.images)
        found = [(k, im) for k, im in enumerate(item.images) if im in index]
        if not found:
            why = "no parentImage" if not item.images else f"none of {', '.join(item.images)} in {folder}"
            jr.reports_without_image.append((item.id, why))
            continue
        for k, im in found:
            records.append(Record(image_id=f"{im}.png", path=index[im], labels=y.copy(), patient=item.id, report=rt,
                                  meta={**meta_base, "view_index": k}))
    jr.images_without_report = sorted(s for s in index if s not in named) if folder is not None else []
    jr.records = len(records)
    jr.joined = sum(1 for r in records if r.path is not None and r.report is not None)
    if missing == "fail" and jr.reports_without_image:
        _fail_missing(jr, str(src))
    _log(jr)
    return Joined(records=records, class_names=names, report=jr)


def _log(jr: JoinReport) -> None:
    if jr.reports_without_image or jr.images_without_report or jr.reports_unreadable or jr.skipped:
        logger.warning("%s", jr.summary())


# ------------------------------------------------------------------------------------------------
# R2Gen's annotation.json
# ------------------------------------------------------------------------------------------------
R2GEN_SPLITS = {"train": "train", "val": "val", "test": "test"}


def r2gen_iu_xray(annotation: PathLike, *, images: Optional[PathLike] = None, missing: str = "skip",
                  reports: Optional[PathLike] = None, labels: str = "labeler", label_set: str = "chestxray14",
                  classes: Optional[Sequence[str]] = None, uncertain: str = "nan") -> Joined:
    """R2Gen's IU X-ray split: one record per study with its Findings as the report and its split.

    Parameters
    ----------
    annotation:
        R2Gen's ``annotation.json``: ``{"train": [...], "val": [...], "test": [...]}``, entries
        ``id``, ``report`` (the Findings), ``image_path`` (``<id>/0.png``, ``<id>/1.png``) and
        ``split``.
    images:
        R2Gen's image folder (``<id>/0.png`` ...): the record's ``path`` is the first view,
        ``meta["image_paths"]`` all of them; None: report-only records.
    missing:
        A study whose images are missing: ``"skip"`` (counted) or ``"fail"``.
    reports:
        The IU XML (``NLMCXR_reports.tgz``), for labels from the whole report or the MeSH terms;
        without it the labeler reads the annotation's Findings text.
    labels, label_set, classes, uncertain:
        As for :func:`iu_xray`.

    Returns
    -------
    Joined
        ``split`` maps each ``id`` to ``train`` / ``val`` / ``test``; ``report.findings`` is
        the annotation's text.

    Raises
    ------
    FileNotFoundError
        A missing file or folder; with ``missing="fail"``, studies without images.
    ValueError
        Not an R2Gen annotation (the keys are named).
    """
    _check(missing, labels, uncertain)
    from .._io import read_json

    p = Path(annotation)
    data = read_json(p, what="R2Gen annotation", hint="give R2Gen's annotation.json")
    if not isinstance(data, dict) or not set(R2GEN_SPLITS) <= set(data):
        raise ValueError(f"{p} is not an R2Gen annotation: it needs the keys train, val and test (got "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__})")
    names = _class_names(labels, label_set, classes)
    xml: dict[str, Any] = {}
    if reports is not None:
        from ..reports.sources import Report, read_reports

        for item in read_reports(Path(reports), format="iu-xml"):
            if isinstance(item, Report):
                for im in item.images:  # CXR2384_IM-0942-1001 -> CXR2384_IM-0942
                    xml.setdefault(im.rsplit("-", 1)[0], item)
    folder = Path(images) if images is not None else None
    if folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; give R2Gen's image folder (or none)")
    jr = JoinReport(source=f"r2gen_iu_xray({p.name}{', ' + folder.name if folder else ''})")
    records: list[Record] = []
    split: dict[str, str] = {}
    for key in R2GEN_SPLITS:
        for e in data[key]:
            if not isinstance(e, dict) or not {"id", "report", "image_path"} <= set(e):
                jr.reports_unreadable.append((str(e.get("id") if isinstance(e, dict) else e)[:40],
                                              "entry without id, report and image_path"))
                continue
            jr.reports_read += 1
            rid = str(e["id"])
            rt = ReportText(id=rid, text=str(e["report"]), sections={"findings": str(e["report"])})
            src_report = xml.get(rid)
            text = src_report.text if src_report is not None else rt.text
            mesh = src_report.meta.get("mesh", []) if src_report is not None else []
            if labels == "mesh" and src_report is None:
                y = np.full(len(names), np.nan, np.float32)
            else:
                y = _labels(text, mesh, names, labels, label_set, uncertain)
            paths = [folder / ip for ip in e["image_path"]] if folder is not None else []
            present = [q for q in paths if q.is_file()]
            jr.images_found += len(present)
            if folder is not None and not present:
                jr.reports_without_image.append((rid, f"none of {', '.join(map(str, e['image_path']))} in {folder}"))
                continue
            records.append(Record(image_id=rid, path=present[0] if present else None, labels=y, patient=rid,
                                  report=rt, meta={"report_id": rid, "image_paths": [str(q) for q in present],
                                                   "view_index": 0 if present else None, "view": None,
                                                   "mesh": list(mesh)}))
            split[rid] = R2GEN_SPLITS[key]
    jr.records = len(records)
    jr.joined = sum(1 for r in records if r.path is not None)
    if missing == "fail" and jr.reports_without_image:
        _fail_missing(jr, str(p))
    _log(jr)
    return Joined(records=records, class_names=names, report=jr, split=split)


# ------------------------------------------------------------------------------------------------
# MIMIC-CXR reports + MIMIC-CXR-JPG images
# ------------------------------------------------------------------------------------------------
_STUDY = re.compile(r"p(\d+)/s(\d+)\.txt$")


def mimic_report_texts(reports: Path) -> Iterator[tuple[str, str, str]]:
    """(subject, study, text) of every report under ``reports`` (the ``files`` tree or the zip)."""
    if reports.is_file() and reports.suffix.lower() == ".zip":
        with zipfile.ZipFile(reports) as zf:
            for name in sorted(zf.namelist()):
                m = _STUDY.search(name)
                if m:
                    yield m.group(1), m.group(2), zf.read(name).decode("utf-8", errors="replace")
        return
    for f in sorted(reports.rglob("s*.txt")):
        m = _STUDY.search(f.as_posix())
        if m:
            yield m.group(1), m.group(2), f.read_text(encoding="utf-8", errors="replace")


def mimic_cxr_reports(reports: PathLike, *, images: Optional[PathLike] = None, missing: str = "skip",
                      views: Optional[Sequence[str]] = None, labels: str = "labeler", label_set: str = "chexpert",
                      classes: Optional[Sequence[str]] = None, uncertain: str = "nan") -> Joined:
    """MIMIC-CXR free-text reports joined to MIMIC-CXR-JPG images by study.

    Parameters
    ----------
    reports:
        The reports' ``files`` folder (``pXX/p<subject>/s<study>.txt``) or ``mimic-cxr-reports.zip``.
    images:
        The ``mimic-cxr-jpg/<version>`` folder: images ``files/pXX/p<subject>/s<study>/<dicom>.jpg``
        and, when present, ``mimic-cxr-2.0.0-metadata.csv(.gz)`` (``ViewPosition`` per
        ``dicom_id``). None: report-only records (one per study).
    missing:
        A study without images: ``"skip"`` (counted) or ``"fail"``.
    views:
        ``ViewPosition`` values to keep (e.g. ``("PA", "AP")``); needs the metadata table.
    labels, label_set, classes, uncertain:
        As for :func:`iu_xray` (``labels="mesh"`` does not apply; the default label set is
        CheXpert's).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing folders; ``views`` without a metadata table; bad arguments.
    """
    _check(missing, labels, uncertain)
    if labels == "mesh":
        raise ValueError("labels='mesh': MIMIC-CXR reports have no MeSH indexing; use 'labeler' or 'none'")
    src = Path(reports)
    if not src.exists():
        raise FileNotFoundError(f"MIMIC-CXR reports not found: {src} (give the files folder or mimic-cxr-reports.zip)")
    names = _class_names(labels, label_set, classes)
    folder = Path(images) if images is not None else None
    by_study: dict[str, list[Path]] = {}
    view_of: dict[str, str] = {}
    if folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(f"MIMIC-CXR-JPG folder {folder} does not exist")
        for f in sorted(folder.rglob("*.jpg")):
            by_study.setdefault(f.parent.name.lstrip("s"), []).append(f)
        meta = next((folder / n for n in ("mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv")
                     if (folder / n).is_file()), None)
        if meta is not None:
            from .datasets import read_table

            header, rows = read_table(meta)
            low = [h.lower() for h in header]
            if "dicom_id" not in low or "viewposition" not in low:
                raise ValueError(f"{meta} has no dicom_id and ViewPosition columns (header: {header})")
            di, vi = low.index("dicom_id"), low.index("viewposition")
            view_of = {r[di]: (r[vi] if vi < len(r) else "") for r in rows}
        elif views is not None:
            raise FileNotFoundError(f"views={list(views)} needs mimic-cxr-2.0.0-metadata.csv(.gz) in {folder}")
    keep = None if views is None else {v.upper() for v in views}
    jr = JoinReport(source=f"mimic_cxr_reports({src.name}{', ' + folder.name if folder else ''})",
                    images_found=sum(len(v) for v in by_study.values()))
    records: list[Record] = []
    seen: set[str] = set()
    for subject, study, text in mimic_report_texts(src):
        jr.reports_read += 1
        seen.add(study)
        if not text.strip():
            jr.reports_unreadable.append((f"s{study}", "empty report file"))
            continue
        rt = report_text(f"s{study}", text)
        y = _labels(text, [], names, labels, label_set, uncertain)
        if folder is None:
            records.append(Record(image_id=f"s{study}", path=None, labels=y, patient=subject, report=rt,
                                  meta={"study_id": study, "view": None}))
            continue
        imgs = by_study.get(study, [])
        if not imgs:
            jr.reports_without_image.append((f"s{study}", f"no image in {folder} for study s{study}"))
            continue
        kept = 0
        for f in imgs:
            view = view_of.get(f.stem) or None
            if keep is not None and (view or "").upper() not in keep:
                jr.skipped[f"view not in {sorted(keep)}"] = jr.skipped.get(f"view not in {sorted(keep)}", 0) + 1
                continue
            records.append(Record(image_id=f.stem, path=f, labels=y.copy(), patient=subject, report=rt,
                                  meta={"study_id": study, "dicom_id": f.stem, "view": view}))
            kept += 1
    jr.images_without_report = sorted(str(f) for s, fs in by_study.items() if s not in seen for f in fs)
    jr.records = len(records)
    jr.joined = sum(1 for r in records if r.path is not None)
    if missing == "fail" and jr.reports_without_image:
        _fail_missing(jr, str(src))
    _log(jr)
    return Joined(records=records, class_names=names, report=jr)


# ------------------------------------------------------------------------------------------------
# CSV with text columns
# ------------------------------------------------------------------------------------------------
def csv_reports(path: PathLike, *, text_cols: Union[str, Sequence[str]], image_col: Optional[str] = None,
                id_col: Optional[str] = None, images: Optional[PathLike] = None, label_cols: Sequence[str] = (),
                missing: str = "skip") -> Joined:
    """Reports from a CSV (one row per image or study): text column(s), optional image and label columns.

    Parameters
    ----------
    path:
        The CSV.
    text_cols:
        The text column, or several (``"findings,impression"``) read as sections of those names.
    image_col:
        The image file column (relative to ``images`` or the CSV's folder); None: report-only records.
    id_col:
        The report id column (default: the image column, else the row number).
    images:
        Folder the image paths are relative to (default: the CSV's folder).
    label_cols:
        0/1 label columns carried as the record's labels (blank = NaN); none: NaN labels.
    missing:
        A row whose image file is missing: ``"skip"`` (counted) or ``"fail"``.

    Raises
    ------
    FileNotFoundError
        The CSV; with ``missing="fail"``, image files.
    ValueError
        Columns that are not in the CSV (the columns found are listed).
    """
    check_choice(missing, "missing", MISSING)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"CSV not found: {p}")
    cols = [c.strip() for c in (text_cols.split(",") if isinstance(text_cols, str) else text_cols) if c.strip()]
    base = Path(images) if images is not None else p.parent
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        wanted = [*cols, *([image_col] if image_col else []), *([id_col] if id_col else []), *label_cols]
        absent = [c for c in wanted if c not in header]
        if absent:
            raise ValueError(f"{p}: column(s) {absent} not found; the columns are {header}")
        rows = list(reader)
    jr = JoinReport(source=f"csv_reports({p.name})")
    records: list[Record] = []
    for n, row in enumerate(rows, start=2):
        rid = row[id_col] if id_col else (row[image_col] if image_col else f"row{n}")
        jr.reports_read += 1
        if len(cols) > 1:
            rt = sections_report(rid, {c: row.get(c) or "" for c in cols})
        else:
            one = " ".join((row.get(cols[0]) or "").split())
            rt = ReportText(id=rid, text=one, sections={"text": one}) if one else None
        if rt is None:
            jr.reports_unreadable.append((rid, f"row {n}: empty text in {', '.join(cols)}"))
            continue
        y = np.array([float(row[c]) if (row.get(c) or "").strip() else np.nan for c in label_cols], np.float32)
        path_ = None
        if image_col:
            q = base / row[image_col]
            if not q.is_file():
                jr.reports_without_image.append((rid, f"row {n}: {q} not found"))
                continue
            path_ = q
            jr.images_found += 1
        records.append(Record(image_id=rid, path=path_, labels=y, patient=rid, report=rt, meta={"row": n}))
    jr.records = len(records)
    jr.joined = sum(1 for r in records if r.path is not None)
    if missing == "fail" and jr.reports_without_image:
        _fail_missing(jr, str(p))
    _log(jr)
    return Joined(records=records, class_names=tuple(label_cols), report=jr)
