"""Report labels against human labels: chexradi's labeler on the 3,955 IU X-ray (OpenI) reports.

Labels every report of ``NLMCXR_reports.tgz`` with the ``chestxray14`` label set (one core,
timed), takes each report's human ``MeSH/major`` indexing through
:data:`chexradi.reports.reference.IU_MESH_MAP` as the reference, and prints precision,
recall and F1 per label and micro-averaged:

* for Wang et al.'s eight ChestX-ray8 labels plus Normal (their Table 2 scored a labeler on
  OpenI the same way: theirs 0.90 / 0.91 / 0.90, MetaMap with NegEx 0.84 / 0.88 / 0.86);
* for all 14 ChestX-ray14 labels, with and without No Finding;
* twice: an uncertain mention (-1) counted as not positive (the default) and as positive,
  because the indexers indexed many hedged findings ("atelectasis versus scarring").

"Normal" is chexradi's ``Normal`` column (no label and no finding of the vocabulary
``labelsets/findings.yaml`` positive or uncertain) against the MeSH term ``normal``. The old
reading, ``No Finding`` (no label positive or uncertain) as Normal, is printed beside it: the
two differ by definition, on the ~1,500 IU reports that are neither normal nor one of the 14
(degenerative spine, granulomas, devices ...).

The vocabulary and the rules for Normal were written looking at half A of the reports only
(:func:`chexradi.reports.reference.iu_half`); the scores are printed for A, for the held-out
half B, and for all reports. The hedged findings are counted per label: the reports the
indexers indexed with the label that chexradi calls uncertain (-1).

Usage: python benchmarks/bench_reports.py [--source PATH] [--labels chestxray14] [--jobs 1]
       [--json PATH]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _results import write_results  # noqa: E402
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "iu-xray-reports" / "NLMCXR_reports.tgz"
WANG2017 = {"Wang et al. 2017 labeler": (0.90, 0.91, 0.90),
            "MetaMap + NegEx (as run by Wang et al.)": (0.84, 0.88, 0.86)}


def _fmt(x: float) -> str:
    return "  n/a" if x != x else f"{x:5.3f}"


def evaluate(table, labels, *, uncertain_positive: bool, half: str = "") -> tuple[dict, int]:
    """Scores per group over the reports with a MeSH reference (only those of ``half`` when given);
    returns (group -> list of Score, number of reports scored)."""
    from chexradi.reports.reference import WANG2017_EIGHT, iu_half, mesh_reference, score

    gold, pred = {}, {}
    for r in table.reports:
        if half and iu_half(r["id"]) != half:
            continue
        g = mesh_reference(r["meta"].get("mesh", []), labels)
        if g is None:
            continue
        gold[r["id"]] = g
        pred[r["id"]] = {**r["labels"], "No Finding as Normal": r["labels"]["No Finding"]}
        g["No Finding as Normal"] = g["Normal"]
    groups = {
        "8 + Normal": list(WANG2017_EIGHT) + ["Normal"],
        "8": list(WANG2017_EIGHT),
        "Normal": ["Normal"],
        "8 + No Finding as Normal": list(WANG2017_EIGHT) + ["No Finding as Normal"],
        "14": list(labels),
        "14 + Normal": list(labels) + ["Normal"],
    }
    return {k: score(pred, gold, v, uncertain_positive=uncertain_positive) for k, v in groups.items()}, len(gold)


def hedged(table, labels) -> list[dict]:
    """Per label: the reports the indexers indexed with it, and how many of them chexradi calls 1, -1, 0 or blank."""
    from chexradi.reports.reference import mesh_reference

    rows = []
    for lab in labels:
        counts = {1: 0, -1: 0, 0: 0, None: 0}
        for r in table.reports:
            g = mesh_reference(r["meta"].get("mesh", []), labels)
            if g is not None and g[lab] == 1:
                counts[r["labels"][lab]] += 1
        n = sum(counts.values())
        rows.append({"label": lab, "indexed": n, "positive": counts[1], "uncertain": counts[-1],
                     "negative": counts[0], "blank": counts[None],
                     "recall": counts[1] / n if n else float("nan"),
                     "recall_uncertain_as_positive": (counts[1] + counts[-1]) / n if n else float("nan")})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                    help="NLMCXR_reports.tgz or its extracted ecgen-radiology folder")
    ap.add_argument("--labels", default="chestxray14")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "bench_reports.json")
    args = ap.parse_args()
    if not args.source.exists():
        print(f"{args.source} not found: pass --source with the IU X-ray reports (NLMCXR_reports.tgz from OpenI)",
              file=sys.stderr)
        return 2
    from chexradi import versions
    from chexradi.reports import label_reports, load_label_set, read_reports
    from chexradi.reports.reference import IU_MESH_MAP

    ls = load_label_set(args.labels)
    missing = [lab for lab in IU_MESH_MAP if lab not in ls.names]
    if missing:
        print(f"label set {ls.name} lacks {missing}; the IU reference is for the 14 ChestX-ray14 labels",
              file=sys.stderr)
        return 2
    t = time.perf_counter()
    n_read = sum(1 for _ in read_reports(args.source))
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    table = label_reports(args.source, labels=ls, jobs=args.jobs, progress=False)
    t_all = time.perf_counter() - t
    n = len(table.reports)
    t_label = max(t_all - t_read, 1e-9)

    print(f"## chexradi report labeler on IU X-ray (OpenI): {n_read} reports read, {n} labelled, "
          f"{len(table.errors)} without text; label set {ls.name}, --jobs {args.jobs}")
    print(f"speed: {n / t_all:.0f} reports/s end to end ({t_all:.2f} s, of which reading the archive {t_read:.2f} s); "
          f"{n / t_label:.0f} reports/s labelling alone\n")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    payload = {"machine": machine,
               "versions": versions(), "source": str(args.source), "label_set": ls.name, "jobs": args.jobs,
               "reports_read": n_read, "reports_labelled": n, "errors": len(table.errors),
               "seconds_total": t_all, "seconds_read": t_read, "reports_per_s": n / t_all,
               "reports_per_s_labelling": n / t_label, "results": {}}
    from chexradi.reports.reference import HALVES

    for unc in (False, True):
        reading = "uncertain (-1) counted as positive" if unc else "uncertain (-1) counted as not positive"
        key = "uncertain_positive" if unc else "uncertain_negative"
        payload["results"][key] = {}
        for half in ("",) + HALVES:
            res, n_scored = evaluate(table, ls.names, uncertain_positive=unc, half=half)
            where = {"": "all reports", "A": "half A (the rules were written on it)",
                     "B": "half B (held out)"}[half]
            print(f"### {where}; {reading}; {n_scored} reports with a MeSH reference")
            if not half:
                print(f"{'label':<26}{'P':>7}{'R':>7}{'F1':>7}{'TP':>6}{'FP':>6}{'FN':>6}{'support':>9}")
                for s in res["14 + Normal"][:-1] + res["8 + No Finding as Normal"][-2:-1]:
                    print(f"{s.label:<26}{_fmt(s.precision):>7}{_fmt(s.recall):>7}{_fmt(s.f1):>7}{s.tp:>6}{s.fp:>6}"
                          f"{s.fn:>6}{s.support:>9}")
            print("micro-average")
            for group, scores in res.items():
                m = scores[-1]
                print(f"  {group:<26}{_fmt(m.precision):>7}{_fmt(m.recall):>7}{_fmt(m.f1):>7}{m.tp:>6}{m.fp:>6}"
                      f"{m.fn:>6}{m.support:>9}")
            print()
            payload["results"][key][half or "all"] = {
                "reports_scored": n_scored, **{g: [s.as_dict() for s in v] for g, v in res.items()}}
    rows = hedged(table, ls.names)
    print("### hedged findings: reports the indexers indexed with a label, by chexradi's value")
    print(f"{'label':<22}{'indexed':>8}{'1':>6}{'-1':>6}{'0':>6}{'blank':>7}{'recall':>8}{'with -1':>9}")
    for h in rows:
        print(f"{h['label']:<22}{h['indexed']:>8}{h['positive']:>6}{h['uncertain']:>6}{h['negative']:>6}"
              f"{h['blank']:>7}{_fmt(h['recall']):>8}{_fmt(h['recall_uncertain_as_positive']):>9}")
    print()
    payload["hedged"] = rows
    print("published, Wang et al. 2017 Table 2 (OpenI, 8 labels + Normal), P / R / F1:")
    for k, (p, r, f) in WANG2017.items():
        print(f"  {k:<42}{p:>5.2f}{r:>6.2f}{f:>6.2f}")
    payload["published"] = {k: dict(zip(("precision", "recall", "f1"), v)) for k, v in WANG2017.items()}
    write_results(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
