"""The ``chexradi`` command line.

Commands: ``extract`` (radiomics features of one case or of a batch),
``heatmap`` (a trained model's class heatmaps as overlays, masks and boxes),
``phantom`` (a synthetic data set), in :mod:`chexradi.cli_loop`, ``iterate``
(the radiomics-guided loop), ``evaluate`` (reprint a finished run) and ``compare``
(arms against a control arm, with confidence intervals), and, in
:mod:`chexradi.cli_reports`, ``label-reports`` (labels mined from radiology reports).

Exit codes: 0 success; 1 a case failed; 2 usage error, invalid settings or
parameter file, or a cases/output problem found before any work; 130
interrupted (a batch resumes when run again).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import click

from . import __version__
from .cam.names import CAM_METHODS

__all__ = ["cli", "main", "parse_setting"]

ENGINES = ("numba", "pyradiomics")  # == chexradi.radiomics.extractor.ENGINES (kept here so --help stays fast)
FORMATS = ("csv", "json")


class ConfigError(click.ClickException):
    """Invalid settings, parameter file, cases file or output path: exit code 2, message only."""

    exit_code = 2


class CaseFailed(click.ClickException):
    """The single case could not be processed: exit code 1, message only."""

    exit_code = 1


class _ClickHandler(logging.Handler):
    """Log records to the current stderr (works under click's test runner too)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _setup_logging(verbose: int) -> None:
    """Send the `chexradi` logger to stderr for this invocation; undone when the command ends."""
    log = logging.getLogger("chexradi")
    handler = _ClickHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG)

    def restore() -> None:
        log.removeHandler(handler)
        log.setLevel(previous)

    click.get_current_context().call_on_close(restore)


# ------------------------------------------------------------------------------------------------
# --setting NAME:VALUE
# ------------------------------------------------------------------------------------------------
def parse_setting(item: str) -> tuple[str, Any]:
    """Parse ``NAME:VALUE``; the value is read as a YAML scalar, list or mapping.

    ``binWidth:10`` -> ("binWidth", 10); ``force2D:true`` -> True;
    ``distances:[1,2]`` -> [1, 2]; ``binCount:null`` -> None; ``binWidth:1e1`` -> 10.0.

    Raises
    ------
    ValueError
        No colon, an empty name, or a value that is not valid YAML.
    """
    import yaml

    name, sep, raw = item.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{item!r} is not NAME:VALUE; write e.g. binWidth:10, force2D:true or distances:[1,2].")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as exc:
        raise ValueError(f"{item!r}: the value {raw!r} is not valid YAML ({str(exc).splitlines()[0]}).") from None
    if isinstance(value, str):  # YAML 1.1 reads '1e1' as text: accept plain numbers anyway
        try:
            num = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(num):
                value = num
    return name, value


def _settings_callback(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        try:
            name, value = parse_setting(item)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
        out[name] = value
    return out


# ------------------------------------------------------------------------------------------------
# the group
# ------------------------------------------------------------------------------------------------
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _scheduler_callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .radiomics.dask_backend import parse_scheduler

    try:
        kind, address = parse_scheduler(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a scheduler; use processes, dask, or dask:ADDRESS (e.g. "
                                 "dask:tcp://10.0.0.5:8786).") from None
    return kind if address is None else f"dask:{address}"


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="chexradi", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v: info, -vv: debug).")
def cli(verbose: int) -> None:
    """chexradi: radiomics with PyRadiomics' numbers, for the ChexRadiNet loop.

    \b
    Examples:
      chexradi extract image.nrrd mask.nrrd
      chexradi extract --batch cases.csv --out features.csv --jobs 4
      chexradi heatmap run/best.pt cxr.png --out heatmaps
      chexradi iterate --data phantom --model resnet18_ta --out runs/phantom
      chexradi evaluate runs/phantom

    Run `chexradi COMMAND --help` for a command's options.
    """
    _setup_logging(verbose)


def _fmt_value(v: float) -> str:
    return repr(float(v))


def _features_text(features: dict[str, float], fmt: str) -> str:
    if fmt == "json":
        clean = {k: (v if math.isfinite(v) else None) for k, v in features.items()}
        return json.dumps(clean, indent=2) + "\n"
    return "".join(f"{k},{_fmt_value(v)}\n" for k, v in features.items())


def _infer_format(fmt: Optional[str], out: Optional[Path]) -> str:
    if fmt:
        return fmt
    if out is not None and out.suffix.lower() == ".json":
        return "json"
    return "csv"


@cli.command("extract", context_settings=CONTEXT)
@click.argument("image", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.argument("mask", required=False, type=click.Path(dir_okay=True, path_type=Path))
@click.option("--batch", "-b", "cases", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="CASES.csv",
              help="Run every case of a CSV with columns Image, Mask and optionally Label (other columns are "
                   "copied to the output; relative paths are read from the CSV's folder).")
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="PATH",
              help="Output file. Required with --batch; for one case, default is stdout. A PATH.meta.json with "
                   "settings and versions is written next to it (and, for a batch, a PATH.journal.jsonl).")
@click.option("--param", "-p", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE",
              help="PyRadiomics parameter file (YAML or JSON: setting / featureClass / imageType).")
@click.option("--setting", "-s", "settings", multiple=True, metavar="NAME:VALUE", callback=_settings_callback,
              help="A setting by PyRadiomics name, overriding --param; repeatable. VALUE is YAML: binWidth:10, "
                   "force2D:true, distances:[1,2], resegmentRange:[-3,3], \"featureClass:{firstorder: []}\".")
@click.option("--label", type=click.IntRange(min=1), metavar="N",
              help="ROI label in the mask (default: the label setting, 1). In a batch, a row's Label wins.")
@click.option("--engine", type=click.Choice(ENGINES), default="numba", show_default=True,
              help="numba: chexradi's kernels; pyradiomics: the real PyRadiomics on the same inputs.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Worker processes for --batch (0: one per CPU); with --scheduler dask, the local Dask "
                   "workers.")
@click.option("--scheduler", default="processes", show_default=True, metavar="NAME",
              callback=_scheduler_callback,
              help="Where --batch cases run: processes (--jobs worker processes), dask (a local Dask cluster of "
                   "--jobs workers) or dask:ADDRESS (a running Dask scheduler, e.g. dask:tcp://10.0.0.5:8786; its "
                   "workers need chexradi and the case files). Dask needs pip install chexradi[dask].")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format. One case: name,value lines or a JSON object. Batch: one CSV row per case, or "
                   "JSON {metadata, records}. Default: json if --out ends in .json, else csv.")
