"""Does guidance earn its keep? Arms x seeds of the loop on the phantom, compared with the control arm.

For every training seed, runs the control arm (``--no-guidance``: every round retrains on images
alone) and then each guided arm from the control's round 0 (shared, not retrained:
``round0_from``), with the same rounds, epochs and settings:

=========  ===================================================================================
control    no radiomics; the same rounds and epochs (what "more training" alone gives)
cam        radiomics inside the model's own heatmap masks (the loop as designed)
truth      oracle: ground-truth masks on the training split (absent findings: a region of
           normal lung of the same outline), the model's own masks on validation and test
random     negative control: the heatmap masks moved at random inside the lungs
lungs      anatomy without localisation: the lung fields
=========  ===================================================================================

then compares every arm with the control on the test images (:func:`chexradi.compare`: DeLong's
test and a paired bootstrap over test images, the spread over seeds) and writes markdown tables:
image-head AUC (mean and per class), localisation at T(IoU) = 0.1 / 0.3, how close each arm's
guidance masks and each round's heatmap masks are to the ground truth, every difference with
its 95 % intervals, and the compute time. Re-running the same command resumes (finished runs
are not redone).

Usage::

    python examples/ablation.py --out runs/ablation                        # demo size, 3 seeds
    python examples/ablation.py --out runs/ablation --docs docs/loop-results.md --section demo
    python examples/ablation.py --out runs/large --data "phantom:n_train=720,n_val=240,n_test=360" \
        --arms control cam truth --docs docs/loop-results.md --section large
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ARMS = ("control", "cam", "truth", "random", "lungs")


def run_all(out: Path, *, data: str, seeds: list[int], arms: list[str], rounds: int, model: str,
            progress: bool) -> dict[str, dict[int, Path]]:
    import chexradi

    dirs: dict[str, dict[int, Path]] = {a: {} for a in arms}
    for seed in seeds:
        ctrl = out / "control" / f"seed{seed}"
        for arm in arms:
            d = out / arm / f"seed{seed}"
            t0 = time.perf_counter()
            kw: dict[str, Any] = {"guidance": {"enabled": False}} if arm == "control" else {
                "guidance": {"masks": arm}, "round0_from": ctrl}
            print(f"[{time.strftime('%H:%M:%S')}] seed {seed}, arm {arm} -> {d}", flush=True)
            chexradi.iterate(data, model=model, rounds=rounds, seed=seed, out=d, progress=progress, **kw)
            print(f"    {time.perf_counter() - t0:.0f} s", flush=True)
            dirs[arm][seed] = d
    return dirs


def _f(v: Any, d: int = 3, sign: bool = False) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:+.{d}f}" if sign else f"{v:.{d}f}"


def _ci(a: Any, b: Any) -> str:
    return "-" if a is None else f"[{a:+.3f}, {b:+.3f}]"


def tables(dirs: dict[str, dict[int, Path]], comparison: Any, *, rounds: int) -> str:
    import numpy as np

    import chexradi

    hist = {a: {s: chexradi.History.load(d) for s, d in runs.items()} for a, runs in dirs.items()}
    last = rounds - 1
    names = next(iter(next(iter(hist.values())).values())).class_names
    arms = list(dirs)
    lines: list[str] = []

    def mean_sd(vals: list[float]) -> str:
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"

    row = {(r["arm"], r["class"]): r for r in comparison.auc}
    loc = {(r["arm"], r["metric"], r["threshold"]): r for r in comparison.localization}
    lines += [f"Image head (the deployed model: image only) at the last round ({last}); mean ± sd over seeds; "
              "differences from control with 95 % intervals: DeLong over test images, paired bootstrap over test "
              "images, t over seeds.", "",
              "| arm | runs | mean AUC | Δ AUC | DeLong CI | p | bootstrap CI | seed CI | T(IoU)=0.1 | Δ [bootstrap CI] "
              "| T(IoU)=0.3 | Δ [bootstrap CI] |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in arms:
        h = hist[a]
        auc = mean_sd([x.mean_auc(last) for x in h.values()])
        l1 = mean_sd([(x[last].get("loc_iou") or {}).get("0.1") for x in h.values()])
        l3 = mean_sd([(x[last].get("loc_iou") or {}).get("0.3") for x in h.values()])
        if a == "control":
            lines.append(f"| control | {len(h)} | {auc} | | | | | | {l1} | | {l3} | |")
            continue
        r = row[(a, "mean")]
        d1, d3 = loc.get((a, "iou", 0.1)), loc.get((a, "iou", 0.3))
        lines.append(f"| {a} | {len(h)} | {auc} | {_f(r['difference'], sign=True)} | {_ci(r['ci_low'], r['ci_high'])} "
                     f"| {_f(r['p_delong'])} | {_ci(r['boot_low'], r['boot_high'])} | "
                     f"{_ci(r['seed_low'], r['seed_high'])} | {l1} | "
                     f"{'-' if d1 is None else _f(d1['difference'], sign=True) + ' ' + _ci(d1['boot_low'], d1['boot_high'])}"
                     f" | {l3} | "
                     f"{'-' if d3 is None else _f(d3['difference'], sign=True) + ' ' + _ci(d3['boot_low'], d3['boot_high'])}"
                     f" |")
    lines += ["", f"Per class, image-head AUC at round {last} (mean over seeds); for the guided arms the difference "
              "from control and its DeLong 95 % interval.", "",
              "| class | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for c in names:
        cells = []
        for a in arms:
            m = np.mean([x[last]["auc"]["image"].get(c) for x in hist[a].values()])
            if a == "control" or (a, c) not in row:
                cells.append(f"{m:.3f}")
            else:
                r = row[(a, c)]
                cells.append(f"{m:.3f} ({_f(r['difference'], sign=True)} {_ci(r['ci_low'], r['ci_high'])})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "How close the masks are to the ground truth (mean IoU over present findings, mean over seeds): "
              "the masks each guided round measured radiomics in (train / test split), and each round's own heatmap "
              "masks on the test split.", "",
              "| arm | " + " | ".join(f"round {k}: guidance train / test | round {k}: CAM test" for k in range(rounds))
              + " |", "|---" * (1 + 2 * rounds) + "|"]
    for a in arms:
        cells = []
        for k in range(rounds):
            g_tr = [((x[k].get("guidance_truth_iou") or {}).get("train")) for x in hist[a].values()]
            g_te = [((x[k].get("guidance_truth_iou") or {}).get("test")) for x in hist[a].values()]
            cam = [((x[k].get("cam_truth_iou") or {}).get("test")) for x in hist[a].values()]
            g = "-" if all(v is None for v in g_tr) else f"{np.mean(g_tr):.3f} / {np.mean(g_te):.3f}"
            cells.append(f"{g} | {np.mean(cam):.3f}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    lines += ["", "Compute (sum over the runs of each arm's round times, seconds; round 0 is the control's, shared):",
              "", "| arm | " + " | ".join(f"round {k}" for k in range(rounds)) + " | total |",
              "|---" * (rounds + 2) + "|"]
    grand = 0.0
    for a in arms:
        per = [sum(x[k]["seconds"]["total"] for x in hist[a].values()) if (a == "control" or k > 0) else 0.0
               for k in range(rounds)]
        grand += sum(per)
        lines.append(f"| {a} | " + " | ".join(f"{v:.0f}" for v in per) + f" | {sum(per):.0f} |")
    lines += ["", f"All runs: {grand / 60:.1f} min of compute."]
    return "\n".join(lines)


def write_section(path: Path, section: str, text: str, *, prefix: str = "ablation") -> None:
    """Replace the text between ``<!-- PREFIX:SECTION start -->`` and ``... end -->`` in ``path`` (appended
    when the markers are not there)."""
    from chexradi._io import atomic_write

    start, end = f"<!-- {prefix}:{section} start -->", f"<!-- {prefix}:{section} end -->"
    old = path.read_text() if path.is_file() else ""
    block = f"{start}\n{text}\n{end}"
    if start in old and end in old:
        new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    with atomic_write(path) as fh:
        fh.write(new)


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder of the runs (OUT/<arm>/seed<s>).")
    ap.add_argument("--data", default="phantom", help="Data spec [phantom: the demo's phantom].")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds [0 1 2].")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="Arms [all; control always runs].")
    ap.add_argument("--rounds", type=int, default=2, help="Rounds including round 0 [2: one guided round].")
    ap.add_argument("--model", default="resnet18_ta", help="Model [resnet18_ta, the demo's].")
    ap.add_argument("--resamples", type=int, default=2000, help="Bootstrap resamples [2000].")
    ap.add_argument("--docs", type=Path, default=None, help="Markdown file to write the tables into.")
    ap.add_argument("--section", default="demo", help="Name of the section in --docs [demo].")
    ap.add_argument("--progress", action="store_true", help="Per-round messages of the loop.")
    args = ap.parse_args(argv)
    arms = ["control"] + [a for a in args.arms if a != "control"]
    t0 = time.perf_counter()
    dirs = run_all(args.out, data=args.data, seeds=args.seeds, arms=arms, rounds=args.rounds, model=args.model,
                   progress=args.progress)
    wall = time.perf_counter() - t0
    from chexradi.loop.compare import compare

    guided = [d for a in arms if a != "control" for d in dirs[a].values()]
    comparison = compare(guided, control=list(dirs["control"].values()), round=args.rounds - 1,
                         n_resamples=args.resamples, out=args.out / "compare")
    cmd = " ".join(["python examples/ablation.py", *[a if " " not in a else repr(a) for a in (argv or sys.argv[1:])]])
    text = (f"`{cmd}`: {args.data}, {args.model}, {args.rounds} rounds, seeds {' '.join(map(str, args.seeds))}; "
            f"this invocation took {wall / 60:.1f} min of wall time.\n\n" + tables(dirs, comparison, rounds=args.rounds))
    (args.out / "ablation.md").write_text(text + "\n\n```\n" + comparison.text() + "\n```\n")
    print(text)
    print()
    print(comparison.text())
    if args.docs is not None:
        write_section(args.docs, args.section, text)
        print(f"\nwritten into {args.docs} (section {args.section})")
    (args.out / "ablation.json").write_text(json.dumps({"args": vars(args), "wall_seconds": wall,
                                                        "runs": {a: {s: str(d) for s, d in r.items()}
                                                                 for a, r in dirs.items()}}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
