"""Many (image, mask) cases: worker processes, a journal on disk, resume.

:func:`extract_batch` runs :class:`~chexradi.radiomics.extractor.Extractor` on
every case of a cases CSV (PyRadiomics' batch format: columns ``Image``,
``Mask``, optional ``Label``; every other column is carried through to the
output) or of a list of dicts.

How a batch runs
----------------
1. Everything is checked before the first case: the settings (by building the
   extractor), the cases (:mod:`~chexradi.radiomics.cases`: columns, empty file,
   labels, duplicate rows), the output folder (must be writable:
   :func:`~chexradi.radiomics.outputs.check_output_path`) and, when resuming, the
   journal (:mod:`~chexradi.radiomics.journal`: it must have been written with the
   same settings and engine).
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
   package versions, counts, every failure) are written atomically
   (:mod:`~chexradi.radiomics.outputs`).

Resume: running again with the same ``out`` skips the cases the journal holds
as done, retries the failed ones and never duplicates a case. A case is
identified by its resolved Image and Mask paths, its Label and its other
columns (not by its row number, so rows may be reordered or appended).

Rows are numbered from 1: row 1 is the first case (for a CSV, the first line
after the header).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._progress import progress_bar
from .cases import Case, CaseFailure, CasesLike, PathLike, load_cases
from .journal import JOURNAL_KIND, JOURNAL_VERSION, Journal, journal_path
from .outputs import (FORMATS, check_output_path, feature_columns, jsonable_strict, meta_path, write_csv,
                      write_json, write_meta)
from .workers import Cells, WorkerPool, csv_cells, process_case, resolve_jobs, run_in_pool

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

# What the output needs of at most this many cases is kept in memory to write it at the end (a CSV's cells, about
# 4 kB a case; for a JSON output the values, about 17 kB); the values of the others are read back from the journal
# (about 0.06 ms a case), so the driver's memory stays bounded however many cases a batch has (about 1 kB a case
# remains: the case list and the journal index).
_HELD_RESULTS = 10_000


def _jsonable(params: Any) -> Any:
    return json.loads(json.dumps(params, default=str))


@dataclass
class BatchReport:
    """What a batch did.

    Attributes
    ----------
    n_total : int
        Cases in the batch.
    n_ok : int
        Cases with features in the output (including those taken from the
        journal of an earlier run); with ``validate_only``, cases that passed.
    n_failed : int
        Cases that failed (not in the output; listed in ``failures``).
    n_skipped_resumed : int
        Cases not recomputed because the journal held them.
    failures : list of CaseFailure
        One :class:`CaseFailure` per failed case, by row.
    out, meta_path, journal : pathlib.Path or None
        The files written (None with ``validate_only``).
    elapsed : float
        Seconds.
    validate_only : bool
        True when nothing was computed.
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
        must see the case files). Needs ``pip install "chexradi[dask]"``. Not
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

    journal: Optional[Journal] = None
    done: dict[str, dict[str, Any]] = {}
    if not validate_only:
        assert out_path is not None
        header = {"type": "header", "kind": JOURNAL_KIND, "version": JOURNAL_VERSION, "engine": engine,
                  "settings": params_json, "versions": vers,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        journal = Journal(journal_path(out_path), header, resume=resume)
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
        features = feature_columns(name_lists, list(settings_obj.feature_classes))
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
            write_csv(out_path, columns, features,
                      ((c, results[c.key][1], output_values(results[c.key])) for c in ok_cases))
        else:
            write_json(out_path, jsonable_strict(meta), columns, features,
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
