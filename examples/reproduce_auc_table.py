"""Reproduce the per-class AUC table of ChexRadiNet: image-only round 0 vs the last radiomics-guided round.

Runs (or resumes) the ChexRadiNet loop with :func:`chexradi.iterate` and prints a
paper-style table: one row per class of the run (and the mean), with

- ``round 0 image``: round 0, trained on images alone (the triplet-attention CNN);
- ``round K image`` / ``round K fused``: the *last* guided round ``K = rounds - 1``
  (trained with the radiomics of round ``K - 1``'s heatmap masks), its image-only head
  and its fused image + radiomics head;
- the published columns (Wang et al. 2017, Yao et al. 2017, CheXNet; ChexRadiNet's mean
  0.843) from ``examples/published.py``, with their citations.

On ChestX-ray14 the published columns sit beside the run's. On the phantom (the
default) they are printed in a separate table, labelled as what they are: figures on
ChestX-ray14, not comparable with a run on synthetic images. Then the time each round
spent in radiomics extraction, training, heatmaps and evaluation.

The run folder (``--out``) is resumable: running the script again, or
``reproduce_localization_table.py`` with the same ``--out``, skips the finished rounds.
Settings you do not give are taken from the run folder when it already holds a run.

Usage::

    # the phantom (synthetic chest X-rays, generated in memory): several minutes on a CPU
    python examples/reproduce_auc_table.py --out reproduce-output/run
    # a quick smoke test (seconds; the numbers mean nothing)
    python examples/reproduce_auc_table.py --data "phantom:n_train=24,n_val=12,n_test=12,size=64" \\
        --rounds 2 --epochs 1 --out /tmp/ex_run --json /tmp/ex.json
    # NIH ChestX-ray14 (the images/ folder and Data_Entry_2017.csv, ...): use a GPU; hours
    python examples/reproduce_auc_table.py --chestxray14 /data/ChestX-ray14 --out runs/cxr14 --device cuda

Options: ``--data SPEC`` (``phantom``, ``phantom:n_train=..,n_val=..,n_test=..,size=..,difficulty=..``,
``chestxray14:DIR``), ``--chestxray14 DIR`` (shortcut), ``--out``, ``--rounds`` (default 3:
image-only, then two guided rounds), ``--model`` (default ``resnet18_ta`` on the phantom,
``resnet50_ta`` otherwise), ``--epochs`` (per round), ``--size``, ``--seed``, ``--jobs``
(radiomics worker processes), ``--device``, ``--json PATH``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import published  # noqa: E402  (examples/published.py, next to this file)

DEFAULT_OUT = Path("reproduce-output") / "run"
#: run.json keys of the four setting groups, and the ones that may change on resume (not passed on).
GROUPS = ("train", "heatmap", "radiomics", "guidance")
FREE = {"train": ("device", "amp", "num_workers"), "radiomics": ("jobs",), "heatmap": ("batch_size",)}


# -- arguments shared with reproduce_localization_table.py ------------------------------------------
def build_parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=None,
                    help="data spec: 'phantom' (default), 'phantom:n_train=..,n_val=..,n_test=..,size=..,"
                         "difficulty=..' or 'chestxray14:DIR'")
    ap.add_argument("--chestxray14", metavar="DIR", type=Path, default=None,
                    help="shortcut for --data chestxray14:DIR")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder (default {DEFAULT_OUT})")
    ap.add_argument("--rounds", type=int, default=None, help="rounds including the image-only round 0 (default 3)")
    ap.add_argument("--model", default=None, help="default resnet18_ta on the phantom, resnet50_ta otherwise")
    ap.add_argument("--epochs", type=int, default=None, help="maximum epochs per round (default: the loop's, 8)")
    ap.add_argument("--size", type=int, default=None, help="network input side (default 128 phantom, 224 files)")
    ap.add_argument("--seed", type=int, default=None, help="default 0")
    ap.add_argument("--jobs", type=int, default=None, help="radiomics worker processes (default: one per CPU)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table(s) here as JSON")
    return ap


class UsageError(Exception):
    """A problem with the arguments or the run folder, reported as ``error: ...`` (exit status 2)."""


def _existing_run(out: Path) -> Optional[dict[str, Any]]:
    p = out / "run.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError as exc:
        raise UsageError(f"{p} cannot be read ({exc}); give another --out") from exc


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`chexradi.iterate`: what was given, else the run folder's, else defaults."""
    if args.data is not None and args.chestxray14 is not None:
        raise UsageError("give --data or --chestxray14, not both")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    old = _existing_run(args.out)
    data = args.data
    if args.chestxray14 is not None:
        data = f"chestxray14:{args.chestxray14}"
    if data is None:
        old_data = (old or {}).get("data")
        data = old_data if isinstance(old_data, str) and not old_data.endswith(" object") else "phantom"
    if data.startswith("chestxray14:"):
        root = Path(data.split(":", 1)[1]).expanduser()
        if not root.is_dir():
            raise UsageError(f"ChestX-ray14 folder {root} not found (give the folder holding Data_Entry_2017.csv "
                             f"and the images)")
    for name in ("rounds", "epochs", "size", "jobs"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name} must be >= 1, got {v}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    old = old or {}
    groups: dict[str, dict[str, Any]] = {}
    for g in GROUPS:  # resume with the run's own settings, less those that may change
        d = dict(old.get(g) or {})
        for k in FREE.get(g, ()):
            d.pop(k, None)
        groups[g] = d
    if args.epochs is not None:
        groups["train"]["epochs"] = args.epochs
    if args.device is not None:
        groups["train"]["device"] = args.device
    if args.jobs is not None:
        groups["radiomics"]["jobs"] = args.jobs
    model = args.model or old.get("model") or ("resnet18_ta" if data.startswith("phantom") else "resnet50_ta")
    return {"data": data, "model": model, "rounds": args.rounds or old.get("rounds") or 3,
            "seed": args.seed if args.seed is not None else old.get("seed", 0),
            "size": args.size if args.size is not None else old.get("size"),
            "out": args.out, **{g: (d or None) for g, d in groups.items()}}


