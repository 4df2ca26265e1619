"""chexradi vs PyRadiomics on the same inputs, in one process, on one core.

For each case both engines extract the same classes with the same settings from
the same SimpleITK images. We report, after Numba warm-up:

* per-class time: chexradi's class (matrix + features, from the extractor's own
  timings) vs PyRadiomics' feature class run on the same cropped images;
* total time of one full extraction: chexradi ``Extractor.execute`` vs
  PyRadiomics ``RadiomicsFeatureExtractor.execute`` (same pre-processing steps);
* the largest relative difference between the two engines' values;
* the Numba warm-up cost in a fresh process, without and with the on-disk cache.

Usage: python benchmarks/bench_extract.py [--repeat 5] [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cases  # noqa: E402

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

from chexradi.radiomics.extractor import Extractor, versions  # noqa: E402

CLASSES_2D = ["firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
CLASSES_3D = ["firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]


def max_rel_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for k, v in b.items():
        x, y = float(a[k]), float(v)
        if np.isnan(x) and np.isnan(y):
            continue
        d = abs(x - y)
        worst = max(worst, 0.0 if d <= 1e-9 else d / max(abs(x), abs(y)))
    return worst


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer cases (CI smoke run)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_extract.json")
    args = ap.parse_args()

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
    warm = warmup_costs()

    print(f"\nchexradi vs PyRadiomics, one core, median of {args.repeat}; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {versions()}")
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
          f"{warm['first_extraction_with_cache_s']:.2f} s; second extraction {warm['second_extraction_s'] * 1e3:.1f} ms")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"processor": platform.processor(), "cores": os.cpu_count(), "python": platform.python_version()},
               "versions": versions(), "repeat": args.repeat, "cases": results, "warmup": warm}
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(args.json)
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
