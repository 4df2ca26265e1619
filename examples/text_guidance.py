"""Does the report teach the image model? Text guidance arms x seeds on the phantom with reports, against control.

Every arm is scored image-only on the test split (the deployed model has no report): the model's
own ``"image"`` head, compared with the control arm's by :func:`chexradi.compare` (DeLong over test
images, paired bootstrap, t over seeds), plus each text teacher's own image-only head
(``"tandem"``, ``"vkd"``) and its with-report reference (``"tandem_report"``, ``"vkd_report"``).

Text sources need no masks, so they guide from round 0: the text arms run one round and are
compared with the control's round 0 (image only, the same epochs and seeds). Radiomics guides
from round 1, so ``cam`` and ``cam+tandem`` run two rounds and are compared with the control's
round 1.

==============  ==============================================================================
control         no guidance (rounds 0 and 1: images alone)
tandem          TandemNet's dual attention over regions + sentences, text dropped with p = 0.5
vkd             VKD: report posterior -> image prior, KL weight 1e-3 x cyclical annealing
tandem-drop0    TandemNet, text always present in training (p = 0)
tandem-drop1    TandemNet, text never present (p = 1): the same module trained on images alone
tandem-attn     the tandem arm's training with the masks and localisation from TandemNet's image attention
cam             radiomics inside the model's own heatmap masks (round 1)
cam+tandem      radiomics (round 1) and TandemNet (rounds 0 and 1)
==============  ==============================================================================

Usage::

    python examples/text_guidance.py --out runs/text                  # demo size, 3 seeds, every arm
    python examples/text_guidance.py --out runs/text --reuse runs/ablation --docs docs/text-guidance.md

``--reuse DIR`` takes the control and cam runs of ``examples/ablation.py --out DIR`` (same data, model,
epochs and seeds) instead of training them again. Re-running resumes (finished runs are not redone).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import _ci, _f, write_section as _write_section  # noqa: E402 - the ablation's table helpers

#: arm -> (rounds, guidance settings, source settings, heatmap settings)
ARMS: dict[str, tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "tandem": (1, {"sources": ["tandem"]}, {}, {}),
    "vkd": (1, {"sources": ["vkd"]}, {}, {}),
    "cam+tandem": (2, {"sources": ["radiomics", "tandem"]}, {}, {}),
    "tandem-drop0": (1, {"sources": ["tandem"], "label": "tandem-drop0"}, {"tandem": {"text_drop": 0.0}}, {}),
    "tandem-drop1": (1, {"sources": ["tandem"], "label": "tandem-drop1"}, {"tandem": {"text_drop": 1.0}}, {}),
    "cam": (2, {"sources": ["radiomics"]}, {}, {}),
    "tandem-attn": (1, {"sources": ["tandem"], "label": "tandem-attn"}, {}, {"method": "tandem"}),
}


def _run(data: str, model: str, d: Path, *, seed: int, rounds: int, guidance: dict, sources: dict, progress: bool,
         train: "dict | None" = None, **kw: Any) -> Path:
    import chexradi

    if (d / "history.json").is_file() and len(chexradi.History.load(d).rounds) >= rounds:
        return d
    t0 = time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {d}", flush=True)
    radiomics = sources.pop("radiomics", None)
    chexradi.iterate(data, model=model, rounds=rounds, seed=seed, out=d, progress=progress, guidance=guidance,
                     radiomics=radiomics, sources=sources or None, train=train, **kw)
    print(f"    {time.perf_counter() - t0:.0f} s", flush=True)
    return d


def run_all(out: Path, *, data: str, seeds: list[int], arms: list[str], model: str, reuse: "Path | None",
            progress: bool, train: "dict | None" = None) -> dict[str, dict[int, Path]]:
    dirs: dict[str, dict[int, Path]] = {a: {} for a in ("control", *arms)}
    for seed in seeds:  # the control first: every arm is compared with it
        ctrl = reuse / "control" / f"seed{seed}" if reuse is not None else out / "control" / f"seed{seed}"
        if reuse is None:
            _run(data, model, ctrl, seed=seed, rounds=2, guidance={"enabled": False}, sources={}, progress=progress,
                 train=train)
        dirs["control"][seed] = ctrl
    for arm in arms:
        for seed in seeds:
            rounds, guidance, sources, heatmap = ARMS[arm]
            if arm == "cam" and reuse is not None:
                dirs[arm][seed] = reuse / "cam" / f"seed{seed}"
                continue
            kw: dict[str, Any] = {"round0_from": dirs["control"][seed]} if arm == "cam" else {}
            if heatmap:
                kw["heatmap"] = heatmap
            dirs[arm][seed] = _run(data, model, out / arm / f"seed{seed}", seed=seed, rounds=rounds,
                                   guidance=dict(guidance), sources={k: dict(v) for k, v in sources.items()},
                                   progress=progress, train=train, **kw)
    return dirs


def tables(dirs: dict[str, dict[int, Path]], comparisons: dict[int, Any]) -> str:
    import numpy as np

    import chexradi

    hist = {a: {s: chexradi.History.load(d) for s, d in runs.items()} for a, runs in dirs.items()}
    names = next(iter(hist["control"].values())).class_names

    def mean_sd(vals: list[Any]) -> str:
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"

    lines: list[str] = []
    for k, comp in comparisons.items():
        arms = ["control"] + [a for a in hist if a != "control" and ARMS[a][0] - 1 == k and not ARMS[a][3]]
        row = {(r["arm"], r["class"]): r for r in comp.auc}
        loc = {(r["arm"], r["metric"], r["threshold"]): r for r in comp.localization}
        lines += [f"**Round {k}** ({'text guides from round 0' if k == 0 else 'radiomics guides from round 1'}): "
                  "the image head (the deployed model, image only), mean ± sd over seeds; differences from control "
                  "with 95 % intervals (DeLong over test images, paired bootstrap, t over seeds); the teachers' own "
                  "image-only heads and with-report references.", "",
                  "| arm | runs | image AUC | Δ | DeLong CI | p | bootstrap CI | seed CI | teacher head (image only) "
                  "| with report | T(IoU)=0.1 | Δ [bootstrap CI] |", "|---" * 12 + "|"]
        for a in arms:
            h = hist[a]
            auc = mean_sd([x.mean_auc(k) for x in h.values()])
            teach = [hd for hd in ("tandem", "vkd") if any(hd in (x[k].get("mean_auc") or {}) for x in h.values())]
            own = "; ".join(f"{hd} {mean_sd([x[k]['mean_auc'].get(hd) for x in h.values()])}" for hd in teach) or "-"
            rep = "; ".join(f"{mean_sd([x[k]['mean_auc'].get(hd + '_report') for x in h.values()])}"
                            for hd in teach) or "-"
            l1 = mean_sd([(x[k].get("loc_iou") or {}).get("0.1") for x in h.values()])
            if a == "control":
                lines.append(f"| control | {len(h)} | {auc} | | | | | | - | - | {l1} | |")
                continue
            r = row[(a, "mean")]
            d1 = loc.get((a, "iou", 0.1))
            lines.append(f"| {a} | {len(h)} | {auc} | {_f(r['difference'], sign=True)} | {_ci(r['ci_low'], r['ci_high'])} | "
                         f"{_f(r['p_delong'])} | {_ci(r['boot_low'], r['boot_high'])} | "
                         f"{_ci(r['seed_low'], r['seed_high'])} | {own} | {rep} | {l1} | "
                         f"{'-' if d1 is None else _f(d1['difference'], sign=True) + ' ' + _ci(d1['boot_low'], d1['boot_high'])} |")
        lines += ["", f"Per class at round {k}: image-head AUC, mean over seeds (difference from control, DeLong 95 % CI).",
                  "", "| class | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        for c in names:
            cells = []
            for a in arms:
                m = np.mean([x[k]["auc"]["image"].get(c) for x in hist[a].values()])
                r = row.get((a, c))
                cells.append(f"{m:.3f}" if a == "control" or r is None else
                             f"{m:.3f} ({_f(r['difference'], sign=True)} {_ci(r['ci_low'], r['ci_high'])})")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    if "tandem-attn" in hist and "tandem" in hist:
        lines += attention_table(hist["tandem"], hist["tandem-attn"]) + [""]
    secs = {a: sum(sum(r["seconds"]["total"] for r in x.rounds) for x in h.values()) for a, h in hist.items()}
    lines += ["Compute, seconds summed over each arm's runs: " + ", ".join(f"{a} {v:.0f}" for a, v in secs.items())
              + "."]
    return "\n".join(lines)


def attention_table(cam: dict[int, Any], attn: dict[int, Any]) -> list[str]:
    """TandemNet's image attention vs the CAM of the same training (the tandem arm; a run's heatmap settings do not
    change its round 0's training): localisation on the test split and the masks' IoU with the truth, per seed,
    with the paired difference's t interval over seeds."""
    import numpy as np
    from scipy import stats

    seeds = sorted(set(cam) & set(attn))
    rows = [("T(IoU)=0.1", lambda r: (r.get("loc_iou") or {}).get("0.1")),
            ("T(IoU)=0.3", lambda r: (r.get("loc_iou") or {}).get("0.3")),
            ("mask IoU with the truth (test)", lambda r: (r.get("cam_truth_iou") or {}).get("test"))]
    same = all(cam[s][0]["mean_auc"] == attn[s][0]["mean_auc"] for s in seeds)
    out = [f"**TandemNet's attention as the heatmap** (`--method tandem`), round 0, the same trained models as the "
           f"tandem arm ({'identical AUCs: the same training' if same else 'AUCs differ: not the same training'}); "
           "mean over seeds and the paired difference attention − CAM with its t interval over seeds.", "",
           "| measure | CAM | attention | difference [95 % CI] |", "|---|---|---|---|"]
    for name, get in rows:
        a = np.array([get(cam[s][0]) for s in seeds], float)
        b = np.array([get(attn[s][0]) for s in seeds], float)
        d = b - a
        if len(d) > 1 and np.isfinite(d).all():
            half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
            ci = f"{d.mean():+.3f} [{d.mean() - half:+.3f}, {d.mean() + half:+.3f}]"
        else:
            ci = f"{np.nanmean(d):+.3f}"
        out.append(f"| {name} | {np.nanmean(a):.3f} | {np.nanmean(b):.3f} | {ci} |")
    return out


