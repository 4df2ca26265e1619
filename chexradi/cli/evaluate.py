"""``chexradi evaluate``: reprint and re-plot a finished run of the loop."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from .common import CONTEXT, ConfigError, cli
from .iterate import print_history

__all__ = ["evaluate_cmd"]


@cli.command("evaluate", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PNG",
              help="Where to draw the curves [RUN_DIR/history.png].")
@click.option("--localization", "-l", is_flag=True, help="Also print each round's per-class localisation tables.")
def evaluate_cmd(run_dir: Path, plot: Optional[Path], localization: bool) -> None:
    """Reprint and re-plot a run of `chexradi iterate` from its folder (nothing is recomputed).

    \b
    Examples:
      chexradi evaluate runs/phantom
      chexradi evaluate runs/phantom --plot curves.pdf --localization

    Exit status: 0 done, 2 not a run folder.
    """
    from ..loop import History

    try:
        history = History.load(run_dir)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    planned = history.settings.get("rounds")
    click.echo(f"run {run_dir}: data {history.settings.get('data')}, model {history.settings.get('model')}, "
               f"{len(history)} of {planned} round(s) finished")
    if not len(history):
        click.echo("no finished round yet; run `chexradi iterate` with the same options to continue", err=True)
        return
    if localization:
        for r in history:
            for metric in ("iou", "iobb"):
                p = run_dir / f"round_{r['round']}" / f"localization_{metric}.csv"
                if p.is_file():
                    click.echo(f"\nround {r['round']}, localisation accuracy ({metric}):")
                    click.echo(p.read_text().rstrip())
        click.echo("")
    print_history(history, plot, run_dir)
