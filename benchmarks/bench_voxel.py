"""Voxel-based feature maps: chexradi vs PyRadiomics ``execute(..., voxelBased=True)`` in one process, one core.

Cases: PyRadiomics' brain1 (3-D, 4,137 ROI voxels; when ../shared/data is present) and a generated CT-like
lung (128 x 128, 3 slices), each with kernelRadius 1 and 2, every class PyRadiomics computes voxel by
voxel (firstorder, glcm, glrlm, glszm, gldm, ngtdm: 93 maps). Every map is compared voxel by voxel
(relative 1e-6, NaN where NaN) before any time is printed. Each class is timed on its own (one
``feature_maps`` call per class and engine, after a warm-up call of ours), then the six are summed;
chexradi runs its kernels on one thread (NUMBA_NUM_THREADS=1), as PyRadiomics runs on one core.

Then, chexradi alone on a CT-like lung of 512 x 512 x 6 (about 2e5 ROI voxels), kernelRadius 1, all 93
maps, in a fresh process: time, peak memory (ru_maxrss) and what the maps themselves take; and the size
of the GLCM array PyRadiomics would allocate for it in one batch (voxels x Ng^2 x 13 x 8 bytes).

Usage: python benchmarks/bench_voxel.py [--repeat 1] [--json PATH] [--no-large]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _cases  # noqa: E402
from _results import maps_rel_diff, write_results  # noqa: E402

from chexradi.radiomics.voxel import VOXEL_CLASSES  # noqa: E402



def _timed(ext, image, mask, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = ext.feature_maps(image, mask)
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


_LARGE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np, SimpleITK as sitk
import _cases
from chexradi.radiomics.extractor import Extractor
img, msk = _cases.ct_lung_images(6, size=512)
ext = Extractor(kernelRadius=1)
Extractor(kernelRadius=1).feature_maps(*_cases.ct_lung_images(2, size=64))  # loads the compiled kernels first
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
maps = ext.feature_maps(img, msk)
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
first = next(iter(maps.values()))
case = ext.prepare(img, msk)
from chexradi.radiomics.preprocess import roi_from_arrays
levels = len(roi_from_arrays(case.image_arr[case.texture_box], case.texture_mask[case.texture_box], spacing=case.spacing, settings=ext.settings.values, crop=False).grey_levels)
print(json.dumps({"roi_voxels": int(case.texture_mask.sum()), "maps": len(maps), "grid": list(first.GetSize()),
                  "seconds": elapsed, "peak_rss_mb": peak / 1024, "before_mb": base / 1024,
                  "maps_mb": len(maps) * int(np.prod(first.GetSize())) * 8 / 2**20, "levels": levels}))
"""


def large_case() -> dict:
    """chexradi's maps of the 512 x 512 x 6 CT-like lung in a fresh process (one thread): time and memory."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _LARGE, str(HERE)], capture_output=True, text=True, env=env,
                         check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    got["pyradiomics_glcm_batch_gb"] = got["roi_voxels"] * got["levels"] ** 2 * 13 * 8 / 1e9
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine and class (median); default 1")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_voxel.json")
    ap.add_argument("--no-large", action="store_true", help="skip the 512 x 512 x 6 CT-like lung (chexradi only)")
    args = ap.parse_args()
    import radiomics
    import SimpleITK as sitk

    from chexradi.radiomics.extractor import Extractor, versions

    radiomics.setVerbosity(logging.CRITICAL)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    cases = []
    brain = _cases.brain1()
    if brain is not None:
        cases.append(("brain1", *brain))
    cases.append(("CT-like lung 128 x 128 x 3", *_cases.ct_lung_images(3, size=128)))
    rows = []
    print(f"voxel-based feature maps, one core, median of {args.repeat}; seconds per class (chexradi / PyRadiomics)")
    head = "".join(f"{c:>16}" for c in VOXEL_CLASSES)
    print(f"{'case':<30}{'r':>3}{'voxels':>8}{head}{'total':>18}{'ratio':>7}")
    for name, image, mask in cases:
        voxels = int((sitk.GetArrayFromImage(mask) == 1).sum())
        for radius in (1, 2):
            per = {}
            for cls in VOXEL_CLASSES:
                kw = {"kernelRadius": radius, "featureClass": {cls: []}}
                ours = Extractor(**kw)
                ref = Extractor(engine="pyradiomics", **kw)
                ours.feature_maps(image, mask)  # warm-up: numba's compiled kernels load from its cache
                a, t_ours = _timed(ours, image, mask, args.repeat)
                b, t_ref = _timed(ref, image, mask, args.repeat)
                if set(a) != set(b):
                    print(f"{name} r={radius} {cls}: map names differ: {sorted(set(a) ^ set(b))[:5]}", file=sys.stderr)
                    return 1
                worst = max(maps_rel_diff(a[k], b[k])[1] for k in b)
                if worst > 1e-6:
                    print(f"{name} r={radius} {cls}: values differ (largest relative difference {worst:.1e})",
                          file=sys.stderr)
                    return 1
                per[cls] = {"chexradi_s": t_ours, "pyradiomics_s": t_ref, "ratio": t_ref / t_ours, "maps": len(b),
                            "largest_rel_diff": worst}
            to = sum(v["chexradi_s"] for v in per.values())
            tr = sum(v["pyradiomics_s"] for v in per.values())
            cells = "".join(f"{per[c]['chexradi_s']:>7.3f}/{per[c]['pyradiomics_s']:<8.3f}" for c in VOXEL_CLASSES)
            print(f"{name:<30}{radius:>3}{voxels:>8}{cells}{to:>8.3f}/{tr:<9.3f}{tr / to:>7.1f}", flush=True)
            print(f"{'':<41}" + "".join(f"{per[c]['ratio']:>15.1f}x" for c in VOXEL_CLASSES))
            rows.append({"case": name, "kernelRadius": radius, "roi_voxels": voxels, "classes": per,
                         "chexradi_s": to, "pyradiomics_s": tr, "ratio": tr / to})
    large = None
    if not args.no_large:
        large = large_case()
        print(f"\nCT-like lung 512 x 512 x 6, {large['roi_voxels']} ROI voxels, {large['levels']} gray levels, "
              f"kernelRadius 1, {large['maps']} maps on a {'x'.join(map(str, large['grid']))} grid, chexradi, "
              f"one thread: {large['seconds']:.1f} s ({large['seconds'] / large['roi_voxels'] * 1e6:.0f} us per "
              f"ROI voxel); peak RSS {large['peak_rss_mb']:.0f} MB (before the call {large['before_mb']:.0f} MB; "
              f"the maps {large['maps_mb']:.0f} MB). PyRadiomics' GLCM array for one batch of all ROI voxels: "
              f"{large['pyradiomics_glcm_batch_gb']:.1f} GB.")
    write_results(args.json, {"versions": versions(), "repeat": args.repeat, "cases": rows, "large": large})
    return 0


if __name__ == "__main__":
    sys.exit(main())
