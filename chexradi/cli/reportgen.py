"""``chexradi reportgen``: train a report generator, write reports for radiographs, score a run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import click

from ..names import MODEL_NAMES, REPORTGEN_DEFAULTS as D, REPORTGEN_SELECT
from .common import CONTEXT, ConfigError, cli, settings_callback

__all__ = ["reportgen"]

#: Columns of the printed score table.
_TABLE = ("BLEU_1", "BLEU_2", "BLEU_3", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr", "CE_P", "CE_R", "CE_F1")


@cli.group("reportgen", context_settings=CONTEXT)
def reportgen() -> None:
    """Report generation: a radiograph in, a written report out (docs/report-generation.md).

    \b
    Examples:
      chexradi reportgen train --data phantom --out runs/reportgen --encoder resnet18
      chexradi reportgen evaluate runs/reportgen --beam 1 --beam 3
      chexradi reportgen generate runs/reportgen/fit/best.pt chest.png --beam 3 --out reports.csv
    """


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def print_scores(results: dict[str, Any]) -> None:
    """The score table of :func:`chexradi.reportgen.evaluate_run`'s results, one line per decoding."""
    click.echo("decoding  " + "  ".join(f"{c:>7}" for c in _TABLE))
    for name, doc in results.items():
        row = doc["row"]
        label = "greedy" if doc["settings"]["beam"] == 1 else f"beam {doc['settings']['beam']}"
        click.echo(f"{label:<9} " + "  ".join(f"{_fmt(row.get(c)):>7}" for c in _TABLE))
    said = {m: why for doc in results.values()
            for m, why in (doc["scores"].get("text", {}).get("unavailable") or {}).items()}
    for metric, why in said.items():
        click.echo(f"{metric} unavailable: {why}", err=True)


@reportgen.command("train", context_settings=CONTEXT)
@click.option("--data", "-d", required=True, metavar="SPEC",
              help="Data with reports: phantom[:k=v,...], iu_xray:DIR, mimic:DIR or csv:FILE.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder; re-running with the same options resumes.")
@click.option("--encoder", default=D["encoder"], show_default=True, metavar="NAME|CHECKPOINT",
              help=f"A classifier name ({', '.join(n for n in MODEL_NAMES if n.startswith(('densenet121', 'resnet18')))}"
                   f", ...) or a classifier checkpoint (a loop round's round_<k>/fit/best.pt).")
@click.option("--weights", default=D["weights"], metavar="PATH", help="Local torchvision weights for a named encoder.")
@click.option("--fine-tune/--freeze", "fine_tune", default=not D["freeze_encoder"], show_default=True,
              help="Train the encoder's weights too, or keep them fixed (a checkpoint, or a named encoder with "
                   "--weights).")
@click.option("--labels/--no-labels", "labels", default=D["label_conditioning"], show_default=True,
              help="Condition the decoder on the classifier's predicted labels (semantic attention).")
@click.option("--views", default=D["views"], show_default=True, type=click.IntRange(min=1),
              help="Most views per study.")
@click.option("--epochs", default=D["epochs"], show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=D["batch_size"], show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=D["lr"], show_default=True, type=float)
@click.option("--select", default=D["select"], show_default=True, type=click.Choice(REPORTGEN_SELECT),
              help="What selects the best epoch on val (greedy decoding; loss: the word cross-entropy).")
@click.option("--seed", default=D["seed"], show_default=True, type=int)
@click.option("--size", default=None, type=click.IntRange(min=32), help="Network input side [data's own].")
@click.option("--device", default=None, metavar="DEV", help="cpu, cuda, cuda:1 ... [cuda when available].")
@click.option("--amp/--no-amp", default=None, help="Mixed precision [on for CUDA].")
@click.option("--setting", "-s", "settings", multiple=True, metavar="NAME:VALUE", callback=settings_callback,
              help="Any other setting: " + ", ".join(f"{k}:{D[k]}" for k in (
                  "hidden", "dropout", "sections", "max_length", "min_count", "patience", "weight_decay",
                  "label_weight", "feature_dim", "embed_dim")) + ".")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def train_cmd(data: str, out: Path, encoder: str, weights: Optional[str], fine_tune: bool, labels: bool, views: int,
              epochs: int, batch_size: int, lr: float, select: str, seed: int, size: Optional[int],
              device: Optional[str], amp: Optional[bool], settings: dict[str, Any], quiet: bool) -> None:
    """Train a report generator (encoder + attention LSTM) on DATA's train split; select on val.

    \b
    Examples:
      chexradi reportgen train --data phantom --out runs/rg --encoder resnet18
      chexradi reportgen train --data phantom --out runs/rg2 --labels --freeze \\
          --encoder runs/loop/round_1/fit/best.pt
      chexradi reportgen train --data iu_xray:/data/iu --out runs/iu --encoder densenet121 \\
          --weights densenet121-imagenet.pth --labels

    Exit status: 0 done, 2 bad options, data without reports, or a run folder with other settings.
    """
    from ..reportgen import train_report_generator

    opts = {"encoder": encoder, "weights": weights, "freeze_encoder": not fine_tune, "label_conditioning": labels,
            "views": views, "epochs": epochs, "batch_size": batch_size, "lr": lr, "select": select, "seed": seed,
            "size": size, **settings}
    try:
        run = train_report_generator(data, out, device=device, amp=amp, progress=False if quiet else None, **opts)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        raise ConfigError(str(exc)) from None
    c = run.counts["train"]
    click.echo(f"trained {out}: best epoch {run.best_epoch} ({run.criterion} {run.best_score:.4f}); train "
               f"{c['studies']} studies from {c['images']} images ({c['missing']} without a report, {c['empty']} "
               f"empty, left out)")
    click.echo(f"next: chexradi reportgen evaluate {out}")


