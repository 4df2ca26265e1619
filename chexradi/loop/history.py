"""What a run of the loop measured, round by round: :class:`History` and :func:`plot_history`.

A round's record (``round_<k>/round.json``, gathered into ``history.json`` / ``history.csv``)
is keyed by head and by guidance source:

- ``heads``: the heads evaluated (``"image"``: the model alone, what is deployed; each head a
  guidance source adds, e.g. ``"fused"`` for radiomics); ``auc[head]``: AUC per class and
  ``mean_auc[head]``: their mean on the evaluation split (test, else val);
- ``sources``: what each guidance source of the round prepared (radiomics: ``cases``,
  ``failed``, ``values`` per image, ``nonfinite`` replaced, ``features``: its file in the round's
  folder); empty in an image-only round;
- ``arm``: where guided rounds took their masks (``cam``, ``truth``, ``random``, ``lungs``) or
  ``control``;
- ``loc_iou`` / ``loc_iobb``: mean localisation accuracy over the boxed classes at each
  T(IoU) / T(IoBB) threshold (Wang et al.'s rule; None without ground-truth boxes), and
  the per-class tables in ``localization_iou.csv`` / ``localization_iobb.csv``;
- ``mask_iou``: mean IoU between this round's masks and the previous round's (None in round 0);
- ``cam_truth_iou``: per split, the mean IoU of this round's heatmap masks with the ground truth of
  the findings present (None without ground truth); ``guidance_truth_iou``: the same for the masks
  a guided round measured in;
- ``seconds``: ``train``, ``heatmaps`` (of which ``heatmaps_cam``: the model computing the maps,
  and ``heatmaps_masks``: thresholds, boxes, mask files), ``evaluate``, ``total`` and
  ``sources[name]`` (each source's preparation, e.g. radiomics extraction);
- ``best_epoch``, ``epochs_run``, ``val_score``, counts (``n_masks_empty``, ``n_masks_full``) and
  ``paths``.

Runs written by chexradi before this format (``chexradi-loop-history/1``: ``auc_image``,
``auc_fused``, ``radiomics_cases``, ``seconds.radiomics`` ...) are read and converted
(:func:`upgrade_record`), so their History, tables and plots are those of the same numbers.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .._io import atomic_write

__all__ = ["History", "plot_history", "HISTORY_FORMAT", "upgrade_record"]

HISTORY_FORMAT = "chexradi-loop-history/2"
PathLike = Union[str, Path]
IMAGE = "image"


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _at(d: Optional[Mapping[str, Any]], t: float) -> Optional[float]:
    if not d:
        return None
    for key, v in d.items():
        if abs(float(key) - t) < 1e-9:
            return v
    return None


def upgrade_record(r: Mapping[str, Any]) -> dict[str, Any]:
    """A round record of the first format (``auc_image``, ``auc_fused``, ``radiomics_*``, ``seconds.radiomics``)
    in this one (``auc[head]``, ``mean_auc[head]``, ``sources["radiomics"]``, ``seconds.sources``); a record of
    this format is returned as it is."""
    if "auc" in r and "mean_auc" in r:
        return dict(r)
    out = {k: v for k, v in r.items() if k not in ("auc_image", "mean_auc_image", "auc_fused", "mean_auc_fused",
                                                     "radiomics_cases", "radiomics_failed", "nonfinite")}
    out["auc"] = {IMAGE: r.get("auc_image") or {}}
    out["mean_auc"] = {IMAGE: r.get("mean_auc_image")}
    if r.get("auc_fused"):
        out["auc"]["fused"] = r["auc_fused"]
        out["mean_auc"]["fused"] = r.get("mean_auc_fused")
    out["heads"] = list(out["auc"])
    sec = dict(r.get("seconds") or {})
    rad = sec.pop("radiomics", 0.0)
    paths = dict(r.get("paths") or {})
    features = paths.pop("features", None)
    out["sources"] = {}
    if r.get("guided"):
        out["sources"]["radiomics"] = {"cases": r.get("radiomics_cases"), "failed": r.get("radiomics_failed"),
                                       "nonfinite": r.get("nonfinite"), "features": features}
        sec["sources"] = {"radiomics": rad}
    else:
        sec["sources"] = {}
    out["seconds"], out["paths"] = sec, paths
    return out


@dataclass
class History:
    """Per-round records of one run (see the module docstring); ``len(h)``, ``h[k]``, iteration.

    Attributes
    ----------
    rounds : list of dict
        One record per finished round, in order.
    settings : dict
        The run's settings (``run.json``): data, model, rounds, seed and the settings groups.
    run_dir : pathlib.Path or None
        Where the run lives.
    """

    rounds: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    run_dir: Optional[Path] = None

    def __len__(self) -> int:
        return len(self.rounds)

    def __getitem__(self, k: int) -> dict[str, Any]:
        return self.rounds[k]

    def __iter__(self) -> Any:
        return iter(self.rounds)

    @property
    def class_names(self) -> list[str]:
        return list(self.settings.get("class_names", []))

    @property
    def heads(self) -> list[str]:
        """Every head evaluated in some round (``"image"`` first)."""
        out = [IMAGE]
        for r in self.rounds:
            out += [h for h in r.get("auc", {}) if h not in out]
        return out

    @property
    def sources(self) -> list[str]:
        """Every guidance source of some round, in order."""
        out: list[str] = []
        for r in self.rounds:
            out += [s for s in r.get("sources", {}) if s not in out]
        return out

    def mean_auc(self, k: int, head: str = IMAGE) -> Optional[float]:
        """Round ``k``'s mean AUC of ``head`` (None when the round did not evaluate that head)."""
        return (self.rounds[k].get("mean_auc") or {}).get(head)

    # -- tables ---------------------------------------------------------------------------------
    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per round: the summary, mean AUC per head, seconds per stage and source, the sources'
        counts, AUC per head and class, then the localisation thresholds and the truth IoUs."""
        rows = []
        heads, sources = self.heads, self.sources
        for r in self.rounds:
            sec = r.get("seconds", {})
            row: dict[str, Any] = {"round": r["round"], "guided": r["guided"],
                                   "arm": r.get("arm", "cam" if r["guided"] else None),
                                   "eval_split": r.get("eval_split")}
            for h in heads:
                row[f"mean_auc:{h}"] = (r.get("mean_auc") or {}).get(h)
            row.update({"val_score": r.get("val_score"), "best_epoch": r.get("best_epoch"),
                        "epochs_run": r.get("epochs_run"), "mask_iou": r.get("mask_iou"),
                        "seconds:train": sec.get("train"), "seconds:heatmaps": sec.get("heatmaps")})
            for s in sources:
                row[f"seconds:{s}"] = (sec.get("sources") or {}).get(s)
            row.update({"seconds:evaluate": sec.get("evaluate"), "seconds:total": sec.get("total"),
                        "n_masks_empty": r.get("n_masks_empty"), "n_masks_full": r.get("n_masks_full")})
            for s in sources:
                for key, v in ((r.get("sources") or {}).get(s) or {}).items():
                    if not isinstance(v, (dict, list)) and key != "features":
                        row[f"{s}:{key}"] = v
            for h in heads:
                per = (r.get("auc") or {}).get(h) or {}
                for c in self.class_names:
                    row[f"auc:{h}:{c}"] = per.get(c)
            for metric in ("iou", "iobb"):
                for key, v in (r.get(f"loc_{metric}") or {}).items():
                    row[f"loc_{metric}>{float(key):g}"] = v
            for what in ("cam_truth_iou", "guidance_truth_iou"):
                for split, v in (r.get(what) or {}).items():
                    row[f"{what}:{split}"] = v
            rows.append(row)
        return rows

    def table(self) -> str:
        """The per-round summary as text: mean AUC of every head, localisation, masks, time per stage and source."""
        heads, sources = self.heads, self.sources
        cols = ([("round", 5), ("guidance", 8)] + [(f"AUC {h}"[:11], max(7, len(f"AUC {h}"[:11]))) for h in heads]
                + [("IoU>0.1", 7), ("IoU>0.3", 7), ("IoBB>0.5", 8), ("mask IoU", 8), ("CAM~truth", 9),
                   ("train s", 7), ("heatmap s", 9)] + [(f"{s} s", max(5, len(s) + 2)) for s in sources])
        head = "  ".join(f"{name:>{w}}" for name, w in cols)
        lines = [head, "-" * len(head)]
        for r in self.rounds:
            sec = r.get("seconds", {})
            guided = r.get("arm", "cam") if r["guided"] else "no"
            cam_truth = (r.get("cam_truth_iou") or {}).get(r.get("eval_split") or "")
            vals = ([str(r["round"]), guided] + [_f((r.get("mean_auc") or {}).get(h)) for h in heads]
                    + [_f(_at(r.get("loc_iou"), 0.1)), _f(_at(r.get("loc_iou"), 0.3)), _f(_at(r.get("loc_iobb"), 0.5)),
                       _f(r.get("mask_iou")), _f(cam_truth), _f(sec.get("train"), 1), _f(sec.get("heatmaps"), 1)]
                    + [_f((sec.get("sources") or {}).get(s), 1) for s in sources])
            lines.append("  ".join(f"{v:>{w}}" for v, (_, w) in zip(vals, cols)))
        return "\n".join(lines)

    def auc_table(self) -> str:
        """AUC per class (rows) for each round and head (columns)."""
        cols = []
        for r in self.rounds:
            for h, per in (r.get("auc") or {}).items():
                cols.append((f"r{r['round']} {h}"[:9], per or {}, (r.get("mean_auc") or {}).get(h)))
        names = self.class_names
        w = max([5] + [len(c) for c in names])
        lines = [f"{'class':<{w}}  " + "  ".join(f"{c:>9}" for c, _, _ in cols)]
        for c in names:
            lines.append(f"{c:<{w}}  " + "  ".join(f"{_f(d.get(c)):>9}" for _, d, _ in cols))
        lines.append(f"{'mean':<{w}}  " + "  ".join(f"{_f(m):>9}" for _, _, m in cols))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_csv(self, path: PathLike) -> Path:
        """Write :meth:`to_rows` as CSV (atomically); returns the path."""
        rows = self.to_rows()
        cols: list[str] = []
        for r in rows:
            cols += [c for c in r if c not in cols]
        p = Path(path)
        with atomic_write(p, newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
        return p

    def to_json(self, path: PathLike) -> Path:
        """Write ``{"format", "settings", "rounds"}`` as JSON (atomically); returns the path."""
        p = Path(path)
        with atomic_write(p) as fh:
            json.dump({"format": HISTORY_FORMAT, "settings": self.settings, "rounds": self.rounds}, fh, indent=2,
                      allow_nan=False)
        return p

    @classmethod
    def load(cls, run_dir: PathLike) -> "History":
        """The History of a run folder: its ``run.json`` and every finished ``round_<k>/round.json`` (records of
        the first format converted, :func:`upgrade_record`).

        Raises
        ------
        FileNotFoundError
            ``run_dir`` has no ``run.json`` (not a ``chexradi iterate`` run folder).
        ValueError
            A ``round.json`` that cannot be read.
        """
        d = Path(run_dir)
        run = d / "run.json"
        if not run.is_file():
            raise FileNotFoundError(f"{run} not found: {d} is not a run folder of chexradi iterate "
                                    f"(give the --out folder of a run)")
        settings = read_run_json(run)
        rounds = []
        k = 0
        while (d / f"round_{k}" / "round.json").is_file():
            p = d / f"round_{k}" / "round.json"
            try:
                rounds.append(upgrade_record(json.loads(p.read_text())))
            except ValueError as exc:
                raise ValueError(f"cannot read {p}: {exc}; delete the round folder and resume the run") from exc
            k += 1
        return cls(rounds=rounds, settings=settings, run_dir=d)


def read_run_json(path: Path) -> dict[str, Any]:
    """The settings of a run (``run.json``); ValueError naming the file when it is damaged."""
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({exc}): the run's settings file is damaged (chexradi writes it "
                         f"atomically, so it was edited or the disk failed); restore it from a copy, or give a "
                         f"new out folder to start over") from None
    return data


def plot_history(history: Union[History, PathLike], path: Optional[PathLike] = None, *,
                 thresholds: Sequence[float] = (0.1, 0.3)) -> Any:
    """Draw a run's curves, one panel per measure that has data: mean AUC of each head, localisation accuracy
    (only with ground-truth boxes), mask IoU with the previous round (only from round 1), time per stage and
    guidance source.

    Parameters
    ----------
    history : History or path
        A History, or a run folder (read with :meth:`History.load`).
    path : path, optional
        Save the figure there (PNG/PDF/SVG by extension, written atomically).
    thresholds : sequence of float
        T(IoU) values to draw.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install matplotlib`` or ``chexradi[plot]``).
    """
    from .._plot import pyplot, save_figure

    plt = pyplot("plot_history")
    h = history if isinstance(history, History) else History.load(history)
    ks = [r["round"] for r in h.rounds]

    def series(get: Any) -> list[float]:
        return [float("nan") if get(r) is None else float(get(r)) for r in h.rounds]

    has_loc = any(r.get("loc_iou") for r in h.rounds)
    has_mask = any(r.get("mask_iou") is not None for r in h.rounds)
    panels = ["auc"] + (["loc"] if has_loc else []) + (["mask"] if has_mask else []) + ["time"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, what in zip(axes[0], panels):
        if what == "auc":
            for head in h.heads:
                ax.plot(ks, series(lambda r, head=head: (r.get("mean_auc") or {}).get(head)), "o-",
                        label=f"{head} head")
            ax.set_title("mean AUC")
        elif what == "loc":
            for t in thresholds:
                ax.plot(ks, series(lambda r, t=t: _at(r.get("loc_iou"), t)), "o-", label=f"T(IoU)={t:g}")
            ax.set_title("localisation accuracy")
        elif what == "mask":
            ax.plot(ks, series(lambda r: r.get("mask_iou")), "o-", label="previous round")
            if any(r.get("cam_truth_iou") for r in h.rounds):
                ax.plot(ks, series(lambda r: (r.get("cam_truth_iou") or {}).get(r.get("eval_split") or "")), "s-",
                        label="ground truth")
            ax.set_title("mask IoU with")
        else:
            bottom = [0.0] * len(ks)
            stages = [("train", lambda r: r.get("seconds", {}).get("train")),
                      ("heatmaps", lambda r: r.get("seconds", {}).get("heatmaps"))]
            stages += [(s, lambda r, s=s: (r.get("seconds", {}).get("sources") or {}).get(s)) for s in h.sources]
            stages += [("evaluate", lambda r: r.get("seconds", {}).get("evaluate"))]
            for stage, get in stages:
                vals = [float(get(r) or 0.0) for r in h.rounds]
                ax.bar(ks, vals, bottom=bottom, label=stage)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_title("seconds per stage")
        ax.set_xlabel("round")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
