"""3-D shape: chexradi's marching-cubes kernel against PyRadiomics' RadiomicsShape, in one process.

Both sides get the same arrays, cropped to the ROI as ``execute()`` crops them, before any timer
starts; the time is the shape class alone (chexradi ``shape.compute`` on the ROI; PyRadiomics
``RadiomicsShape(image, mask).execute()``, which pads the mask, runs its C mesh code and the
eigenvalues), median of ``--repeat`` runs on each side (PyRadiomics once where a run takes over
2 s). Every feature (the deprecated ones too) is compared and must agree within relative 1e-6
before a time is printed. Cases: PyRadiomics' brain1 and breast1 (when
../shared/data is present) and a generated CT-like lung (``_cases.ct_lung``: lobulated pleural
surface, vessel holes, 0.7 x 0.7 x 2.5 mm voxels) at 6 and 28 slices, ~2e5 and ~1e6 ROI voxels.
PyRadiomics' shape compares every pair of mesh vertices, so its time grows with the square of
the surface; chexradi compares convex-hull vertices only.

Usage: python benchmarks/bench_shape.py [--repeat 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _cases  # noqa: E402
from _results import rel_diff, write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case and side (median); PyRadiomics once if slow")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_shape.json")
    args = ap.parse_args()
    import numpy as np
    import SimpleITK as sitk

    from chexradi import versions
    from chexradi.radiomics.features import shape
    from chexradi.radiomics.preprocess import roi_from_arrays
    import radiomics
    from radiomics import imageoperations
    from radiomics.shape import RadiomicsShape

    from chexradi.radiomics.reference import to_sitk

    radiomics.setVerbosity(logging.ERROR)  # not the "deprecated feature" lines
    names = list(shape.FEATURES)
    settings = {"minimumROIDimensions": 1}
    cases = []
    for name in ("brain1", "breast1"):
        d = _cases.SHARED / "pyradiomics-cases"
        if (d / f"{name}_image.nrrd").exists():
            img = sitk.ReadImage(str(d / f"{name}_image.nrrd"))
            lab = sitk.ReadImage(str(d / f"{name}_label.nrrd"))
            cases.append((f"{name} (PyRadiomics case)", sitk.GetArrayFromImage(img).astype(np.float64),
                          sitk.GetArrayFromImage(lab) == 1, tuple(reversed(img.GetSpacing()))))
    for n in (6, 28):
        cases.append((f"CT-like lung, {n} slices of 512 x 512", *_cases.ct_lung(n)))
    warm = cases[-2]
    shape.compute(roi_from_arrays(warm[1], warm[2], spacing=warm[3], settings=settings), names)  # compile

    rows = []
    print(f"3-D shape, {len(names)} features, one core; median of {args.repeat} (PyRadiomics: once when over 2 s)")
    print(f"{'case':<40}{'ROI voxels':>11}{'chexradi ms':>13}{'PyRadiomics ms':>16}{'ratio':>8}{'max rel diff':>14}")
    for name, image, mask, spacing in cases:
        roi = roi_from_arrays(image, mask, spacing=spacing, settings=settings)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            ours = shape.compute(roi, names)
            times.append(time.perf_counter() - t)
        t_ours = float(np.median(times))
        img, msk = to_sitk(image, spacing), to_sitk(mask.astype(np.uint32), spacing)
        bb, _ = imageoperations.checkMask(img, msk, **settings)
        cimg, cmsk = imageoperations.cropToTumorMask(img, msk, bb)

        def pyradiomics_shape():
            fc = RadiomicsShape(cimg, cmsk, **settings)
            for n in names:
                fc.enableFeatureByName(n)
            return fc.execute()

        ref_times = []
        while len(ref_times) < args.repeat:
            t = time.perf_counter()
            ref = {k: float(np.real(v)) for k, v in pyradiomics_shape().items()}
            ref_times.append(time.perf_counter() - t)
            if ref_times[-1] > 2.0:
                break
        t_ref = float(np.median(ref_times))
        bad = [k for k in names if rel_diff(ours[k], ref[k]) > 1e-6]
        if bad:
            print(f"{name}: chexradi and PyRadiomics differ on {bad}", file=sys.stderr)
            return 1
        rel = max(rel_diff(ours[k], ref[k]) for k in names)
        voxels = int(np.count_nonzero(mask))
        print(f"{name:<40}{voxels:>11}{t_ours * 1e3:>13.1f}{t_ref * 1e3:>16.0f}{t_ref / t_ours:>8.0f}{rel:>14.1e}",
              flush=True)
        rows.append({"case": name, "roi_voxels": voxels, "chexradi_s": t_ours, "pyradiomics_s": t_ref,
                     "ratio": t_ref / t_ours, "max_rel_diff": rel})
    payload = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version()}, "versions": versions(), "cases": rows}
    write_results(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
