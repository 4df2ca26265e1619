"""``chexradi label-reports``: labels mined from radiology reports."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import click

from ..names import REPORT_FORMATS
from .common import CONTEXT, ConfigError, cli

__all__ = ["label_reports_cmd"]


def _sibling(out: Path, tag: str) -> Path:
    name = out.name[:-4] if out.name.lower().endswith(".csv") else out.name
    return out.with_name(f"{name}.{tag}.csv")


@cli.command("label-reports", context_settings=CONTEXT)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SOURCE...")
@click.option("--format", "-f", "fmt", type=click.Choice(REPORT_FORMATS), default=None,
              help="Reader for every SOURCE. Default: from the name (.xml/.tgz: iu-xml, .csv, .txt) or a "
                   "folder's files.")
@click.option("--labels", "-l", default="chestxray14", show_default=True, metavar="SET",
              help="Label set: chestxray14, chexpert, or a YAML label-set file.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Output CSV: Image, report, split, one 1/0/-1/blank column per label, No Finding, Normal.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Worker processes (0: one per CPU). The output is the same for any N.")
@click.option("--explain", is_flag=True,
              help="Also write OUT's .evidence.csv: every decision with its sentence, span, mention and rule, "
                   "the vocabulary's findings included (what made a report not Normal).")
@click.option("--rows", type=click.Choice(("image", "report")), default="image", show_default=True,
              help="One row per image the report describes (reports naming no image are left out), or per "
                   "report.")
@click.option("--image-suffix", default=None, metavar="TEXT",
              help="Appended to image ids in the Image column. Default: .png for iu-xml (the OpenI PNG "
                   "names), none otherwise.")
@click.option("--split", "split", default="0.7,0.1,0.2", show_default=True, metavar="TR,VA,TE|none",
              help="Write a split column (train/val/test fractions, drawn per report from a hash of its id, so "
                   "one report's images stay together) for `chexradi iterate`; none: no column.")
@click.option("--text-col", default=None, metavar="NAME[,NAME]",
              help="CSV: the report column (default: report or text); several are read as sections, e.g. "
                   "findings,impression.")
@click.option("--id-col", default=None, metavar="NAME",
              help="CSV: the report id column (default: id, study_id, ...; else the row number).")
@click.option("--image-col", default=None, metavar="NAME", help="CSV: the image column (default: the report id).")
@click.option("--sections", default="findings,impression", show_default=True, metavar="A,B",
              help="Sections read when the report has them (conclusion, summary and opinion count as "
                   "impression); else the whole report, less indication, history, comparison and technique.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or label counts; errors only.")
def label_reports_cmd(sources: tuple[Path, ...], fmt: Optional[str], labels: str, out: Path, jobs: int,
                      explain: bool, rows: str, image_suffix: Optional[str], split: str, text_col: Optional[str],
                      id_col: Optional[str], image_col: Optional[str], sections: str, quiet: bool) -> None:
    """Label radiology reports for the ChestX-ray14 (or CheXpert, or your own) labels.

    Each report's Findings and Impression are split into sentences; every mention of a
    label is classified positive, negated or uncertain by ConText rules ("no pneumothorax,
    effusion, or consolidation" negates all three; "no change in the cardiomegaly" is
    positive; "cannot exclude pneumonia" is uncertain). Per label: 1 positive, 0 negative,
    -1 uncertain, blank not mentioned (the CheXpert convention), plus No Finding (no label
    positive or uncertain) and Normal (no abnormality of any kind: no label and no finding of
    the vocabulary of abnormal findings, granulomas, degenerative change, devices ...).

    \b
    SOURCE is IU X-ray / OpenI XML (a folder of `ecgen-radiology/*.xml`, one .xml, or the
    NLMCXR_reports.tgz archive), a CSV with a report column, or .txt files (a folder or
    one file). OUT is a table `chexradi iterate --data csv:OUT` trains on: put it next to
    the images (or their images/ folder).

    \b
    Examples:
      chexradi label-reports NLMCXR_reports.tgz --out iu/labels.csv
      chexradi label-reports reports.csv --text-col findings,impression --id-col study_id \\
          --labels chexpert --out labels.csv --jobs 0
      chexradi label-reports notes/ --format txt --labels my_labels.yaml --out labels.csv --explain

    Without --explain, an evidence file left by an earlier run is removed; so is an
    errors file after a clean run.

    Exit status: 0 every report labelled; 1 some reports could not be read or
    labelled (the others are written; OUT's .errors.csv lists them); 2 usage error or
    invalid label set (nothing written).
    """
    from ..reports import LabelSetError, label_reports, load_label_set
    from ..reports.text import IMPRESSION_SYNONYMS

    try:
        ls = load_label_set(labels)
    except LabelSetError as exc:
        raise ConfigError(f"--labels: {exc}") from None
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {out} is a folder; pass the CSV file to write, e.g. {out / 'labels.csv'}.")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {out}: {parent} is a file, not a folder; choose another output path.")
            break
    fractions = None
    if split.strip().lower() != "none":
        from ..reports.batch import check_split

        try:
            fractions = check_split(split.split(","))
        except ValueError as exc:
            raise ConfigError(f"--split {split}: {exc}") from None
    read = [s.strip().lower() for s in sections.split(",") if s.strip()]
    if not read:
        raise ConfigError("--sections: name at least one section, e.g. findings,impression.")
    if "impression" in read:
        read += list(IMPRESSION_SYNONYMS)
    t0 = time.perf_counter()
    table = label_reports(list(sources), format=fmt, labels=ls, jobs=jobs, sections=read, text_col=text_col,
                          id_col=id_col, image_col=image_col, explain=explain,
                          progress=False if quiet else None)
    seconds = time.perf_counter() - t0
    if image_suffix is None:
        image_suffix = ".png" if "iu-xml" in table.formats else ""
    n_rows = table.write_csv(out, per=rows, image_suffix=image_suffix, split=fractions)
    ev_path = _sibling(out, "evidence")
    if explain:
        n_ev = table.write_evidence(ev_path)
    elif ev_path.exists():
        ev_path.unlink()  # an earlier --explain run's evidence no longer matches OUT
    err_path = _sibling(out, "errors")
    if table.errors:
        table.write_errors(err_path)
    elif err_path.exists():
        err_path.unlink()
    if not quiet:
        rate = len(table.reports) / seconds if seconds > 0 else float("inf")
        click.echo(f"labelled {len(table.reports)} reports in {seconds:.1f} s ({rate:.0f} reports/s) with "
                   f"'{table.label_set}'; wrote {n_rows} rows to {out}")
        if rows == "image" and table.n_without_image:
            click.echo(f"  {table.n_without_image} reports name no image and have no row (--rows report lists "
                       "every report)")
        if explain:
            click.echo(f"  evidence: {n_ev} decisions in {_sibling(out, 'evidence')}")
        click.echo(f"  {'label':<28}{'positive':>9}{'uncertain':>10}{'negative':>9}{'blank':>7}")
        for col in table.columns:
            vals = [r["labels"][col] for r in table.reports]
            click.echo(f"  {col:<28}{vals.count(1):>9}{vals.count(-1):>10}{vals.count(0):>9}{vals.count(None):>7}")
    if table.errors:
        n_err = len(table.errors)
        click.echo(f"{n_err} {'report or source' if n_err == 1 else 'reports or sources'} could not be labelled "
                   f"(listed in {err_path}):", err=True)
        for e in table.errors[:10]:
            click.echo(f"  {e.where}: {e.message}", err=True)
        if len(table.errors) > 10:
            click.echo(f"  ... and {len(table.errors) - 10} more", err=True)
        raise SystemExit(1)
