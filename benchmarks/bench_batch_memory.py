"""The batch driver's memory as the number of cases grows.

``extract_batch`` runs N cases in ``--jobs`` worker processes; the driver (this process)
journals each result and writes the output at the end, in input order. It keeps the
feature values of the first 10,000 ok cases in memory (about 17 kB each) and reads the
others back from the journal when it writes the output, so its memory is bounded
however many cases there are; about 1 kB per case remains (the case list and the
journal index).

For each N, three fresh driver processes run the same batch: values of every case held
(what the driver did before; ``--held`` a huge number), the default (10,000), and none held
(every value read back). Each reports its peak resident memory above its level before the
call and its wall time; the outputs must be identical.

The cases are one 96 x 96 image and round ROI, the mask hard-linked once per case (a
batch refuses repeated cases), so every case is a real extraction (all seven 2-D
classes) and the set costs no disk to build.

Usage: python benchmarks/bench_batch_memory.py [--n 2000,8000,32000] [--jobs 2] [--json PATH]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _driver(n: int, jobs: int, folder: Path, held: int | None) -> dict:
    """In a fresh process: build the cases CSV, run the batch, report the peak RSS growth."""
    import hashlib

    import numpy as np
    import SimpleITK as sitk

    from chexradi.radiomics import batch
    from chexradi.radiomics.batch import extract_batch

    if held is not None:
        batch._HELD_RESULTS = held

    rng = np.random.default_rng(0)
    img = (rng.normal(128, 30, (96, 96))).clip(0, 255).astype(np.float32)
    yy, xx = np.mgrid[:96, :96]
    msk = (((yy - 48) ** 2 + (xx - 44) ** 2) < 35 ** 2).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(img), str(folder / "image.nrrd"), True)
    sitk.WriteImage(sitk.GetImageFromArray(msk), str(folder / "mask.nrrd"), True)
    (folder / "masks").mkdir()
    for i in range(n):  # a hard link per case: distinct cases (a batch refuses repeated ones), no disk used
        os.link(folder / "mask.nrrd", folder / "masks" / f"{i}.nrrd")
    cases = folder / "cases.csv"
    with open(cases, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "Image", "Mask"])
        w.writerows([i, "image.nrrd", f"masks/{i}.nrrd"] for i in range(n))
    import chexradi.radiomics.extractor  # noqa: F401  (imported before the baseline, as a real driver has)

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rep = extract_batch(cases, out=folder / "out.csv", params={"binWidth": 8}, jobs=jobs, progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(folder / "out.csv", newline="") as fh:
        rows = sum(1 for _ in fh) - 1
    digest = hashlib.sha256((folder / "out.csv").read_bytes()).hexdigest()
    return {"n": n, "ok": rep.n_ok, "rows": rows, "seconds": round(seconds, 2), "sha256": digest,
            "driver_growth_mb": round((peak - base) / 1024, 1), "journal_mb": round(
                os.path.getsize(folder / "out.csv.journal.jsonl") / 2 ** 20, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="2000,8000,32000", help="batch sizes, comma-separated")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_batch_memory.json")
    ap.add_argument("--_driver", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_dir", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--held", type=int, default=None,
                    help="cases whose values the driver keeps in memory (default: the library's, 10,000)")
    args = ap.parse_args()
    if args._driver is not None:
        print(json.dumps(_driver(args._driver, args.jobs, args._dir, args.held)))
        return 0

    modes = (("all held", 10 ** 12), ("default", None), ("none held", 0))
    rows = []
    print(f"## batch driver memory, --jobs {args.jobs}: peak RSS of the driver above its level before the call, "
          "MB (seconds)")
    print(f"{'cases':>8} " + " ".join(f"{m:>18}" for m, _ in modes))
    for n in [int(x) for x in args.n.split(",")]:
        row: dict = {"n": n}
        cells = []
        for mode, held in modes:
            with tempfile.TemporaryDirectory(prefix="bench_mem_") as d:
                cmd = [sys.executable, __file__, "--_driver", str(n), "--jobs", str(args.jobs), "--_dir", d]
                if held is not None:
                    cmd += ["--held", str(held)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["ok"] == n and r["rows"] == n, r
            row[mode] = r
            cells.append(f"{r['driver_growth_mb']:>9.1f} ({r['seconds']:>5.1f} s)")
        assert len({row[m]["sha256"] for m, _ in modes}) == 1, "the outputs differ"
        rows.append(row)
        print(f"{n:>8} " + " ".join(f"{c:>18}" for c in cells))
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        for mode, _ in modes:
            slope = (b[mode]["driver_growth_mb"] - a[mode]["driver_growth_mb"]) * 1024 / (b["n"] - a["n"])
            print(f"{mode}: {slope:.2f} kB more per case between {a['n']} and {b['n']} cases")
    print("outputs identical in every mode")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                                     "jobs": args.jobs, "rows": rows}, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
