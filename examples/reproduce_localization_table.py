"""Reproduce the localisation table of ChexRadiNet: accuracy by T(IoU) and T(IoBB), image-only vs guided.

Runs (or resumes) the ChexRadiNet loop with :func:`chexradi.iterate`, exactly as
``reproduce_auc_table.py`` does and with the same arguments, then prints the
localisation accuracy of Wang et al.'s protocol (a ground-truth box is found when the
class heatmap's box overlaps it by more than T) per class and threshold:

- T(IoU) in 0.1 ... 0.7 and T(IoBB) in 0.1, 0.25, 0.5, 0.75, 0.9;
- for round 0 (image only) and the *last* radiomics-guided round ``K = rounds - 1``,
  read from ``<out>/round_<k>/localization_iou.csv`` and ``localization_iobb.csv``;
- with ChexRadiNet's published mean at T(IoU) = 0.1 (0.679) and Wang et al.'s per-class
  accuracy (ChestX-ray8 paper, CVPR 2017 Table 4 and arXiv:1705.02315 Table 7) from
  ``examples/published.py``.

On ChestX-ray14 the published rows sit under the run's. On the phantom (the default)
they are printed in a separate table, labelled as figures on ChestX-ray14 that are not
comparable with a run on synthetic images.

Running ``reproduce_auc_table.py`` first and then this script with the same ``--out``
reuses the run: finished rounds are skipped, and settings you do not give are taken
from the run folder.

Usage::

    python examples/reproduce_localization_table.py --out reproduce-output/run       # phantom, CPU: minutes
    python examples/reproduce_localization_table.py --out /tmp/ex_run --json /tmp/loc.json
    python examples/reproduce_localization_table.py --chestxray14 /data/ChestX-ray14 --out runs/cxr14 --device cuda
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import published  # noqa: E402  (examples/published.py)
from reproduce_auc_table import (build_parser, fmt, history_or_status, is_chestxray14, num,  # noqa: E402
                                 print_seconds, render, write_json)

METRICS = {"iou": ("T(IoU)", published.WANG2017_LOC_IOU), "iobb": ("T(IoBB)", published.WANG2017_LOC_IOBB)}


def read_table(path: Path) -> Optional[dict[str, Any]]:
    """A round's ``localization_<metric>.csv``: {"thresholds": [...], "n": {class: n}, "acc": {class: {t: acc}}}."""
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    cols = [c for c in rows[0] if c not in ("class", "n")]
    thresholds = [c.split(">", 1)[1] for c in cols]
    return {"thresholds": thresholds, "n": {r["class"]: int(r["n"]) for r in rows},
            "acc": {r["class"]: {t: num(r[c]) for t, c in zip(thresholds, cols)} for r in rows}}


def _key(t: str) -> str:
    return f"{float(t):g}"


