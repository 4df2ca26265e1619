"""What a run of the loop measured, round by round: :class:`History` and :func:`plot_history`.

A round's record (``round_<k>/round.json``, gathered into ``history.json`` / ``history.csv``)
holds

- ``auc_image`` / ``mean_auc_image``: AUC per class and mean of the image-only head on the
  evaluation split (test, else val); ``auc_fused`` / ``mean_auc_fused``: the same for the
  fused image + radiomics head (None in round 0);
- ``loc_iou`` / ``loc_iobb``: mean localisation accuracy over the boxed classes at each
  T(IoU) / T(IoBB) threshold (Wang et al.'s rule; None without ground-truth boxes), and
  the per-class tables in ``localization_iou.csv`` / ``localization_iobb.csv``;
- ``mask_iou``: mean IoU between this round's masks and the previous round's (None in round 0);
- ``arm``: where guided rounds took their radiomics masks (``cam``, ``truth``, ``random``,
  ``lungs``) or ``control`` (no guidance);
- ``cam_truth_iou``: per split, the mean IoU of this round's heatmap masks with the ground truth of
  the findings present (None without ground truth); ``guidance_truth_iou``: the same for the masks
  a guided round measured radiomics in;
- ``seconds``: ``train``, ``heatmaps`` (of which ``heatmaps_cam``: the model computing the maps,
  and ``heatmaps_masks``: thresholds, boxes, mask files), ``radiomics`` (extraction of the vectors
  this round trained with), ``evaluate`` and ``total``;
- ``best_epoch``, ``epochs_run``, ``val_score``, counts (``n_masks_empty``, ``n_masks_full``,
  ``radiomics_failed``, ``nonfinite``) and ``paths``.
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

__all__ = ["History", "plot_history", "HISTORY_FORMAT"]

HISTORY_FORMAT = "chexradi-loop-history/1"
PathLike = Union[str, Path]


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


@dataclass
class History:
    """Per-round records of one run (see the module docstring); ``len(h)``, ``h[k]``, iteration.

    Attributes
    ----------
    rounds : list of dict
        One record per finished round, in order.
    settings : dict
        The run's settings (``run.json``): data, model, rounds, seed and the four groups.
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

    # -- tables ---------------------------------------------------------------------------------
    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per round: the summary columns, then AUC per class and head, then the thresholds."""
        rows = []
        for r in self.rounds:
            sec = r.get("seconds", {})
            row: dict[str, Any] = {
                "round": r["round"], "guided": r["guided"], "arm": r.get("arm", "cam" if r["guided"] else None),
                "eval_split": r.get("eval_split"),
                "mean_auc_image": r.get("mean_auc_image"), "mean_auc_fused": r.get("mean_auc_fused"),
                "val_score": r.get("val_score"), "best_epoch": r.get("best_epoch"), "epochs_run": r.get("epochs_run"),
                "mask_iou": r.get("mask_iou"),
                "train_s": sec.get("train"), "heatmaps_s": sec.get("heatmaps"), "radiomics_s": sec.get("radiomics"),
                "evaluate_s": sec.get("evaluate"), "total_s": sec.get("total"),
                "n_masks_empty": r.get("n_masks_empty"), "n_masks_full": r.get("n_masks_full"),
                "radiomics_cases": r.get("radiomics_cases"), "radiomics_failed": r.get("radiomics_failed"),
                "nonfinite": r.get("nonfinite"),
            }
            for head in ("image", "fused"):
                per = r.get(f"auc_{head}") or {}
                for c in self.class_names:
                    row[f"auc_{head}:{c}"] = per.get(c)
            for metric in ("iou", "iobb"):
                for key, v in (r.get(f"loc_{metric}") or {}).items():
                    row[f"loc_{metric}>{float(key):g}"] = v
            for what in ("cam_truth_iou", "guidance_truth_iou"):
                for split, v in (r.get(what) or {}).items():
                    row[f"{what}:{split}"] = v
            rows.append(row)
        return rows

    def table(self) -> str:
        """The per-round summary as text: AUC of both heads, localisation at T(IoU)=0.1 / 0.3, times."""
        head = (f"{'round':>5}  {'guidance':>8}  {'AUC img':>7}  {'AUC fused':>9}  {'IoU>0.1':>7}  {'IoU>0.3':>7}  "
                f"{'IoBB>0.5':>8}  {'mask IoU':>8}  {'CAM~truth':>9}  {'train s':>7}  {'heatmap s':>9}  "
                f"{'radiomics s':>11}")
        lines = [head, "-" * len(head)]
        for r in self.rounds:
            sec = r.get("seconds", {})
            guided = r.get("arm", "cam") if r["guided"] else "no"
            cam_truth = (r.get("cam_truth_iou") or {}).get(r.get("eval_split") or "")
            lines.append(
                f"{r['round']:>5}  {guided:>8}  {_f(r.get('mean_auc_image')):>7}  "
                f"{_f(r.get('mean_auc_fused')):>9}  {_f(_at(r.get('loc_iou'), 0.1)):>7}  "
                f"{_f(_at(r.get('loc_iou'), 0.3)):>7}  {_f(_at(r.get('loc_iobb'), 0.5)):>8}  "
                f"{_f(r.get('mask_iou')):>8}  {_f(cam_truth):>9}  {_f(sec.get('train'), 1):>7}  "
                f"{_f(sec.get('heatmaps'), 1):>9}  {_f(sec.get('radiomics'), 1):>11}")
        return "\n".join(lines)

    def auc_table(self) -> str:
        """AUC per class (rows) for each round and head (columns)."""
        cols = []
        for r in self.rounds:
            cols.append((f"r{r['round']} img", r.get("auc_image") or {}))
            if r.get("auc_fused"):
                cols.append((f"r{r['round']} fused", r["auc_fused"]))
        names = self.class_names
        w = max([5] + [len(c) for c in names])
        lines = [f"{'class':<{w}}  " + "  ".join(f"{c:>9}" for c, _ in cols)]
        for c in names:
            lines.append(f"{c:<{w}}  " + "  ".join(f"{_f(d.get(c)):>9}" for _, d in cols))
        means = []
        for r in self.rounds:
            means.append(r.get("mean_auc_image"))
            if r.get("auc_fused"):
                means.append(r.get("mean_auc_fused"))
        lines.append(f"{'mean':<{w}}  " + "  ".join(f"{_f(m):>9}" for m in means))
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
        """The History of a run folder: its ``run.json`` and every finished ``round_<k>/round.json``.

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
                rounds.append(json.loads(p.read_text()))
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
    """Draw a run's curves: mean AUC (image and fused heads), localisation accuracy, mask IoU, time per stage.

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
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))

    def series(key: str) -> list[float]:
        return [float("nan") if r.get(key) is None else float(r[key]) for r in h.rounds]

    ax = axes[0]
    ax.plot(ks, series("mean_auc_image"), "o-", label="image head")
    ax.plot(ks, series("mean_auc_fused"), "s-", label="fused head")
    ax.set_title("mean AUC")
    ax.set_xlabel("round")
    ax.legend()
    ax = axes[1]
    for t in thresholds:
        ax.plot(ks, [float("nan") if _at(r.get("loc_iou"), t) is None else _at(r.get("loc_iou"), t)
                     for r in h.rounds], "o-", label=f"T(IoU)={t:g}")
    ax.set_title("localisation accuracy")
    ax.set_xlabel("round")
    ax.legend()
    ax = axes[2]
    ax.plot(ks, series("mask_iou"), "o-")
    ax.set_title("mask IoU with previous round")
    ax.set_xlabel("round")
    ax = axes[3]
    bottom = [0.0] * len(ks)
    for stage in ("train", "heatmaps", "radiomics", "evaluate"):
        vals = [float(r.get("seconds", {}).get(stage) or 0.0) for r in h.rounds]
        ax.bar(ks, vals, bottom=bottom, label=stage)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_title("seconds per stage")
    ax.set_xlabel("round")
    ax.legend()
    for ax in axes:
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig
