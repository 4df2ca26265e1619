"""Do the text teachers read real radiology language? Their report branches alone on the IU X-ray reports.

Trains each text teacher's report branch as a report -> labels classifier
(:mod:`chexradi.guidance.report_classifier`: ``report_lstm`` is TandemNet's, ``report_transformer``
VKD's) on the real IU X-ray reports of R2Gen's training split (their Findings, as report generation
uses them), selects the epoch on R2Gen's validation split, and scores R2Gen's 590 test reports. The
labels are the human indexers' MeSH major terms mapped to ChestX-ray14's 14 classes
(:func:`chexradi.data.reports_join.r2gen_iu_xray` with ``labels="mesh"``): independent of the text
the model reads, unlike chexradi's own labeler. The vocabulary is fitted on the training reports.

Prints, for each branch and seed, the test AUC per class (classes with a positive test report) and
their mean, the mean's 95 % bootstrap interval over test reports, and the mean over seeds.

Usage::

    python examples/text_branch_iu.py ../shared/data/iu-xray-reports --out runs/text_branch
    python examples/text_branch_iu.py DIR --out runs/text_branch --docs docs/text-guidance.md

``DIR`` holds ``r2gen_annotation.json`` and ``NLMCXR_reports.tgz``. Re-running resumes each fit.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BRANCHES = ("report_lstm", "report_transformer")


def load(folder: Path) -> tuple[dict[str, list[str]], dict[str, np.ndarray], tuple[str, ...]]:
    from chexradi.data.reports_join import r2gen_iu_xray

    j = r2gen_iu_xray(folder / "r2gen_annotation.json", reports=folder / "NLMCXR_reports.tgz", labels="mesh")
    by = j.by_split()
    texts = {s: [r.report.findings for r in by[s]] for s in ("train", "val", "test")}
    labels = {s: np.stack([r.labels for r in by[s]]).astype(np.float32) for s in ("train", "val", "test")}
    return texts, labels, j.class_names


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    from chexradi.guidance.report_classifier import pad_tokens

    return {"tokens": pad_tokens(0)([it["tokens"] for it in items]),
            "target": torch.stack([it["target"] for it in items]),
            "index": torch.tensor([it["index"] for it in items])}


def train_branch(name: str, texts: dict[str, list[str]], labels: dict[str, np.ndarray], *, seed: int, epochs: int,
                 out: Path, max_reports: "int | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit one branch; returns the test split's labels and probabilities."""
    import torch

    from chexradi.guidance.report_classifier import ReportDataset, ReportObjective
    from chexradi.nn import create_model
    from chexradi.reports.tokenizer import Tokenizer
    from chexradi.train import fit, predict

    cut = {s: (slice(None) if max_reports is None else slice(0, max_reports)) for s in texts}
    tx = {s: texts[s][cut[s]] for s in texts}
    y = {s: labels[s][cut[s]] for s in labels}
    tok = Tokenizer.fit(tx["train"])
    ds = {s: ReportDataset(tx[s], y[s], tok) for s in tx}
    kw: dict[str, Any] = ({"stop_id": tok.stoi["."], "ignore_ids": (tok.bos_id, tok.eos_id)} if name == "report_lstm"
                          else {"max_length": tok.max_length + 2})
    torch.manual_seed(seed)
    model = create_model(name, vocab_size=tok.vocab_size, num_classes=y["train"].shape[1], pad_id=tok.pad_id, **kw)
    fit(model, ds["train"], ds["val"], epochs=epochs, batch_size=32, lr=1e-3, seed=seed, objective=ReportObjective(),
        out=out, resume=True, progress=False, collate_fn=collate, device="cpu")
    p = predict(model, ds["test"], objective=ReportObjective(), collate_fn=collate, device="cpu")
    return y["test"], p.probs


def mean_auc_ci(y: np.ndarray, p: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    from chexradi.metrics import auc_per_class

    base = float(np.nanmean(auc_per_class(y, p)))
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        with np.errstate(all="ignore"):
            a = auc_per_class(y[i], p[i])
        if np.isfinite(a).any():
            vals.append(float(np.nanmean(a)))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return base, float(lo), float(hi)


def main(argv: "list[str] | None" = None) -> int:
    from chexradi.metrics import auc_per_class

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="Folder with r2gen_annotation.json and NLMCXR_reports.tgz.")
    ap.add_argument("--out", type=Path, required=True, help="Folder of the fits (OUT/<branch>/seed<s>).")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="Seeds [0 1 2].")
    ap.add_argument("--epochs", type=int, default=20, help="Maximum epochs (best on validation) [20].")
    ap.add_argument("--branches", nargs="+", default=list(BRANCHES), choices=BRANCHES)
    ap.add_argument("--max-reports", type=int, default=None, help="Use the first N reports of each split (tests).")
    ap.add_argument("--docs", type=Path, default=None, help="Markdown file to write the table into.")
    args = ap.parse_args(argv)
    for f in ("r2gen_annotation.json", "NLMCXR_reports.tgz"):
        if not (args.folder / f).is_file():
            print(f"error: {args.folder / f} not found; give the folder holding R2Gen's annotation and the IU XML",
                  file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    texts, labels, names = load(args.folder)
    pos = (labels["test"][: args.max_reports] == 1).sum(0) if args.max_reports else (labels["test"] == 1).sum(0)
    rows, per_class = [], {}
    for b in args.branches:
        means = []
        for seed in args.seeds:
            y, p = train_branch(b, texts, labels, seed=seed, epochs=args.epochs, out=args.out / b / f"seed{seed}",
                                max_reports=args.max_reports)
            m, lo, hi = mean_auc_ci(y, p)
            means.append(m)
            per_class[(b, seed)] = auc_per_class(y, p)
            rows.append(f"| {b} | {seed} | {m:.3f} | [{lo:.3f}, {hi:.3f}] |")
        rows.append(f"| {b} | mean ± sd | {np.mean(means):.3f} ± {np.std(means, ddof=1) if len(means) > 1 else 0:.3f} | |")
    cmd = " ".join(["python examples/text_branch_iu.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"`{cmd}` ({(time.perf_counter() - t0) / 60:.1f} min): R2Gen's IU X-ray split (2,069 / 296 / 590 "
             "reports, Findings), labels from the MeSH major terms; test mean AUC over the classes with a positive "
             "test report, 95 % bootstrap interval over test reports.", "",
             "| branch | seed | test mean AUC | 95 % CI |", "|---|---|---|---|", *rows, "",
             "Per class (test positives; AUC mean over seeds):", "",
             "| class | positives | " + " | ".join(args.branches) + " |", "|---" * (2 + len(args.branches)) + "|"]
    for k, c in enumerate(names):
        vals = [[per_class[(b, s)][k] for s in args.seeds] for b in args.branches]
        cells = [float(np.mean([x for x in v if np.isfinite(x)])) if np.isfinite(v).any() else float("nan")
                 for v in vals]
        lines.append(f"| {c} | {int(pos[k])} | " + " | ".join("-" if not np.isfinite(v) else f"{v:.3f}"
                                                               for v in cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.docs is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        from text_guidance import write_section

        write_section(args.docs, "iu-branch", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