def published_rows(metric: str, classes: list[str], thresholds: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{threshold: {row label: {class or "mean": value}}} of the published figures for ``classes``."""
    _, wang = METRICS[metric]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for t in thresholds:
        w = {c: (wang.get(published.canonical(c)) or {}).get(_key(t)) for c in classes}
        vals = [v for v in w.values() if v is not None]
        w["mean"] = sum(vals) / len(vals) if vals else None
        rows = {"Wang 2017": w}
        if metric == "iou" and abs(float(t) - 0.1) < 1e-9:
            rows["ChexRadiNet"] = {**{c: None for c in classes}, "mean": published.CHEXRADINET_LOC_IOU_0_1}
        out[t] = rows
    return out


def print_metric(metric: str, r0: dict[str, Any], rk: Optional[dict[str, Any]], k: Optional[int],
                 inline: bool) -> dict[str, Any]:
    label, _ = METRICS[metric]
    classes = [c for c in r0["acc"] if c != "mean"]
    thresholds = r0["thresholds"]
    pub = published_rows(metric, classes, thresholds) if inline else {}
    rows, data = [], []
    for t in thresholds:
        entries = [("round 0 (image only)", {c: r0["acc"][c][t] for c in classes + ["mean"]})]
        if rk is not None:
            entries.append((f"round {k} (guided)", {c: (rk["acc"].get(c) or {}).get(t) for c in classes + ["mean"]}))
        entries += list(pub.get(t, {}).items())
        for i, (who, vals) in enumerate(entries):
            rows.append([f"{label}={t}" if i == 0 else "", who] + [fmt(vals.get(c)) for c in classes + ["mean"]])
            data.append({"threshold": float(t), "row": who, **{c: vals.get(c) for c in classes + ["mean"]}})
    n = ", ".join(f"{c} {r0['n'][c]}" for c in classes)
    print(f"\nLocalisation accuracy by {label} (ground-truth boxes: {n}; mean = over the classes with boxes)")
    header = [label, "model"] + classes + ["mean"]
    body = render(header[1:], [r[1:] for r in rows], first=22, width=9).split("\n")
    lw = max(len(label), *(len(r[0]) for r in rows)) + 2
    print(f"{header[0]:<{lw}}" + body[0])
    print("-" * (lw + len(body[1])))
    for r, line in zip(rows, body[2:]):
        print(f"{r[0]:<{lw}}" + line)
    return {"metric": metric, "classes": classes, "n": r0["n"], "rows": data}


def print_published_only(classes: list[str]) -> dict[str, Any]:
    """Wang et al.'s localisation accuracy on its own (8 boxed classes), with ChexRadiNet's T(IoU)=0.1 mean."""
    out: dict[str, Any] = {"dataset": "NIH ChestX-ray8/14 (Wang et al. 2017; ChexRadiNet on ChestX-ray14)"}
    mine = {published.canonical(c) for c in classes}
    boxed = list(published.BOXED_CLASSES)
    print("\nPublished on ChestX-ray8 / ChestX-ray14 -- NOT comparable with this run (other data); for reference "
          "only. * = a class of this run")
    print("(Wang et al. 2017: T(IoU) from arXiv:1705.02315 Table 7, T(IoBB) from the CVPR paper's Table 4, "
          "ChestX-ray8 model; ChexRadiNet, Han et al. AMIA 2021: mean at T(IoU)=0.1 only)")
    names = [c.replace("Infiltration", "Infiltr.").replace("Pneumothorax", "Pneumoth.").replace(
        "Cardiomegaly", "Cardiom.").replace("Atelectasis", "Atelect.").replace("Pneumonia", "Pneumon.")
        + ("*" if c in mine else "") for c in boxed]
    for metric, (label, wang) in METRICS.items():
        thresholds = list(next(iter(wang.values())))
        rows = []
        for t in thresholds:
            vals = [wang[c][t] for c in boxed]
            rows.append([f"{label}={t}", "Wang 2017"] + [fmt(v, 4) for v in vals] + [fmt(sum(vals) / len(vals), 4)])
            if metric == "iou" and t == "0.1":
                rows.append(["", "ChexRadiNet"] + ["-"] * len(boxed) + [fmt(published.CHEXRADINET_LOC_IOU_0_1, 4)])
        print()
        print(render([label, "model"] + names + ["mean"], rows, first=12, width=9))
        out[metric] = {t: {c: wang[c][t] for c in boxed} for t in thresholds}
    out["chexradinet_iou_0.1_mean"] = published.CHEXRADINET_LOC_IOU_0_1
    return out


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser(__doc__.split("\n")[0]).parse_args(argv)
    history = history_or_status(args)
    if isinstance(history, int):
        return history
    run_dir = Path(history.run_dir)
    k = history[-1]["round"] if len(history) > 1 else None
    inline = is_chestxray14(history)
    print(f"\nLocalisation on the {history[0].get('eval_split')} split of {history.settings.get('data')} "
          f"(model {history.settings.get('model')}, run {run_dir})")
    if k is None:
        print("only round 0 (image only) has run: give --rounds 2 or more for a radiomics-guided round")
    else:
        print(f"round 0 = image only; round {k} = the last radiomics-guided round (heatmaps of its image head)")
    out: dict[str, Any] = {"run": str(run_dir), "data": history.settings.get("data"), "image_only_round": 0,
                           "guided_round": k, "published_inline": inline, "tables": []}
    shown = 0
    for metric in METRICS:
        r0 = read_table(run_dir / "round_0" / f"localization_{metric}.csv")
        if r0 is None:
            continue
        rk = read_table(run_dir / f"round_{k}" / f"localization_{metric}.csv") if k is not None else None
        if k is not None and rk is None:
            print(f"note: {run_dir / f'round_{k}'} has no localization_{metric}.csv", file=sys.stderr)
        out["tables"].append(print_metric(metric, r0, rk, k, inline))
        shown += 1
    if not shown:
        print(f"error: no localization_iou.csv / localization_iobb.csv in {run_dir / 'round_0'}: the evaluation "
              f"split has no ground-truth boxes (ChestX-ray14 needs BBox_List_2017.csv; the phantom has boxes)",
              file=sys.stderr)
        return 1
    if inline:
        print("published: Wang et al. 2017 (ChestX-ray8 model; T(IoU): arXiv:1705.02315 Table 7, T(IoBB): CVPR "
              "Table 4), mean over the classes listed; ChexRadiNet (Han et al., AMIA 2021): its mean over the 8 boxed "
              "classes at T(IoU)=0.1")
    else:
        out["published"] = print_published_only(history.class_names)
    out["seconds"] = print_seconds(history)
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
