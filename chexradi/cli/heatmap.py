"""``chexradi heatmap``: a trained model's class heatmaps as overlays, masks and boxes."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import click

from ..names import CAM_METHODS, KEEP_MODES, THRESHOLD_METHODS
from .common import CONTEXT, CaseFailed, ConfigError, cli

__all__ = ["heatmap"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic")


def _expand_images(items: Sequence[Path]) -> list[Path]:
    """Files as given; a folder stands for the radiographs directly inside it (sorted)."""
    out: list[Path] = []
    for p in items:
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ConfigError(f"folder {p} holds no radiograph ({', '.join(IMAGE_SUFFIXES)}); "
                                  "pass image files or a folder that contains them")
            out.extend(found)
        else:
            out.append(p)
    return out


@cli.command("heatmap", context_settings=CONTEXT)
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output folder: DIR/<image>/<class>.png overlays and <class>_mask.nrrd masks, "
                   "predictions.csv, regions.csv, cases.csv (for `chexradi extract --batch`) and heatmap.json.")
@click.option("--method", "-m", type=click.Choice(CAM_METHODS), default="gradcam", show_default=True,
              help="Grad-CAM (gradients at --layer), CAM (classifier weights x final feature map) or Grad-CAM++ "
                   "(gradcampp: pixel-wise weights of the positive gradients at --layer).")
@click.option("--layer", metavar="NAME", default=None,
              help="Grad-CAM target layer by module name, e.g. backbone.layer3 (default: the final feature map).")
@click.option("--class", "classes", multiple=True, metavar="NAME",
              help="Only this class (repeatable; default: every class of the model).")
@click.option("--min-prob", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="A class is predicted for an image when its probability is at least this.")
@click.option("--all-classes", is_flag=True, help="Write every considered class, predicted or not.")
@click.option("--threshold", "-t", type=click.Choice(THRESHOLD_METHODS), default="fraction", show_default=True,
              help="Heatmap -> mask: fraction of the maximum, Otsu, a percentile, or Wang et al.'s fixed 0-255 value.")
@click.option("--value", type=float, default=None, metavar="V",
              help="The threshold's parameter: fraction in (0,1] (default 0.5), percentile in [0,100] (95), "
                   "fixed in [0,255] (180); not used by otsu.")
@click.option("--sigma", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian smoothing of the heatmap before thresholding, in pixels of the radiograph.")
@click.option("--keep", type=click.Choice(KEEP_MODES), default="strongest", show_default=True,
              help="Connected components kept in the mask.")
@click.option("--size", type=click.IntRange(min=8), default=None, metavar="N",
              help="Network input side (default: the size the checkpoint was trained at).")
@click.option("--device", default=None, metavar="DEV", help="cpu, cuda, cuda:1 ... (default: cuda when available).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
              help="Images per forward pass.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; summary only when something failed.")
def heatmap(model: Path, images: tuple[Path, ...], out: Path, method: str, layer: Optional[str],
            classes: tuple[str, ...], min_prob: float, all_classes: bool, threshold: str, value: Optional[float],
            sigma: float, keep: str, size: Optional[int], device: Optional[str], batch_size: int,
            quiet: bool) -> None:
    """Heatmaps of a trained MODEL on IMAGE files (or folders of them), as overlays and masks.

    For each image and each predicted class (probability >= --min-prob), the heatmap is
    resized to the radiograph, thresholded into a mask (label 1, the radiograph's
    spacing) and drawn: DIR/<image>/<class>.png shows the radiograph with the box
    next to the heatmap over it. Empty masks and masks covering the whole image are
    flagged in regions.csv and on the overlay, and left out of cases.csv.

    \b
    Examples:
      chexradi heatmap run/best.pt cxr1.png cxr2.dcm --out heatmaps
      chexradi heatmap run/best.pt images/ --out heatmaps --method cam --threshold otsu
      chexradi extract --batch heatmaps/cases.csv --out features.csv

    Exit status: 0 all images done, 1 an image could not be read, 2 usage error or
    unusable model checkpoint.
    """
    from ..cam.export import write_heatmaps

    paths = _expand_images(images)
    try:
        report = write_heatmaps(model, paths, out, method=method, target_layer=layer,
                                classes=list(classes) or None, min_prob=min_prob, all_classes=all_classes,
                                threshold=threshold, value=value, sigma=sigma, keep=keep, size=size, device=device,
                                batch_size=batch_size, progress=False if quiet else None)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    if not quiet or report.failures:
        click.echo(f"{report.n_images} image(s): {report.n_ok} done, {report.n_failed} failed; "
                   f"{len(report.regions)} heatmap(s), {report.flagged} with an empty or full mask", err=True)
        click.echo(f"output: {report.out}", err=True)
    for image, reason in report.failures:
        click.echo(f"  {image}: {reason}", err=True)
    if report.failures:
        raise CaseFailed(f"{report.n_failed} image(s) could not be processed; fix them and run again")
