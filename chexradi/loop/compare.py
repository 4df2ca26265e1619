"""Compare arms of the loop on the same test images: differences from a control arm with confidence intervals.

:func:`compare` reads finished run folders of :func:`chexradi.iterate` -- the per-image test
predictions (``round_<k>/predictions.csv``) and the per-box localisation
(``round_<k>/localization_boxes.csv``) -- checks that every run scored the same test images
(same ids, same order, same labels) and refuses otherwise, groups the runs by arm (``control``,
``cam``, ``truth``, ``random``, ``lungs``; several seeds per arm) and compares each arm with
the control group:

- per class and for the mean over classes: each arm's AUC (mean over its seeds), the
  difference from control, its 95 % confidence interval and p-value by DeLong's test on the
  same cases (the contrast "mean over the arm's seeds minus mean over the control's seeds",
  :func:`chexradi.metrics.delong_contrast`; for the mean over classes the per-case components
  are summed over classes), and the same difference's paired-bootstrap interval over test
  images (every run resampled with the same images);
- localisation accuracy (Wang et al.'s rule, mean over the classes with boxes) at T(IoU) and
  T(IoBB) thresholds: each arm's, the difference and its paired-bootstrap interval;
- with the same seeds in an arm and in the control, the spread over seeds: the standard
  deviation of the per-seed differences and a t-interval over seeds. The test-image
  intervals above hold the trained models fixed; the seed interval is what retraining
  changes, and it is usually the wider one.

:class:`Comparison` prints as a table, writes ``compare.csv`` and ``localization.csv``, and
draws a forest plot.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from .._io import atomic_write
from .arms import arm_label
from .history import History, read_run_json

__all__ = ["compare", "Comparison", "RunScores", "read_run_scores", "LOCALIZATION_POINTS"]

PathLike = Union[str, Path]

#: Localisation thresholds compared, as ``(metric, T)``.
LOCALIZATION_POINTS: tuple[tuple[str, float], ...] = (("iou", 0.1), ("iou", 0.3), ("iobb", 0.5))



@dataclass
class RunScores:
    """One run's test-split scores at one round (what :func:`compare` pairs)."""

    run_dir: Path
    arm: str
    seed: int
    round: int
    class_names: list[str]
    image_ids: list[str]
    targets: np.ndarray            # (N, K), NaN = unknown
    probs: np.ndarray              # (N, K), the head compared
    boxes: list[dict[str, Any]] = field(default_factory=list)  # per ground-truth box: index, class, iou, iobb


def read_run_scores(run_dir: PathLike, *, round: Optional[int] = None, head: str = "image") -> RunScores:
    """The test predictions of ``run_dir`` at ``round`` (default: its last finished round).

    Raises
    ------
    FileNotFoundError
        Not a run folder.
    ValueError
        The round is not finished, its predictions are missing (a run made before chexradi wrote
        them: evaluate it again with this version), or the head was not trained in that round.
    """
    if not isinstance(head, str) or not head:
        raise ValueError(f"head must be a head's name (image, fused, ...), got {head!r}")
    d = Path(run_dir)
    h = History.load(d)
    if not len(h):
        raise ValueError(f"{d} has no finished round yet; finish the run (chexradi iterate ... --out {d})")
    k = len(h) - 1 if round is None else int(round)
    if not 0 <= k < len(h):
        raise ValueError(f"{d} has {len(h)} finished round(s) (0..{len(h) - 1}); round {round} is not one")
    pred = d / f"round_{k}" / "predictions.csv"
    if not pred.is_file():
        raise ValueError(f"{pred} is missing: the run was made by a chexradi that did not keep per-image "
                         f"predictions; run the experiment again with this version to compare it")
    settings = read_run_json(d / "run.json")
    names = list(settings.get("class_names", []))
    with open(pred, newline="") as fh:
        rows = list(csv.DictReader(fh))
    col = f"p_{head}:"
    if rows and f"{col}{names[0]}" not in rows[0]:
        have = sorted({c.split(":", 1)[0][2:] for c in rows[0] if c.startswith("p_")})
        raise ValueError(f"{pred} has no {head!r} head scores (it has {', '.join(have)}): round {k} of {d} did not "
                         f"train that head (a control arm without guidance has the image head only); compare such "
                         f"heads between guided arms (give one of them as the control), or use head='image'")
    ids = [r["image_id"] for r in rows]
    targets = np.array([[float(r[f"y:{c}"]) if r[f"y:{c}"] != "" else np.nan for c in names] for r in rows])
    probs = np.array([[float(r[f"{col}{c}"]) for c in names] for r in rows])
    boxes: list[dict[str, Any]] = []
    bfile = d / f"round_{k}" / "localization_boxes.csv"
    if bfile.is_file():
        with open(bfile, newline="") as fh:
            boxes = [{"index": int(r["index"]), "class": r["class"], "iou": float(r["iou"]), "iobb": float(r["iobb"])}
                     for r in csv.DictReader(fh)]
    groups = {g: settings.get(g, {}) for g in ("guidance",)}
    return RunScores(run_dir=d, arm=arm_label({"enabled": True, "masks": "cam", **groups["guidance"]}),
                     seed=int(settings.get("seed", 0)), round=k, class_names=names, image_ids=ids,
                     targets=targets.reshape(len(rows), len(names)), probs=probs.reshape(len(rows), len(names)),
                     boxes=boxes)


