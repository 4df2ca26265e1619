"""Calibrate the phantom's finding strengths with the image-only arm alone (round 0, no guidance).

For each training seed, runs ``chexradi.iterate`` for one round (round 0: images only) on the
phantom at the loop's default settings, with the strengths given (default: the calibrated
:data:`chexradi.data.phantom_v2.STRENGTH`), and prints every class's test AUC, the mean over the
seeds and whether it lies in the target window [0.65, 0.92]. Nothing here looks at a guided arm:
the strengths are chosen before any guided run, and are not changed after one.

Every run is appended to ``--log`` (JSON lines: strengths, seed, per-class AUC, seconds), so that
the calibration history can be written into the docs; a run folder already finished is reused.

Usage::

    python examples/calibrate_phantom.py --out runs/calibration            # the calibrated strengths
    python examples/calibrate_phantom.py --out runs/cal --strength Nodule:1.4 --strength Mass:0.4
    python examples/calibrate_phantom.py --out runs/cal --seeds 0 1 2 --log runs/cal/log.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

WINDOW = (0.65, 0.92)


def _strength_spec(strength: dict[str, float]) -> str:
    return "+".join(f"{c}:{v:g}" for c, v in sorted(strength.items()))


def run(out: Path, strength: dict[str, float], seeds: list[int], *, model: str, data: str,
        log: Path) -> dict[str, list[float]]:
    import chexradi
    from chexradi.data.phantom_v2 import STRENGTH

    full = {**STRENGTH, **strength}
    spec = data + (("," if ":" in data else ":") + "strength=" + _strength_spec(full) if strength else "")
    tag = _strength_spec(full).replace(":", "").replace("+", "_").replace(".", "p")
    per_class: dict[str, list[float]] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        h = chexradi.iterate(spec, model=model, rounds=1, seed=seed, out=out / tag / f"seed{seed}",
                             guidance={"enabled": False}, progress=False)
        r = h[0]
        for c, a in r["auc"]["image"].items():
            per_class.setdefault(c, []).append(a)
        rec = {"strength": full, "seed": seed, "data": spec, "model": model, "auc": r["auc"]["image"],
               "mean_auc": r["mean_auc"]["image"], "loc_iou": r.get("loc_iou"), "epochs_run": r["epochs_run"],
               "seconds": round(time.perf_counter() - t0, 1)}
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(f"seed {seed}: mean AUC {r['mean_auc']['image']:.3f}  " + "  ".join(
            f"{c} {a:.3f}" for c, a in r["auc"]["image"].items()), flush=True)
    return per_class


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder for the run folders.")
    ap.add_argument("--strength", action="append", default=[], metavar="CLASS:VALUE",
                    help="A class's strength instead of the calibrated one (repeatable).")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds [0 1 2].")
    ap.add_argument("--model", default="resnet18_ta", help="Model [resnet18_ta, the demo's].")
    ap.add_argument("--data", default="phantom", help="Phantom spec without strength [phantom].")
    ap.add_argument("--log", type=Path, default=None, help="JSON-lines log of every run [OUT/calibration.jsonl].")
    args = ap.parse_args(argv)
    strength: dict[str, float] = {}
    for item in args.strength:
        name, _, value = item.partition(":")
        try:
            strength[name] = float(value)
        except ValueError:
            ap.error(f"--strength {item!r}: give CLASS:NUMBER, e.g. Nodule:1.4")
    per_class = run(args.out, strength, args.seeds, model=args.model, data=args.data,
                    log=args.log or args.out / "calibration.jsonl")
    print(f"\nround-0 test AUC, image only, {len(args.seeds)} seed(s); window {WINDOW}")
    print(f"{'class':<14}{'mean':>7}  {'seeds':<24} in window")
    ok = True
    for c, v in per_class.items():
        m = sum(v) / len(v)
        inside = WINDOW[0] <= m <= WINDOW[1]
        ok &= inside
        print(f"{c:<14}{m:>7.3f}  {' '.join(f'{a:.3f}' for a in v):<24} {'yes' if inside else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
