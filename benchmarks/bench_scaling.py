"""How extraction time and peak memory grow with the work, chexradi vs PyRadiomics.

Both engines run in this one process, on one core (thread pools set to 1), on the same
SimpleITK images, with PyRadiomics' default settings except ``binWidth``, all feature classes.
The work grows two ways:

* ROI size: 2-D images 64^2 .. 2048^2, 3-D volumes 32^3 .. 256^3, an ellipse / ellipsoid ROI;
* bin count: binWidth 25, 5 and 1 on grey levels scaled to 0..1000 inside the ROI, i.e. about
  41, 201 and 1001 bins (Ng below is the number of bins actually present in the ROI).

Inputs are synthetic but realistic: smooth random texture (Gaussian-filtered white noise,
sigma 2 voxels), rounded to integers and stored as UInt16, like a radiograph or a CT crop.

For every (dimension, binWidth, size, engine) we report the median wall time of one
``execute()`` (chexradi ``Extractor.execute``, PyRadiomics ``RadiomicsFeatureExtractor.execute``;
the extractors are built outside the timing; Numba kernels are warmed up first on a small case of
the same kind) and the peak memory of that extraction, and fit time and memory against ROI voxels
on a log-log scale: the slope is the exponent of ``cost ∝ voxels^slope``.

Peak memory ("MB" columns) is the increase of the process' resident set size during one
``execute()``: before the call we collect garbage, hand free heap pages back to the OS
(``malloc_trim``), read RSS and reset the kernel's high-water mark (``/proc/self/clear_refs``);
after the call we read the high-water mark (``VmHWM``). The kernel tracks it exactly, so it sees
every allocation -- numpy's, Numba's, PyRadiomics' C extension's -- with no sampling and no cost to
the timing. The input images, built before the call, are not counted. Where the high-water mark
cannot be reset (not Linux), RSS is sampled by a background thread every 5 ms instead, which can
miss short peaks inside native code that holds the GIL; the output says which method was used.

Cases whose single run is predicted to exceed ``--max-seconds`` (from the previous size's time
scaled by the voxel ratio to the power of the slope seen so far, at least 1) are skipped and shown
as ``skipped (est. N s)``. Every measured row also compares the two engines' values (largest
relative difference over all features).

Usage: python benchmarks/bench_scaling.py [--quick] [--dims 2d,3d] [--bin-widths 25,5,1]
       [--sizes-2d 64,128] [--sizes-3d 32,64] [--max-seconds 120] [--repeat 5] [--json PATH]
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import logging
import math
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

from chexradi.radiomics.extractor import Extractor, versions  # noqa: E402

CLASSES = {2: ["firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm"],
           3: ["firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]}
SIZES = {2: [64, 128, 256, 512, 1024, 2048], 3: [32, 64, 128, 256]}
QUICK_SIZES = {2: [64, 128, 256], 3: [32, 64]}
BIN_WIDTHS = [25, 5, 1]
QUICK_BIN_WIDTHS = [25, 5]
LEVELS = 1000  # grey levels inside the ROI span 0..LEVELS
SIGMA = 2.0  # texture correlation length, voxels
WARMUP_SIZE = {2: 24, 3: 12}
ENGINES = ("chexradi", "pyradiomics")
MiB = 1024.0 * 1024.0


# ----------------------------------------------------------------------------- inputs
def make_case(ndim: int, size: int, seed: int = 0):
    """(image sitk UInt16, mask sitk UInt8, ROI voxels): smooth random texture, ellipse/ellipsoid ROI."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((size,) * ndim, dtype=np.float32), SIGMA)
    c = (size - 1) / 2.0
    axes = (0.45, 0.40, 0.42)[:ndim]  # semi-axes as a fraction of the side: ~57% (2-D), ~32% (3-D) of the image
    grid = np.ogrid[tuple(slice(0, size) for _ in range(ndim))]
    r2 = sum(((g - c) / (a * size)) ** 2 for g, a in zip(grid, axes))
    roi = r2 < 1.0
    lo, hi = float(field[roi].min()), float(field[roi].max())
    image = np.clip(np.rint((field - lo) / (hi - lo) * LEVELS), 0, LEVELS).astype(np.uint16)
    del field
    return (sitk.GetImageFromArray(image), sitk.GetImageFromArray(roi.astype(np.uint8)), int(roi.sum()),
            image[roi])


def grey_levels(values: np.ndarray, bin_width: float) -> int:
    """Bins present in the ROI with PyRadiomics' fixed-bin-width discretization."""
    v = values.astype(np.float64)
    low = v.min() - v.min() % bin_width
    return int(np.unique(np.floor((v - low) / bin_width)).size)