def _same_settings(runs: Sequence[RunScores]) -> None:
    """The runs differ in their arm (guidance settings and the settings of its sources) and seed only: same data
    spec, model, training and heatmap settings, and the runs of one arm the same source settings. Anything else
    would confound the comparison."""
    from ..guidance import list_sources
    from .run import comparable_settings

    sources = set(list_sources())
    full = {r.run_dir: comparable_settings(read_run_json(r.run_dir / "run.json")) for r in runs}

    def key(r: RunScores) -> dict[str, Any]:
        # the run file's format is not a setting: History reads both formats' numbers alike
        return {k: v for k, v in full[r.run_dir].items() if k not in ("guidance", "seed", "format") and k not in sources}

    first_of_arm: dict[str, RunScores] = {}
    for r in runs:  # an arm's sources are part of the arm: the same settings in each of its runs
        f = first_of_arm.setdefault(r.arm, r)
        a, b = ({g: v for g, v in full[x.run_dir].items() if g in sources} for x in (f, r))
        if a != b:
            diff = [f"{g}.{k}" for g in sorted(set(a) | set(b)) for k in sorted(set(a.get(g) or {}) | set(b.get(g) or {}))
                    if (a.get(g) or {}).get(k) != (b.get(g) or {}).get(k)]
            raise ValueError(f"{r.run_dir} and {f.run_dir} are both the {r.arm!r} arm but their guidance sources' "
                             f"settings differ ({', '.join(diff)}); give each variant its own arm "
                             f"(guidance['label']) or run them alike")
    ref = key(runs[0])
    for r in runs[1:]:
        other = key(r)
        if other != ref:
            diff = []
            for k in sorted(set(ref) | set(other)):
                a, b = ref.get(k), other.get(k)
                if isinstance(a, dict) and isinstance(b, dict):
                    diff += [f"{k}.{s}" for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)]
                elif a != b:
                    diff.append(k)
            raise ValueError(f"{r.run_dir} and {runs[0].run_dir} differ in more than their arm and seed (differing: "
                             f"{', '.join(diff)}); compare runs made with the same data and settings")


def _distinct(ctrl: Sequence[RunScores], arms: Sequence[RunScores]) -> None:
    seen: dict[Path, str] = {}
    for r in [*ctrl, *arms]:
        p = r.run_dir.resolve()
        if p in seen:
            raise ValueError(f"{r.run_dir} is given twice; give each run once")
        seen[p] = r.arm
    control_arm = ctrl[0].arm
    for r in arms:
        if r.arm == control_arm:
            raise ValueError(f"{r.run_dir} is a run of the control arm ({control_arm!r}); give it as a control "
                             f"(--control), not as a run to compare")
    groups: dict[str, list[RunScores]] = {}
    for r in [*ctrl, *arms]:
        groups.setdefault(r.arm, []).append(r)
    for arm, members in groups.items():
        seeds = [m.seed for m in members]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            raise ValueError(f"arm {arm!r} has several runs with seed {dup[0]} "
                             f"({', '.join(str(m.run_dir) for m in members if m.seed == dup[0])}); give one run per "
                             f"seed and arm")