def run_loop(args: argparse.Namespace) -> Any:
    """Run or resume the loop for ``args``; returns its History. Raises UsageError for what the user must fix."""
    kw = resolve(args)
    import chexradi

    print(f"run folder {kw['out']}: data {kw['data']}, model {kw['model']}, {kw['rounds']} round(s), "
          f"seed {kw['seed']}", file=sys.stderr)
    try:
        return chexradi.iterate(kw.pop("data"), resume=True, **kw)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc


def is_chestxray14(history: Any) -> bool:
    """Whether the run's data is ChestX-ray14 (then the published figures are comparable)."""
    return str(history.settings.get("data", "")).startswith("chestxray14")


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def num(v: Any) -> Optional[float]:
    """A finite float or None (NaN, inf, missing)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def write_json(path: Optional[Path], obj: Any) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
    print(f"wrote {path}", file=sys.stderr)


def render(header: list[str], rows: list[list[str]], *, first: int = 20, width: int = 10) -> str:
    first = max(first, 2 + max(len(r[0]) for r in rows + [header]))
    widths = [max(width, 1 + max(len(r[i]) for r in rows + [header])) for i in range(1, len(header))]
    line = f"{header[0]:<{first}}" + "".join(f"{h:>{w}}" for h, w in zip(header[1:], widths))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(f"{r[0]:<{first}}" + "".join(f"{c:>{w}}" for c, w in zip(r[1:], widths)))
    return "\n".join(out)


# -- the AUC table -----------------------------------------------------------------------------------
def _auc(record: dict[str, Any], head: str, c: str) -> Any:
    """A round's AUC of ``head`` for class ``c`` (``"mean"``: the mean), None when the round has no such head."""
    if c == "mean":
        return (record.get("mean_auc") or {}).get(head)
    return ((record.get("auc") or {}).get(head) or {}).get(c)


def auc_table(history: Any) -> dict[str, Any]:
    """The table as data: rows per class and mean, the published columns when comparable, the rounds shown."""
    classes = history.class_names
    r0 = history[0]
    g = history[-1] if len(history) > 1 else None
    inline = is_chestxray14(history)
    rows = []
    for c in classes + ["mean"]:
        mean = c == "mean"
        row: dict[str, Any] = {
            "class": c,
            "round0_image": num(_auc(r0, "image", c)),
        }
        if g is not None:
            row["guided_image"] = num(_auc(g, "image", c))
            row["guided_fused"] = num(_auc(g, "fused", c))
        if inline:
            for label, table in published.AUC_COLUMNS:
                row[label] = published.mean_of(table, classes) if mean else published.published_auc(table, c)
            row["ChexRadiNet"] = published.CHEXRADINET_MEAN_AUC if mean else None
        rows.append(row)
    return {"run": str(history.run_dir), "data": history.settings.get("data"), "model": history.settings.get("model"),
            "eval_split": r0.get("eval_split"), "image_only_round": 0,
            "guided_round": None if g is None else g["round"], "published_inline": inline, "rows": rows}


