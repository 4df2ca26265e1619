"""Filtered image types end to end: chexradi vs PyRadiomics ``execute()`` in one process, on one core.

Cases: PyRadiomics' brain1 (3-D) with Original + LoG (sigma 1..5 mm) + Wavelet (coif1, 8 images),
and the 512 x 512 NIH radiograph (or RG1_UNCR.dcm) with lung fields, Original + LoG (1, 3 mm) +
Wavelet (4 images). Both engines run the same settings; every value is compared (relative 1e-6)
before the times are printed. chexradi's time is split into the filters (the values PyRadiomics'
SimpleITK / PyWavelets calls give on the whole image, computed for the ROI's box only:
chexradi.radiomics.filters) and the feature classes; PyRadiomics' time is its whole ``execute()``. Median of ``--repeat`` runs per engine, after a warm-up call.

Usage: python benchmarks/bench_filters.py [--repeat 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _cases  # noqa: E402
from _results import rel_diff, write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_filters.json")
    args = ap.parse_args()
    import radiomics
    import SimpleITK as sitk

    from chexradi.radiomics.extractor import Extractor, versions

    radiomics.setVerbosity(logging.ERROR)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    cases = []
    brain = _cases.brain1()
    if brain is not None:
        cases.append(("brain1, Original + LoG 1-5 mm + Wavelet", *brain,
                      {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0, 4.0, 5.0]}, "Wavelet": {}}))
    real = dict(_cases.real_radiographs())
    src = real.get("00000001_000.png") or _cases.rg1_path()
    cases.append(("radiograph 512 lung fields, Original + LoG 1, 3 mm + Wavelet", *_cases.radiograph_case(src, 512),
                  {"Original": {}, "LoG": {"sigma": [1.0, 3.0]}, "Wavelet": {}}))
    rows = []
    print(f"filtered image types, one core, median of {args.repeat}")
    print(f"{'case':<62}{'features':>9}{'chexradi s':>12}{'of which filters':>18}{'PyRadiomics s':>15}"
          f"{'of which filters':>18}{'ratio':>7}")
    for name, image, mask, image_types in cases:
        ours = Extractor(imageType=image_types)
        ref = Extractor(imageType=image_types, engine="pyradiomics")
        a, b = ours.execute(image, mask), ref.execute(image, mask)
        if set(a) != set(b):
            print(f"{name}: feature names differ: {sorted(set(a) ^ set(b))[:5]}", file=sys.stderr)
            return 1
        bad = [k for k in b if rel_diff(a[k], b[k]) > 1e-6]
        if bad:
            print(f"{name}: values differ: {bad[:5]}", file=sys.stderr)
            return 1
        t_ours, t_filters, t_ref, t_ref_filters = [], [], [], []
        for _ in range(args.repeat):
            t_ref_filters.append(_pyradiomics_filters(image, mask, image_types))
            t = time.perf_counter()
            ours.execute(image, mask)
            t_ours.append(time.perf_counter() - t)
            t_filters.append(ours.last_timings.get("filters", 0.0))
            t = time.perf_counter()
            ref.execute(image, mask)
            t_ref.append(time.perf_counter() - t)
        o, f, r = statistics.median(t_ours), statistics.median(t_filters), statistics.median(t_ref)
        rf = statistics.median(t_ref_filters)
        print(f"{name:<62}{len(a):>9}{o:>12.3f}{f:>18.3f}{r:>15.3f}{rf:>18.3f}{r / o:>7.1f}", flush=True)
        rows.append({"case": name, "features": len(a), "chexradi_s": o, "chexradi_filters_s": f,
                     "chexradi_features_s": o - f, "pyradiomics_s": r, "pyradiomics_filters_s": rf, "ratio": r / o})
    write_results(args.json, {"versions": versions(), "repeat": args.repeat, "cases": rows})
    return 0


def _pyradiomics_filters(image, mask, image_types: dict) -> float:
    """Seconds PyRadiomics' own filter generators take to yield every filtered image of ``image_types``
    (Original excluded) on the whole image, as its ``execute()`` calls them."""
    from radiomics import imageoperations

    t = time.perf_counter()
    for image_type, args in image_types.items():
        if image_type != "Original":
            for _ in getattr(imageoperations, f"get{image_type}Image")(image, mask, **args):
                pass
    return time.perf_counter() - t


if __name__ == "__main__":
    sys.exit(main())
