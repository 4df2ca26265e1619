"""chexradi vs PyRadiomics on the same inputs, in one process, on one core.

For each case both engines extract the same classes with the same settings from
the same SimpleITK images. We report, after Numba warm-up:

* per-class time: chexradi's class (matrix + features, from the extractor's own
  timings) vs PyRadiomics' feature class run on the same cropped images;
* total time of one full extraction: chexradi ``Extractor.execute`` vs
  PyRadiomics ``RadiomicsFeatureExtractor.execute`` (same pre-processing steps);
* the largest relative difference between the two engines' values;
* cases: the 512 and 1024 radiographs with lung fields, PyRadiomics' brain1 (3-D), random
  2-D cases, and a generated CT-like lung (3-D, ~2e5 ROI voxels, one repeat: PyRadiomics'
  shape alone takes ~12 s on it);
* the Numba warm-up cost in a fresh process, without and with the on-disk cache;
* batch throughput: N varied radiographs (512x512 NRRD files with lung-field
  masks, a cases.csv) through chexradi's ``extract_batch`` with ``jobs=1``,
  ``jobs=2`` (process pool) and a Dask LocalCluster of 2 workers, chexradi's
  CLI, and PyRadiomics' own batch mode (``pyradiomics cases.csv --jobs N``) and
  ``extract_batch(engine="pyradiomics")`` with the same jobs: wall seconds
  (worker start-up included), cases/s, speed-ups, peak memory of the process
  tree, and a check that the outputs agree;
* jobs scaling: chexradi alone on a larger batch (1024 radiographs), ``jobs=1``
  and ``jobs=2`` run alternately three times (median), then Dask once.

Usage: python benchmarks/bench_extract.py [--repeat 5] [--quick] [--json PATH]
           [--batch-cases 256] [--batch-jobs 2] [--scaling-cases 1024]
           [--scaling-repeat 3] [--skip-batch | --batch-only]
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # subprocesses too

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cases  # noqa: E402
from _results import rel_diff  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

from chexradi.radiomics.extractor import Extractor, versions  # noqa: E402

CLASSES_2D = ["firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
CLASSES_3D = ["firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]


def max_rel_diff(a: dict, b: dict) -> float:
    return max((rel_diff(a[k], v) for k, v in b.items()), default=0.0)


def time_call(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def pyradiomics_class_times(image, mask, settings, classes, repeat):
    """Time each PyRadiomics feature class on the cropped images, as execute() runs it."""
    from radiomics import featureextractor, imageoperations

    s = dict(settings)
    bb, corrected = imageoperations.checkMask(image, mask, **s)
    if corrected is not None:
        mask = corrected
    out = {}
    for cls in classes:
        def run(cls=cls):
            ci, cm = imageoperations.cropToTumorMask(image, mask, bb)
            fc = featureextractor.getFeatureClasses()[cls](ci, cm, **s)
            fc.execute()
        out[cls] = time_call(run, repeat)
    return out


def bench_case(name, image, mask, settings, classes, repeat):
    fc = {c: [] for c in classes}
    ours = Extractor(settings, featureClass=fc)
    ref = Extractor(settings, featureClass=fc, engine="pyradiomics")
    t0 = time.perf_counter()
    a = ours.execute(image, mask)  # first call in this process (kernels loaded or compiled)
    first = time.perf_counter() - t0
    b = ref.execute(image, mask)
    diff = max_rel_diff(a, b)
    assert set(a) == set(b), (sorted(set(a) ^ set(b)))
    per_class = {c: [] for c in classes}
    for _ in range(repeat):
        ours.execute(image, mask)
        for c, t in ours.last_timings.items():
            if c in per_class:  # classes only (not "filters")
                per_class[c].append(t)
    ours_cls = {c: statistics.median(v) for c, v in per_class.items() if v}
    ref_cls = pyradiomics_class_times(image, mask, ref.settings.pyradiomics_settings(), classes, repeat)
    t_ours = time_call(lambda: ours.execute(image, mask), repeat)
    t_ref = time_call(lambda: ref.execute(image, mask), repeat)
    arr = sitk.GetArrayViewFromImage(mask)
    return {
        "case": name,
        "size": list(image.GetSize()),
        "roi_voxels": int((arr == settings.get("label", 1)).sum()),
        "features": len(a),
        "max_rel_diff": diff,
        "first_call_s": first,
        "classes": {c: {"chexradi_s": ours_cls.get(c, float("nan")), "pyradiomics_s": ref_cls[c]} for c in classes},
        "total": {"chexradi_s": t_ours, "pyradiomics_s": t_ref, "speedup": t_ref / t_ours},
    }


WARMUP_SNIPPET = textwrap.dedent(
    """
    import time, numpy as np
    t0 = time.perf_counter()
    import chexradi
    from chexradi.radiomics.extractor import Extractor
    rng = np.random.default_rng(0)
    im = rng.integers(0, 255, (64, 64)).astype(np.uint8); m = np.zeros((64, 64), np.uint8); m[8:50, 10:55] = 1
    t1 = time.perf_counter()
    Extractor().execute(im, m)
    t2 = time.perf_counter()
    Extractor().execute(im, m)
    t3 = time.perf_counter()
    print(t1 - t0, t2 - t1, t3 - t2)
    """
)


def warmup_costs() -> dict:
    """First-extraction cost in fresh processes: cold cache (compile) vs warm on-disk cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        res = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", WARMUP_SNIPPET], env=env, capture_output=True, text=True,
                                 check=True)
            res.append([float(x) for x in out.stdout.split()])
    return {
        "import_s": res[1][0],
        "first_extraction_no_cache_s": res[0][1],
        "first_extraction_with_cache_s": res[1][1],
        "second_extraction_s": res[1][2],
    }