def write_section(path: Path, section: str, text: str) -> None:
    """Replace the ``<!-- text-guidance:SECTION start/end -->`` block of ``path`` (examples/ablation.py's writer)."""
    _write_section(path, section, text, prefix="text-guidance")


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder of the runs (OUT/<arm>/seed<s>).")
    ap.add_argument("--data", default="phantom", help="Data spec with reports [phantom: the demo's, with reports].")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Training seeds [0 1 2].")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="Arms [all; control always].")
    ap.add_argument("--model", default="resnet18_ta", help="Model [resnet18_ta, the demo's].")
    ap.add_argument("--epochs", type=int, default=None, help="Maximum epochs per round [the loop's, 8].")
    ap.add_argument("--reuse", type=Path, default=None,
                    help="An examples/ablation.py output folder whose control and cam runs are used as they are.")
    ap.add_argument("--resamples", type=int, default=2000, help="Bootstrap resamples [2000].")
    ap.add_argument("--docs", type=Path, default=None, help="Markdown file to write the tables into.")
    ap.add_argument("--section", default="demo", help="Name of the section in --docs [demo].")
    ap.add_argument("--progress", action="store_true", help="Per-round messages of the loop.")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    dirs = run_all(args.out, data=args.data, seeds=args.seeds, arms=args.arms, model=args.model, reuse=args.reuse,
                   progress=args.progress, train=None if args.epochs is None else {"epochs": args.epochs})
    wall = time.perf_counter() - t0
    from chexradi.loop.compare import compare

    comparisons = {}
    for k in (0, 1):
        guided = [d for a in args.arms if ARMS[a][0] - 1 == k and not ARMS[a][3] for d in dirs[a].values()]
        if guided:
            comparisons[k] = compare(guided, control=list(dirs["control"].values()), round=k,
                                     n_resamples=args.resamples, out=args.out / f"compare_round{k}")
    cmd = " ".join(["python examples/text_guidance.py", *(argv if argv is not None else sys.argv[1:])])
    text = (f"`{cmd}`: {args.data}, {args.model}, seeds {' '.join(map(str, args.seeds))}; this invocation took "
            f"{wall / 60:.1f} min of wall time.\n\n" + tables(dirs, comparisons))
    (args.out / "text_guidance.md").write_text(text + "\n")
    print(text)
    if args.docs is not None:
        write_section(args.docs, args.section, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
