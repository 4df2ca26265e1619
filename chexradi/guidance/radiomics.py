"""The radiomics guidance source: features inside the masks -> one standardised vector per image.

The radiograph each mask belongs to is written once per run as
``images/<split>/<index>.nrrd``: the network input brought back to [0, 1]
(:func:`chexradi.data.transforms.from_model_input`) and scaled to 0-255, on a 1 x 1
pixel grid, so the masks (made at the same grid) line up exactly and the gray levels
have one scale for every dataset. A round's ``cases.csv`` lists every (image, class)
mask; :func:`chexradi.extract_batch` (the chexradi engine, in worker processes,
resumable from its journal) writes ``radiomics.csv``. The vector of an image is the
concatenation over classes of its features (``K x F`` values, class-major); a failed
or missing case leaves its block NaN, which :class:`chexradi.guidance.Standardizer`
counts and sets to the training mean.

:class:`RadiomicsSource` is this as a :class:`~chexradi.guidance.source.GuidanceSource`:
it needs masks (it guides from round 1), is recomputed every round, keeps its worker
processes across rounds, shards the extraction over the ranks of a distributed run, and
adds the ``"fused"`` head and the alignment of :class:`~chexradi.guidance.RadiomicsGuidance`.
Its settings group is ``radiomics`` (:data:`DEFAULTS`).
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from .._io import atomic_write, sync_folders

logger = logging.getLogger("chexradi.guidance")

__all__ = ["RadiomicsSource", "DEFAULTS", "check_settings", "write_images", "image_file", "extract_vectors",
           "extract_cases", "Vectors", "read_vectors", "merge_shards", "RadiomicsWorkers"]

_CARRIED = ("Image", "Mask", "split", "index", "class")


def image_file(split: str, index: int) -> str:
    """Relative path (under the run folder) of the radiomics image of ``index`` in ``split``."""
    return f"images/{split}/{index:06d}.nrrd"


def write_images(splits: Mapping[str, Any], run_dir: Path) -> int:
    """Write the radiomics image of every item (skipping those already there); returns how many were written.

    ``images/done.json`` records the counts; when it matches, nothing is read.
    """
    from .._nrrd import write_nrrd
    from ..data.transforms import from_model_input

    counts = {s: len(ds) for s, ds in splits.items()}
    done = run_dir / "images" / "done.json"
    if done.is_file():
        try:
            if json.loads(done.read_text()).get("counts") == counts:
                return 0
        except (OSError, ValueError):
            pass
    written = 0
    for split, ds in splits.items():
        for i in range(len(ds)):
            path = run_dir / image_file(split, i)
            if path.is_file():
                continue
            x = ds[i]["image"]
            arr = from_model_input(np.asarray(x)) * 255.0
            write_nrrd(path, arr.astype(np.float32), (1.0, 1.0), sync=False)  # made durable below, at once
            written += 1
    sync_folders([run_dir / "images" / split for split in splits])
    with atomic_write(done) as fh:
        json.dump({"counts": counts}, fh)
    return written


@dataclass
class Vectors:
    """Guidance vectors of every split.

    Attributes
    ----------
    by_split : dict
        split -> ``(N, K * F)`` float64 (NaN where a case failed or is missing).
    names : list of str
        Column names ``"<class>|<feature>"``.
    n_cases, n_failed : int
        Cases extracted / failed in this round.
    seconds : float
        Wall time of the extraction.
    """

    by_split: dict[str, np.ndarray] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    n_cases: int = 0
    n_failed: int = 0
    seconds: float = 0.0


def _cases(rows: Iterable[Mapping[str, Any]], run_dir: Path, round_dir: Path) -> Iterator[dict[str, Any]]:
    run_dir, round_dir = run_dir.resolve(), round_dir.resolve()
    for r in rows:
        if not r.get("empty"):
            mask = Path(r["mask_file"]).resolve() if r.get("mask_file") else round_dir / r["mask"]
            yield {"Image": str(run_dir / image_file(r["split"], int(r["index"]))), "Mask": str(mask),
                   "split": r["split"], "index": int(r["index"]), "class": r["class"]}


class RadiomicsWorkers:
    """The radiomics worker processes of a run (a :class:`~chexradi.radiomics.workers.WorkerPool`), when
    the ``radiomics`` group asks for several local processes (``jobs`` 0 or > 1, no ``scheduler``).

    The loop starts them while a round's masks are being made (their start-up, about 0.7 s of one core
    each, then overlaps mask making, which uses one core), every guided round's extraction uses them, and
    the run closes them at its end. :meth:`start` may be called any number of times.
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings
        self.pool: Any = None

    @property
    def wanted(self) -> bool:
        from ..radiomics.workers import resolve_jobs

        return resolve_jobs(int(self.settings["jobs"])) > 1 and not self.settings.get("scheduler")

    def start(self) -> Any:
        """Start the workers unless running or not wanted; returns the pool (None when not wanted)."""
        if self.pool is None and self.wanted:
            from ..radiomics.workers import WorkerPool

            self.pool = WorkerPool(self.settings["params"], engine=self.settings["engine"],
                                   jobs=int(self.settings["jobs"]))
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