# ---------------------------------------------------------------------------------------------
# batch throughput
# ---------------------------------------------------------------------------------------------
BATCH_PARAMS = "setting:\n  binWidth: 25\nimageType:\n  Original: {}\nfeatureClass:\n" + "".join(
    f"  {c}: []\n" for c in CLASSES_2D)
PYRADIOMICS_CLI = "import sys; from radiomics.scripts import parse_args; sys.exit(parse_args())"


def write_batch_cases(folder: Path, n: int, size: int) -> tuple[Path, list[str]]:
    """n varied radiograph cases (NRRD image + lung-field mask) and their cases.csv.

    Each available radiograph is made once at size + margin with its lung-field mask
    (``_cases.radiograph_case``); case i takes radiograph i mod k, a size x size window
    at a random offset, a left-right flip on every other pass over the radiographs and
    a small intensity shift, so that no two cases are the same image."""
    sources = list(_cases.real_radiographs())
    margin = max(4, size // 32)
    bases = []
    for _, path in sources:
        im, m = _cases.radiograph_case(path, size + margin)
        bases.append((sitk.GetArrayFromImage(im).astype(np.int16), sitk.GetArrayFromImage(m)))
    rows = []
    for i in range(n):
        rng = np.random.default_rng(1000 + i)
        k = i % len(bases)
        image, mask = bases[k]
        oy, ox = (int(v) for v in rng.integers(0, margin + 1, 2))
        # 8-bit values stored as int16: PyRadiomics 3.1.4 with NumPy 2 mis-bins uint8 images (in its binning,
        # maximum + 2 * binWidth overflows in uint8 for an integer binWidth such as the default 25)
        image = np.clip(image[oy:oy + size, ox:ox + size] + int(rng.integers(-12, 13)), 0, 255).astype(np.int16)
        mask = mask[oy:oy + size, ox:ox + size]
        if (i // len(bases)) % 2:
            image, mask = image[:, ::-1], mask[:, ::-1]
        img_p, msk_p = folder / f"case{i:04d}_image.nrrd", folder / f"case{i:04d}_mask.nrrd"
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(image)), str(img_p))
        sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(mask)), str(msk_p))
        rows.append((img_p, msk_p))
    cases_csv = folder / "cases.csv"
    with open(cases_csv, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["Image", "Mask"])
        w.writerows([(str(a), str(b)) for a, b in rows])
    return cases_csv, [name for name, _ in sources]


