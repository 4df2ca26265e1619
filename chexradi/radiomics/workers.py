"""Running batch cases in worker processes, and pools of workers started ahead of a batch.

:func:`chexradi.radiomics.batch.extract_batch` hands the cases left to do to
:func:`run_in_pool` (or to :mod:`~chexradi.radiomics.dask_backend`), which runs them in
tasks of a few consecutive cases (:func:`task_chunks`) and hands every case's record to
the batch's ``on_result`` in the parent process, which journals and writes them. Each case's
journal line and CSV cells are encoded in the worker (``encode_records``), so the parent
only writes text: its CPU time per case, shared by every worker feeding it, stays small.

A worker is a new Python process (``spawn``: safe with numba and SimpleITK's threads). It
starts by importing chexradi, building its extractor and running one small synthetic case,
which loads the compiled kernels (about 0.7 s on one core); so its first real case runs at
full speed. A :class:`WorkerPool` starts the workers before the batch and keeps them for
several batches: the loop starts one while the previous round's masks are being made and
uses it for every round's radiomics, so the start-up is paid once and off the radiomics'
clock.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import multiprocessing
import os
import sys
import time
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

if TYPE_CHECKING:
    from .cases import Case

__all__ = ["Cells", "WorkerPool", "configure_worker", "resolve_jobs", "run_in_pool", "task_chunks"]

logger = logging.getLogger("chexradi.radiomics.batch")

# Cases per task sent to a worker (process pool or Dask): fewer round trips; consecutive cases that share
# their image read it once. A task's results reach the journal when the whole task finishes.
_MAX_CASES_PER_TASK = 32

_WORKER: dict[str, Any] = {}


# ---------------------------------------------------------------------------------------------
# in a worker
# ---------------------------------------------------------------------------------------------
def configure_worker(threads: int, log_level: int, tag: str = "worker") -> None:
    """In a worker process: SimpleITK thread limit and the `chexradi` logger (to stderr, tagged)."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(threads)))
    root = logging.getLogger("chexradi")
    root.setLevel(log_level)
    if log_level < logging.WARNING and not root.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(f"%(levelname)s %(name)s [{tag} %(process)d]: %(message)s"))
        root.addHandler(h)


def _init_worker(settings: Any, engine: str, threads: int, log_level: int, warm: bool = False) -> None:
    """Process-pool initializer: thread limits, logging, the extractor built once per process and, with
    ``warm``, one synthetic case run (:func:`_warm_up`)."""
    configure_worker(threads, log_level)
    _WORKER["settings"] = settings
    _WORKER["engine"] = engine
    _WORKER.pop("extractor", None)
    if warm:
        _warm_up(_worker_extractor())


def _warm_up(ext: Any) -> None:
    """Run a 24 x 24 synthetic case (a float32 image, as the loop writes) so that the numba kernels are
    loaded from their cache now rather than in the first real case. Nothing is kept; a failure (settings
    that do not fit this case) only leaves the loading to the first real case."""
    if ext.engine != "numba":
        return
    import numpy as np

    rng = np.random.default_rng(0)
    image = (rng.random((24, 24)) * 255).astype(np.float32)
    mask = np.zeros((24, 24), np.uint8)
    mask[4:20, 3:21] = 1
    try:
        ext.execute(image, mask, label=1)
    except Exception as exc:  # noqa: BLE001 - a warm-up only
        logger.debug("worker warm-up case failed (the first real case loads the kernels instead): %s", exc)


def _worker_extractor() -> Any:
    ext = _WORKER.get("extractor")
    if ext is None:
        from .extractor import Extractor

        ext = Extractor(_WORKER["settings"], engine=_WORKER["engine"])
        _WORKER["extractor"] = ext
    return ext