# ----------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        _status_kib("VmHWM")
        return True
    except OSError:
        return False
    except KeyError:
        return False


_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        _libc = None

MEMORY_METHOD = "hwm" if sys.platform.startswith("linux") and _can_reset_hwm() else "sampled"
MEMORY_NOTE = {
    "hwm": "MB = peak RSS during one execute() minus RSS just before it (kernel high-water mark VmHWM, "
           "reset through /proc/self/clear_refs; exact, counts numpy, Numba and C-extension allocations; "
           "inputs excluded)",
    "sampled": "MB = peak RSS during one execute() minus RSS just before it (RSS sampled every 5 ms by a "
               "background thread; can miss short peaks inside native code that holds the GIL; inputs excluded)",
}[MEMORY_METHOD]


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """``with PeakMemory() as m: work()`` then ``m.mb``: the RSS increase at the peak of ``work()``."""

    def __enter__(self):
        gc.collect()
        if _libc is not None:
            _libc.malloc_trim(0)
        if MEMORY_METHOD == "hwm":
            self.base = _status_kib("VmRSS") * 1024
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        else:
            self.base = _rss_bytes()
            self.peak = self.base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(0.005)

    def __exit__(self, *exc) -> None:
        if MEMORY_METHOD == "hwm":
            peak = max(_status_kib("VmHWM"), _status_kib("VmRSS")) * 1024
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self.peak, _rss_bytes())
        self.mb = max(0.0, (peak - self.base) / MiB)


# ----------------------------------------------------------------------------- engines
def pyradiomics_available() -> bool:
    try:
        import radiomics  # noqa: F401
    except ImportError:
        return False
    return True


def build_engines(ndim: int, bin_width: float, engines) -> dict:
    """{engine: callable(image, mask) -> {feature: value}} with the same settings on both sides."""
    classes = CLASSES[ndim]
    ours = Extractor({"binWidth": bin_width}, featureClass={c: [] for c in classes})
    out = {"chexradi": ours.execute, "extractor": ours}
    if "pyradiomics" in engines:
        from radiomics import featureextractor

        logging.getLogger("radiomics").setLevel(logging.ERROR)
        ref = featureextractor.RadiomicsFeatureExtractor(**ours.settings.pyradiomics_settings())
        ref.disableAllFeatures()
        ref.enableFeaturesByName(**{c: [] for c in classes})
        ref.disableAllImageTypes()
        ref.enableImageTypes(Original={})

        def run_ref(image, mask):
            res = ref.execute(image, mask, label=1)
            return {k: float(v) for k, v in res.items() if not k.startswith("diagnostics_")}

        out["pyradiomics"] = run_ref
    return out


def value_diff(a: dict, b: dict) -> tuple[float, str]:
    """Largest relative difference (as bench_extract.max_rel_diff) and the feature where it occurs.
    A feature missing on one side counts as an infinite difference."""
    if set(a) != set(b):
        return math.inf, "features differ: " + ", ".join(sorted(set(a) ^ set(b))[:5])
    worst, where = 0.0, ""
    for k in sorted(b):
        x, y = float(a[k]), float(b[k])
        if np.isnan(x) and np.isnan(y):
            continue
        d = abs(x - y)
        rel = 0.0 if d <= 1e-9 else (math.inf if np.isnan(d) else d / max(abs(x), abs(y)))
        if rel > worst:
            worst, where = rel, k
    return worst, where


def measure(fn, image, mask, repeat: int, repeat_budget: float) -> dict:
    """At least one run; more (up to ``repeat``) while the runs so far took less than ``repeat_budget`` s."""
    times, mems, values = [], [], None
    while True:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            res = fn(image, mask)
            t = time.perf_counter() - t0
        times.append(t)
        mems.append(mem.mb)
        if values is None:
            values = res
        del res
        if len(times) >= repeat or sum(times) + statistics.median(times) > repeat_budget:
            break
    return {"skipped": False, "estimate_s": None, "median_s": statistics.median(times), "times_s": times,
            "peak_mb": statistics.median(mems), "peak_mb_runs": mems, "values": values}