def extract_vectors(rows: Iterable[Mapping[str, Any]], *, counts: Mapping[str, int], class_names: Sequence[str],
                    run_dir: Path, mask_round_dir: Path, out_dir: Path, settings: Mapping[str, Any],
                    progress: Optional[bool] = None, pool: Any = None) -> Vectors:
    """Extract the features of every non-empty mask in ``rows`` (a round's regions) and build the vectors.

    ``cases.csv``, ``radiomics.csv`` (+ journal and metadata) go to ``out_dir``;
    ``settings`` is the loop's resolved ``radiomics`` group; ``pool`` the run's
    :class:`RadiomicsWorkers` pool, if any. A re-run resumes from the journal.
    """
    done = extract_cases(rows, run_dir=run_dir, mask_round_dir=mask_round_dir, out_dir=out_dir, settings=settings,
                         progress=progress, pool=pool)
    vec = read_vectors(out_dir / "radiomics.csv", counts=counts, class_names=class_names)
    vec.n_cases, vec.n_failed, vec.seconds = done.n_cases, done.n_failed, done.seconds
    return vec


def extract_cases(rows: Iterable[Mapping[str, Any]], *, run_dir: Path, mask_round_dir: Path, out_dir: Path,
                  settings: Mapping[str, Any], progress: Optional[bool] = None, pool: Any = None) -> Vectors:
    """The extraction of :func:`extract_vectors` without reading the vectors back: writes ``out_dir`` and
    returns the counts and seconds (``by_split`` and ``names`` empty). A distributed run uses it per rank,
    then reads the merged file once (:func:`merge_shards`, :func:`read_vectors`)."""
    from ..radiomics.batch import extract_batch

    out_dir.mkdir(parents=True, exist_ok=True)
    cases_csv = out_dir / "cases.csv"
    n_cases = 0
    with atomic_write(cases_csv, newline="") as fh:  # the rows are read one at a time
        w = csv.DictWriter(fh, fieldnames=list(_CARRIED), lineterminator="\n")
        w.writeheader()
        for case in _cases(rows, run_dir, mask_round_dir):
            w.writerow(case)
            n_cases += 1
    if not n_cases:  # every mask empty: nothing to extract, every block NaN
        with atomic_write(out_dir / "radiomics.csv", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(_CARRIED)
        return Vectors()
    report = extract_batch(cases_csv, out=out_dir / "radiomics.csv", params=settings["params"],
                           engine=settings["engine"], jobs=int(settings["jobs"]), resume=True, progress=progress,
                           scheduler=settings.get("scheduler"), pool=pool)
    if report.n_failed:
        logger.warning("radiomics: %d of %d case(s) failed (their blocks are NaN); see %s", report.n_failed,
                       report.n_total, out_dir / "radiomics.csv.meta.json")
    return Vectors(n_cases=report.n_total, n_failed=report.n_failed, seconds=float(report.elapsed))


def merge_shards(shard_dirs: Sequence[Path], out_dir: Path) -> None:
    """Concatenate the ``cases.csv`` and ``radiomics.csv`` of the shards (one per rank of a distributed run,
    each written by :func:`extract_vectors`) into ``out_dir``, in shard order. The feature columns are the
    union (a shard whose cases all failed has none); a missing value is left blank."""
    for name in ("cases.csv", "radiomics.csv"):
        columns: list[str] = []
        tables = []
        for d in shard_dirs:
            with open(d / name, newline="") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                for c in reader.fieldnames or []:
                    if c not in columns:
                        columns.append(c)
            tables.append(rows)
        with atomic_write(out_dir / name, newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, restval="", lineterminator="\n")
            w.writeheader()
            for rows in tables:
                w.writerows(rows)


def read_vectors(path: Path, *, counts: Mapping[str, int], class_names: Sequence[str]) -> Vectors:
    """The vectors of a ``radiomics.csv`` written by :func:`extract_vectors`."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty; delete it and rerun the round")
        feats = [c for c in header if c not in _CARRIED]
        col = {c: i for i, c in enumerate(header)}
        k_of = {c: k for k, c in enumerate(class_names)}
        f = len(feats)
        by_split = {s: np.full((n, len(class_names) * f), np.nan) for s, n in counts.items()}
        for row in reader:
            split, idx, cls = row[col["split"]], int(row[col["index"]]), row[col["class"]]
            if split not in by_split or cls not in k_of:
                continue
            k = k_of[cls]
            vals = [float(row[col[c]]) if row[col[c]] != "" else np.nan for c in feats]
            by_split[split][idx, k * f:(k + 1) * f] = vals
    names = [f"{c}|{ft}" for c in class_names for ft in feats]
    return Vectors(by_split=by_split, names=names)


# ------------------------------------------------------------------------------------------------
# the source
# ------------------------------------------------------------------------------------------------
#: The ``radiomics`` settings group (see docs/loop.md).
DEFAULTS: dict[str, Any] = {
    "engine": "numba",       # "numba" (chexradi) or "pyradiomics"
    "jobs": 0,               # worker processes for extraction; 0: one per CPU
    "scheduler": None,       # None: local processes; "dask": a local Dask cluster; "dask:ADDRESS": yours
    "params": {"binWidth": 8},  # PyRadiomics settings (dict or YAML/JSON file) on the 0-255 image
}


def check_settings(s: Mapping[str, Any]) -> None:
    """Check a resolved ``radiomics`` group.

    Raises
    ------
    ValueError
        An unknown engine, a bad job count, scheduler or parameter set (the message names the key).
    """
    from ..names import ENGINES

    if s["engine"] not in ENGINES:
        raise ValueError(f"radiomics['engine'] = {s['engine']!r} is invalid: use one of {', '.join(ENGINES)}")
    jobs = s["jobs"]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0:
        raise ValueError(f"radiomics['jobs'] = {jobs!r} is invalid: give an integer >= 0")
    from ..radiomics.dask_backend import parse_scheduler
    from ..radiomics.settings import load_settings

    try:
        parse_scheduler(s["scheduler"])
    except ValueError as exc:
        raise ValueError(f"radiomics['scheduler']: {exc}") from exc
    try:
        load_settings(s["params"])
    except (ValueError, FileNotFoundError) as exc:
        raise ValueError(f"radiomics['params']: {exc}") from exc


class RadiomicsSource:
    """Radiomics inside the masks of every (image, class) -> a standardised vector per image (module docstring)."""

    name = "radiomics"
    needs_masks = True
    static = False
    defaults = DEFAULTS

    def __init__(self) -> None:
        self._workers: Optional[RadiomicsWorkers] = None

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        check_settings(settings)

    def setup(self, ctx: Any) -> None:
        """Write the radiomics images of every split (once per run; skipped when already there)."""
        import time

        t0 = time.perf_counter()
        n = write_images(ctx.parts, ctx.run_dir)
        if n:
            ctx.say(f"wrote {n} radiomics image(s) to {ctx.run_dir / 'images'} in {time.perf_counter() - t0:.1f} s")

    def start(self, settings: Mapping[str, Any]) -> Any:
        """Start the worker processes (when several local ones are wanted) unless running; returns the pool."""
        if self._workers is None:
            self._workers = RadiomicsWorkers(settings)
        return self._workers.start()

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def prepare(self, ctx: Any) -> Any:
        """Extract the features inside the round's masks (resuming from the journal), gather a distributed run's
        shards, read the vectors and fit the standardizer on the training split (``standardizer.json``)."""
        import time

        from .source import Prepared
        from .standardize import Standardizer

        t = time.perf_counter()
        assert ctx.mask_rows is not None, "the radiomics source needs the round's mask rows"
        counts = {s: len(ds) for s, ds in ctx.parts.items()}
        rad_dir = ctx.round_dir / "radiomics"
        pool = self.start(ctx.settings)  # already running unless this run resumed here
        rows = ctx.mask_rows()
        dist = ctx.dist
        if not dist.is_distributed:
            v = extract_vectors(rows, counts=counts, class_names=ctx.class_names, run_dir=ctx.run_dir,
                                mask_round_dir=ctx.round_dir, out_dir=rad_dir, settings=ctx.settings,
                                progress=ctx.progress, pool=pool)
        else:  # each rank its shard into radiomics/rank<r>/; rank 0 concatenates; every rank reads the whole once
            mine = extract_cases(rows, run_dir=ctx.run_dir, mask_round_dir=ctx.round_dir,
                                 out_dir=rad_dir / f"rank{dist.rank}", settings=ctx.settings, progress=ctx.progress,
                                 pool=pool)
            totals = dist.all_reduce_sum(np.array([mine.n_cases, mine.n_failed]))  # also waits for every shard
            if dist.is_main:
                merge_shards([rad_dir / f"rank{r}" for r in range(dist.world_size)], rad_dir)
            dist.barrier()
            v = read_vectors(rad_dir / "radiomics.csv", counts=counts, class_names=ctx.class_names)
            v.n_cases, v.n_failed = int(totals[0]), int(totals[1])
        std = Standardizer().fit(v.by_split["train"])
        if dist.is_main:
            with atomic_write(ctx.round_dir / "standardizer.json") as fh:
                json.dump(std.state_dict(), fh)
        seconds = time.perf_counter() - t
        ctx.say(f"round {ctx.k}: {v.n_cases} radiomics case(s), {v.n_failed} failed, {len(v.names)} values per "
                f"image, {seconds:.1f} s")
        return Prepared(data={"vectors": v.by_split, "names": v.names, "standardizer": std},
                        record={"cases": v.n_cases, "failed": v.n_failed, "values": len(v.names), "nonfinite": 0,
                                "features": "radiomics/radiomics.csv"},  # in the round's folder
                        seconds=seconds)

    def wrap(self, dataset: Any, prepared: Any, split: str) -> Any:
        """The split's items with their standardised vector (``guidance``, ``guidance_valid``); the non-finite
        values the standardizer replaced are counted in the record."""
        from .dataset import GuidanceDataset

        std = prepared.data["standardizer"]
        wrapped = GuidanceDataset(dataset, prepared.data["vectors"][split], standardizer=std)
        prepared.record["nonfinite"] += std.n_nonfinite  # counted by the transform the dataset just made
        return wrapped

    def module(self, prepared: Any, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> Any:
        """:class:`~chexradi.guidance.RadiomicsGuidance` over the standardised vectors."""
        from .fusion import RadiomicsGuidance

        return RadiomicsGuidance(num_features, prepared.data["standardizer"].dim, num_classes,
                                 hidden=guidance["hidden"], proj_dim=guidance["proj_dim"],
                                 alignment=guidance["alignment"], align_weight=guidance["align_weight"],
                                 temperature=guidance["temperature"], fuse=guidance["fuse"], pos_weight=pos_weight,
                                 dropout=guidance["dropout"], mode="image")