def _same_test_set(runs: Sequence[RunScores]) -> None:
    ref = runs[0]
    for r in runs[1:]:
        if r.class_names != ref.class_names:
            raise ValueError(f"{r.run_dir} scores classes {r.class_names}, {ref.run_dir} {ref.class_names}: runs "
                             f"compared must share their classes")
        if r.image_ids != ref.image_ids:
            n_diff = sum(a != b for a, b in zip(r.image_ids, ref.image_ids)) + abs(len(r.image_ids) -
                                                                                   len(ref.image_ids))
            raise ValueError(f"{r.run_dir} and {ref.run_dir} were not tested on the same images ({len(r.image_ids)} "
                             f"vs {len(ref.image_ids)} images, {n_diff} id(s) differ): a paired comparison needs one "
                             f"test set; run every arm on the same data spec")
        same = (np.isnan(r.targets) == np.isnan(ref.targets)).all() and np.array_equal(
            np.nan_to_num(r.targets, nan=-1), np.nan_to_num(ref.targets, nan=-1))
        if not same:
            raise ValueError(f"{r.run_dir} and {ref.run_dir} have the same test image ids but different labels; "
                             f"they were not made from the same data")


def _auc_matrix(targets: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from ..metrics import fast_auc

    out = np.empty(targets.shape[1])
    for c in range(targets.shape[1]):
        t = targets[idx, c]
        ok = ~np.isnan(t)
        out[c] = fast_auc(t[ok], probs[idx, c][ok])
    return out


def _loc_accuracy(run: RunScores, metric: str, threshold: float, weight: np.ndarray, classes: list[str]) -> float:
    """Mean over ``classes`` of the share of their ground-truth boxes hit at ``threshold``, each box counted
    ``weight[its image]`` times (1 for the data itself; a bootstrap resample's multiplicities)."""
    cls = np.array([classes.index(b["class"]) if b["class"] in classes else -1 for b in run.boxes])
    img = np.array([b["index"] for b in run.boxes], dtype=np.int64)
    hit = np.array([b[metric] > threshold for b in run.boxes], dtype=np.float64)
    keep = cls >= 0
    w = weight[img[keep]].astype(np.float64)
    tot = np.bincount(cls[keep], weights=w, minlength=len(classes))
    hits = np.bincount(cls[keep], weights=w * hit[keep], minlength=len(classes))
    ok = tot > 0
    return float((hits[ok] / tot[ok]).mean()) if ok.any() else float("nan")


def _seed_spread(diffs: list[float], level: float) -> tuple[Optional[float], Optional[tuple[float, float]]]:
    if len(diffs) < 2:
        return None, None
    from scipy.stats import t as student

    sd = float(np.std(diffs, ddof=1))
    half = float(student.ppf(0.5 + level / 2, len(diffs) - 1)) * sd / math.sqrt(len(diffs))
    m = float(np.mean(diffs))
    return sd, (m - half, m + half)


@dataclass
class Comparison:
    """What :func:`compare` measured; :meth:`text`, :meth:`to_csv`, :meth:`plot`.

    Attributes
    ----------
    auc : list of dict
        One row per (arm, class) and (arm, ``"mean"``): ``arm``, ``class``, ``n_runs``, ``seeds``,
        ``auc_arm``, ``auc_control`` (means over seeds), ``difference``, ``ci_low`` / ``ci_high`` and
        ``p_delong`` (DeLong), ``boot_low`` / ``boot_high`` / ``p_boot`` (paired bootstrap over test
        images), ``seed_sd`` and ``seed_low`` / ``seed_high`` (over paired seeds; None with one).
    localization : list of dict
        One row per (arm, metric, threshold): ``acc_arm``, ``acc_control``, ``difference``, the
        bootstrap interval and p, the seed spread.
    settings : dict
        Round, head, resamples, seed, level, test images, control arm and runs.
    """

    auc: list[dict[str, Any]]
    localization: list[dict[str, Any]]
    settings: dict[str, Any]

    def text(self) -> str:
        """The comparison as a plain-text table."""
        s = self.settings
        lines = [f"paired comparison on {s['n_images']} test image(s), round {s['round']}, {s['head']} head; "
                 f"control: {s['control_arm']} ({len(s['control_runs'])} run(s)); {int(100 * s['level'])} % "
                 f"intervals: DeLong and paired bootstrap ({s['n_resamples']} resamples) over test images, "
                 f"t over seeds"]
        head = (f"{'arm':<8} {'class':<14} {'runs':>4} {'AUC arm':>8} {'control':>8} {'diff':>7}  "
                f"{'DeLong CI':<17} {'p':>6}  {'bootstrap CI':<17} {'seed sd':>7}  {'seed CI':<17}")
        lines += ["", head, "-" * len(head)]

        def ci(a: Any, b: Any) -> str:
            return "-" if a is None else f"[{a:+.3f}, {b:+.3f}]"

        for r in self.auc:
            lines.append(f"{r['arm']:<8} {r['class']:<14} {r['n_runs']:>4} {r['auc_arm']:>8.3f} "
                         f"{r['auc_control']:>8.3f} {r['difference']:>+7.3f}  {ci(r['ci_low'], r['ci_high']):<17} "
                         f"{r['p_delong']:>6.3f}  {ci(r['boot_low'], r['boot_high']):<17} "
                         f"{'-' if r['seed_sd'] is None else format(r['seed_sd'], '.3f'):>7}  "
                         f"{ci(r['seed_low'], r['seed_high']):<17}")
        if self.localization:
            head = (f"{'arm':<8} {'localisation':<14} {'acc arm':>8} {'control':>8} {'diff':>7}  "
                    f"{'bootstrap CI':<17} {'p':>6}  {'seed sd':>7}  {'seed CI':<17}")
            lines += ["", head, "-" * len(head)]
            for r in self.localization:
                lines.append(f"{r['arm']:<8} {r['metric'] + '>' + format(r['threshold'], 'g'):<14} "
                             f"{r['acc_arm']:>8.3f} {r['acc_control']:>8.3f} {r['difference']:>+7.3f}  "
                             f"{ci(r['boot_low'], r['boot_high']):<17} {r['p_boot']:>6.3f}  "
                             f"{'-' if r['seed_sd'] is None else format(r['seed_sd'], '.3f'):>7}  "
                             f"{ci(r['seed_low'], r['seed_high']):<17}")
        return "\n".join(lines)

    __str__ = text

    def to_csv(self, folder: PathLike) -> list[Path]:
        """Write ``compare.csv`` (AUC rows), ``localization.csv`` and ``compare.json`` (settings) atomically."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, rows in (("compare.csv", self.auc), ("localization.csv", self.localization)):
            cols = list(rows[0]) if rows else ["arm"]
            with atomic_write(out / name, newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
                w.writeheader()
                for r in rows:
                    w.writerow({k: ("" if v is None else v) for k, v in r.items()})
            written.append(out / name)
        with atomic_write(out / "compare.json") as fh:
            json.dump(self.settings, fh, indent=2, default=str)
        written.append(out / "compare.json")
        return written

    def plot(self, path: PathLike) -> Path:
        """A forest plot: each arm's difference from control per class and for the mean, with its DeLong
        interval (and the seed interval, when there is one), written as PNG/PDF/SVG by extension.

        Raises
        ------
        ImportError
            matplotlib is not installed (``pip install matplotlib`` or ``chexradi[plot]``).
        """
        from .._plot import pyplot, save_figure

        plt = pyplot("Comparison.plot")

        arms = list(dict.fromkeys(r["arm"] for r in self.auc))
        classes = list(dict.fromkeys(r["class"] for r in self.auc))
        fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(classes) * len(arms) + 1.6))
        y = 0.0
        ticks, labels = [], []
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for c in classes:
            for j, a in enumerate(arms):
                r = next(x for x in self.auc if x["arm"] == a and x["class"] == c)
                col = colours[j % len(colours)]
                ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=col, lw=2)
                if r["seed_low"] is not None:
                    ax.plot([r["seed_low"], r["seed_high"]], [y - 0.18, y - 0.18], color=col, lw=1, ls=":")
                ax.plot([r["difference"]], [y], "o", color=col, label=a if c == classes[0] else None,
                        ms=7 if c == "mean" else 5)
                ticks.append(y)
                labels.append(f"{c} ({a})")
                y -= 1.0
            y -= 0.5
        ax.axvline(0.0, color="black", lw=1)
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=8)
        s = self.settings
        ax.set_xlabel(f"AUC difference from {s['control_arm']} ({s['head']} head)\n{int(100 * s['level'])} % "
                      f"DeLong CI over test images (solid), t-interval over seeds (dotted)")
        ax.legend(loc="best", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        p = save_figure(fig, path, dpi=120)
        plt.close(fig)
        return p


def compare(runs: Sequence[PathLike], *, control: Union[PathLike, Sequence[PathLike]], round: Optional[int] = None,
            head: str = "image", n_resamples: int = 2000, seed: int = 0, level: float = 0.95,
            out: Optional[PathLike] = None) -> Comparison:
    """Compare runs of the loop with a control arm on the same test images (see the module docstring).

    Parameters
    ----------
    runs:
        Run folders of the arms to compare (several seeds per arm allowed; they are grouped by
        the arm their ``run.json`` records).
    control:
        The control arm's run folder(s): one arm (usually ``--no-guidance``), one or more seeds.
    round:
        The round compared (default: the last round every run finished).
    head:
        ``"image"`` (the deployed model: image only, default), or a head a guidance source adds
        (``"fused"`` for radiomics).
    n_resamples, seed:
        Bootstrap resamples and their seed.
    level:
        Confidence level (default 0.95).
    out:
        When given, the folder where ``compare.csv``, ``localization.csv``, ``compare.json`` and
        ``forest.png`` (with matplotlib) are written.

    Returns
    -------
    Comparison

    Raises
    ------
    FileNotFoundError
        A folder that is not a run.
    ValueError
        No runs, runs not tested on the same images, control runs of more than one arm, a round
        not finished by every run, bad settings.
    """
    from ..metrics import bootstrap_indices, delong_contrast, summarize_bootstrap

    ctrl_dirs = [control] if isinstance(control, (str, Path)) else list(control)
    arm_dirs = [runs] if isinstance(runs, (str, Path)) else list(runs)
    if not ctrl_dirs or not arm_dirs:
        raise ValueError("give at least one run to compare and one control run")
    if round is None:
        round = min(len(History.load(d)) for d in [*arm_dirs, *ctrl_dirs]) - 1
        if round < 0:
            raise ValueError("a run has no finished round yet; finish every run first")
    ctrl = [read_run_scores(d, round=round, head=head) for d in ctrl_dirs]
    arms = [read_run_scores(d, round=round, head=head) for d in arm_dirs]
    ctrl_arms = sorted({r.arm for r in ctrl})
    if len(ctrl_arms) > 1:
        raise ValueError(f"the control runs belong to several arms ({', '.join(ctrl_arms)}); give one arm as control")
    _distinct(ctrl, arms)
    _same_test_set([*ctrl, *arms])
    _same_settings([*ctrl, *arms])
    groups: dict[str, list[RunScores]] = {}
    for r in arms:
        groups.setdefault(r.arm, []).append(r)
    names = ctrl[0].class_names
    t = ctrl[0].targets
    n = t.shape[0]
    defined = [k for k in range(len(names)) if np.nansum(t[:, k] == 1) >= 2 and np.nansum(t[:, k] == 0) >= 2]
    boxed = sorted({b["class"] for b in ctrl[0].boxes}, key=lambda c: names.index(c) if c in names else 99)
    targets = [[k] for k in defined] + [list(defined)]
    labels = [names[k] for k in defined] + ["mean"]
    points = list(LOCALIZATION_POINTS) if boxed and all(m.boxes for m in [*ctrl, *arms]) else []
    auc_rows: list[dict[str, Any]] = []
    loc_rows: list[dict[str, Any]] = []
    for arm, members in groups.items():
        models = [*members, *ctrl]
        n_a = len(members)
        scores = np.stack([m.probs for m in models])  # (R, N, K)
        per_seed = {m.seed: m for m in ctrl}
        paired = [(m, per_seed[m.seed]) for m in members if m.seed in per_seed]

        def measures(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Per model: AUC per class (K) and localisation accuracy per point, on the cases ``idx``."""
            weight = np.bincount(idx, minlength=n)
            aucs = np.stack([_auc_matrix(t, m.probs, idx) for m in models])
            locs = np.array([[_loc_accuracy(m, metric, thr, weight, boxed) for metric, thr in points]
                             for m in models]).reshape(len(models), len(points))
            return aucs, locs

        def contrasts(aucs: np.ndarray, locs: np.ndarray) -> np.ndarray:
            """Arm minus control (means over their runs) for every AUC target, then every localisation point."""
            per_target = np.stack([aucs[:, cols].mean(axis=1) for cols in targets], axis=1)  # (R, T)
            both = np.concatenate([per_target, locs], axis=1)
            return both[:n_a].mean(axis=0) - both[n_a:].mean(axis=0)

        full_aucs, full_locs = measures(np.arange(n))
        estimate = contrasts(full_aucs, full_locs)
        reps = np.array([contrasts(*measures(idx)) for idx in bootstrap_indices(n, n_resamples=n_resamples,
                                                                               seed=seed)])
        seed_diffs = []
        position = {id(m): j for j, m in enumerate(models)}
        for a, c in paired:
            ia, ic = position[id(a)], position[id(c)]
            seed_diffs.append(np.concatenate([[full_aucs[ia, cols].mean() - full_aucs[ic, cols].mean()
                                               for cols in targets], full_locs[ia] - full_locs[ic]]))
        for j, (cols, label) in enumerate(zip(targets, labels)):
            w = np.zeros((len(models), len(names)))
            w[:n_a, cols] = 1.0 / (n_a * len(cols))
            w[n_a:, cols] = -1.0 / (len(ctrl) * len(cols))
            est, ci, p, _ = delong_contrast(t, scores, w, level=level, names=names)
            boot = summarize_bootstrap(estimate[j], reps[:, j], level=level)
            sd, sci = _seed_spread([d[j] for d in seed_diffs], level)
            auc_rows.append({"arm": arm, "class": label, "n_runs": n_a,
                             "seeds": " ".join(str(m.seed) for m in members),
                             "auc_arm": float(full_aucs[:n_a, cols].mean()),
                             "auc_control": float(full_aucs[n_a:, cols].mean()),
                             "difference": est, "ci_low": ci[0], "ci_high": ci[1], "p_delong": p,
                             "boot_low": boot.ci[0], "boot_high": boot.ci[1], "p_boot": boot.p_value,
                             "seed_sd": sd, "seed_low": None if sci is None else sci[0],
                             "seed_high": None if sci is None else sci[1]})
        for i, (metric, thr) in enumerate(points):
            j = len(targets) + i
            boot = summarize_bootstrap(estimate[j], reps[:, j], level=level)
            sd, sci = _seed_spread([d[j] for d in seed_diffs], level)
            loc_rows.append({"arm": arm, "metric": metric, "threshold": thr,
                             "acc_arm": float(full_locs[:n_a, i].mean()),
                             "acc_control": float(full_locs[n_a:, i].mean()),
                             "difference": float(estimate[j]), "boot_low": boot.ci[0], "boot_high": boot.ci[1],
                             "p_boot": boot.p_value, "seed_sd": sd, "seed_low": None if sci is None else sci[0],
                             "seed_high": None if sci is None else sci[1]})
    settings = {"round": round, "head": head, "n_resamples": n_resamples, "seed": seed, "level": level,
                "n_images": n, "control_arm": ctrl_arms[0], "control_runs": [str(r.run_dir) for r in ctrl],
                "runs": {a: [str(m.run_dir) for m in ms] for a, ms in groups.items()},
                "classes": [names[k] for k in defined], "boxed_classes": boxed}
    result = Comparison(auc=auc_rows, localization=loc_rows, settings=settings)
    if out is not None:
        result.to_csv(out)
        try:
            result.plot(Path(out) / "forest.png")
        except ImportError:
            pass
    return result
