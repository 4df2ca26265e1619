"""How far are the heatmap masks from the lesions, and what closes the distance: stride, method, threshold.

Part 1 -- output stride. Round 0 of the loop (images only, the loop's defaults otherwise) is
trained at output stride 32, 16 and 8 on the phantom; for each: test AUC, localisation accuracy
(T(IoU) = 0.1 / 0.3, T(IoBB) = 0.5), the mean IoU of the CAM masks of present findings with their
ground truth, and the seconds per training epoch.

Part 2 -- method and threshold, on each round-0 checkpoint (nothing retrained): CAM, Grad-CAM and
Grad-CAM++ maps of the validation and test images, thresholded at a fraction of the maximum from
0.1 to 0.9; the fraction with the best mean IoU with the truth on the *validation* split is chosen
and its test IoU and localisation reported beside the loop's default (fraction 0.5). The test split
never chooses anything.

Usage::

    python examples/heatmap_study.py --out runs/heatmaps                     # strides 32 16 8, seed 0
    python examples/heatmap_study.py --out runs/heatmaps --strides 16 --seeds 0 1 2 --json study.json
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
METHODS = ("cam", "gradcam", "gradcampp")


def train_round0(out: Path, data: str, model: str, stride: int, seed: int) -> Any:
    import chexradi

    return chexradi.iterate(data, model=model, rounds=1, seed=seed, out=out, train={"output_stride": stride},
                            guidance={"enabled": False}, progress=False)


def mask_scores(checkpoint: Path, ds: Any, method: str, fractions: tuple[float, ...]) -> dict[float, dict[str, float]]:
    """Per fraction: mean IoU of the masks of present findings with the truth, and localisation at
    T(IoU) = 0.1 / 0.3 (box of the strongest component against the ground-truth box)."""
    from chexradi.cam.masks import MaskWarning, heatmap_to_mask, mask_iou
    from chexradi.data.truth import truth_masks
    from chexradi.metrics import box_iou
    from chexradi.nn import load_model
    from chexradi.train import predict

    model, _ = load_model(checkpoint)
    names = model.class_names
    pred = predict(model, ds, batch_size=32, heatmaps=method, progress=False)
    assert pred.heatmaps is not None
    out: dict[float, dict[str, Any]] = {f: {"iou": [], "hit01": {}, "hit03": {}, "full": 0} for f in fractions}
    # a constant map (Grad-CAM where every gradient is negative) gives a full mask: counted, not warned about
    warnings.simplefilter("ignore", MaskWarning)
    logging.getLogger("chexradi").setLevel(logging.ERROR)
    for i in range(len(ds)):
        truth = truth_masks(ds, i, pred.heatmaps.shape[-2:])
        boxes = ds.boxes_at(i)
        for k, c in enumerate(names):
            if c not in truth:
                continue
            for f in fractions:
                res = heatmap_to_mask(pred.heatmaps[i, k], method="fraction", value=f)
                out[f]["full"] += int(res.full)
                v = mask_iou(res.mask, truth[c])
                out[f]["iou"].append(0.0 if v != v else v)
                best = max(res.boxes, key=lambda b: b.score) if res.boxes else None
                for g in boxes.get(c, []):
                    iou = 0.0 if best is None else box_iou((best.x, best.y, best.w, best.h), g)
                    out[f]["hit01"].setdefault(c, []).append(iou > 0.1)
                    out[f]["hit03"].setdefault(c, []).append(iou > 0.3)
    return {f: {"iou": float(np.mean(d["iou"])), "full_masks": d["full"] / max(1, len(d["iou"])),
                "loc01": float(np.mean([np.mean(v) for v in d["hit01"].values()])),
                "loc03": float(np.mean([np.mean(v) for v in d["hit03"].values()]))} for f, d in out.items()}


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="Folder of the round-0 runs.")
    ap.add_argument("--data", default="phantom", help="Data spec [phantom].")
    ap.add_argument("--model", default="resnet18_ta", help="Model [resnet18_ta].")
    ap.add_argument("--strides", type=int, nargs="+", default=[32, 16, 8], help="Output strides [32 16 8].")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="Training seeds [0].")
    ap.add_argument("--json", type=Path, default=None, help="Also write the results as JSON.")
    args = ap.parse_args(argv)
    from chexradi.data.sources import open_data

    splits = open_data(args.data)
    results: dict[str, Any] = {"data": args.data, "model": args.model, "runs": []}
    for stride in args.strides:
        for seed in args.seeds:
            d = args.out / f"stride{stride}" / f"seed{seed}"
            t0 = time.perf_counter()
            h = train_round0(d, args.data, args.model, stride, seed)
            r = h[0]
            fit = json.loads((d / "round_0" / "fit" / "history.json").read_text())
            per_epoch = float(np.mean([e["seconds"] for e in fit["history"]]))
            rec: dict[str, Any] = {
                "stride": stride, "seed": seed, "map": splits.train.size // stride, "auc": r["mean_auc"]["image"],
                "loc_iou_0.1": r["loc_iou"]["0.1"], "loc_iou_0.3": r["loc_iou"]["0.3"],
                "loc_iobb_0.5": r["loc_iobb"]["0.5"], "cam_truth_iou": (r.get("cam_truth_iou") or {}).get("test"),
                "seconds_per_epoch": per_epoch, "epochs": r["epochs_run"],
                "seconds_round": r["seconds"]["total"], "methods": {}}
            ckpt = d / "round_0" / "fit" / "best.pt"
            for method in METHODS:
                val = mask_scores(ckpt, splits.val, method, FRACTIONS)
                test = mask_scores(ckpt, splits.test, method, FRACTIONS)
                best = max(FRACTIONS, key=lambda f: val[f]["iou"])
                rec["methods"][method] = {"fraction_chosen_on_val": best, "val_iou_chosen": val[best]["iou"],
                                          "test_at_0.5": test[0.5], "test_at_chosen": test[best],
                                          "test_all": {str(f): test[f] for f in FRACTIONS}}
            print(f"stride {stride}, seed {seed}: {time.perf_counter() - t0:.0f} s; " + json.dumps(
                {k: v for k, v in rec.items() if k != "methods"}), flush=True)
            results["runs"].append(rec)
    print("\n| stride | final map | seeds | test AUC | T(IoU)=0.1 | T(IoU)=0.3 | T(IoBB)=0.5 | CAM mask IoU with truth "
          "| s / epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for stride in args.strides:
        rs = [r for r in results["runs"] if r["stride"] == stride]
        m = lambda k: np.mean([r[k] for r in rs])  # noqa: E731
        print(f"| {stride} | {rs[0]['map']} x {rs[0]['map']} | {len(rs)} | {m('auc'):.3f} | {m('loc_iou_0.1'):.3f} | "
              f"{m('loc_iou_0.3'):.3f} | {m('loc_iobb_0.5'):.3f} | {m('cam_truth_iou'):.3f} | "
              f"{m('seconds_per_epoch'):.1f} |")
    print("\n| stride | method | test IoU with truth at fraction 0.5 | fraction chosen on val | test IoU there | "
          "T(IoU)=0.1 at 0.5 -> chosen | T(IoU)=0.3 at 0.5 -> chosen | constant maps (full masks) |")
    print("|---|---|---|---|---|---|---|---|")
    for stride in args.strides:
        rs = [r for r in results["runs"] if r["stride"] == stride]
        for method in METHODS:
            ms = [r["methods"][method] for r in rs]
            a = np.mean([x["test_at_0.5"]["iou"] for x in ms])
            b = np.mean([x["test_at_chosen"]["iou"] for x in ms])
            fr = "/".join(f"{x['fraction_chosen_on_val']:g}" for x in ms)
            l1 = (np.mean([x["test_at_0.5"]["loc01"] for x in ms]), np.mean([x["test_at_chosen"]["loc01"] for x in ms]))
            l3 = (np.mean([x["test_at_0.5"]["loc03"] for x in ms]), np.mean([x["test_at_chosen"]["loc03"] for x in ms]))
            full = np.mean([x["test_at_0.5"]["full_masks"] for x in ms])
            print(f"| {stride} | {method} | {a:.3f} | {fr} | {b:.3f} | {l1[0]:.3f} -> {l1[1]:.3f} | "
                  f"{l3[0]:.3f} -> {l3[1]:.3f} | {full:.1%} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
