"""The radiomics ceiling of the phantom: how well radiomics inside a *correct* mask tells a finding from normal lung.

For every class, on the phantom as the loop sees it (each image through the network
normalisation and back to 0-255, the loop's radiomics images; the loop's radiomics settings):

* **finding vs normal lung** -- chexradi's features inside each present finding's
  ground-truth mask, against the same features inside the *same region* of another image
  without that finding (the mask where it lies, cut to that image's lung fields clear of its
  findings, when at least 95 % of it is there; up to ten images tried), so that place and size
  are held fixed and only what is inside differs; when none has room, the outline moved whole
  into normal lung of the same image (:func:`chexradi.cam.masks.place_mask`); a finding with
  neither is left without its pair (the counts say how many pairs there are). Cardiomegaly's
  ground truth is the heart, which is no lung: its row is left out.
* **oracle arm** -- what the loop's ``truth`` arm hands the radiomics on the training split:
  present findings in their ground-truth mask, absent ones in a region of normal lung shaped and
  placed like a real finding (another image's ground-truth mask of that class where it lies, cut
  to this image's normal lung: :func:`chexradi.loop.arms.normal_region`; Cardiomegaly: the heart,
  enlarged or not). This is the separability the guidance of that arm could pass on; the place of
  the region says nothing about the label.

Each is a cross-validated logistic regression (scikit-learn: standardised features, L2,
stratified 5-fold, out-of-fold scores) and its ROC AUC per class, with the number of cases.
An AUC near 1 says the texture signature is there for radiomics to read; near 0.5, radiomics
in a correct mask cannot see the finding.

Usage::

    python examples/radiomics_ceiling.py                      # the default phantom, 840 images
    python examples/radiomics_ceiling.py --data "phantom:n=1200" --json ceiling.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _features(extractor, image: np.ndarray, mask: np.ndarray) -> list[float]:
    out = extractor.execute(image, mask.astype(np.uint8))
    return [float(v) for k, v in sorted(out.items())]


def ceiling(data: str, *, folds: int, seed: int) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import chexradi
    from chexradi.cam.masks import place_mask
    from chexradi.data.sources import open_data
    from chexradi.data.transforms import from_model_input
    from chexradi.loop.arms import ORGAN_OF, normal_region
    from chexradi.guidance import source_defaults

    splits = open_data(data)
    names = list(splits.class_names)
    extractor = chexradi.Extractor(source_defaults("radiomics")["params"])
    rng = np.random.default_rng(seed)
    pairs: dict[str, list[tuple[list[float], int]]] = {c: [] for c in names}   # finding vs normal lung
    oracle: dict[str, list[tuple[list[float], int]]] = {c: [] for c in names}  # the truth arm's masks
    outlines: dict[str, list[np.ndarray]] = {c: [] for c in names}
    cases = [(ds, i) for ds in (splits.train, splits.val, splits.test) for i in range(len(ds))]
    for ds, i in cases:
        for c, m in ds.masks_at(i).items():
            outlines[c].append(m)
    def image_of(k: int) -> np.ndarray:
        ds, i = cases[k]
        return from_model_input(np.asarray(ds[i]["image"])) * 255.0

    def normal_of(k: int) -> np.ndarray:
        ds, i = cases[k]
        normal = ds.lungs_at(i).copy()
        for m in ds.masks_at(i).values():
            normal &= ~m
        return normal

    for k, (ds, i) in enumerate(cases):
        image = image_of(k)
        truth = ds.masks_at(i)
        normal = normal_of(k)
        for c in names:
            if c in truth:
                f = _features(extractor, image, truth[c])
                oracle[c].append((f, 1))
                if c in ORGAN_OF:
                    continue
                pairs[c].append((f, 1))
                without = [j for j in range(len(cases)) if c not in cases[j][0].masks_at(cases[j][1])]
                m = truth[c]
                for j in rng.choice(without, size=min(10, len(without)), replace=False).tolist():
                    region = normal_of(j)
                    if np.count_nonzero(m & region) >= 0.95 * np.count_nonzero(m):  # the same place, no finding
                        pairs[c].append((_features(extractor, image_of(j), m & region), 0))
                        break
                else:
                    moved = place_mask(m, normal, rng)
                    if not (moved & ~normal).any():  # a region wholly in normal lung of this image
                        pairs[c].append((_features(extractor, image, moved), 0))
            else:
                organ = ORGAN_OF.get(c)
                if organ is not None:
                    region = getattr(ds, f"{organ}_at")(i)
                else:
                    region = normal_region(outlines[c], normal, rng)
                oracle[c].append((_features(extractor, image, region), 0))
    out: dict[str, dict[str, float]] = {c: {} for c in names}
    for what, table in (("finding_vs_lung", pairs), ("oracle_arm", oracle)):
        for c in names:
            if not table[c]:
                continue
            x = np.array([f for f, _ in table[c]], dtype=np.float64)
            y = np.array([lab for _, lab in table[c]])
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
            cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            score = cross_val_predict(model, x, y, cv=cv, method="decision_function")
            out[c][what] = float(roc_auc_score(y, score))
            out[c][f"{what}_n"] = int(y.size)
            out[c][f"{what}_pos"] = int(y.sum())
    return out


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="phantom", help="Phantom spec [phantom: the loop's default phantom].")
    ap.add_argument("--folds", type=int, default=5, help="Cross-validation folds [5].")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the placements and folds [0].")
    ap.add_argument("--json", type=Path, default=None, help="Also write the table as JSON.")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = ceiling(args.data, folds=args.folds, seed=args.seed)
    print(f"radiomics ceiling on {args.data}: cross-validated logistic regression AUC ({args.folds} folds), "
          f"{time.perf_counter() - t0:.0f} s")
    print("| class | finding vs normal lung | cases (findings) | oracle arm: present vs absent | cases (present) |")
    print("|---|---|---|---|---|")
    for c, r in res.items():
        vs_lung = (f"{r['finding_vs_lung']:.3f} | {r['finding_vs_lung_n']} ({r['finding_vs_lung_pos']})"
                   if "finding_vs_lung" in r else "- (the heart is not in the lung) | -")
        print(f"| {c} | {vs_lung} | {r['oracle_arm']:.3f} | {r['oracle_arm_n']} ({r['oracle_arm_pos']}) |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"data": args.data, "folds": args.folds, "seed": args.seed,
                                         "auc": res}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
