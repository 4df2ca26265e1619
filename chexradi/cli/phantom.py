"""``chexradi phantom``: a synthetic chest X-ray data set with boxes, masks and reports."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ..names import PHANTOM_CLASSES, PHANTOM_VERSIONS
from .common import CONTEXT, CaseFailed, ConfigError, cli

__all__ = ["phantom"]


@cli.command("phantom", context_settings=CONTEXT)
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output folder: DIR/images/phantom_00000.png (16-bit), labels.csv, boxes.csv, phantom.json "
                   "and, with --masks, DIR/masks/phantom_00000_<class>.nrrd.")
@click.option("--n", "n", type=click.IntRange(min=1), default=200, show_default=True, metavar="N",
              help="Number of images.")
@click.option("--size", type=click.IntRange(min=64), default=256, show_default=True, metavar="PX",
              help="Image side in pixels.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the whole phantom.")
@click.option("--difficulty", "-d", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="0: little anatomical variation and noise, strong lesions; 1: much variation and noise, "
                   "subtle lesions.")
@click.option("--classes", "-c", default=",".join(PHANTOM_CLASSES), show_default="all six", metavar="A,B,...",
              help="Comma-separated findings that may occur (ChestX-ray14 spelling).")
@click.option("--prevalence", type=click.FloatRange(0.0, 1.0), default=None, metavar="P",
              help="Probability that each finding is present, independently (default 0.25).")
@click.option("--masks", is_flag=True, help="Also write each finding's mask and the lung mask as NRRD.")
@click.option("--version", "version", type=click.Choice(sorted(PHANTOM_VERSIONS, reverse=True)), default="2", show_default=True,
              help="The phantom's drawing: 2 (findings visible at 128 px, texture signatures, calibrated "
                   "strengths) or 1 (the first phantom, drawn the same to the bit).")
@click.option("--strength", "strength", multiple=True, metavar="CLASS:X",
              help="Version 2: a finding's contrast factor instead of the calibrated one (repeatable), "
                   "e.g. --strength Nodule:1.5.")
@click.option("--overwrite", is_flag=True,
              help="Replace a phantom made with other settings in DIR (and remove its leftover files).")
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
def phantom(out: Path, n: int, size: int, seed: int, difficulty: float, classes: str, prevalence: Optional[float],
            masks: bool, version: str, strength: tuple[str, ...], overwrite: bool, quiet: bool) -> None:
    """Write a synthetic chest X-ray data set (ChestX-ray14 layout) with boxes and masks.

    Deterministic: image i depends only on (seed, i, size, difficulty, classes,
    prevalence), so the same command writes the same bytes, and --n 10 gives the
    first 10 images of --n 100. Findings: Nodule, Mass, Effusion, Cardiomegaly,
    Pneumothorax, Infiltration; each present independently, none = "No Finding".

    \b
    Examples:
      chexradi phantom --out phantom
      chexradi phantom --out small --n 40 --size 128 --difficulty 0.2 --masks
      chexradi phantom --out two --classes Nodule,Effusion --prevalence 0.5
      chexradi phantom --out v1 --version 1 --size 96
      chexradi phantom --out easy --strength Nodule:3 --strength Infiltration:5

    Exit status: 0 written, 1 a file could not be written, 2 usage error or invalid
    settings (nothing written).
    """
    from ..data.phantom import write_phantom

    names = [c.strip() for c in classes.split(",") if c.strip()]
    factors: dict[str, float] = {}
    for item in strength:
        name, _, value = item.partition(":")
        try:
            factors[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--strength {item!r}: give CLASS:NUMBER, e.g. Nodule:1.5") from None
    try:
        report = write_phantom(out, n, size=size, seed=seed, difficulty=difficulty, classes=names,
                               prevalence=prevalence, masks=masks, overwrite=overwrite, version=version,
                               strength=factors or None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise CaseFailed(f"could not write the phantom to {out}: {exc}") from None
    if not quiet:
        click.echo(report.summary())