def estimate_next(history: list[tuple[int, float]], voxels: int, other_step: float | None = None) -> float | None:
    """Predicted time of one run at ``voxels`` from the (voxels, seconds) measured so far.

    ``t_last * (voxels / v_last) ** slope``, slope = this engine's log-log slope over its last two
    sizes; before it has two, the slope the other engine just showed over the same step
    (``other_step``), else 1. The slope is kept within [0.5, 2]: at small sizes fixed costs flatten it,
    and a flat slope would underestimate the next, larger case."""
    if not history:
        return None
    slope = 1.0 if other_step is None else other_step
    if len(history) >= 2:
        (v0, t0), (v1, t1) = history[-2], history[-1]
        if v1 > v0 and t0 > 0 and t1 > 0:
            slope = math.log(t1 / t0) / math.log(v1 / v0)
    slope = min(2.0, max(0.5, slope))
    v_last, t_last = history[-1]
    return t_last * (voxels / v_last) ** slope


def loglog_slope(xs, ys) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    lx = np.array([p[0] for p in pts])
    ly = np.array([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


# ----------------------------------------------------------------------------- run
def run(args) -> dict:
    engines = ENGINES if pyradiomics_available() else ("chexradi",)
    if "pyradiomics" not in engines:
        print("PyRadiomics is not installed: chexradi only, values not compared", file=sys.stderr)
    rows = []
    for ndim in args.dims:
        sizes = args.sizes[ndim]
        for bw in args.bin_widths:
            fns = build_engines(ndim, bw, engines)
            wimg, wmsk, _, _ = make_case(ndim, WARMUP_SIZE[ndim], seed=1)
            for e in engines:  # Numba kernels loaded/compiled, PyRadiomics' lazy imports done
                for _ in range(2):
                    fns[e](wimg, wmsk)
            history = {e: [] for e in engines}
            for size in sizes:
                image, mask, voxels, values = make_case(ndim, size)
                row = {"dim": f"{ndim}d", "size": size, "shape": [size] * ndim, "roi_voxels": voxels,
                       "bin_width": bw, "ng": grey_levels(values, bw), "engines": {}}
                del values
                print(f"... {ndim}-D {size}, binWidth {bw}, ROI {voxels} voxels", file=sys.stderr, flush=True)
                step = None  # log-log slope of the engine measured first over this size step
                for e in engines:
                    est = estimate_next(history[e], voxels, step)
                    if est is not None and est > args.max_seconds:
                        row["engines"][e] = {"skipped": True, "estimate_s": est}
                        history[e].append((voxels, est))
                        continue
                    prev = history[e][-1] if history[e] else None
                    r = measure(fns[e], image, mask, args.repeat, args.repeat_budget)
                    if e == "chexradi":  # chexradi's own per-class split of its last run (matrix + features)
                        r["classes_s"] = dict(fns["extractor"].last_timings)
                    row["engines"][e] = r
                    history[e].append((voxels, r["median_s"]))
                    if step is None and prev is not None and prev[1] > 0 and voxels > prev[0]:
                        step = math.log(r["median_s"] / prev[1]) / math.log(voxels / prev[0])
                measured = [row["engines"][e] for e in engines if not row["engines"][e]["skipped"]]
                row["features"] = len(measured[0]["values"]) if measured else None
                if len(measured) == 2:
                    row["max_rel_diff"], row["worst_feature"] = value_diff(measured[0]["values"],
                                                                           measured[1]["values"])
                else:
                    row["max_rel_diff"], row["worst_feature"] = None, ""
                for r in measured:
                    del r["values"]
                rows.append(row)
                del image, mask
    return {"engines": list(engines), "rows": rows}


def fits(rows, engines) -> list[dict]:
    out = []
    keys = sorted({(r["dim"], r["bin_width"]) for r in rows}, key=lambda k: (k[0], -k[1]))
    for dim, bw in keys:
        sel = [r for r in rows if r["dim"] == dim and r["bin_width"] == bw]
        for e in engines:
            pts = [(r["roi_voxels"], r["engines"][e]["median_s"], r["engines"][e]["peak_mb"])
                   for r in sel if not r["engines"][e]["skipped"]]
            vox = [p[0] for p in pts]
            out.append({"dim": dim, "bin_width": bw, "engine": e, "points": len(pts),
                        "time_slope": loglog_slope(vox, [p[1] for p in pts]),
                        "time_slope_last2": loglog_slope(vox[-2:], [p[1] for p in pts[-2:]]),
                        "memory_slope": loglog_slope(vox, [p[2] for p in pts]),
                        "voxels": [vox[0], vox[-1]] if vox else None})
    return out


def bin_table(rows, engines) -> list[dict]:
    """Per dimension: every binWidth at the largest size measured for every binWidth and engine."""
    out = []
    for dim in sorted({r["dim"] for r in rows}):
        sel = [r for r in rows if r["dim"] == dim]
        bws = sorted({r["bin_width"] for r in sel}, reverse=True)
        full = [s for s in sorted({r["size"] for r in sel})
                if all(any(r["size"] == s and r["bin_width"] == b and
                           not any(r["engines"][e]["skipped"] for e in engines) for r in sel) for b in bws)]
        if not full:
            continue
        size = full[-1]
        out.append({"dim": dim, "size": size,
                    "rows": [r for b in bws for r in sel if r["size"] == size and r["bin_width"] == b]})
    return out


# ----------------------------------------------------------------------------- print
def _t(e: dict) -> str:
    return f"skipped (est. {e['estimate_s']:.0f} s)" if e["skipped"] else f"{e['median_s']:.4g}"


def _m(e: dict) -> str:
    return "-" if e["skipped"] else f"{e['peak_mb']:.1f}"


def _top(e: dict) -> str:
    """chexradi's costliest class and its share of the class times, e.g. ``glcm 84%``."""
    cls = e.get("classes_s") or {}
    total = sum(cls.values())
    if e["skipped"] or not cls or total <= 0:
        return "-"
    name = max(cls, key=cls.get)
    return f"{name} {100 * cls[name] / total:.0f}%"


def _ratio(row) -> str:
    es = row["engines"]
    if "pyradiomics" not in es or es["chexradi"]["skipped"] or es["pyradiomics"]["skipped"]:
        return "-"
    return f"{es['pyradiomics']['median_s'] / es['chexradi']['median_s']:.1f}"


def _diff(row) -> str:
    d = row["max_rel_diff"]
    if d is None:
        return "n/a"
    flag = "" if d < 1e-6 else f"  !! DIFFER ({row['worst_feature']})"
    return f"{d:.1e}{flag}"


def print_report(payload: dict) -> None:
    rows = payload["rows"]
    v = payload["versions"]
    print(f"\nScaling of one execute(), chexradi vs PyRadiomics, one core; machine: "
          f"{payload['machine']['processor'] or payload['machine']['machine']}, {payload['machine']['cores']} cores; "
          f"{v}")
    print(f"time: median of up to {payload['args']['repeat']} runs (one for long cases); {MEMORY_NOTE}.")
    print("ratio = PyRadiomics s / chexradi s; diff = largest relative difference of the values between engines.")
    print("top = chexradi's costliest feature class (matrix + features) and its share of chexradi's time.")
    head = (f"{'size':>6}{'ROI voxels':>12}{'Ng':>6}{'chexradi s':>23}{'PyRadiomics s':>23}{'ratio':>7}"
            f"{'chexradi MB':>13}{'PyRadiomics MB':>16}  {'top':<16}diff")
    for dim in sorted({r["dim"] for r in rows}):
        for bw in sorted({r["bin_width"] for r in rows if r["dim"] == dim}, reverse=True):
            print(f"\n## {dim.upper()}, binWidth {bw}")
            print(head)
            for r in rows:
                if r["dim"] != dim or r["bin_width"] != bw:
                    continue
                es = r["engines"]
                ref = es.get("pyradiomics", {"skipped": False, "median_s": math.nan, "peak_mb": math.nan})
                print(f"{r['size']:>6}{r['roi_voxels']:>12}{r['ng']:>6}{_t(es['chexradi']):>23}{_t(ref):>23}"
                      f"{_ratio(r):>7}{_m(es['chexradi']):>13}{_m(ref):>16}  {_top(es['chexradi']):<16}{_diff(r)}")
    print("\nLog-log fit of cost vs ROI voxels (least squares over the measured sizes; 'last 2' = the two "
          "largest sizes, where fixed overheads matter least):")
    for f in payload["fits"]:
        name = "chexradi" if f["engine"] == "chexradi" else "PyRadiomics"
        if f["time_slope"] is None:
            print(f"  {name:<11} {f['dim'].upper()} binWidth {f['bin_width']:>2}: fewer than 2 sizes measured")
            continue
        last2 = f"{f['time_slope_last2']:.2f}" if f["time_slope_last2"] is not None else "-"
        mem = f"{f['memory_slope']:.2f}" if f["memory_slope"] is not None else "-"
        print(f"  {name:<11} {f['dim'].upper()} binWidth {f['bin_width']:>2}: time ∝ voxels^{f['time_slope']:.2f} "
              f"(last 2: {last2}), memory ∝ voxels^{mem}  "
              f"[{f['points']} sizes, {f['voxels'][0]}..{f['voxels'][1]} voxels]")
    for t in payload["bin_table"]:
        print(f"\nTime vs binWidth, {t['dim'].upper()} {t['size']}"
              f"{'²' if t['dim'] == '2d' else '³'}:")
        print(f"{'binWidth':>8}{'Ng':>6}{'chexradi s':>12}{'PyRadiomics s':>15}{'ratio':>7}{'chexradi MB':>13}"
              f"{'PyRadiomics MB':>16}  {'top':<16}diff")
        for r in t["rows"]:
            es = r["engines"]
            ref = es.get("pyradiomics", {"skipped": False, "median_s": math.nan, "peak_mb": math.nan})
            print(f"{r['bin_width']:>8}{r['ng']:>6}{_t(es['chexradi']):>12}{_t(ref):>15}{_ratio(r):>7}"
                  f"{_m(es['chexradi']):>13}{_m(ref):>16}  {_top(es['chexradi']):<16}{_diff(r)}")
    bad = [r for r in rows if r["max_rel_diff"] is not None and not r["max_rel_diff"] < 1e-6]
    worst = max((r["max_rel_diff"] for r in rows if r["max_rel_diff"] is not None), default=None)
    if bad:
        print(f"\n!! values differ between engines (> 1e-6) in {len(bad)} case(s)")
    elif worst is not None:
        print(f"\nvalues agree in every compared case: largest relative difference {worst:.1e}")


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def _floats(s: str) -> list[float]:
    return [int(float(x)) if float(x).is_integer() else float(x) for x in (y.strip() for y in s.split(",")) if x]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2-D 64..256, 3-D 32..64, binWidth 25 and 5, 1 repeat")
    ap.add_argument("--dims", default="2d,3d", help="comma-separated: 2d, 3d (default both)")
    ap.add_argument("--bin-widths", type=_floats, default=None, help="default 25,5,1 (quick: 25,5)")
    ap.add_argument("--sizes-2d", type=_ints, default=None, help="image sides, default 64,...,2048")
    ap.add_argument("--sizes-3d", type=_ints, default=None, help="volume sides, default 32,64,128,256")
    ap.add_argument("--repeat", type=int, default=None, help="runs per case, at most (default 5; quick 1)")
    ap.add_argument("--repeat-budget", type=float, default=10.0,
                    help="no further repeat once a case's runs took this many seconds (default 10)")
    ap.add_argument("--max-seconds", type=float, default=120.0,
                    help="skip a size whose single run is predicted to take longer (default 120)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_scaling.json")
    args = ap.parse_args(argv)

    dims = []
    for d in args.dims.split(","):
        d = d.strip().lower()
        if d not in ("2d", "3d"):
            ap.error(f"--dims: {d!r} is not 2d or 3d")
        dims.append(int(d[0]))
    args.dims = dims
    args.bin_widths = args.bin_widths or (QUICK_BIN_WIDTHS if args.quick else BIN_WIDTHS)
    args.repeat = args.repeat or (1 if args.quick else 5)
    base = QUICK_SIZES if args.quick else SIZES
    args.sizes = {2: args.sizes_2d or base[2], 3: args.sizes_3d or base[3]}
    for n in (2, 3):
        args.sizes[n] = sorted(args.sizes[n])

    t0 = time.perf_counter()
    payload = run(args)
    payload.update({
        "machine": {"processor": platform.processor(), "machine": platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "versions": versions(),
        "args": {"dims": [f"{d}d" for d in args.dims], "bin_widths": args.bin_widths,
                 "sizes": {f"{d}d": args.sizes[d] for d in args.dims}, "repeat": args.repeat,
                 "repeat_budget_s": args.repeat_budget, "max_seconds": args.max_seconds, "quick": args.quick},
        "input": {"texture": f"Gaussian-filtered white noise, sigma {SIGMA} voxels, scaled to 0..{LEVELS} in the ROI, "
                             "UInt16", "roi": "ellipse (semi-axes 0.45, 0.40 of the side) / ellipsoid (0.45, 0.40, "
                                              "0.42)", "settings": "PyRadiomics defaults except binWidth",
                  "classes": {f"{d}d": CLASSES[d] for d in args.dims}},
        "memory_method": MEMORY_METHOD, "memory_note": MEMORY_NOTE,
    })
    payload["fits"] = fits(payload["rows"], payload["engines"])
    payload["bin_table"] = [{"dim": t["dim"], "size": t["size"],
                             "keys": [[r["dim"], r["size"], r["bin_width"]] for r in t["rows"]], "rows": t["rows"]}
                            for t in bin_table(payload["rows"], payload["engines"])]
    payload["total_s"] = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    out = dict(payload)
    out["bin_table"] = [{k: v for k, v in t.items() if k != "rows"} for t in payload["bin_table"]]
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, allow_nan=True))
    tmp.replace(args.json)
    print_report(payload)
    print(f"\ntotal {payload['total_s']:.0f} s; JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
