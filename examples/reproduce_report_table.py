"""The report-generation table: chexradi's generators and the text floors beside published IU X-ray figures.

Three parts, each optional:

``--iu-reports FILE``
    The text floors that need no image on IU X-ray's R2Gen test split (590 studies): "the most
    frequent training report for every study" and "the training report of the nearest label
    vector" (labels: the human MeSH indexing when the IU XML ``NLMCXR_reports.tgz`` lies beside the
    annotation, else chexradi's labeler on the reference), all metrics, beside R2Gen / R2GenCMN /
    Show-and-Tell as published. Every generator belongs beside these floors.
``--data SPEC`` (default ``phantom``)
    Generators trained and evaluated on ``SPEC`` (``iu_xray:DIR`` for the published setting: then the
    rows are comparable with the papers'; the phantom's rows are labelled NOT comparable). Arms:
    the encoder (``--encoder NAME`` fine-tuned, or, with ``--loop-runs DIR``, the frozen round-1
    classifiers of an ``examples/ablation.py`` folder: ``control`` = image-only, ``cam`` =
    radiomics-guided, seed ``s`` taking that seed's classifier) x label conditioning off / on x
    ``--seeds``; each run decoded greedily and with beam 3. Differences (beam 3 - greedy, labels -
    no labels, guided - image-only) are paired by seed: mean and the 95 % t interval over seeds.

Commands that produced docs/report-generation.md::

    python examples/reproduce_report_table.py --iu-reports ../shared/data/iu-xray-reports/r2gen_annotation.json \\
        --no-models --docs docs/report-generation.md
    python examples/reproduce_report_table.py --data phantom --loop-runs runs/ablation --out runs/reportgen \\
        --docs docs/report-generation.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import _ci, _f, write_section as _write_section  # noqa: E402 - the ablation's table helpers

COLUMNS = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr")
CE = ("CE_P", "CE_R", "CE_F1")
#: Published IU X-ray test figures (R2Gen's split): BLEU-1..4, METEOR, ROUGE-L (CIDEr not reported there).
PUBLISHED = {
    "R2Gen (Chen et al., 2020)": (0.470, 0.304, 0.219, 0.165, 0.187, 0.371, None),
    "R2GenCMN (Chen et al., 2021)": (0.475, 0.309, 0.222, 0.170, 0.191, 0.375, None),
    "Show-and-Tell (as reported by R2Gen)": (0.216, None, None, 0.066, None, 0.306, None),
}
#: The phantom's generator settings, fixed before any run was scored.
#: Sized for 12 runs on 2 CPU cores (about 5 minutes each).
PHANTOM_SETTINGS = {"epochs": 10, "batch_size": 32, "lr": 1e-3, "hidden": 256, "embed_dim": 128, "feature_dim": 256,
                    "dropout": 0.5, "select": "BLEU_4", "patience": 4, "max_length": 60}


def write_section(path: Path, section: str, text: str) -> None:
    """Replace the ``<!-- reportgen:SECTION start/end -->`` block of ``path``."""
    _write_section(path, section, text, prefix="reportgen")


def _row(name: str, values: dict[str, Any], cols: tuple[str, ...]) -> str:
    return f"| {name} | " + " | ".join(_f(values.get(c)) for c in cols) + " |"


def floors(annotation: Path) -> str:
    """The two text floors on the R2Gen test split, with all metrics, beside the published figures."""
    from chexradi.data.reports_join import r2gen_iu_xray
    from chexradi.reportgen.run import reference_texts
    from chexradi.reportgen.scoring import most_frequent_report, nearest_label_reports, score_reports
    from chexradi.reports.tokenizer import Tokenizer

    xml = annotation.parent / "NLMCXR_reports.tgz"
    joined = r2gen_iu_xray(annotation, reports=xml if xml.is_file() else None,
                           labels="mesh" if xml.is_file() else "labeler")
    parts = joined.by_split()
    train, test = parts["train"], parts["test"]
    tok = Tokenizer.fit([r.report.findings for r in train], min_count=3, max_length=60)
    refs = reference_texts([r.report.findings for r in test], tok)
    train_texts = reference_texts([r.report.findings for r in train], tok)
    import numpy as np

    ytr = np.stack([r.labels for r in train])
    yte = np.stack([r.labels for r in test])
    ids = [r.image_id for r in test]
    systems = {"most frequent training report": [most_frequent_report(train_texts)] * len(test),
               "nearest label vector's training report": nearest_label_reports(train_texts, ytr, yte)}
    lines = [f"IU X-ray, R2Gen split: {len(train)} training and {len(test)} test studies; references and floors "
             f"through the training vocabulary ({tok.vocab_size} ids, max 60 words), as R2Gen scores. Label vectors "
             f"for the nearest-label floor: {'MeSH (human indexing)' if xml.is_file() else 'chexradi labeler'}.",
             "", "| system | " + " | ".join(COLUMNS + CE) + " |", "|---" * (1 + len(COLUMNS + CE)) + "|"]
    for name, hyps in systems.items():
        sc = score_reports(refs, hyps, ids=ids)
        lines.append(_row(f"floor: {name}", sc.row(), COLUMNS + CE))
    for name, vals in PUBLISHED.items():
        lines.append(_row(f"published: {name}", dict(zip(COLUMNS, vals)), COLUMNS + CE))
    lines += ["", f"The most frequent training report: \"{systems['most frequent training report'][0]}\". It names no "
              f"finding, so its CE precision is undefined ('-') and its recall and F1 are 0. The nearest-label floor "
              f"reads the test study's own labels (an oracle of the labels: what retrieval after a perfect classifier "
              f"gives), never its text. CE: chexradi's labeler (ChestX-ray14 labels) on both sides, positive = 1."]
    return "\n".join(lines)


def _stats(diffs: list[float]) -> tuple[float, Any, Any]:
    import numpy as np
    from scipy import stats

    d = np.asarray(diffs, float)
    if len(d) < 2:
        return float(d.mean()), None, None
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def data_floors(args: argparse.Namespace, run: Path, cols: tuple[str, ...]) -> list[str]:
    """The two text floors on the generators' own test split, scored like them (the run's vocabulary); table rows."""
    from chexradi.data.sources import open_data
    from chexradi.reportgen import StudyDataset
    from chexradi.reportgen.run import reference_texts
    from chexradi.reportgen.scoring import most_frequent_report, nearest_label_reports, score_reports
    from chexradi.reports.tokenizer import Tokenizer

    tok = Tokenizer.load(run / "tokenizer.json")
    settings = json.loads((run / "run.json").read_text())["settings"]
    splits = open_data(args.data, size=settings["size"], seed=settings["seed"])
    train = StudyDataset(splits.train, tok, sections=settings["sections"])
    test = StudyDataset(splits.test, tok, sections=settings["sections"], split="test")
    refs = reference_texts(test.texts, tok)
    train_texts = reference_texts(train.texts, tok)
    floors_ = {"most frequent training report": [most_frequent_report(train_texts)] * len(test),
               "nearest label vector (the test labels: oracle)": nearest_label_reports(train_texts, train.targets,
                                                                                      test.targets)}
    rows = []
    for name, hyps in floors_.items():
        row = score_reports(refs, hyps, ids=test.study_ids, meteor=not args.no_meteor).row()
        rows.append(f"| floor: {name} | - | - | " + " | ".join(_f(row.get(c)) for c in cols) + " |")
    return rows


def models(args: argparse.Namespace) -> str:
    import numpy as np

    from chexradi.reportgen import evaluate_run, train_report_generator

    comparable = args.data.startswith("iu_xray")
    encoders: dict[str, Any] = {}
    if args.loop_runs:
        for arm in ("control", "cam"):
            encoders[arm] = {s: str(Path(args.loop_runs) / arm / f"seed{s}" / "round_1" / "fit" / "best.pt")
                             for s in args.seeds}
    else:
        encoders[args.encoder] = {s: args.encoder for s in args.seeds}
    if args.only:
        encoders = {k: v for k, v in encoders.items() if k in args.only}
    results: dict[tuple[str, bool, int], dict[str, Any]] = {}
    for enc, per_seed in encoders.items():
        for labels in (False, True):
            for seed in args.seeds:
                out = Path(args.out) / f"{enc}-{'labels' if labels else 'plain'}" / f"seed{seed}"
                t0 = time.time()
                settings = dict(PHANTOM_SETTINGS) if args.data.startswith("phantom") else {}
                settings.update(encoder=per_seed[seed], label_conditioning=labels, seed=seed,
                                freeze_encoder=bool(args.loop_runs))
                if args.epochs:
                    settings["epochs"] = args.epochs
                run = train_report_generator(args.data, out, progress=False, **settings)
                res = evaluate_run(out, beams=(1, 3), progress=False, meteor=not args.no_meteor)
                results[(enc, labels, seed)] = {k: v["row"] for k, v in res.items()}
                print(f"{out}: best epoch {run.best_epoch}, greedy BLEU-4 {res['beam1']['row']['BLEU_4']:.3f}, "
                      f"beam 3 {res['beam3']['row']['BLEU_4']:.3f} ({time.time() - t0:.0f} s)", flush=True)
    cols = COLUMNS + CE
    label = "" if comparable else " (phantom: NOT comparable with the published IU X-ray figures)"
    lines = [f"Data `{args.data}`{label}; seeds {', '.join(map(str, args.seeds))}; mean over seeds.", "",
             "| encoder | labels | decoding | " + " | ".join(cols) + " |", "|---" * (3 + len(cols)) + "|"]
    for enc in encoders:
        for labels in (False, True):
            for dec in ("beam1", "beam3"):
                rows = [results[(enc, labels, s)][dec] for s in args.seeds]
                mean = {c: (float(np.mean([r[c] for r in rows])) if all(r.get(c) is not None for r in rows) else None)
                        for c in cols}
                lines.append(f"| {enc} | {'yes' if labels else 'no'} | {'greedy' if dec == 'beam1' else 'beam 3'} | "
                             + " | ".join(_f(mean[c]) for c in cols) + " |")
    lines += data_floors(args, Path(args.out) / f"{next(iter(encoders))}-plain" / f"seed{args.seeds[0]}", cols)
    if not comparable:
        lines += ["", "Published IU X-ray figures, for reference only:", "",
                  "| system | " + " | ".join(COLUMNS) + " |", "|---" * (1 + len(COLUMNS)) + "|"]
        lines += [_row(n, dict(zip(COLUMNS, v)), COLUMNS) for n, v in PUBLISHED.items()]
    contrasts: list[tuple[str, list[tuple[tuple, tuple]]]] = []
    for enc in encoders:
        for labels in (False, True):
            contrasts.append((f"beam 3 - greedy ({enc}, labels {'yes' if labels else 'no'})",
                              [((enc, labels, s, "beam1"), (enc, labels, s, "beam3")) for s in args.seeds]))
    for enc in encoders:
        for dec in ("beam1", "beam3"):
            contrasts.append((f"labels - no labels ({enc}, {'greedy' if dec == 'beam1' else 'beam 3'})",
                              [((enc, False, s, dec), (enc, True, s, dec)) for s in args.seeds]))
    if len(encoders) == 2:
        a, b = list(encoders)
        for labels in (False, True):
            for dec in ("beam1", "beam3"):
                contrasts.append((f"{b} - {a} encoder (labels {'yes' if labels else 'no'}, "
                                  f"{'greedy' if dec == 'beam1' else 'beam 3'})",
                                  [((a, labels, s, dec), (b, labels, s, dec)) for s in args.seeds]))
    show = ("BLEU_4", "METEOR", "ROUGE_L", "CIDEr", "CE_F1")
    lines += ["", "Differences, paired by seed: mean [95 % t interval over seeds].", "",
              "| contrast | " + " | ".join(show) + " |", "|---" * (1 + len(show)) + "|"]
    for name, pairs in contrasts:
        cells = []
        for c in show:
            d = [results[x[:3]][x[3]][c] for x in (p[1] for p in pairs)]
            base = [results[x[:3]][x[3]][c] for x in (p[0] for p in pairs)]
            if any(v is None for v in d + base):
                cells.append("n/a")
                continue
            m, lo, hi = _stats([y - x for x, y in zip(base, d)])
            cells.append(f"{_f(m, sign=True)} {_ci(lo, hi)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (Path(args.out) / "results.json").write_text(json.dumps({f"{e}|{lab}|{s}": v for (e, lab, s), v in
                                                            results.items()}, indent=1))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iu-reports", type=Path, default=None, help="R2Gen's annotation.json: the text floors.")
    ap.add_argument("--data", default="phantom", help="Data spec for the generators [phantom].")
    ap.add_argument("--no-models", action="store_true", help="Only the text floors.")
    ap.add_argument("--loop-runs", default=None, help="An examples/ablation.py folder: control vs cam encoders.")
    ap.add_argument("--encoder", default="resnet18", help="Encoder without --loop-runs (fine-tuned) [resnet18].")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=None, help="Override the epochs (a quick look).")
    ap.add_argument("--no-meteor", action="store_true", help="Skip METEOR (it starts Java for every evaluation).")
    ap.add_argument("--only", nargs="+", default=None,
                    help="Train and score only these encoder arms (e.g. control), to spread the arms over processes; "
                         "a last run without it assembles the tables from the finished runs.")
    ap.add_argument("--out", default="runs/reportgen")
    ap.add_argument("--docs", type=Path, default=None, help="Write the tables into this Markdown file.")
    args = ap.parse_args()
    if args.iu_reports is not None:
        text = floors(args.iu_reports)
        print(text)
        if args.docs:
            write_section(args.docs, "floors", text)
    if not args.no_models:
        text = models(args)
        print(text)
        if args.docs:
            write_section(args.docs, "phantom" if args.data.startswith("phantom") else "models", text)


if __name__ == "__main__":
    main()