class PeakRSS:
    """Peak resident memory of a process tree, sampled in a background thread every ``interval`` s.

    Each sample sums the RSS of ``pid`` (less ``baseline`` bytes) and of all its descendants,
    except the pids in ``exclude`` (processes that existed before the measured run). The list of
    descendants is refreshed every ``rescan`` samples; their RSS is read at every sample."""

    def __init__(self, pid: int, *, baseline: int = 0, exclude: frozenset = frozenset(), interval: float = 0.02,
                 rescan: int = 5) -> None:
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.baseline, self.exclude, self.interval, self.rescan = baseline, exclude, interval, rescan
        self.peak = 0
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        psutil = self._psutil
        procs: list = []
        n = 0
        while True:
            if n % self.rescan == 0:
                try:
                    procs = [p for p in self.root.children(recursive=True) if p.pid not in self.exclude]
                except psutil.Error:
                    procs = []
            n += 1
            total = 0
            try:
                total += self.root.memory_info().rss - self.baseline
            except psutil.Error:
                pass
            alive = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                    alive += 1
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.max_procs = max(self.max_procs, alive)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _run_in_process(fn) -> dict:
    import psutil

    me = psutil.Process()
    before = frozenset(p.pid for p in me.children(recursive=True))
    baseline = me.memory_info().rss
    with PeakRSS(os.getpid(), baseline=baseline, exclude=before) as mem:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": mem.peak / 2**20, "driver_baseline_mb": baseline / 2**20,
            "processes": mem.max_procs + 1}