@click.option("--validate", is_flag=True,
              help="Only load and check the inputs (files, labels, geometry, ROI size, NaN pixels) and the "
                   "settings; compute and write nothing.")
@click.option("--no-resume", is_flag=True,
              help="Batch: recompute every case instead of resuming from the journal next to --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; batch summary only when a case failed.")
def extract(image: Optional[Path], mask: Optional[Path], cases: Optional[Path], out: Optional[Path],
            param: Optional[Path], settings: dict[str, Any], label: Optional[int], engine: str, jobs: int,
            scheduler: str, fmt: Optional[str], validate: bool, no_resume: bool, quiet: bool) -> None:
    """Radiomics features of one IMAGE and MASK, or of every case of a --batch CSV.

    Features are named original_<class>_<Feature>, as in PyRadiomics; by default all
    non-deprecated features of every class (shape for 3-D inputs, shape2D for 2-D ones).

    \b
    Examples:
      chexradi extract image.nrrd mask.nrrd
      chexradi extract cxr.png roi.png --setting binWidth:10 --format json
      chexradi extract image.nrrd mask.nrrd --param params.yaml --out features.csv
      chexradi extract --batch cases.csv --out features.csv --jobs 4
      chexradi extract --batch cases.csv --out features.csv --scheduler dask --jobs 8
      chexradi extract --batch cases.csv --out features.csv --scheduler dask:tcp://10.0.0.5:8786
      chexradi extract --batch cases.csv --validate

    \b
    cases.csv:
      Image,Mask,Label,Patient
      images/p1.nrrd,masks/p1.nrrd,1,P1

    A batch records each finished case in OUT.journal.jsonl; running the same command
    again resumes (done cases are skipped, failed ones retried). Exit status: 0 all
    cases succeeded, 1 a case failed, 2 usage error or invalid settings/inputs.
    """
    if cases is not None and (image is not None or mask is not None):
        raise click.UsageError("give either IMAGE MASK (one case) or --batch CASES.csv, not both.")
    if cases is None and (image is None or mask is None):
        raise click.UsageError("give IMAGE and MASK (one case), or --batch CASES.csv."
                               if image is None else "missing argument MASK: give the mask of IMAGE.")
    if cases is not None and out is None and not validate:
        raise click.UsageError("--batch needs --out PATH (where the features are written), e.g. --out features.csv.")
    if label is not None:
        settings = {**settings, "label": label}
    fmt = _infer_format(fmt, out)

    from .radiomics.extractor import Extractor

    try:
        ext = Extractor(param, engine=engine, **settings)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"invalid settings: {exc}") from None

    if cases is not None:
        _run_batch(cases, ext, out=out, fmt=fmt, jobs=jobs, scheduler=scheduler, resume=not no_resume,
                   validate=validate, quiet=quiet)
    else:
        assert image is not None and mask is not None
        _run_single(ext, image, mask, out=out, fmt=fmt, validate=validate, quiet=quiet)


