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

"Normal" is scored as chexradi's No Finding (no label positive or uncertain) against the
MeSH term ``normal``. They differ by definition: about 1,500 IU reports are neither normal
nor one of the 14 (degenerative spine, granulomas, devices ...), and those are No Finding
for a 14-label labeler. The rows without Normal are the like-for-like comparison.

Usage: python benchmarks/bench_reports.py [--source PATH] [--labels chestxray14] [--jobs 1]
       [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent.parent / "shared" / "data" / "iu-xray-reports" / "NLMCXR_reports.tgz"
WANG2017 = {"Wang et al. 2017 labeler": (0.90, 0.91, 0.90),
            "MetaMap + NegEx (as run by Wang et al.)": (0.84, 0.88, 0.86)}


def _fmt(x: float) -> str:
    return "  n/a" if x != x else f"{x:5.3f}"


def evaluate(table, labels, *, uncertain_positive: bool) -> tuple[dict, int]:
    """Scores per group; returns (group -> list of Score, number of reports scored)."""
    from chexradi.reports.reference import WANG2017_EIGHT, mesh_reference, score

    gold, pred = {}, {}
    for r in table.reports:
        g = mesh_reference(r["meta"].get("mesh", []), labels)
        if g is None:
            continue
        gold[r["id"]] = g
        pred[r["id"]] = r["labels"]
    groups = {
        "8 + Normal": list(WANG2017_EIGHT) + ["No Finding"],
        "8": list(WANG2017_EIGHT),
        "14": list(labels),
        "14 + Normal": list(labels) + ["No Finding"],
    }
    return {k: score(pred, gold, v, uncertain_positive=uncertain_positive) for k, v in groups.items()}, len(gold)


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
    for unc in (False, True):
        res, n_scored = evaluate(table, ls.names, uncertain_positive=unc)
        reading = "uncertain (-1) counted as positive" if unc else "uncertain (-1) counted as not positive"
        print(f"### {reading}; {n_scored} reports with a MeSH reference")
        print(f"{'label':<22}{'P':>7}{'R':>7}{'F1':>7}{'TP':>6}{'FP':>6}{'FN':>6}{'support':>9}")
        for s in res["14 + Normal"][:-1]:
            print(f"{s.label:<22}{_fmt(s.precision):>7}{_fmt(s.recall):>7}{_fmt(s.f1):>7}{s.tp:>6}{s.fp:>6}"
                  f"{s.fn:>6}{s.support:>9}")
        print("micro-average")
        for group, scores in res.items():
            m = scores[-1]
            print(f"  {group:<20}{_fmt(m.precision):>7}{_fmt(m.recall):>7}{_fmt(m.f1):>7}{m.tp:>6}{m.fp:>6}{m.fn:>6}"
                  f"{m.support:>9}")
        print()
        payload["results"]["uncertain_positive" if unc else "uncertain_negative"] = {
            "reports_scored": n_scored, **{g: [s.as_dict() for s in v] for g, v in res.items()}}
    print("published, Wang et al. 2017 Table 2 (OpenI, 8 labels + Normal), P / R / F1:")
    for k, (p, r, f) in WANG2017.items():
        print(f"  {k:<42}{p:>5.2f}{r:>6.2f}{f:>6.2f}")
    payload["published"] = {k: dict(zip(("precision", "recall", "f1"), v)) for k, v in WANG2017.items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(args.json)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
