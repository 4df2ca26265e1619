"""``chexradi compare``: arms of the loop against a control arm on the same test images."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from .common import CONTEXT, ConfigError, cli

__all__ = ["compare_cmd"]


@cli.command("compare", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--control", "-c", "control", multiple=True, required=True, type=click.Path(path_type=Path),
              metavar="RUN_DIR", help="A run of the control arm (repeat for several seeds).")
@click.option("--round", "round_", type=click.IntRange(min=0), default=None,
              help="Round compared [the last round every run finished].")
@click.option("--head", default="image", show_default=True, metavar="NAME",
              help="The head compared: image (the deployed model, image only) or a head a guidance source adds "
                   "(fused: image + radiomics).")
@click.option("--resamples", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Paired-bootstrap resamples over test images.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--level", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the intervals.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Write compare.csv, localization.csv, compare.json and forest.png there.")
def compare_cmd(runs: tuple[Path, ...], control: tuple[Path, ...], round_: Optional[int], head: str, resamples: int,
                seed: int, level: float, out: Optional[Path]) -> None:
    """Compare arms of `chexradi iterate` with a control arm on the same test images.

    RUNS are run folders of the arms (several seeds per arm: they are grouped by the arm their
    run.json records). For each arm, per class and for the mean over classes: its AUC, the
    difference from the control, the 95 % interval and p-value of DeLong's test on the same
    images, the paired-bootstrap interval over test images, and, with paired seeds, the spread
    over seeds; then localisation accuracy at T(IoU) = 0.1 / 0.3 and T(IoBB) = 0.5 with
    bootstrap intervals. Runs that were not tested on the same images are refused.

    \b
    Examples:
      chexradi compare runs/cam_s0 runs/cam_s1 runs/cam_s2 -c runs/ctl_s0 -c runs/ctl_s1 -c runs/ctl_s2
      chexradi compare runs/truth runs/random --control runs/control --out runs/compare

    Exit status: 0 done, 2 runs that cannot be compared.
    """
    from ..loop.compare import compare

    try:
        result = compare(list(runs), control=list(control), round=round_, head=head, n_resamples=resamples,
                         seed=seed, level=level, out=out)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    click.echo(result.text())
    if out is not None:
        click.echo(f"\ntables: {out / 'compare.csv'}, {out / 'localization.csv'}")
        if (out / "forest.png").is_file():
            click.echo(f"forest plot: {out / 'forest.png'}")