def _run_single(ext: Any, image: Path, mask: Path, *, out: Optional[Path], fmt: str, validate: bool,
                quiet: bool) -> None:
    from .radiomics import batch

    out_path = None
    if out is not None and not validate:
        try:
            out_path = batch.check_output_path(out, name="--out")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    t0 = time.perf_counter()
    try:
        if validate:
            case = ext.prepare(image, mask)
            click.echo(f"ok: {image} / {mask}: label {case.label}, {case.voxels} voxels in the ROI, "
                       f"{case.ndim}-D, spacing {tuple(round(s, 6) for s in case.spacing)}")
            return
        features = ext.execute(image, mask)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        raise CaseFailed(str(exc)) from None
    text = _features_text(features, fmt)
    if out_path is None:
        click.echo(text, nl=False)
        return
    from ._io import atomic_write
    from .radiomics.extractor import versions

    with atomic_write(out_path, newline="") as fh:
        fh.write(text)
    meta = {
        "kind": "chexradi-extract-output",
        "image": str(Path(image).absolute()),
        "mask": str(Path(mask).absolute()),
        "output": str(out_path),
        "format": fmt,
        "engine": ext.engine,
        "settings": ext.settings.to_params(),
        "versions": versions(),
        "features": len(features),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    batch.write_meta(batch.meta_path(out_path), meta)
    if not quiet:
        click.echo(f"{len(features)} features written to {out_path} (metadata: {batch.meta_path(out_path)})", err=True)


def _run_batch(cases: Path, ext: Any, *, out: Optional[Path], fmt: str, jobs: int, scheduler: str, resume: bool,
               validate: bool, quiet: bool) -> None:
    from .radiomics.batch import extract_batch, journal_path

    try:
        report = extract_batch(cases, out=out, params=ext.settings, engine=ext.engine, jobs=jobs,
                               scheduler=scheduler, fmt=fmt, resume=resume, validate_only=validate,
                               progress=False if quiet else None)
    except (ValueError, FileNotFoundError, ImportError) as exc:  # raised before any case runs
        raise ConfigError(str(exc)) from None
    except KeyboardInterrupt:
        where = f" ({journal_path(out)})" if out is not None and not validate else ""
        click.echo(f"\ninterrupted: finished cases are saved in the journal{where}; run the same command again "
                   "to resume.", err=True)
        click.get_current_context().exit(130)

    if not quiet or not report.ok:
        _print_summary(report)
    if not report.ok:
        click.get_current_context().exit(1)


def _print_summary(report: Any) -> None:
    echo = lambda s="": click.echo(s, err=True)  # noqa: E731
    if report.validate_only:
        echo(f"validated {report.n_total} case(s): {report.n_ok} ok, {report.n_failed} failed "
             f"({report.elapsed:.1f} s); nothing computed or written")
    else:
        resumed = f" ({report.n_skipped_resumed} resumed from the journal)" if report.n_skipped_resumed else ""
        echo(f"{report.n_total} case(s): {report.n_ok} ok{resumed}, {report.n_failed} failed "
             f"({report.elapsed:.1f} s)")
        echo(f"features: {report.out}")
        echo(f"metadata: {report.meta_path}")
    if report.failures:
        echo("failed cases:")
        for f in report.failures:
            echo(f"  row {f.row} ({f.image}, {f.mask}, label {f.label}): {f.reason}")
        if not report.validate_only:
            echo("fix them and run the same command again: done cases are kept, failed ones are retried.")


# ------------------------------------------------------------------------------------------------
# heatmap
# ------------------------------------------------------------------------------------------------
THRESHOLDS = ("fraction", "otsu", "percentile", "fixed")  # == chexradi.cam.masks.THRESHOLD_METHODS
KEEPS = ("strongest", "largest", "all")
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
@click.option("--threshold", "-t", type=click.Choice(THRESHOLDS), default="fraction", show_default=True,
              help="Heatmap -> mask: fraction of the maximum, Otsu, a percentile, or Wang et al.'s fixed 0-255 value.")
@click.option("--value", type=float, default=None, metavar="V",
              help="The threshold's parameter: fraction in (0,1] (default 0.5), percentile in [0,100] (95), "
                   "fixed in [0,255] (180); not used by otsu.")
@click.option("--sigma", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian smoothing of the heatmap before thresholding, in pixels of the radiograph.")
@click.option("--keep", type=click.Choice(KEEPS), default="strongest", show_default=True,
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
    from .cam.export import write_heatmaps

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


# ------------------------------------------------------------------------------------------------
# phantom
# ------------------------------------------------------------------------------------------------
PHANTOM_CLASSES = ("Nodule", "Mass", "Effusion", "Cardiomegaly", "Pneumothorax", "Infiltration")
# == chexradi.data.phantom.DEFAULT_CLASSES (kept here so --help stays fast)


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
@click.option("--version", "version", type=click.Choice(["2", "1"]), default="2", show_default=True,
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
    from .data.phantom import write_phantom

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


from . import cli_loop  # noqa: E402,F401 - registers `iterate`, `evaluate` and `compare` on the group
from . import cli_reports  # noqa: E402,F401 - registers `label-reports`


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point (``chexradi``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="chexradi")


if __name__ == "__main__":
    main()
