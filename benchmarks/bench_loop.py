"""One round of the loop on the phantom, split by stage; radiomics' share with chexradi vs PyRadiomics.

Runs ``chexradi.iterate`` for two rounds (round 0 image-only, round 1 radiomics-guided)
on the phantom, then extracts the same round-1 radiomics again with
``engine="pyradiomics"`` (same masks, same settings, same worker count) and reports,
for the guided round:

* seconds per stage: radiomics extraction, training, heatmaps (the model computing the
  maps), masks (thresholds, boxes, mask files), evaluation;
* each stage's share of the round, with the chexradi engine as run and with
  PyRadiomics' extraction time put in its place;
* training throughput (images/s over the epochs run) and extraction throughput (cases/s);
* the largest relative difference between the two engines' feature values on the
  round's cases (a parity check on real loop inputs);
* where training ran: the device (with the GPU's name), AMP and its dtype, data-loader
  workers.

``--no-pyradiomics`` leaves the PyRadiomics extraction out (for a machine without
PyRadiomics, e.g. a GPU box where only the training figures are wanted).

Usage: python benchmarks/bench_loop.py [--n 600] [--size 96] [--epochs 8] [--jobs 2]
       [--model resnet18_ta] [--device cpu|cuda] [--num-workers 0] [--no-pyradiomics] [--json PATH]
       [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

STAGES = ("radiomics", "train", "heatmaps_cam", "heatmaps_masks", "evaluate")


def _features(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="") as fh:
        return {(r["split"], r["index"], r["class"]): r for r in csv.DictReader(fh)}


def max_rel_diff(a_csv: Path, b_csv: Path) -> tuple[float, int]:
    """Largest |a - b| / max(|a|, |b|, 1e-12) over the cases and features both files have."""
    a, b = _features(a_csv), _features(b_csv)
    carried = {"Image", "Mask", "split", "index", "class"}
    worst, n = 0.0, 0
    for key in a.keys() & b.keys():
        for f, v in a[key].items():
            if f in carried or f not in b[key] or v == "" or b[key][f] == "":
                continue
            x, y = float(v), float(b[key][f])
            if np.isnan(x) and np.isnan(y):
                continue
            worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
            n += 1
    return worst, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="phantom images (split 60/20/20)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2,
                    help="radiomics worker processes (both engines); 0: one per CPU, the loop's default")
    ap.add_argument("--model", default="resnet18_ta")
    ap.add_argument("--device", default=None, help="training device (default: CUDA when available, else CPU)")
    ap.add_argument("--num-workers", type=int, default=0,
                    help="training data-loader workers (the loop's default 0: the phantom is held in memory)")
    ap.add_argument("--no-pyradiomics", action="store_true",
                    help="skip the PyRadiomics extraction (no share-with-PyRadiomics column, no parity check)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "bench_loop.json")
    args = ap.parse_args()
    if not args.no_pyradiomics:
        try:
            import radiomics  # noqa: F401
        except ImportError:
            ap.error("PyRadiomics is not installed (pip install pyradiomics-bhklab); install it, or pass "
                     "--no-pyradiomics to time the loop without the comparison.")

    import chexradi
    from chexradi.guidance.radiomics import extract_vectors
    from chexradi.nn.checkpoint import versions
    from chexradi.radiomics.workers import resolve_jobs

    tmp = tempfile.TemporaryDirectory(prefix="bench_loop_")
    out = args.out or Path(tmp.name) / "run"
    spec = f"phantom:n={args.n},size={args.size}"
    train = {"epochs": args.epochs, "device": args.device, "num_workers": args.num_workers}
    t0 = time.perf_counter()
    h = chexradi.iterate(spec, model=args.model, rounds=2, out=out, train=train, radiomics={"jobs": args.jobs},
                         progress=False)
    wall = time.perf_counter() - t0
    r1 = h[1]
    sec = {k: float((r1["seconds"]["sources"].get(k) if k == "radiomics" else r1["seconds"].get(k)) or 0.0)
           for k in STAGES}
    total = sum(sec.values())
    n_train = h.settings["counts"]["train"]
    n_cases = int(r1["sources"]["radiomics"]["cases"])

    fit = json.loads((out / "round_1" / "fit" / "history.json").read_text())["fit"]
    gpu = None
    if str(fit["device"]).startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(torch.device(fit["device"]))

    t_pyr: Optional[float] = None
    diff, n_values = float("nan"), 0
    if not args.no_pyradiomics:  # PyRadiomics on the same round-0 masks, same settings and workers
        with open(out / "round_0" / "regions.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            r["empty"] = r["empty"] == "True"
        run = json.loads((out / "run.json").read_text())
        pyr_dir = Path(tmp.name) / "pyradiomics"
        t = time.perf_counter()
        extract_vectors(rows, counts=run["counts"], class_names=run["class_names"], run_dir=out,
                        mask_round_dir=out / "round_0", out_dir=pyr_dir,
                        settings={"engine": "pyradiomics", "jobs": args.jobs, "params": run["radiomics"]["params"]},
                        progress=False)
        t_pyr = time.perf_counter() - t
        diff, n_values = max_rel_diff(out / "round_1" / "radiomics" / "radiomics.csv", pyr_dir / "radiomics.csv")
    total_pyr = None if t_pyr is None else total - sec["radiomics"] + t_pyr

    print(f"## one guided round of the loop: {spec}, {args.model}, {r1['epochs_run']} epoch(s), "
          f"{n_cases} radiomics cases ({n_train} train images), --jobs {args.jobs}"
          + (f" ({resolve_jobs(0)} CPUs)" if args.jobs == 0 else ""))
    print(f"training on {fit['device']}" + (f" ({gpu})" if gpu else "") + ", AMP "
          + (f"on ({fit['amp_dtype']})" if fit["amp"] else "off") + f", {fit['num_workers']} loader worker(s), "
          f"batch {fit['batch_size']}")
    print(f"{'stage':<16}{'seconds':>9}{'share':>8}" + ("" if total_pyr is None else f"{'share if PyRadiomics':>22}"))
    for k in STAGES:
        line = f"{k:<16}{sec[k]:>9.1f}{sec[k] / total:>8.1%}"
        if total_pyr is not None:
            line += f"{(t_pyr if k == 'radiomics' else sec[k]) / total_pyr:>22.1%}"
        print(line)
    print(f"{'round':<16}{total:>9.1f}{1:>8.0%}" + ("" if total_pyr is None else f"{1:>22.0%}"))
    print(f"\nradiomics: chexradi {sec['radiomics']:.1f} s ({n_cases / max(sec['radiomics'], 1e-9):.0f} cases/s)"
          + ("; PyRadiomics not run (--no-pyradiomics)" if t_pyr is None else
             f", PyRadiomics {t_pyr:.1f} s ({n_cases / t_pyr:.0f} cases/s): "
             f"x{t_pyr / max(sec['radiomics'], 1e-9):.1f}; largest relative difference {diff:.1e} over "
             f"{n_values} values"))
    ips = n_train * int(r1["epochs_run"]) / max(sec["train"], 1e-9)
    print(f"training: {ips:.0f} images/s ({r1['seconds']['train']:.1f} s for {r1['epochs_run']} epoch(s) "
          f"of {n_train} images, with validation); whole bench {wall + (t_pyr or 0.0):.0f} s")

    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions(), "spec": spec, "model": args.model, "jobs": resolve_jobs(args.jobs),
        "training": {"device": fit["device"], "gpu": gpu, "amp": fit["amp"], "amp_dtype": fit["amp_dtype"],
                     "num_workers": fit["num_workers"], "batch_size": fit["batch_size"]},
        "round1_seconds": sec, "round1_total": total, "pyradiomics_seconds": t_pyr,
        "share": {k: sec[k] / total for k in STAGES},
        "share_with_pyradiomics": None if total_pyr is None else {
            k: (t_pyr if k == "radiomics" else sec[k]) / total_pyr for k in STAGES},
        "radiomics_cases": n_cases, "max_rel_diff": None if t_pyr is None else diff,
        "n_values_compared": n_values,
        "train_images_per_s": ips, "epochs_run": r1["epochs_run"],
        "round0": {k: h[0]["seconds"].get(k) for k in ("train", "heatmaps_cam", "heatmaps_masks", "evaluate")},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_suffix(".tmp")
    tmp_json.write_text(json.dumps(payload, indent=2))
    tmp_json.replace(args.json)
    print(f"\nJSON: {args.json}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