def process_case(ext: Any, image: str, mask: str, label: Optional[int], mode: str) -> dict[str, Any]:
    """Run one case; never raises for a bad case: returns {"status": "ok"|"failed", ...}."""
    t0 = time.perf_counter()
    try:
        if mode == "validate":
            case = ext.prepare(image, mask, label=label)
            out: dict[str, Any] = {"status": "ok", "voxels": case.voxels, "ndim": case.ndim, "label": case.label}
        else:
            out = {"status": "ok", "features": ext.execute(image, mask, label=label)}
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:  # bad input: the expected failures
        out = {"status": "failed", "reason": str(exc) or type(exc).__name__}
    except Exception as exc:  # anything else is recorded too (the batch goes on), with its type and traceback
        out = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    out["seconds"] = round(time.perf_counter() - t0, 6)
    return out


def _ping() -> int:
    return os.getpid()


def _worker_task(image: str, mask: str, label: Optional[int], mode: str) -> dict[str, Any]:
    return process_case(_worker_extractor(), image, mask, label, mode)


def process_cases(ext: Any, items: Sequence[tuple[str, str, Optional[int]]], mode: str) -> list[dict[str, Any]]:
    """:func:`process_case` for each ``(image, mask, label)``; an image file shared by consecutive cases is
    read once."""
    from .imageio import reuse_reads

    with reuse_reads():
        return [process_case(ext, image, mask, label, mode) for image, mask, label in items]


def record_json(rec: Any) -> str:
    """A case's record as the journal writes it (one line of JSON)."""
    return json.dumps(rec, ensure_ascii=False, default=str)


#: A case's CSV cells (:func:`csv_cells`): joined by commas, or one string each when a cell holds a comma.
Cells = Union[str, tuple[str, ...]]


def csv_cells(features: Any) -> Cells:
    """A case's feature values (a dict) as the text the csv module writes for them, in the dict's order:
    None as an empty cell, anything else as str(), which for a float is its shortest repr (the text the
    journal's JSON holds too). Quoting is left to the writer. The cells come joined by commas (about a
    quarter of the memory of separate strings) unless one of them holds a comma; :func:`split_cells`
    undoes this."""
    cells = tuple("" if v is None else str(v) for v in features.values())
    joined = ",".join(cells)
    return joined if cells and joined.count(",") == len(cells) - 1 else cells


def split_cells(cells: Cells) -> Sequence[str]:
    """The cells of :func:`csv_cells`, one string each."""
    return cells.split(",") if isinstance(cells, str) else cells


Encoded = tuple[dict[str, Any], Optional[str], Optional[Cells]]


_FEATURES_MARK = "\x1f features \x1f"  # stands for the features in a record's JSON (JSON escapes it: no clash)