def _run_subprocess(cmd: list[str], cwd: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakRSS(proc.pid) as mem:
        out, err = proc.communicate()
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited with {proc.returncode}:\n{out[-2000:]}\n{err[-4000:]}")
    return {"seconds": seconds, "peak_mb": mem.peak / 2**20, "processes": mem.max_procs + 1}


def _read_features(path: Path) -> dict[str, dict[str, str]]:
    """{image path: {original_* column: cell text}} of a features CSV (chexradi's or PyRadiomics')."""
    with open(path, newline="") as fh:
        return {os.path.normpath(r["Image"]): {k: v for k, v in r.items() if k.startswith("original_")}
                for r in csv.DictReader(fh)}


def _max_rel_diff_cells(a: dict[str, dict[str, str]], b: dict[str, dict[str, str]]) -> tuple[float, str]:
    assert set(a) == set(b), "the two outputs hold different cases"
    worst, where = 0.0, ""
    for case, fa in a.items():
        fb = b[case]
        assert set(fa) == set(fb), f"feature columns differ: {sorted(set(fa) ^ set(fb))[:8]}"
        d = max_rel_diff({k: float(v or "nan") for k, v in fa.items()}, {k: float(v or "nan") for k, v in fb.items()})
        if d > worst:
            worst, where = d, Path(case).name
    return worst, where


def _prepare_batch(folder: Path, n_cases: int, size: int, what: str) -> tuple[Path, list[str], Path]:
    """Write the cases and the parameter file into ``folder`` and warm Numba up; (cases.csv, sources, params)."""
    print(f"... {what}: writing {n_cases} cases {size}x{size}", file=sys.stderr, flush=True)
    cases_csv, sources = write_batch_cases(folder, n_cases, size)
    params = folder / "params.yaml"
    params.write_text(BATCH_PARAMS)
    # Numba warm-up (kernels compiled or loaded into the on-disk cache) on one of the cases, in this
    # process; the worker processes then load the kernels from that cache.
    logging.getLogger("radiomics").setLevel(logging.ERROR)  # PyRadiomics' GLCM notice, once per case
    first = next(iter(_read_cases(cases_csv)))
    Extractor(str(params)).execute(sitk.ReadImage(first[0]), sitk.ReadImage(first[1]))
    os.sync()  # the files just written go to disk now, not while a timed batch runs
    return cases_csv, sources, params


def bench_batch(n_cases: int, size: int, jobs2: int = 2) -> dict:
    from chexradi.radiomics.batch import extract_batch

    with tempfile.TemporaryDirectory(prefix="chexradi-bench-batch-") as tmp:
        folder = Path(tmp)
        cases_csv, sources, params = _prepare_batch(folder, n_cases, size, "batch")
        rois = [int((sitk.GetArrayViewFromImage(sitk.ReadImage(m)) == 1).sum()) for _, m in _read_cases(cases_csv)]

        chexradi_cli = [sys.executable, "-m", "chexradi", "extract", "--batch", str(cases_csv), "--param", str(params)]
        pyrad_cli = [sys.executable, "-c", PYRADIOMICS_CLI, str(cases_csv), "--param", str(params), "-f", "csv",
                     "--verbosity", "1"]

        def batch(out, **kw):
            return lambda: _check_report(extract_batch(str(cases_csv), out=str(out), params=str(params), resume=False,
                                                       progress=False, **kw), n_cases)

        # (key, label, family, jobs, how, extract_batch arguments or command line); a family's jobs-1 row is
        # its "x jobs1" reference
        ours, cli, pyr, eng = "chexradi", "chexradi CLI", "PyRadiomics CLI", "engine=pyradiomics"
        runs = [
            ("chexradi_jobs1", "chexradi processes", ours, 1, "in-process", dict(jobs=1)),
            ("chexradi_jobs2", "chexradi processes", ours, jobs2, "in-process", dict(jobs=jobs2)),
            ("chexradi_dask2", "chexradi dask LocalCluster", ours, jobs2, "in-process",
             dict(jobs=jobs2, scheduler="dask")),
            ("chexradi_cli1", "chexradi CLI (chexradi extract)", cli, 1, "cli", chexradi_cli + ["--jobs", "1"]),
            ("chexradi_cli2", "chexradi CLI (chexradi extract)", cli, jobs2, "cli",
             chexradi_cli + ["--jobs", str(jobs2)]),
            ("pyradiomics_cli1", "PyRadiomics CLI (pyradiomics)", pyr, 1, "cli", pyrad_cli + ["--jobs", "1"]),
            ("pyradiomics_cli2", "PyRadiomics CLI (pyradiomics)", pyr, jobs2, "cli",
             pyrad_cli + ["--jobs", str(jobs2)]),
            ("pyengine_jobs1", "chexradi batch, engine=pyradiomics", eng, 1, "in-process",
             dict(jobs=1, engine="pyradiomics")),
            ("pyengine_jobs2", "chexradi batch, engine=pyradiomics", eng, jobs2, "in-process",
             dict(jobs=jobs2, engine="pyradiomics")),
        ]
        rows = []
        outputs = {}
        for key, label, family, jobs, how, spec in runs:
            out = folder / f"{key}.csv"
            print(f"... batch: {label} jobs {jobs}", file=sys.stderr, flush=True)
            if how == "cli":
                res = _run_subprocess(spec + ["--out", str(out)], cwd=folder)
            else:
                res = _run_in_process(batch(out, **spec))
            outputs[key] = _read_features(out)
            if len(outputs[key]) != n_cases:
                raise RuntimeError(f"{label} jobs {jobs}: {len(outputs[key])} of {n_cases} cases in {out}")
            case_s = _journal_case_seconds(out)  # chexradi's batches: each case's time in its worker
            rows.append({"key": key, "run": label, "family": family, "jobs": jobs, "how": how, **res,
                         "cases_per_s": n_cases / res["seconds"],
                         "case_ms_median": float(np.median(case_s)) * 1e3 if case_s else None,
                         "case_s_sum": float(np.sum(case_s)) if case_s else None,
                         # wall time not spent in cases (start-up, scheduling, output), if the cases were spread
                         # evenly over the workers
                         "overhead_s": res["seconds"] - float(np.sum(case_s)) / jobs if case_s else None})

    by_key = {r["key"]: r for r in rows}
    for r in rows:
        ref = by_key["pyradiomics_cli1" if r["jobs"] == 1 else "pyradiomics_cli2"]
        r["x_pyradiomics"] = ref["seconds"] / r["seconds"]
        base = next(b for b in rows if b["family"] == r["family"] and b["jobs"] == 1)
        r["x_jobs1"] = base["seconds"] / r["seconds"]

    ours = [k for k in outputs if k.startswith("chexradi")]
    identical = all(outputs[k] == outputs[ours[0]] for k in ours)
    n_features = len(next(iter(outputs[ours[0]].values())))
    vs_cli, vs_cli_case = _max_rel_diff_cells(outputs["chexradi_jobs1"], outputs["pyradiomics_cli1"])
    py_cli_12, _ = _max_rel_diff_cells(outputs["pyradiomics_cli1"], outputs["pyradiomics_cli2"])
    engine_vs_cli, _ = _max_rel_diff_cells(outputs["pyengine_jobs1"], outputs["pyradiomics_cli1"])
    per_image = by_key["pyengine_jobs1"]["case_ms_median"] / by_key["chexradi_jobs1"]["case_ms_median"]
    return {
        "cases": n_cases,
        "size": [size, size],
        "sources": sources,
        "roi_pixels": {"min": min(rois), "median": int(np.median(rois)), "max": max(rois)},
        "classes": CLASSES_2D,
        "settings": "PyRadiomics defaults (binWidth 25, imageType Original), the seven 2-D classes",
        "features": n_features,
        "startup_included": True,
        "memory": ("peak RSS summed over the process tree, sampled every 20 ms; in-process rows: the driver's RSS "
                   "minus its RSS before the call, plus its new child processes; CLI rows: the subprocess and its "
                   "children"),
        "rows": rows,
        "per_image_speedup_jobs1": per_image,
        "agreement": {
            "chexradi_rows_identical": identical,
            "chexradi_rows": ours,
            "max_rel_diff_chexradi_vs_pyradiomics_cli": vs_cli,
            "worst_case": vs_cli_case,
            "max_rel_diff_pyradiomics_cli_jobs1_vs_jobs2": py_cli_12,
            "max_rel_diff_engine_pyradiomics_vs_pyradiomics_cli": engine_vs_cli,
        },
    }


def bench_jobs_scaling(n_cases: int, size: int, jobs2: int = 2, repeat: int = 3) -> dict:
    """chexradi alone on a batch large enough that worker start-up is a small part: jobs 1 and jobs N (process
    pool), ``repeat`` times each in alternation (this machine's speed drifts from minute to minute), then a
    Dask LocalCluster of N workers once; median seconds, cases/s and speed-up over jobs 1."""
    from chexradi.radiomics.batch import extract_batch

    with tempfile.TemporaryDirectory(prefix="chexradi-bench-jobs-") as tmp:
        folder = Path(tmp)
        cases_csv, _, params = _prepare_batch(folder, n_cases, size, "jobs scaling")
        specs = (("jobs1", "chexradi processes", dict(jobs=1)),
                 (f"jobs{jobs2}", "chexradi processes", dict(jobs=jobs2)),
                 (f"dask{jobs2}", "chexradi dask LocalCluster", dict(jobs=jobs2, scheduler="dask")))
        order = [spec for _ in range(max(1, repeat)) for spec in specs[:2]] + [specs[2]]
        runs: dict[str, list[dict]] = {}
        outputs, case_s = {}, {}
        for key, label, kw in order:
            out = folder / f"{key}.csv"
            print(f"... jobs scaling: {label} jobs {kw['jobs']} (run {len(runs.get(key, [])) + 1})", file=sys.stderr,
                  flush=True)
            runs.setdefault(key, []).append(_run_in_process(
                lambda: _check_report(extract_batch(str(cases_csv), out=str(out), params=str(params), resume=False,
                                                    progress=False, **kw), n_cases)))
            outputs[key] = _read_features(out)
            case_s.setdefault(key, []).extend(_journal_case_seconds(out))
        rows = []
        for key, label, kw in specs:
            res = runs[key]
            seconds = float(np.median([r["seconds"] for r in res]))
            rows.append({"key": key, "run": label, "jobs": kw["jobs"], "seconds": seconds,
                         "runs_s": [r["seconds"] for r in res], "peak_mb": max(r["peak_mb"] for r in res),
                         "cases_per_s": n_cases / seconds,
                         "case_ms_median": float(np.median(case_s[key])) * 1e3 if case_s[key] else None})
    for r in rows:
        r["x_jobs1"] = rows[0]["seconds"] / r["seconds"]
    return {"cases": n_cases, "size": [size, size], "repeat": max(1, repeat), "rows": rows,
            "identical": all(o == outputs["jobs1"] for o in outputs.values())}


def print_jobs_scaling(b: dict) -> None:
    print(f"\n## jobs scaling: {b['cases']} radiographs {b['size'][0]}x{b['size'][1]}, chexradi only, start-up "
          f"included, median of {b.get('repeat', 1)} alternated runs (dask: 1 run)")
    print(f"{'run':<32}{'jobs':>6}{'seconds':>9}{'cases/s':>9}{'x jobs1':>9}{'peak MB':>9}{'ms/case':>9}  runs (s)")
    for r in b["rows"]:
        ms = "-" if r["case_ms_median"] is None else f"{r['case_ms_median']:.1f}"
        each = " ".join(f"{x:.2f}" for x in r.get("runs_s", [r["seconds"]]))
        print(f"{r['run']:<32}{r['jobs']:>6}{r['seconds']:>9.2f}{r['cases_per_s']:>9.1f}{r['x_jobs1']:>9.2f}"
              f"{r['peak_mb']:>9.0f}{ms:>9}  {each}")
    print(f"Outputs identical: {b['identical']}")


def _journal_case_seconds(out: Path) -> list[float]:
    """Per-case seconds (read + extract, in the worker) from a chexradi batch journal; [] when there is none."""
    from chexradi.radiomics.batch import journal_path

    path = journal_path(out)
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["seconds"] for r in recs if r.get("type") == "case" and r.get("status") == "ok"]