@reportgen.command("evaluate", context_settings=CONTEXT)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--beam", "beams", multiple=True, type=click.IntRange(min=1), default=(1, 3), show_default=True,
              help="Beam widths to decode with (1 = greedy); repeat the option for several.")
@click.option("--length-penalty", default=0.0, show_default=True, type=float,
              help="GNMT length penalty alpha (0: plain log-probability).")
@click.option("--block-trigrams", is_flag=True, help="Forbid repeating a trigram within a report.")
@click.option("--max-length", default=None, type=click.IntRange(min=1), help="Most tokens per report, words and '.' [the tokenizer's 60].")
@click.option("--label-set", default="chestxray14", show_default=True, metavar="NAME|YAML",
              help="Labels for clinical efficacy (chexradi's report labeler on both sides).")
@click.option("--no-meteor", is_flag=True, help="Skip METEOR (it needs Java).")
@click.option("--device", default=None, metavar="DEV")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def evaluate_cmd(run_dir: Path, split: str, beams: tuple[int, ...], length_penalty: float, block_trigrams: bool,
                 max_length: Optional[int], label_set: str, no_meteor: bool, device: Optional[str], as_json: bool,
                 quiet: bool) -> None:
    """Write the reports of RUN_DIR's test split (--split) with each beam width and score them (text metrics and
    clinical efficacy).

    Results go to RUN_DIR/eval/<split>_beam<k>.json and the reports to ..._reports.csv; a result already there
    with the same settings is read back.

    \b
    Examples:
      chexradi reportgen evaluate runs/rg
      chexradi reportgen evaluate runs/rg --beam 3 --length-penalty 0.6 --block-trigrams

    Exit status: 0 done, 2 not a finished run, a tokenizer that is not the checkpoint's, empty references.
    """
    from ..reportgen import evaluate_run

    try:
        results = evaluate_run(run_dir, split=split, beams=beams, length_penalty=length_penalty,
                               block_trigrams=block_trigrams, max_length=max_length, label_set=label_set,
                               meteor=not no_meteor, device=device, progress=False if quiet else None)
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(results, indent=1))
        return
    print_scores(results)


@reportgen.command("generate", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("images", nargs=-1, required=True, metavar="IMAGE[,VIEW2]...")
@click.option("--beam", default=3, show_default=True, type=click.IntRange(min=1), help="Beam width (1 = greedy).")
@click.option("--length-penalty", default=0.0, show_default=True, type=float)
@click.option("--block-trigrams", is_flag=True, help="Forbid repeating a trigram within a report.")
@click.option("--max-length", default=None, type=click.IntRange(min=1), help="Most tokens per report, words and '.' [the tokenizer's 60].")
@click.option("--tokenizer", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Check that this tokenizer.json is the checkpoint's.")
@click.option("--out", "-o", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the reports as CSV here (else print them).")
@click.option("--device", default=None, metavar="DEV")
def generate_cmd(checkpoint: Path, images: tuple[str, ...], beam: int, length_penalty: float, block_trigrams: bool,
                 max_length: Optional[int], tokenizer: Optional[Path], out: Optional[Path],
                 device: Optional[str]) -> None:
    """Write a report for each study: IMAGE, or FRONTAL,LATERAL for two views of one study.

    CHECKPOINT is a run's fit/best.pt (or the run folder).

    \b
    Examples:
      chexradi reportgen generate runs/rg/fit/best.pt chest.png --beam 3 --out reports.csv
      chexradi reportgen generate runs/iu frontal.png,lateral.png

    Exit status: 0 done, 2 a missing image or checkpoint, a tokenizer that is not the checkpoint's.
    """
    from ..reportgen import generate_reports
    from ..reportgen.run import write_csv

    groups = [[p for p in item.split(",") if p] for item in images]
    try:
        rows = generate_reports(checkpoint, groups, beam=beam, length_penalty=length_penalty,
                                block_trigrams=block_trigrams, max_length=max_length, tokenizer=tokenizer,
                                device=device)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    if out is not None:
        write_csv(out, rows)
        click.echo(f"wrote {len(rows)} report(s) to {out}")
        return
    for r in rows:
        click.echo(f"{r['images']}: {r['report']}")
