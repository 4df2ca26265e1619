"""Many reports -> a label table (and its evidence), in one process or several.

:func:`label_reports` reads one or more sources (:mod:`chexradi.reports.sources`), labels
every report (:func:`chexradi.reports.label`) and returns a :class:`ReportTable`, whose
:meth:`ReportTable.write_csv` writes a table that ``chexradi iterate --data csv:FILE``
reads directly: an ``Image`` column (the image file name, relative to the CSV's folder
or its ``images/`` subfolder), a ``report`` column, optionally a ``split`` column
(train/val/test drawn per report), one 1/0/-1/blank column per label, ``No Finding`` and ``Normal``.
A report that cannot be read or labelled is kept in :attr:`ReportTable.errors` and the
others go on.
"""
from __future__ import annotations

import csv
import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional, Sequence, Union

from .._io import atomic_write
from .._progress import progress_bar
from .labeler import Evidence, label
from .sources import Report, ReportError, SourceError, guess_format, read_reports
from .text import READ_SECTIONS
from .labelsets import LabelSet, load_label_set

__all__ = ["ReportTable", "label_reports", "ROWS", "check_split", "split_of"]

PathLike = Union[str, "os.PathLike[str]"]
ROWS = ("image", "report")
_CHUNK = 64


@dataclass
class ReportTable:
    """Labels of many reports.

    Attributes
    ----------
    columns : tuple of str
        The label columns in order, then No Finding and Normal.
    reports : list of dict
        Per labelled report: ``id``, ``images``, ``source`` and ``labels`` (column -> 1/0/-1/None).
    errors : list of ReportError
        Reports (or whole sources) that could not be read or labelled.
    evidence : dict
        Report id -> list of :class:`~chexradi.reports.Evidence` (kept when ``explain=True``).
    label_set : str
        The label set's name.
    formats : set of str
        The reader formats used.
    """

    columns: tuple[str, ...]
    reports: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ReportError] = field(default_factory=list)
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    label_set: str = ""
    formats: set[str] = field(default_factory=set)

    def rows(self, per: str = "image", image_suffix: str = "",
             split: Optional[Sequence[float]] = None) -> Iterator[dict[str, Any]]:
        """Output rows: one per image (reports without an image are left out) or one per report.

        With ``split`` (train, val, test fractions) each row also gets ``split``, drawn from a
        hash of the report id: every image of one report lands in the same split, and a
        report keeps its split however the table is cut or ordered.
        """
        if per not in ROWS:
            raise ValueError(f"per={per!r}: use one of {', '.join(ROWS)}.")
        fr = check_split(split) if split is not None else None
        for r in self.reports:
            images = r["images"] if per == "image" else [r["images"][0] if r["images"] else r["id"]]
            extra = {"split": split_of(r["id"], fr)} if fr is not None else {}
            for img in images:
                yield {"Image": f"{img}{image_suffix}", "report": r["id"], **extra, **r["labels"]}

    @property
    def n_without_image(self) -> int:
        """Reports that name no image (left out of per-image rows)."""
        return sum(1 for r in self.reports if not r["images"])

    def write_csv(self, path: PathLike, *, per: str = "image", image_suffix: str = "",
                  split: Optional[Sequence[float]] = None) -> int:
        """Write the table atomically; returns the number of rows. Values 1/0/-1, blank when not mentioned.

        Columns: ``Image``, ``report``, ``split`` (with ``split``; see :meth:`rows`), the labels.
        """
        n = 0
        head = ["Image", "report"] + (["split"] if split is not None else [])
        with atomic_write(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow([*head, *self.columns])
            for row in self.rows(per, image_suffix, split):
                w.writerow([*(row[h] for h in head), *("" if row[c] is None else row[c] for c in self.columns)])
                n += 1
        return n

    def write_evidence(self, path: PathLike) -> int:
        """Every decision, one row each: report, label (or finding), kind (``label`` / ``finding``), value, section,
        offsets, mention, rule, trigger, sentence."""
        n = 0
        with atomic_write(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["report", "label", "kind", "value", "section", "start", "end", "mention", "rule", "trigger",
                        "sentence"])
            for r in self.reports:
                for e in self.evidence.get(r["id"], []):
                    w.writerow([r["id"], e.label, e.kind, e.value, e.section, e.start, e.end, e.mention, e.rule,
                                e.trigger, e.sentence])
                    n += 1
        return n

    def write_errors(self, path: PathLike) -> int:
        """The errors, one row each: report, where, message."""
        with atomic_write(path, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["report", "where", "message"])
            for e in self.errors:
                w.writerow([e.id, e.where, e.message])
        return len(self.errors)


def check_split(split: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, val, test) fractions: three numbers >= 0, train > 0, summing to 1."""
    try:
        fr = tuple(float(x) for x in split)
    except (TypeError, ValueError):
        raise ValueError(f"split={split!r}: give three fractions train,val,test, e.g. 0.7,0.1,0.2.") from None
    if len(fr) != 3 or any(not (0 <= x <= 1) for x in fr) or fr[0] <= 0 or abs(sum(fr) - 1) > 1e-6:
        raise ValueError(f"split={split!r}: give three fractions train,val,test in [0, 1] that sum to 1, with "
                         "train > 0, e.g. 0.7,0.1,0.2.")
    return fr  # type: ignore[return-value]


def split_of(report_id: str, fractions: Sequence[float]) -> str:
    """``train``/``val``/``test`` for a report, from the SHA-1 of its id (stable across runs and machines)."""
    u = int.from_bytes(hashlib.sha1(report_id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


_WORKER: dict[str, LabelSet] = {}


def _init_worker(label_set: LabelSet) -> None:
    """Pool initializer: the label set reaches each worker once, not with every chunk."""
    _WORKER["labels"] = label_set


def _label_chunk(items: Sequence[tuple[str, str]], sections: tuple[str, ...], explain: bool,
                 label_set: Optional[LabelSet] = None) -> list[tuple[str, Any, Any]]:
    """Label a chunk of (id, text) pairs -> (id, values or error message, evidence); in a worker the label set
    is the one :func:`_init_worker` received."""
    ls = label_set if label_set is not None else _WORKER["labels"]
    out = []
    for rid, text in items:
        try:
            res = label(text, ls, sections=sections)
        except ValueError as exc:
            out.append((rid, None, str(exc)))
            continue
        out.append((rid, dict(res), res.evidence if explain else None))
    return out


def _chunks(reports: Iterable[Report], size: int) -> Iterator[list[Report]]:
    buf: list[Report] = []
    for r in reports:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def label_reports(source: Union[PathLike, Sequence[PathLike]], *, format: Optional[str] = None,
                  labels: Union[str, PathLike, LabelSet] = "chestxray14", jobs: int = 1,
                  sections: Sequence[str] = READ_SECTIONS, text_col: Optional[str] = None,
                  id_col: Optional[str] = None, image_col: Optional[str] = None, explain: bool = False,
                  progress: Optional[bool] = None) -> ReportTable:
    """Label every report of one or more sources.

    Parameters
    ----------
    source : path or list of paths
        IU X-ray XML (folder, file or ``.tgz``), a CSV, or ``.txt`` files (folder or file).
    format : {"iu-xml", "csv", "txt"}, optional
        Default: from each source's name or files.
    labels : str, path or LabelSet
        ``"chestxray14"`` (default), ``"chexpert"`` or a YAML label-set file.
    jobs : int
        Worker processes (0: one per CPU). Results are the same for any value.
    sections : sequence of str
        Section names read when present (default Findings, Impression and synonyms).
    text_col, id_col, image_col : str, optional
        CSV columns (see :func:`~chexradi.reports.sources.read_reports`).
    explain : bool
        Keep every decision's evidence in :attr:`ReportTable.evidence`.
    progress : bool, optional
        Progress bar on stderr (default: when stderr is a terminal).

    Returns
    -------
    ReportTable
        Reports in source order; unreadable sources and reports are in ``.errors``.

    Raises
    ------
    chexradi.reports.LabelSetError
        Unknown label set or bad label-set file (before any report is read).
    ValueError
        ``jobs`` < 0 or an unknown ``format``.
    """
    ls = load_label_set(labels)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"jobs={jobs!r}: pass a whole number >= 0 (0: one per CPU).")
    if jobs == 0:
        jobs = os.cpu_count() or 1
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    table = ReportTable(ls.columns, label_set=ls.name)
    seen: set[str] = set()
    errors: list[tuple[int, ReportError]] = []  # (position in the input, error): sorted at the end
    position: dict[str, int] = {}

    def stream() -> Iterator[Report]:
        pos = 0
        for src in source:
            try:
                fmt = format or guess_format(src)
                table.formats.add(fmt)
                for item in read_reports(src, fmt, text_col=text_col, id_col=id_col, image_col=image_col):
                    pos += 1
                    if isinstance(item, ReportError):
                        errors.append((pos, item))
                    elif item.id in seen:
                        errors.append((pos, ReportError(item.id, item.source, f"report id {item.id!r} appears twice; "
                                                        "the later one is left out. Give each report its own id.")))
                    else:
                        seen.add(item.id)
                        position[item.id] = pos
                        yield item
            except SourceError as exc:
                pos += 1
                msg = " ".join(str(exc).split())
                prefix = f"{src}: "
                errors.append((pos, ReportError("", str(src), msg[len(prefix):] if msg.startswith(prefix) else msg)))

    bar = progress_bar(progress, desc="reports", unit="report")
    pool = None
    try:
        tasks = ((chunk, ([(r.id, r.text) for r in chunk], tuple(sections), explain))
                 for chunk in _chunks(stream(), _CHUNK))
        if jobs > 1:
            import multiprocessing as mp

            pool = mp.get_context("spawn" if sys.platform == "darwin" else None).Pool(
                jobs, initializer=_init_worker, initargs=(ls,))
            pending: Iterator[tuple[list[Report], list]] = _ordered(pool, tasks, window=4 * jobs)
        else:
            pending = ((chunk, _label_chunk(*args, label_set=ls)) for chunk, args in tasks)
        for chunk, results in pending:
            for rep, (rid, values, extra) in zip(chunk, results):
                if values is None:
                    errors.append((position[rid], ReportError(rid, rep.source, extra)))
                    continue
                table.reports.append({"id": rid, "images": list(rep.images), "source": rep.source,
                                      "labels": values, "meta": rep.meta})
                if explain:
                    table.evidence[rid] = extra
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if bar is not None:
            bar.close()
    table.errors = [e for _, e in sorted(errors, key=lambda x: x[0])]  # input order, whatever the jobs
    return table


def _ordered(pool: Any, tasks: Iterator[tuple[list[Report], tuple]], *,
             window: int) -> Iterator[tuple[list[Report], list]]:
    """Keep at most ``window`` chunks in flight (bounded memory) and yield results in input order."""
    from collections import deque

    inflight: deque = deque()
    for chunk, args in tasks:
        inflight.append((chunk, pool.apply_async(_label_chunk, args)))
        if len(inflight) >= window:
            c, fut = inflight.popleft()
            yield c, fut.get()
    while inflight:
        c, fut = inflight.popleft()
        yield c, fut.get()