def _read_cases(cases_csv: Path) -> list[tuple[str, str]]:
    with open(cases_csv, newline="") as fh:
        return [(r["Image"], r["Mask"]) for r in csv.DictReader(fh)]


def _check_report(report, n_cases: int) -> None:
    if report.n_ok != n_cases:
        raise RuntimeError(f"extract_batch: {report.n_ok} of {n_cases} cases ok; failures: {report.failures[:3]}")


def print_batch(b: dict) -> None:
    h, w = b["size"]
    print(f"\n## batch: {b['cases']} radiographs {h}x{w}, lung fields (ROI {b['roi_pixels']['min']}-"
          f"{b['roi_pixels']['max']} px), {len(b['classes'])} classes, {b['features']} features, binWidth 25")
    print(f"{'run':<35}{'jobs':>5}{'seconds':>9}{'cases/s':>9}{'x PyRadiomics':>15}{'x jobs1':>9}{'peak MB':>9}"
          f"{'ms/case':>9}")
    for r in b["rows"]:
        ms = "-" if r["case_ms_median"] is None else f"{r['case_ms_median']:.1f}"
        print(f"{r['run']:<35}{r['jobs']:>5}{r['seconds']:>9.2f}{r['cases_per_s']:>9.1f}{r['x_pyradiomics']:>15.1f}"
              f"{r['x_jobs1']:>9.2f}{r['peak_mb']:>9.0f}{ms:>9}")
    a = b["agreement"]
    print("Seconds: wall time of the whole batch as a user runs it, worker start-up included (process pool: spawn "
          "of the workers, which load the Numba kernels from the on-disk cache warmed beforehand; dask: "
          "LocalCluster start and close; CLI rows: a fresh interpreter, imports included). extract_batch rows "
          "run in this process, which has chexradi imported. x PyRadiomics: vs the PyRadiomics CLI row with the "
          "same jobs; x jobs1: vs the jobs-1 row of the same kind.")
    print("ms/case: median time of one case in its worker (read, pre-processing, extraction), from the chexradi "
          "batch journal (none for PyRadiomics' CLI).")
    r1, p1 = (next(r for r in b["rows"] if r["key"] == k) for k in ("chexradi_jobs1", "pyengine_jobs1"))
    print(f"Per image on one core (jobs 1, median ms/case, same reader and pre-processing): chexradi "
          f"{r1['case_ms_median']:.1f} ms, PyRadiomics {p1['case_ms_median']:.1f} ms: "
          f"{b['per_image_speedup_jobs1']:.1f}x.")
    print("Peak MB: " + b["memory"] + " (RSS counts shared library pages once per process).")
    print(f"Outputs: chexradi rows ({len(a['chexradi_rows'])}) identical: {a['chexradi_rows_identical']}; "
          f"max rel diff vs PyRadiomics CLI {a['max_rel_diff_chexradi_vs_pyradiomics_cli']:.1e}; "
          f"engine=pyradiomics vs PyRadiomics CLI {a['max_rel_diff_engine_pyradiomics_vs_pyradiomics_cli']:.1e}; "
          f"PyRadiomics CLI jobs 1 vs 2 {a['max_rel_diff_pyradiomics_cli_jobs1_vs_jobs2']:.1e} "
          "(original_* columns; differences <= 1e-9 count as 0).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer cases (CI smoke run); batch: 8 cases at 256x256")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_extract.json")
    ap.add_argument("--batch-cases", type=int, default=None, metavar="N",
                    help="cases in the batch throughput part (default 256; 8 with --quick)")
    ap.add_argument("--batch-jobs", type=int, default=2, metavar="N",
                    help="jobs of the parallel batch rows (default 2)")
    ap.add_argument("--scaling-cases", type=int, default=None, metavar="N",
                    help="cases of the chexradi-only jobs-scaling rows (default 1024; 16 with --quick; 0 skips)")
    ap.add_argument("--scaling-repeat", type=int, default=None, metavar="N",
                    help="alternated jobs-1 / jobs-N runs of the jobs-scaling part, median reported (default 3; 1 "
                         "with --quick)")
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--skip-batch", action="store_true", help="skip the batch throughput part")
    part.add_argument("--batch-only", action="store_true", help="only the batch throughput part")
    args = ap.parse_args()
    n_batch = args.batch_cases if args.batch_cases is not None else (8 if args.quick else 256)
    if n_batch < 1:
        ap.error("--batch-cases must be >= 1")
    batch_size = 256 if args.quick else 512

    results: list = []
    warm = None
    if not args.batch_only:
        results, warm = run_per_case(args)
    batch = scaling = None
    if not args.skip_batch:
        batch = bench_batch(n_batch, batch_size, jobs2=args.batch_jobs)
        n_scaling = args.scaling_cases if args.scaling_cases is not None else (16 if args.quick else 1024)
        if n_scaling > 0:
            repeat = args.scaling_repeat if args.scaling_repeat is not None else (1 if args.quick else 3)
            scaling = bench_jobs_scaling(n_scaling, batch_size, jobs2=args.batch_jobs, repeat=repeat)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {versions()}")
    if not args.batch_only:
        print_per_case(args, results, warm)
    if batch is not None:
        print_batch(batch)
    if scaling is not None:
        print_jobs_scaling(scaling)

    # The JSON keeps the parts this run did not do (e.g. "batch" after --skip-batch) from its previous content.
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {}
    if args.json.exists():
        try:
            payload = json.loads(args.json.read_text())
        except ValueError:
            payload = {}
    payload.update({"machine": {"processor": platform.processor(), "cores": os.cpu_count(),
                                "python": platform.python_version()},
                    "versions": versions()})
    if not args.batch_only:
        payload.update({"repeat": args.repeat, "cases": results, "warmup": warm})
    if batch is not None:
        payload["batch"] = batch
    if scaling is not None:
        payload["jobs_scaling"] = scaling
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(args.json)
    print(f"\nJSON: {args.json}")


