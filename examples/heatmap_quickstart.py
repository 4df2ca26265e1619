"""Train a triplet-attention CNN on generated radiograph-like images, then look at its heatmaps.

The first half of the ChexRadiNet loop, end to end on any machine in about a minute of CPU:

1. generate grey "radiographs" (a smooth thorax with noise) where two findings are
   drawn at random places: a small bright *nodule* (a disc) and a *streak* (a bright
   oblique band), each present with probability 1/2, independently, with their boxes;
2. train ``resnet18_ta`` (one grey channel) with :func:`chexradi.train.fit`
   (BCE, AdamW, cosine schedule, early stopping on validation AUC, checkpoints);
3. score a held-out test set (:func:`chexradi.train.predict`) and compute AUC per class;
4. compute class activation maps (CAM; ``--method gradcam`` for Grad-CAM), threshold them into masks and boxes
   (:func:`chexradi.cam.masks.heatmap_to_mask`), and count a hit when the strongest box
   has IoU > 0.1 or covers the finding's centre (Wang et al.'s protocol uses IoU/IoBB);
5. write overlays, masks and tables for a few test images with
   :func:`chexradi.cam.write_heatmaps` (the same as ``chexradi heatmap``).

This generator is a stand-in for the real thing: the chest X-ray phantom with
ChestX-ray14 lesion kinds is ``chexradi.data.phantom``'s job.

Usage::

    python examples/heatmap_quickstart.py --out quickstart-output
    python examples/heatmap_quickstart.py --out q --n-train 96 --epochs 3 --json q/summary.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

CLASSES = ["Nodule", "Streak"]


def generate(n: int, *, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size)`` in [0, 1], labels ``(n, 2)``, boxes ``(n, 2, 4)`` (x, y, w, h; -1 if absent)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    images = np.empty((n, size, size), np.float32)
    labels = (rng.random((n, 2)) < 0.5).astype(np.float32)
    boxes = -np.ones((n, 2, 4), np.int64)
    for i in range(n):
        body = np.exp(-(((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.38 * size)) ** 2))
        img = 0.25 + 0.35 * body + rng.normal(0.0, 0.06, (size, size))
        if labels[i, 0]:
            r = rng.uniform(0.05, 0.08) * size
            cy, cx = rng.uniform(0.2 * size, 0.8 * size, 2)
            img += 0.35 * (np.hypot(yy - cy, xx - cx) <= r)
            boxes[i, 0] = [int(cx - r), int(cy - r), int(2 * r) + 1, int(2 * r) + 1]
        if labels[i, 1]:
            half = rng.uniform(0.12, 0.18) * size
            cy, cx = rng.uniform(0.25 * size, 0.75 * size, 2)
            t = np.clip(((xx - cx) + (yy - cy)) / 2.0, -half, half)       # along the 45-degree axis
            d = np.hypot(xx - (cx + t), yy - (cy + t))                     # distance to the segment
            img += 0.25 * (d <= 0.03 * size)
            ext = half + 0.03 * size
            boxes[i, 1] = [int(cx - ext), int(cy - ext), int(2 * ext) + 1, int(2 * ext) + 1]
        images[i] = np.clip(img, 0.0, 1.0)
    return images, labels, boxes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("quickstart-output"), help="output folder")
    ap.add_argument("--n-train", type=int, default=320, help="training images (validation and test: 1/4 each)")
    ap.add_argument("--size", type=int, default=96, help="image side in pixels")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--model", default="resnet18_ta")
    ap.add_argument("--method", default="cam", choices=["cam", "gradcam"], help="heatmap method")
    ap.add_argument("--layer", default=None, help="Grad-CAM target layer (default: the final feature map)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--overlays", type=int, default=4, help="test images to write overlays for")
    ap.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from chexradi.cam import heatmap_to_mask, write_heatmaps
    from chexradi.data.transforms import to_model_input
    from chexradi.metrics import auc_per_class, box_iou
    from chexradi.nn import create_model
    from chexradi.train import ArrayDataset, fit, predict

    t0 = time.perf_counter()
    n_val = n_test = max(8, args.n_train // 4)
    images, labels, boxes = generate(args.n_train + n_val + n_test, size=args.size, seed=args.seed)
    x = np.stack([to_model_input(im, size=args.size) for im in images])  # the documented normalisation
    tr, va, te = slice(0, args.n_train), slice(args.n_train, args.n_train + n_val), slice(args.n_train + n_val, None)
    torch.manual_seed(args.seed)
    model = create_model(args.model, num_classes=len(CLASSES), in_chans=1, class_names=CLASSES)
    result = fit(model, ArrayDataset(x[tr], labels[tr]), ArrayDataset(x[va], labels[va]), epochs=args.epochs,
                 batch_size=32, lr=1e-3, weight_decay=1e-4, patience=3, seed=args.seed, out=args.out / "run",
                 device=args.device, meta={"image_size": args.size})
    pred = predict(model, ArrayDataset(x[te], labels[te]), heatmaps=args.method, target_layer=args.layer,
                   device=args.device)
    auc = auc_per_class(labels[te], pred.probs)

    hits = {c: [0, 0] for c in CLASSES}
    for i in range(pred.probs.shape[0]):
        for k, c in enumerate(CLASSES):
            if labels[te][i, k] != 1:
                continue
            res = heatmap_to_mask(pred.heatmaps[i, k], method="fraction", value=0.5)
            truth = tuple(int(v) for v in boxes[te][i, k])
            cx, cy = truth[0] + truth[2] / 2, truth[1] + truth[3] / 2
            b = res.boxes[0] if res.boxes else None
            hit = b is not None and (box_iou(b, truth) > 0.1
                                     or (b.x <= cx < b.x + b.w and b.y <= cy < b.y + b.h))
            hits[c][0] += int(hit)
            hits[c][1] += 1

    # a few test images as 16-bit PNG files -> the same files `chexradi heatmap` writes
    img_dir = args.out / "test-images"
    img_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(args.overlays, pred.probs.shape[0])):
        p = img_dir / f"test_{i:03d}.png"
        Image.fromarray((images[te][i] * 65535).round().astype(np.uint16)).save(p)
        paths.append(p)
    report = write_heatmaps(result.best_path, paths, args.out / "heatmaps", method=args.method, target_layer=args.layer,
                            all_classes=True, device=args.device, progress=False)

    summary = {
        "model": args.model, "method": args.method, "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "train_loss": [round(h["train_loss"], 4) for h in result.history],
        "val_mean_auc": [h["val_mean_auc"] for h in result.history],
        "test_auc": {c: round(float(a), 4) for c, a in zip(CLASSES, auc)},
        "test_mean_auc": round(float(np.nanmean(auc)), 4),
        "localisation_hit_rate": {c: round(h / max(1, n), 4) for c, (h, n) in hits.items()},
        "n_test": int(pred.probs.shape[0]), "checkpoint": str(result.best_path),
        "overlays": [r["overlay"] for r in report.regions], "seconds": round(time.perf_counter() - t0, 1),
        "device": str(result.device),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    print(f"\noverlays: {args.out / 'heatmaps'}  (one folder per image, one PNG per class)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
