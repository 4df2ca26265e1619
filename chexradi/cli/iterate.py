"""``chexradi iterate``: the radiomics-guided loop from the command line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import click

from ..names import LOOP_HEATMAP_METHODS, HEATMAP_REGIONS, MASK_ARMS, MODEL_NAMES, OUTPUT_STRIDES, THRESHOLD_METHODS, ENGINES
from .common import CONTEXT, ConfigError, cli, settings_callback

__all__ = ["iterate_cmd", "print_history"]


def _read_config(path: Optional[Path]) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: not a readable YAML/JSON file ({exc})") from None
    from ..guidance import list_sources

    groups = ("train", "heatmap", "guidance", *list_sources())
    if not isinstance(data, dict) or not set(data) <= set(groups):
        bad = sorted(set(data) - set(groups)) if isinstance(data, dict) else [type(data).__name__]
        raise ConfigError(f"--config {path}: top-level keys must be among {', '.join(groups)} (got {bad}); "
                          f"e.g. 'train: {{epochs: 10}}'")
    for g, v in data.items():
        if not isinstance(v, dict):
            raise ConfigError(f"--config {path}: '{g}' must be a mapping of settings, got {type(v).__name__}")
    return data


@cli.command("iterate", context_settings=CONTEXT)
@click.option("--data", "-d", required=True, metavar="SPEC",
              help="phantom[:n=600,size=128,difficulty=0.5], chestxray14:DIR, chexpert:DIR, mimic:DIR, "
                   "iu_xray:DIR or csv:FILE (phantom, iu_xray, mimic with its reports and csv with text columns "
                   "carry reports for --guidance tandem / vkd).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Run folder: run.json, round_<k>/ (checkpoint, masks, regions, radiomics, metrics), "
                   "history.csv/json. Re-running the same command resumes.")
@click.option("--rounds", "-r", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds including round 0 (image only).")
@click.option("--model", "-m", type=click.Choice(MODEL_NAMES), default="resnet50_ta", show_default=True)
@click.option("--size", type=click.IntRange(min=8), default=None, metavar="PX",
              help="Network input side [default: 224 for files, 128 for the phantom (96 for phantom:version=1)].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Maximum epochs per round [8].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Training batch size [32].")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=None, help="AdamW learning rate [1e-3].")
@click.option("--patience", type=click.IntRange(min=1), default=None, help="Early-stopping patience in epochs [3].")
@click.option("--device", default=None, metavar="DEV", help="cpu, cuda, cuda:1 ... [cuda when available].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision [on for CUDA].")
@click.option("--workers", type=click.IntRange(min=0), default=None, help="DataLoader worker processes [0].")
@click.option("--output-stride", type=click.Choice([str(s) for s in OUTPUT_STRIDES]), default=None,
              help="Input side over the final feature map's side (finer CAM below 32: dilated last stages) [16].")
@click.option("--guidance", "guidance_sources", default=None, metavar="NAME[,NAME]",
              help="Guidance sources, comma-separated: radiomics (inside the heatmap masks, from round 1), tandem "
                   "(TandemNet: the report as a reference of a dual attention) and vkd (VKD: variational "
                   "distillation from the report) guide from round 0 with a data spec that has reports; any "
                   "source registered with chexradi.guidance.register_source. E.g. radiomics,tandem [radiomics].")
@click.option("--no-guidance", is_flag=True,
              help="Control arm: every round retrains on images alone (same rounds and epochs, no radiomics).")
@click.option("--guidance-masks", type=click.Choice(MASK_ARMS), default=None,
              help="Where guided rounds take their radiomics masks: cam (the model's heatmaps), truth (oracle: "
                   "ground-truth masks on the training split), random (the CAM masks moved at random inside the "
                   "lungs: negative control), lungs (the lung fields) [cam].")
@click.option("--round0-from", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Start from the finished round 0 of another arm's run (same settings but guidance), copied "
                   "instead of trained again.")
@click.option("--scratch", is_flag=True, help="Train every round from scratch instead of from the previous round.")
@click.option("--alignment", type=click.Choice(["ntxent", "mse", "none"]), default=None,
              help="Alignment loss between image and radiomics embeddings [ntxent].")
@click.option("--align-weight", type=click.FloatRange(min=0.0), default=None, help="Weight of the alignment [0.5].")
@click.option("--method", type=click.Choice(LOOP_HEATMAP_METHODS), default=None,
              help="Heatmap method: cam, gradcam or gradcampp (Grad-CAM++); tandem (TandemNet's image attention, "
                   "with --guidance tandem) [cam].")
@click.option("--threshold", type=click.Choice(THRESHOLD_METHODS), default=None,
              help="Heatmap -> mask threshold [fraction].")
@click.option("--value", type=float, default=None, help="The threshold's parameter [fraction 0.5].")
@click.option("--region", type=click.Choice(HEATMAP_REGIONS), default=None,
              help="Radiomics inside the mask or its bounding box [mask].")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
              help="Radiomics worker processes, 0 = one per CPU [0].")
@click.option("--engine", type=click.Choice(ENGINES), default=None, help="Radiomics engine [numba].")
@click.option("--scheduler", default=None, metavar="NAME",
              help="Where radiomics runs: processes (default), dask (a local cluster of --jobs workers) or "
                   "dask:ADDRESS (your cluster).")
@click.option("--param", "-p", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="PyRadiomics parameter file for the radiomics step [binWidth 8 on 0-255].")
@click.option("--setting", "-s", "settings", multiple=True, metavar="NAME:VALUE", callback=settings_callback,
              help="A radiomics setting (repeatable), e.g. -s binWidth:16.")
@click.option("--config", "-c", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="YAML with 'train', 'heatmap', 'radiomics', 'guidance' settings; options win.")
@click.option("--skip-bad-images", is_flag=True,
              help="Skip missing or unreadable image files (counted and logged) instead of failing before training.")
@click.option("--no-resume", is_flag=True, help="Refuse to continue a run found in --out.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PNG",
              help="Also draw the curves [DIR/history.png when matplotlib is installed].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-round messages; the table only.")
def iterate_cmd(data: str, out: Path, rounds: int, model: str, size: Optional[int], seed: int, epochs: Optional[int],
                batch_size: Optional[int], lr: Optional[float], patience: Optional[int], device: Optional[str],
                amp: Optional[bool], workers: Optional[int], output_stride: Optional[str],
                guidance_sources: Optional[str], no_guidance: bool,
                guidance_masks: Optional[str], round0_from: Optional[Path], scratch: bool, alignment: Optional[str],
                align_weight: Optional[float], method: Optional[str], threshold: Optional[str], value: Optional[float],
                region: Optional[str], jobs: Optional[int], engine: Optional[str],
                scheduler: Optional[str], param: Optional[Path],
                settings: dict[str, Any], config: Optional[Path], skip_bad_images: bool, no_resume: bool,
                plot: Optional[Path],
                quiet: bool) -> None:
    """Run the radiomics-guided loop: train, heatmaps, masks, radiomics, guided retraining.

    Round 0 trains on images alone; every later round trains with the radiomics of the
    previous round's heatmap masks as guidance. Report-text sources (--guidance tandem or
    vkd, with a data spec that has reports) guide from round 0 and are removed at test
    (their `<source>_report` heads alone read the report, as a reference). Each round is evaluated on the test split (AUC of
    every head, localisation accuracy where boxes exist) and written to DIR/round_<k>/;
    the History table is printed at the end. Source settings go in --config (e.g.
    'tandem: {text_drop: 0.5}').

    \b
    Examples:
      chexradi iterate --data phantom --model resnet18_ta --rounds 3 --out runs/phantom
      chexradi iterate --data chestxray14:/data/cxr14 --out runs/cxr14 --device cuda --jobs 16
      chexradi iterate --data csv:labels.csv --out runs/mine --config loop.yaml
      chexradi iterate --data phantom --model resnet18_ta --no-guidance --out runs/control
      chexradi iterate --data phantom --guidance-masks truth --round0-from runs/control --out runs/truth
      chexradi iterate --data phantom --guidance radiomics,tandem --out runs/text

    Several processes (CPU) or GPUs: `torchrun --nproc_per_node N -m chexradi iterate ...`
    trains data-parallel (the global --batch-size is split over the N processes) and
    shards heatmaps, radiomics and evaluation; rank 0 writes the results.

    Exit status: 0 done, 2 invalid settings or data (nothing trained), 130 interrupted
    (run the same command again to resume).
    """
    from ..loop import iterate

    cfg = _read_config(config)
    groups: dict[str, dict[str, Any]] = {g: dict(v) for g, v in cfg.items()}
    for g in ("train", "heatmap", "guidance", "radiomics"):
        groups.setdefault(g, {})
    if guidance_sources is not None:
        groups["guidance"]["sources"] = [s.strip() for s in guidance_sources.split(",") if s.strip()]
    for g, k, v in (("train", "epochs", epochs), ("train", "batch_size", batch_size), ("train", "lr", lr),
                    ("train", "patience", patience), ("train", "device", device), ("train", "amp", amp),
                    ("train", "num_workers", workers), ("heatmap", "method", method),
                    ("heatmap", "threshold", threshold), ("heatmap", "value", value), ("heatmap", "region", region),
                    ("radiomics", "jobs", jobs), ("radiomics", "engine", engine), ("radiomics", "scheduler", scheduler),
                    ("guidance", "align_weight", align_weight), ("guidance", "masks", guidance_masks)):
        if v is not None:
            groups[g][k] = v
    if output_stride is not None:
        groups["train"]["output_stride"] = int(output_stride)
    if scratch:
        groups["train"]["warm_start"] = False
    if no_guidance:
        groups["guidance"]["enabled"] = False
    if alignment is not None:
        groups["guidance"]["alignment"] = None if alignment == "none" else alignment
    if param is not None or settings:
        from ..radiomics.settings import load_settings

        base = param if param is not None else groups["radiomics"].get("params", {"binWidth": 8})
        try:
            groups["radiomics"]["params"] = load_settings(base, **settings).to_params()
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"radiomics settings: {exc}") from None
    from ..guidance.source import DEFAULT_SOURCES

    listed = groups["guidance"].get("sources", list(DEFAULT_SOURCES))
    listed = [s.strip() for s in listed.split(",")] if isinstance(listed, str) else list(listed)
    source_groups = {g: v for g, v in groups.items() if g not in ("train", "heatmap", "guidance")}
    unused = sorted(g for g, v in source_groups.items() if v and g not in listed)
    if unused:
        raise ConfigError(f"settings for {', '.join(unused)} (options or --config) but --guidance lists "
                          f"{', '.join(listed)}: add {', '.join(unused)} to --guidance or drop those settings")
    try:
        history = iterate(data, model=model, rounds=rounds, out=out, resume=not no_resume, seed=seed, size=size,
                          on_error="skip" if skip_bad_images else "fail",
                          progress=False if quiet else None, round0_from=round0_from, train=groups["train"],
                          heatmap=groups["heatmap"], guidance=groups["guidance"],
                          radiomics=source_groups.get("radiomics") if "radiomics" in listed else None,
                          sources={g: v for g, v in source_groups.items() if g != "radiomics" and g in listed})
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; run the same command again to resume from {out}", err=True)
        click.get_current_context().exit(130)
    if os.environ.get("RANK", "0").strip() in ("", "0"):  # under torchrun, rank 0 reports
        print_history(history, plot, out)


def print_history(history: Any, plot: Optional[Path], out: Path) -> None:
    click.echo(history.table())
    click.echo("")
    click.echo("AUC per class (evaluation split):")
    click.echo(history.auc_table())
    click.echo("")
    click.echo(f"history: {out / 'history.csv'}")
    target = plot if plot is not None else out / "history.png"
    try:
        from ..loop import plot_history

        fig = plot_history(history, target)
        import matplotlib.pyplot as plt

        plt.close(fig)
        click.echo(f"plot: {target}")
    except ImportError as exc:
        if plot is not None:
            raise ConfigError(str(exc)) from None