def run_per_case(args) -> tuple[list, dict]:
    cases = []
    real = dict(_cases.real_radiographs())
    nih = real.get("00000001_000.png")
    src512 = nih if nih is not None else _cases.rg1_path()
    src_name = "00000001_000.png (NIH)" if nih is not None else "RG1_UNCR.dcm"
    cases.append((f"radiograph 512 lung fields [{src_name}]", *_cases.radiograph_case(src512, 512), {}, CLASSES_2D))
    if not args.quick:
        cases.append(("radiograph 1024 lung fields [RG1_UNCR.dcm]", *_cases.radiograph_case(_cases.rg1_path(), 1024),
                      {}, CLASSES_2D))
        b = _cases.brain1()
        if b is not None:
            cases.append(("brain1 3-D (PyRadiomics case)", *b, {}, CLASSES_3D))
        for size in (128, 256):
            cases.append((f"random 2-D {size}", *_cases.random_2d(size), {}, CLASSES_2D))

    results = []
    for name, image, mask, settings, classes in cases:
        print(f"... {name}", file=sys.stderr, flush=True)
        results.append(bench_case(name, image, mask, settings, classes, args.repeat))
    if not args.quick:  # a CT-like lung of ~2e5 voxels: PyRadiomics' shape alone takes ~12 s, so one repeat
        name = "CT-like lung 3-D, 6 slices of 512 x 512 (generated)"
        print(f"... {name}", file=sys.stderr, flush=True)
        results.append(bench_case(name, *_cases.ct_lung_images(6), {}, CLASSES_3D, 1))
    return results, warmup_costs()