def published_table(classes: list[str]) -> dict[str, Any]:
    """The published ChestX-ray14 AUCs on their own (all 14 classes; ``in_run`` marks the run's classes)."""
    mine = {published.canonical(c) for c in classes}
    rows = []
    for c in published.CHESTXRAY14_CLASSES:
        row: dict[str, Any] = {"class": c, "in_run": c in mine}
        row.update({label: t[c] for label, t in published.AUC_COLUMNS})
        row["ChexRadiNet"] = None
        rows.append(row)
    mean: dict[str, Any] = {"class": "mean (14 classes)", "in_run": False}
    mean.update({label: published.mean_of(t) for label, t in published.AUC_COLUMNS})
    mean["ChexRadiNet"] = published.CHEXRADINET_MEAN_AUC
    rows.append(mean)
    return {"dataset": "NIH ChestX-ray14", "rows": rows}


def seconds_table(history: Any) -> list[dict[str, Any]]:
    out = []
    for r in history:
        s = r.get("seconds") or {}
        out.append({"round": r["round"], "guided": bool(r.get("guided")), "epochs_run": r.get("epochs_run"),
                    "radiomics": (s.get("sources") or {}).get("radiomics", 0.0),
                    **{k: s.get(k) for k in ("train", "heatmaps", "evaluate", "total")}})
    return out


def print_seconds(history: Any) -> list[dict[str, Any]]:
    secs = seconds_table(history)
    header = ["round", "epochs", "radiomics s", "train s", "heatmaps s", "evaluate s", "total s"]
    rows = [[f"{s['round']} ({'guided' if s['guided'] else 'image only'})", str(s["epochs_run"] or "-")]
            + [fmt(s[k], 1) for k in ("radiomics", "train", "heatmaps", "evaluate", "total")] for s in secs]
    total = [sum(s[k] or 0.0 for s in secs) for k in ("radiomics", "train", "heatmaps", "evaluate", "total")]
    rows.append(["all rounds", "-"] + [fmt(v, 1) for v in total])
    print("\nTime per round (seconds; radiomics = extracting the features that round trained with)")
    print(render(header, rows, first=18, width=12))
    return secs


def history_or_status(args: argparse.Namespace) -> Any:
    """The run's History, or the exit status (2 usage error, 1 no finished round) after printing why."""
    try:
        history = run_loop(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(history) == 0:
        print("error: the run has no finished round", file=sys.stderr)
        return 1
    return history


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser(__doc__.split("\n")[0]).parse_args(argv)
    history = history_or_status(args)
    if isinstance(history, int):
        return history
    tab = auc_table(history)
    k = tab["guided_round"]
    cols = ["round 0 image"] + ([f"round {k} image", f"round {k} fused"] if k is not None else [])
    keys = ["round0_image"] + (["guided_image", "guided_fused"] if k is not None else [])
    if tab["published_inline"]:
        cols += [label for label, _ in published.AUC_COLUMNS] + ["ChexRadiNet"]
        keys += [label for label, _ in published.AUC_COLUMNS] + ["ChexRadiNet"]
    print(f"\nAUC per class on the {tab['eval_split']} split of {tab['data']} (model {tab['model']}, run {tab['run']})")
    if k is None:
        print("only round 0 (image only) has run: give --rounds 2 or more for a radiomics-guided round")
    else:
        print(f"round 0 = image only; round {k} = the last radiomics-guided round (image head, fused image + "
              f"radiomics head)")
    print(render(["class"] + cols, [[r["class"]] + [fmt(r.get(key)) for key in keys] for r in tab["rows"]]))
    out: dict[str, Any] = {"auc": tab}
    if tab["published_inline"]:
        print("published: Wang 2017 / Yao 2017 as quoted in CheXNet (arXiv:1711.05225) Table 2; ChexRadiNet "
              "(Han et al., AMIA 2021) reports its 14-class mean only; the other published means are over the classes "
              "listed")
    else:
        pub = published_table(history.class_names)
        out["published_chestxray14"] = pub
        print("\nPublished on ChestX-ray14 -- NOT comparable with this run (other data: "
              f"{tab['data']}); for reference only. * = a class of this run")
        print("(Wang 2017 / Yao 2017 as quoted in CheXNet, arXiv:1711.05225, Table 2; ChexRadiNet, Han et al. "
              "AMIA 2021, reports the mean only)")
        labels = [label for label, _ in published.AUC_COLUMNS] + ["ChexRadiNet"]
        print(render(["class"] + labels,
                     [[r["class"] + (" *" if r["in_run"] else "")] + [fmt(r[label], 4) for label in labels]
                      for r in pub["rows"]]))
    out["seconds"] = print_seconds(history)
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
