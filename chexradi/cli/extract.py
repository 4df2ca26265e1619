"""``chexradi extract``: radiomics features of one case or of a batch."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import click

from ..about import install_hint
from ..names import ENGINES
from .common import CONTEXT, CaseFailed, ConfigError, cli, scheduler_callback, settings_callback

__all__ = ["extract"]

FORMATS = ("csv", "json")


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
@click.option("--setting", "-s", "settings", multiple=True, metavar="NAME:VALUE", callback=settings_callback,
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
              callback=scheduler_callback,
              help="Where --batch cases run: processes (--jobs worker processes), dask (a local Dask cluster of "
                   "--jobs workers) or dask:ADDRESS (a running Dask scheduler, e.g. dask:tcp://10.0.0.5:8786; its "
                   f"workers need chexradi and the case files). Dask needs {install_hint('dask')}.")
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format. One case: name,value lines or a JSON object. Batch: one CSV row per case, or "
                   "JSON {metadata, records}. Default: json if --out ends in .json, else csv.")
@click.option("--maps", "maps", type=click.Path(path_type=Path), metavar="DIR",
              help="Voxel-based extraction (one case): write one NRRD feature map per feature into DIR "
                   "(DIR/original_glcm_Contrast.nrrd, ...) and DIR/maps.meta.json. Kernel settings: kernelRadius "
                   "(1), maskedKernel (true), initValue (0), voxelBatch (-1), as --setting or a voxelSetting "
                   "section in --param. Shape classes are skipped.")
@click.option("--validate", is_flag=True,
              help="Only load and check the inputs (files, labels, geometry, ROI size, NaN pixels) and the "
                   "settings; compute and write nothing.")
@click.option("--no-resume", is_flag=True,
              help="Batch: recompute every case instead of resuming from the journal next to --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; batch summary only when a case failed.")
def extract(image: Optional[Path], mask: Optional[Path], cases: Optional[Path], out: Optional[Path],
            param: Optional[Path], settings: dict[str, Any], label: Optional[int], engine: str, jobs: int,
            scheduler: str, fmt: Optional[str], maps: Optional[Path], validate: bool, no_resume: bool,
            quiet: bool) -> None:
    """Radiomics features of one IMAGE and MASK, or of every case of a --batch CSV.

    Features are named <image>_<class>_<Feature> (original_glcm_Contrast; with filtered
    imageTypes in --param also `log-sigma-1-0-mm-3D_...`, `wavelet-LHL_...`), as in PyRadiomics; by default all
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
      chexradi extract image.nrrd mask.nrrd --maps maps/ --setting kernelRadius:2

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
    if maps is not None and cases is not None:
        raise click.UsageError("--maps computes the feature maps of one case: give IMAGE MASK, not --batch.")
    if maps is not None and (out is not None or fmt is not None):
        raise click.UsageError("--maps writes NRRD maps into its folder; drop --out / --format.")
    if maps is not None and (jobs != 1 or scheduler != "processes"):
        raise click.UsageError("--maps runs one case on numba threads (set NUMBA_NUM_THREADS); drop --jobs / "
                               "--scheduler.")
    if cases is not None and out is None and not validate:
        raise click.UsageError("--batch needs --out PATH (where the features are written), e.g. --out features.csv.")
    if label is not None:
        settings = {**settings, "label": label}
    fmt = _infer_format(fmt, out)

    from ..radiomics.extractor import Extractor

    try:
        ext = Extractor(param, engine=engine, **settings)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"invalid settings: {exc}") from None

    if maps is not None and not validate:
        assert image is not None and mask is not None
        _run_maps(ext, image, mask, folder=maps, quiet=quiet)
    elif cases is not None:
        _run_batch(cases, ext, out=out, fmt=fmt, jobs=jobs, scheduler=scheduler, resume=not no_resume,
                   validate=validate, quiet=quiet)
    else:
        assert image is not None and mask is not None
        _run_single(ext, image, mask, out=out, fmt=fmt, validate=validate, quiet=quiet)


def _run_single(ext: Any, image: Path, mask: Path, *, out: Optional[Path], fmt: str, validate: bool,
                quiet: bool) -> None:
    from ..radiomics import batch

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
    from .._io import atomic_write
    from ..radiomics.extractor import versions

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


def _run_maps(ext: Any, image: Path, mask: Path, *, folder: Path, quiet: bool) -> None:
    from ..radiomics import batch
    from ..radiomics.extractor import versions
    from ..radiomics.outputs import check_maps_folder, write_feature_maps

    try:
        folder = check_maps_folder(folder, name="--maps")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    t0 = time.perf_counter()
    import SimpleITK as sitk

    try:
        # written as they come, one class at a time: memory holds one class's maps, not all of them
        paths = write_feature_maps(ext.iter_feature_maps(image, mask), folder)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as exc:
        raise CaseFailed(str(exc)) from None
    first = None
    if paths:  # the grid, from the first map's header
        first = sitk.ImageFileReader()
        first.SetFileName(str(paths[0]))
        first.ReadImageInformation()
    meta = {
        "kind": "chexradi-feature-maps",
        "image": str(Path(image).absolute()),
        "mask": str(Path(mask).absolute()),
        "folder": str(folder),
        "engine": ext.engine,
        "settings": ext.settings.to_params(),
        "versions": versions(),
        "maps": [p.name for p in paths],
        "size": list(first.GetSize()) if first is not None else None,
        "origin": list(first.GetOrigin()) if first is not None else None,
        "spacing": list(first.GetSpacing()) if first is not None else None,
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    batch.write_meta(folder / "maps.meta.json", meta)
    if not quiet:
        size = "x".join(str(v) for v in first.GetSize()) if first is not None else "-"
        click.echo(f"{len(paths)} feature maps ({size} voxels each) written to {folder} "
                   f"(metadata: {folder / 'maps.meta.json'})", err=True)


def _run_batch(cases: Path, ext: Any, *, out: Optional[Path], fmt: str, jobs: int, scheduler: str, resume: bool,
               validate: bool, quiet: bool) -> None:
    from ..radiomics.batch import extract_batch, journal_path

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