@functools.lru_cache(maxsize=16)
def _json_keys(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(json.dumps(n, ensure_ascii=False) + ": " for n in names)


def _encode(rec: dict[str, Any], cells: bool) -> tuple[str, Optional[Cells]]:
    """:func:`record_json` and (with ``cells``, for an ok case) :func:`csv_cells` of one record, the same
    text, each feature value turned into text once when every value is a finite float (both write a float
    as its repr)."""
    feats = rec.get("features") if rec.get("status") == "ok" else None
    if not isinstance(feats, dict):
        return record_json(rec), None
    reprs = [float.__repr__(v) if type(v) is float and math.isfinite(v) else None for v in feats.values()]
    if None in reprs or not reprs:
        return record_json(rec), csv_cells(feats) if cells else None
    body = "{" + "".join([k + r + ", " for k, r in zip(_json_keys(tuple(feats)), reprs)])[:-2] + "}"
    text = record_json({**rec, "features": _FEATURES_MARK}).replace(json.dumps(_FEATURES_MARK), body, 1)
    return text, ",".join(reprs) if cells else None


def encode_records(recs: Sequence[dict[str, Any]], mode: str, cells: bool) -> list[Encoded]:
    """Each record with its journal text (:func:`record_json`) and, with ``cells`` (a CSV output), an ok
    case's :func:`csv_cells`; None for what is not needed (a validation journals nothing). Made where the
    cases ran, so that the batch's process only writes text: the CPU it spends per case, shared by all
    the workers feeding it, stays small."""
    if mode == "validate":
        return [(rec, None, None) for rec in recs]
    return [(rec, *_encode(rec, cells)) for rec in recs]


def _worker_chunk(items: Sequence[tuple[str, str, Optional[int]]], mode: str, cells: bool) -> list[Encoded]:
    return encode_records(process_cases(_worker_extractor(), items, mode), mode, cells)


# ---------------------------------------------------------------------------------------------
# in the parent
# ---------------------------------------------------------------------------------------------
def resolve_jobs(jobs: Any) -> int:
    """``jobs`` as a number of worker processes (0: one per CPU); anything but an integer >= 0 is refused."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"jobs={jobs!r} is invalid: give an integer >= 1 (or 0 for one process per CPU).")
    return jobs or (os.cpu_count() or 1)


def task_chunks(todo: Sequence["Case"], workers: int) -> list[list["Case"]]:
    """``todo`` in input order, cut into tasks of at most ``_MAX_CASES_PER_TASK`` cases, small enough that
    every worker gets about 8 tasks (so the last tasks do not leave workers idle)."""
    size = max(1, min(_MAX_CASES_PER_TASK, len(todo) // (8 * max(1, workers))))
    return [list(todo[i:i + size]) for i in range(0, len(todo), size)]


def task_items(chunk: Sequence["Case"]) -> list[tuple[str, str, Optional[int]]]:
    """What a worker gets of each case of a task: ``(image, mask, label)``."""
    return [(c.image, c.mask, c.label) for c in chunk]


class WorkerPool:
    """Worker processes for :func:`~chexradi.radiomics.batch.extract_batch`, started now and kept for
    several batches.

    Each worker starts, builds the extractor and runs one synthetic case while this process goes on
    (about 0.7 s of one core per worker); a batch given ``pool=`` then finds them ready, and later batches
    reuse them. The pool's settings and engine must be the batch's.

    Parameters
    ----------
    params, engine, **settings : as for :func:`~chexradi.radiomics.batch.extract_batch`.
    jobs : worker processes (0: one per CPU). At least 1.

    Examples
    --------
    >>> with WorkerPool(binWidth=8, jobs=2) as pool:                               # doctest: +SKIP
    ...     extract_batch("round1.csv", out="r1.csv", binWidth=8, pool=pool)
    ...     extract_batch("round2.csv", out="r2.csv", binWidth=8, pool=pool)
    """

    def __init__(self, params: Any = None, *, engine: str = "numba", jobs: int = 0, **settings: Any) -> None:
        from .extractor import Extractor

        jobs = resolve_jobs(jobs)
        ext = Extractor(params, engine=engine, **settings)  # settings are validated here
        self._setup(ext.settings, engine, jobs, warm=True)

    @classmethod
    def _resolved(cls, settings: Any, engine: str, jobs: int, *, warm: bool) -> "WorkerPool":
        """A pool for settings already resolved (a batch's own pool: ``warm=False``, its workers load the
        kernels with their first case, since the batch waits for them either way)."""
        pool = cls.__new__(cls)
        pool._setup(settings, engine, max(1, jobs), warm=warm)
        return pool

    def _setup(self, settings: Any, engine: str, jobs: int, *, warm: bool) -> None:
        self.settings = settings
        self.engine = engine
        self.jobs = jobs
        self._warm = warm
        self._executor: Optional[ProcessPoolExecutor] = None
        self._pings: list[Future] = []
        self._served = False
        self._start()

    def __repr__(self) -> str:
        state = "closed" if self._executor is None else "running"
        return f"WorkerPool(engine={self.engine!r}, jobs={self.jobs}, {state})"

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def matches(self, settings: Any, engine: str) -> bool:
        """True when the workers were built for these settings
        (:class:`~chexradi.radiomics.settings.Settings`) and engine."""
        return engine == self.engine and settings.to_params() == self.settings.to_params()

    def _start(self) -> None:
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        level = logging.getLogger("chexradi").getEffectiveLevel()
        self._executor = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker,
                                             initargs=(self.settings, self.engine, threads, level, self._warm))
        # each submit finds no idle worker and spawns one: all the workers start now, in parallel with this
        # process (and with each other: started one by one with the first tasks, the last would begin its
        # imports about 0.4 s after the first)
        self._pings = [self._executor.submit(_ping) for _ in range(self.jobs)]
        self._served = False

    def executor(self) -> ProcessPoolExecutor:
        """The running executor (a new one if the last broke), once a worker has answered.

        Raises RuntimeError when the workers cannot start (spawn re-imports ``__main__``)."""
        if self._executor is not None and self._served:  # kept from an earlier batch: are its workers alive?
            try:
                self._executor.submit(_ping).result()
            except BrokenProcessPool:
                logger.warning("a worker process of the pool died since the last batch; starting new workers")
                self.discard()
        if self._executor is None:
            self._start()
        assert self._executor is not None
        try:
            self._pings[0].result()
            self._served = True
        except BrokenProcessPool:
            self.discard()
            raise RuntimeError(
                "the batch's worker processes could not start (they use the 'spawn' start method, which re-imports "
                "your __main__ module). Run from a script file whose top level is guarded by "
                "`if __name__ == '__main__':` (not from stdin), or use jobs=1. The workers' error is on stderr."
            ) from None
        return self._executor

    def discard(self) -> None:
        """Drop the executor at once (after a worker died, or on an interrupt); the next use starts anew."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self, wait: bool = True) -> None:
        """Stop the workers (a later batch given this pool starts new ones). ``wait``: until they have
        exited; with False they exit in the background (about 0.3 s: interpreter shutdown), and Python
        waits for them at exit at the latest."""
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None


OnResult = Callable[["Case", dict[str, Any], Optional[str], Optional[Cells]], None]


def run_in_pool(todo: Sequence["Case"], *, settings: Any, engine: str, jobs: int, mode: str, cells: bool,
                on_result: OnResult, pool: Optional[WorkerPool] = None) -> None:
    """Run ``todo`` in worker processes, calling ``on_result(case, record, text, cells)`` here for each, in
    completion order (``text``, ``cells``: from ``encode_records``, or None). ``pool``: workers
    started ahead (left running); else a pool of ``jobs`` is started, and closed without waiting for its
    workers to exit. A worker that dies fails the cases of its task (retried on resume); the rest go to a
    new pool."""
    own = pool is None
    if pool is None:
        pool = WorkerPool._resolved(settings, engine, min(jobs, len(todo)), warm=False)
    queue: deque[list[Case]] = deque(task_chunks(todo, pool.jobs))
    max_inflight = 2 * pool.jobs
    try:
        while queue:
            executor = pool.executor()
            inflight: dict[Future, list[Case]] = {}
            broken = False
            try:
                while queue or inflight:
                    while queue and not broken and len(inflight) < max_inflight:
                        chunk = queue.popleft()
                        try:
                            fut = executor.submit(_worker_chunk, task_items(chunk), mode, cells)
                        except BrokenProcessPool:
                            queue.appendleft(chunk)
                            broken = True
                            break
                        inflight[fut] = chunk
                    if not inflight:
                        break
                    done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in done:
                        chunk = inflight.pop(fut)
                        try:
                            recs = fut.result()
                        except BrokenProcessPool as exc:
                            broken = True
                            recs = [({"status": "failed", "reason": "the worker process died while this case was "
                                      f"running (crash or out of memory; {exc}); it is retried when the batch is run "
                                      "again"}, None, None)] * len(chunk)
                        except Exception as exc:  # e.g. a result that could not be sent back
                            recs = [({"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}, None, None)
                                    ] * len(chunk)
                        for case, (rec, text, case_cells) in zip(chunk, recs):
                            on_result(case, dict(rec), text, case_cells)
            except BaseException:
                pool.discard()
                raise
            if broken:
                pool.discard()
                logger.warning("a worker process died; starting a new pool for the %d remaining case(s)",
                               sum(len(c) for c in queue))
    finally:
        if own:  # its workers exit while the batch writes its output
            pool.close(wait=False)