def print_per_case(args, results: list, warm: dict) -> None:
    print(f"\nchexradi vs PyRadiomics, one core, median of {args.repeat}")
    for r in results:
        print(f"\n## {r['case']}  size {r['size']}, ROI {r['roi_voxels']} voxels, {r['features']} features, "
              f"max rel diff {r['max_rel_diff']:.1e}")
        print(f"{'class':<12}{'chexradi ms':>13}{'PyRadiomics ms':>16}{'ratio':>8}")
        for c, t in r["classes"].items():
            print(f"{c:<12}{t['chexradi_s'] * 1e3:>13.2f}{t['pyradiomics_s'] * 1e3:>16.2f}"
                  f"{t['pyradiomics_s'] / t['chexradi_s']:>8.1f}")
        t = r["total"]
        print(f"{'execute()':<12}{t['chexradi_s'] * 1e3:>13.2f}{t['pyradiomics_s'] * 1e3:>16.2f}{t['speedup']:>8.1f}")
    print("\nNumba warm-up in a fresh process (64x64 case, all classes):")
    print(f"  import chexradi {warm['import_s'] * 1e3:.0f} ms; first extraction without cache "
          f"{warm['first_extraction_no_cache_s']:.1f} s (compiles kernels), with the on-disk cache "
          f"{warm['first_extraction_with_cache_s']:.2f} s; second extraction "
          f"{warm['second_extraction_s'] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
