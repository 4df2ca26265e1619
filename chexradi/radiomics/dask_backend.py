"""Run the cases of a batch on a Dask cluster (``extract_batch(..., scheduler="dask")``).

:func:`run_on_dask` has the contract of ``workers.run_in_pool``: it runs every
case of ``todo`` and hands each record (the dict ``workers.process_case``
returns) to ``on_result`` in this process, as the cases finish, so the journal
(hence resume) works exactly as with worker processes.

* ``scheduler="dask"``: a :class:`distributed.LocalCluster` on this machine
  (``jobs`` worker processes, one thread each, no dashboard), closed at the end.
* ``scheduler="dask:ADDRESS"`` (e.g. ``dask:tcp://10.0.0.5:8786``): a client of
  the user's running cluster; the cluster is left running (only the client is
  closed). Its workers need chexradi installed, with the same versions, and
  must see the image and mask paths of the cases file.

Cases go in tasks of a few consecutive cases (``workers.task_chunks``; an image
shared by consecutive cases is read once). At most a few tasks per worker thread
are in flight at a time, whatever the number of cases, so memory stays bounded. A task that raises, or whose
worker dies, is retried once by Dask; if it still fails, the case is recorded
as failed with the reason (the batch goes on; it is retried on the next run).

Dask is imported lazily: install it with ``pip install "chexradi[dask]"``.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..about import install_hint

if TYPE_CHECKING:  # pragma: no cover
    from .cases import Case
    from .workers import OnResult

__all__ = ["SCHEDULER_FORMS", "local_worker_environ", "parse_scheduler", "require_dask", "run_on_dask"]

logger = logging.getLogger("chexradi.radiomics.dask_backend")

SCHEDULER_FORMS = ("processes", "dask", "dask:ADDRESS")
# futures in flight per worker thread of the cluster (bounded memory, workers never idle)
_INFLIGHT_PER_THREAD = 8


def parse_scheduler(scheduler: Optional[str]) -> tuple[str, Optional[str]]:
    """``(kind, address)`` of a ``scheduler`` value: ``("processes", None)``, ``("dask", None)`` (a local
    cluster) or ``("dask", "tcp://host:8786")``.

    Raises
    ------
    ValueError
        Any other value (the message lists the accepted forms).
    """
    forms = ("None or 'processes' (worker processes, the default), 'dask' (a local Dask cluster of --jobs "
             "workers) or 'dask:ADDRESS' (a running Dask scheduler, e.g. dask:tcp://10.0.0.5:8786)")
    if scheduler is None:
        return "processes", None
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler={scheduler!r} is invalid: use {forms}.")
    s = scheduler.strip()
    if s == "processes":
        return "processes", None
    if s == "dask":
        return "dask", None
    if s.startswith("dask:"):
        address = s[len("dask:"):].strip()
        if address:
            return "dask", address
    raise ValueError(f"scheduler={scheduler!r} is invalid: use {forms}.")


def require_dask() -> Any:
    """Import and return ``distributed``; ImportError with the install command when it is missing."""
    try:
        import dask  # noqa: F401
        import distributed
    except ImportError as exc:
        raise ImportError(f"scheduler='dask' needs dask and distributed ({exc}); install them with "
                          f"`{install_hint('dask')}` (or `pip install \"dask[distributed]\"`).") from exc
    return distributed


# ---------------------------------------------------------------------------------------------
# on the workers
# ---------------------------------------------------------------------------------------------
# One Extractor per worker process and settings (key: engine + settings JSON); a worker may serve
# several batches with different settings.
_EXTRACTORS: dict[str, Any] = {}


def _dask_task(settings: Any, settings_key: str, engine: str, threads: int, log_level: int,
               items: Sequence[tuple[str, str, Optional[int]]], mode: str, cells: bool) -> list[Any]:
    """Run a few cases ``(image, mask, label)`` on a Dask worker; returns the records of
    ``workers.process_case``, in order, as ``workers.encode_records`` gives them."""
    from .workers import encode_records, process_cases

    ext = _EXTRACTORS.get(settings_key)
    if ext is None:
        from .workers import configure_worker
        from .extractor import Extractor

        configure_worker(threads, log_level, "dask worker")
        ext = Extractor(settings, engine=engine)
        _EXTRACTORS[settings_key] = ext
    return encode_records(process_cases(ext, items, mode), mode, cells)


# ---------------------------------------------------------------------------------------------
# in the client
# ---------------------------------------------------------------------------------------------
def _thread_env() -> dict[str, str]:
    """BLAS / OpenMP thread counts of this process, as environment variables for local Dask workers.

    Dask's nanny starts workers with OMP/OPENBLAS/MKL_NUM_THREADS=1; the last bits of some features (glcm MCC:
    an eigenvalue computed by LAPACK) depend on the BLAS thread count, so local workers get this process's
    settings, exactly like the ``jobs`` worker processes (which inherit them).
    """
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
           if os.environ.get(k, "").strip()}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        infos: list[dict[str, Any]] = []
    else:
        infos = threadpool_info()
    for info in infos:
        n = str(info.get("num_threads", ""))
        if info.get("internal_api") == "openblas":
            env.setdefault("OPENBLAS_NUM_THREADS", n)
        elif info.get("internal_api") == "mkl":
            env.setdefault("MKL_NUM_THREADS", n)
        elif info.get("user_api") == "openmp":
            env.setdefault("OMP_NUM_THREADS", n)
    cpus = str(os.cpu_count() or 1)  # the libraries' default when nothing is set
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(k, cpus)
    return env


def local_worker_environ() -> dict[str, Optional[str]]:
    """The ``distributed.nanny.pre-spawn-environ`` for a local cluster's workers, set before they spawn:
    Dask's own, with this process's BLAS / OpenMP thread counts (``_thread_env``) and without Dask's
    default ``MALLOC_TRIM_THRESHOLD_=65536`` (None unsets it; a value set in this process's environment is
    inherited as by the process pool's workers). With that default glibc gives freed memory back to the
    system after every large array, and each case's arrays are faulted in afresh: measured on 1,024
    radiographs at 512 x 512, 21-30 ms per case against 11-13 ms without it."""
    import dask

    require_dask()  # registers distributed's configuration
    env: dict[str, Optional[str]] = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    if str(env.get("MALLOC_TRIM_THRESHOLD_")) == "65536":  # Dask's default, not a choice of the user's
        env["MALLOC_TRIM_THRESHOLD_"] = None
    env.update(_thread_env())
    return env


def _restore_environ(before: dict[str, str]) -> None:
    """Give ``os.environ`` back as it was. A LocalCluster's nannies run in this process and, before spawning
    each worker, write their pre-spawn variables into this process's own environment (distributed's
    ``os.environ.update``) and leave them there, so every process started afterwards inherits them. Measured:
    with ``MALLOC_TRIM_THRESHOLD_=65536`` inherited, a later ``--jobs 2`` pool ran each case at half speed."""
    for k in [k for k in os.environ if k not in before]:
        del os.environ[k]
    for k, v in before.items():
        if os.environ.get(k) != v:
            os.environ[k] = v


def _failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return ("the Dask worker running this case (or one sent with it) died (crash or out of memory) on every "
                f"try; it is retried when the batch is run again ({exc})")
    return f"failed on Dask after a retry: {name}: {exc}"


def run_on_dask(todo: Sequence["Case"], *, settings: Any, engine: str, jobs: int, mode: str, cells: bool,
                on_result: OnResult, address: Optional[str] = None) -> None:
    """Run ``todo`` on Dask; ``on_result(case, record, text, cells)`` is called in this thread as each case
    finishes (``text``, ``cells``: from ``workers.encode_records``, asked for with ``cells``).

    ``address`` None starts a local cluster of ``jobs`` worker processes (one thread each) and closes it at
    the end; otherwise a client connects to the scheduler at ``address`` (the cluster is not closed).
    """
    from .workers import resolve_jobs, task_chunks, task_items

    distributed = require_dask()
    level = logging.getLogger("chexradi").getEffectiveLevel()
    settings_key = engine + "\n" + json.dumps(settings.to_params(), sort_keys=True, default=str)

    cluster = None
    client = None
    environ = dict(os.environ) if address is None else None
    try:
        if address is None:
            n_workers = resolve_jobs(jobs)
            threads = max(1, (os.cpu_count() or 1) // n_workers)
            logger.info("starting a local Dask cluster of %d worker process(es)", n_workers)
            import dask

            with dask.config.set({"distributed.nanny.pre-spawn-environ": local_worker_environ()}):
                cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None)
            client = distributed.Client(cluster)
        else:
            threads = 1
            try:
                client = distributed.Client(address)
            except (OSError, TimeoutError) as exc:
                raise RuntimeError(f"cannot connect to the Dask scheduler at {address!r} ({exc}); check the "
                                   "address (e.g. dask:tcp://10.0.0.5:8786) and that the scheduler is running."
                                   ) from None
        n_threads = sum(client.nthreads().values()) or 1
        max_inflight = _INFLIGHT_PER_THREAD * n_threads
        tag = uuid.uuid4().hex[:8]
        queue = list(reversed(task_chunks(todo, n_threads)))  # pop() from the end: cases in input order

        def submit(chunk: list["Case"]) -> Any:
            return client.submit(_dask_task, settings, settings_key, engine, threads, level, task_items(chunk), mode,
                                 cells, key=f"chexradi-{mode}-{tag}-rows{chunk[0].row}-{chunk[-1].row}", retries=1,
                                 pure=False)

        inflight: dict[Any, list["Case"]] = {}
        while queue and len(inflight) < max_inflight:
            chunk = queue.pop()
            inflight[submit(chunk)] = chunk
        ac = distributed.as_completed(list(inflight))
        try:
            for fut in ac:
                chunk = inflight.pop(fut)
                try:
                    recs = fut.result()
                except Exception as exc:  # raised twice, or its worker died on every try
                    recs = [({"status": "failed", "reason": _failure_reason(exc)}, None, None)] * len(chunk)
                fut.release()
                for case, (rec, text, case_cells) in zip(chunk, recs):
                    on_result(case, dict(rec), text, case_cells)
                while queue and len(inflight) < max_inflight:
                    nxt = queue.pop()
                    new = submit(nxt)
                    inflight[new] = nxt
                    ac.add(new)
        except BaseException:
            for fut in list(inflight):
                fut.cancel()
            raise
    finally:
        try:
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
        finally:
            if environ is not None:
                _restore_environ(environ)
