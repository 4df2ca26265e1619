"""A report-generation run: train (resumable), generate, evaluate. What ``chexradi reportgen`` calls.

A run folder holds

``run.json``
    the data spec, every setting, the counts of each split (studies, images without a report,
    empty reports, truncated reports), versions; a re-run with other settings is refused,
    naming them;
``tokenizer.json``
    the vocabulary fitted on the training split's reports (R2Gen's convention,
    :class:`~chexradi.reports.tokenizer.Tokenizer`), also stored in every checkpoint's ``meta``;
``fit/``
    :func:`chexradi.train.fit`'s ``last.pt`` / ``best.pt`` / ``history.json`` (a re-run resumes
    from ``last.pt``; an interrupted run continues to the same weights);
``eval/<split>_beam<k>.json`` and ``eval/<split>_beam<k>_reports.csv``
    :func:`evaluate_run`'s scores and the generated reports beside the references.

**References** are scored as R2Gen scores them: the reference report goes through the run's
tokenizer (cleaned, cut to ``max_length`` words, unknown words as ``<unk>``) and back to text, so
model and reference share the vocabulary; the text floors (:mod:`.scoring`) are scored the same
way.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .._io import atomic_write, read_json
from ..names import REPORTGEN_DEFAULTS
from ..reports.tokenizer import Tokenizer
from .data import StudyDataset, collate_studies, images_as_studies
from .decode import beam_search, check_decoding, greedy_decode
from .model import show_attend_tell
from .objective import SELECT, ReportEvaluator, ReportObjective

__all__ = ["DEFAULTS", "train_report_generator", "load_generator", "generate", "generate_reports", "evaluate_run",
           "reference_texts", "write_csv", "RUN_FORMAT", "TrainedRun"]

logger = logging.getLogger("chexradi.reportgen")
PathLike = Union[str, Path]
RUN_FORMAT = "chexradi-reportgen/1"

#: Every setting of a run (``chexradi reportgen train --help`` names them) — :data:`chexradi.names.REPORTGEN_DEFAULTS`.
DEFAULTS: dict[str, Any] = dict(REPORTGEN_DEFAULTS)


@dataclass
class TrainedRun:
    """What :func:`train_report_generator` returns."""

    out: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_score: float
    criterion: str
    counts: dict[str, dict[str, int]]


def _check_settings(s: dict[str, Any]) -> None:
    unknown = sorted(set(s) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown report-generation setting(s) {unknown}; known: {', '.join(DEFAULTS)}")
    if s["select"] not in SELECT:
        raise ValueError(f"select must be one of {', '.join(SELECT)}, got {s['select']!r}")
    for k in ("views", "min_count", "max_length", "epochs", "batch_size", "feature_dim", "embed_dim", "hidden"):
        v = s[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{k} must be an integer >= 1, got {v!r}")
    named = not (str(s["encoder"]).endswith(".pt") or Path(str(s["encoder"])).is_file())
    if s["freeze_encoder"] and named and s["weights"] is None:
        raise ValueError(f"freeze_encoder with encoder={s['encoder']!r} and no weights would keep a randomly "
                         f"initialised encoder; give weights (a local torchvision state_dict), a trained classifier "
                         f"checkpoint as the encoder, or fine-tune it (--fine-tune)")
    if s["freeze_encoder"] and named and s["label_conditioning"]:
        raise ValueError(f"label conditioning on a frozen {s['encoder']!r} would read an untrained classifier head "
                         f"(weights hold the backbone only); give a trained classifier checkpoint as the encoder, "
                         f"or fine-tune it (--fine-tune)")


def _open(data: Any, size: Optional[int], seed: int) -> Any:
    from ..data.sources import open_data

    return open_data(data, size=size, seed=seed)


def _record(out: Path, record: dict[str, Any]) -> None:
    with atomic_write(out / "run.json") as fh:
        json.dump(record, fh, indent=1)


def train_report_generator(data: Any, out: PathLike, *, device: Any = None, amp: Optional[bool] = None,
                           num_workers: int = 0, progress: Optional[bool] = None,
                           on_epoch_end: Optional[Callable[[dict[str, Any]], Any]] = None,
                           **settings: Any) -> TrainedRun:
    """Train a report generator on ``data``'s train split, select on val; resume when ``out`` holds the run.

    Parameters
    ----------
    data:
        A data spec with reports (``phantom[:...]``, ``iu_xray:DIR``, ``mimic:DIR``, ``csv:FILE``) or
        :class:`~chexradi.data.datasets.Splits` (then ``run.json`` records no spec and evaluation needs
        ``data=`` again).
    out:
        The run folder (see the module docstring).
    device, amp, num_workers, progress:
        As for :func:`chexradi.train.fit` (they may change when a run is resumed).
    on_epoch_end:
        Passed to :func:`chexradi.train.fit` (an exception it raises stops the run, which resumes from
        ``fit/last.pt`` when called again).
    **settings:
        Any of :data:`DEFAULTS`.

    Raises
    ------
    ValueError
        Unknown or bad settings; data without reports; ``out`` holding a run with other settings or
        another vocabulary (named).
    """
    s = {**DEFAULTS, **settings}
    _check_settings(s)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = data if isinstance(data, str) else None
    old = read_json(out / "run.json", what="report-generation run file", hint="remove the folder to start over") \
        if (out / "run.json").is_file() else None
    if old is not None:
        if old.get("format") != RUN_FORMAT:
            raise ValueError(f"{out / 'run.json'} is not a report-generation run ({old.get('format')!r}); give "
                             f"another --out")
        diff = {k: (old["settings"].get(k), s[k]) for k in s if old["settings"].get(k) != s[k]}
        if old.get("data") != spec:
            diff["data"] = (old.get("data"), spec)
        if diff:
            shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in
                              ((k, *v) for k, v in sorted(diff.items())))
            raise ValueError(f"{out} holds a run with other settings ({shown}); re-run with the run's settings "
                             f"to resume, or give another --out")
    splits = _open(data, s["size"], s["seed"])
    train = StudyDataset(splits.train, None, views=s["views"], sections=s["sections"], split="train")
    tok_path = out / "tokenizer.json"
    if tok_path.is_file():
        tokenizer = Tokenizer.load(tok_path)
    else:
        tokenizer = Tokenizer.fit(train.texts, min_count=s["min_count"], max_length=s["max_length"])
        tokenizer.save(tok_path)
    if tokenizer.max_length != s["max_length"]:
        raise ValueError(f"{tok_path} cuts reports at {tokenizer.max_length} words but max_length is "
                         f"{s['max_length']}; remove the folder to start over")
    train.tokenize(tokenizer)
    val = StudyDataset(splits.val, tokenizer, views=s["views"], sections=s["sections"], split="val")
    counts = {"train": train.counts, "val": val.counts}
    for name, ds in counts.items():
        if ds["missing"] or ds["empty"]:
            logger.warning("%s: %d image(s) without a report and %d with an empty one were left out",
                           name, ds["missing"], ds["empty"])
    from ..nn.checkpoint import versions

    record = {"format": RUN_FORMAT, "data": spec, "settings": s, "class_names": list(splits.class_names),
              "counts": counts, "tokenizer": {"vocab_size": tokenizer.vocab_size,
                                              "fingerprint": tokenizer.fingerprint},
              "created": (old or {}).get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "versions": versions()}
    if old is not None and old.get("tokenizer", {}).get("fingerprint") not in (None, tokenizer.fingerprint):
        raise ValueError(f"{tok_path} is not the vocabulary {out / 'run.json'} was trained with; remove the folder "
                         f"to start over")
    if s["select"] != "loss":
        from ..metrics.text import require_pycocoevalcap

        require_pycocoevalcap()  # before an epoch is spent, not after it
    torch.manual_seed(s["seed"])
    model = show_attend_tell(vocab_size=tokenizer.vocab_size, encoder=s["encoder"],
                             class_names=list(splits.class_names), weights=s["weights"], views=s["views"],
                             feature_dim=s["feature_dim"], embed_dim=s["embed_dim"], hidden=s["hidden"],
                             dropout=s["dropout"], freeze_encoder=s["freeze_encoder"],
                             label_conditioning=s["label_conditioning"], pad_id=tokenizer.pad_id)
    _record(out, record)  # once the model is built: a first run refused for a bad setting leaves no record
    from ..train import fit

    result = fit(model, train, val, epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"],
                 weight_decay=s["weight_decay"], patience=s["patience"], device=device, amp=amp, seed=s["seed"],
                 out=out / "fit", num_workers=num_workers, progress=progress,
                 objective=ReportObjective(tokenizer.pad_id, label_weight=s["label_weight"]),
                 evaluator=ReportEvaluator(tokenizer, select=s["select"], max_length=s["max_length"]),
                 collate_fn=collate_studies(tokenizer.pad_id), on_epoch_end=on_epoch_end,
                 meta={"tokenizer": tokenizer.to_dict(), "data": spec, "sections": s["sections"],
                       "size": int(train.size)})
    return TrainedRun(out=out, history=result.history, best_epoch=result.best_epoch, best_score=result.best_score,
                      criterion=result.criterion, counts=counts)


# -- loading and generating ------------------------------------------------------------------------
def load_generator(checkpoint: PathLike, *, tokenizer: Union[None, PathLike, Tokenizer] = None,
                   device: Any = None) -> tuple[Any, Tokenizer, dict[str, Any]]:
    """The generator saved at ``checkpoint`` (a run's ``fit/best.pt``), its tokenizer and its checkpoint meta.

    ``tokenizer`` (a file or a Tokenizer), when given, must be the one the model was trained with.

    Raises
    ------
    ValueError
        Not a report-generator checkpoint; a tokenizer that is not the checkpoint's (both fingerprints named).
    """
    from ..nn.checkpoint import load_model
    from ..nn.device import resolve_device
    from ..nn.registry import model_name

    path = Path(checkpoint)
    if path.is_dir():
        path = path / "fit" / "best.pt" if (path / "fit" / "best.pt").is_file() else path / "best.pt"
    model, ckpt = load_model(path)
    if model_name(model) != "show_attend_tell":
        raise ValueError(f"{path} holds a {model_name(model)!r} model, not a report generator; give a "
                         f"`chexradi reportgen train` run's fit/best.pt")
    meta = dict(ckpt.get("meta") or {})
    if "tokenizer" not in meta:
        raise ValueError(f"{path} has no tokenizer in its meta; it was not written by chexradi reportgen train")
    own = Tokenizer.from_dict(meta["tokenizer"])
    if tokenizer is not None:
        given = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.load(tokenizer)
        own.check_same(given, what=f"the checkpoint {path}")
    if own.vocab_size != model.vocab_size:
        raise ValueError(f"{path}: the model writes {model.vocab_size} ids but its tokenizer has {own.vocab_size}; "
                         f"the checkpoint is damaged")
    model.to(resolve_device(device)).eval()
    return model, own, meta


def generate(model: Any, batch: dict[str, Any], tokenizer: Tokenizer, *, beam: int = 3, max_length: Optional[int] = None,
             length_penalty: float = 0.0, block_trigrams: bool = False) -> tuple[list[str], Any, torch.Tensor]:
    """Reports for one collated batch of studies: texts, the :class:`~.decode.Decoded` ids, label probabilities."""
    max_length = tokenizer.max_length if max_length is None else max_length
    check_decoding(beam_size=beam, max_length=max_length, length_penalty=length_penalty)
    dev = next(model.parameters()).device
    images = batch["images"].to(dev)
    views = batch.get("views")
    with torch.no_grad():
        enc = model.encode(images, None if views is None else views.to(dev))
        state = model.initial_state(enc)
        kw = dict(bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, max_length=max_length,
                  block_trigrams=block_trigrams, device=dev)
        if beam == 1 and float(length_penalty) == 0.0:
            dec = greedy_decode(model.step, state, images.shape[0], **kw)
        else:
            dec = beam_search(model.step, state, images.shape[0], beam_size=beam, length_penalty=length_penalty, **kw)
    return [tokenizer.decode(ids) for ids in dec.ids], dec, torch.sigmoid(enc["logits"].float()).cpu()


def generate_reports(checkpoint: PathLike, images: Sequence[Union[PathLike, Sequence[PathLike]]], *, beam: int = 3,
                     max_length: Optional[int] = None, length_penalty: float = 0.0, block_trigrams: bool = False,
                     batch_size: int = 16, device: Any = None, tokenizer: Any = None,
                     size: Optional[int] = None) -> list[dict[str, Any]]:
    """Reports for image files: each element of ``images`` is one study (a path, or its views' paths).

    Returns one dict per study: ``study`` (1-based), ``images``, ``report``, ``log_prob``, ``finished`` and the
    label probabilities ``p_<class>`` of the encoder's head.
    """
    model, tok, meta = load_generator(checkpoint, tokenizer=tokenizer, device=device)
    groups = [[Path(p)] if isinstance(p, (str, Path)) else [Path(q) for q in p] for p in images]
    for k, g in enumerate(groups):
        if not g:
            raise ValueError(f"study {k + 1} names no image; give IMAGE or FRONTAL,LATERAL")
        for p in g:
            if not p.is_file():
                raise FileNotFoundError(f"image {p} does not exist; check the path")
    side = int(size or meta.get("size") or 224)
    names = list(model.config.get("class_names") or [])
    rows: list[dict[str, Any]] = []
    collate = collate_studies(tok.pad_id)
    for start in range(0, len(groups), batch_size):
        chunk = groups[start:start + batch_size]
        batch = collate(images_as_studies(chunk, size=side, views=model.views))
        texts, dec, probs = generate(model, batch, tok, beam=beam, max_length=max_length,
                                     length_penalty=length_penalty, block_trigrams=block_trigrams)
        for j, g in enumerate(chunk):
            row = {"study": start + j + 1, "images": ";".join(str(p) for p in g), "report": texts[j],
                   "log_prob": dec.log_prob[j], "finished": dec.finished[j]}
            row.update({f"p_{n}": round(float(probs[j, k]), 6) for k, n in enumerate(names)})
            rows.append(row)
    return rows


def reference_texts(texts: Sequence[str], tokenizer: Tokenizer) -> list[str]:
    """References as R2Gen scores them: through the tokenizer and back (cut to ``max_length``, ``<unk>`` kept)."""
    return [tokenizer.decode(tokenizer.encode(t)) for t in texts]


def write_csv(path: PathLike, rows: list[dict[str, Any]]) -> None:
    """``rows`` (dicts with the same keys) as a CSV at ``path``, written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["study"])
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path, newline="") as fh:
        fh.write(buf.getvalue())


def evaluate_run(run: PathLike, *, split: str = "test", beams: Sequence[int] = (1, 3), length_penalty: float = 0.0,
                 block_trigrams: bool = False, max_length: Optional[int] = None, batch_size: int = 32,
                 label_set: str = "chestxray14", meteor: bool = True, data: Any = None, device: Any = None,
                 progress: Optional[bool] = None, checkpoint: Optional[PathLike] = None) -> dict[str, Any]:
    """Generate the ``split``'s reports with each beam width (1 = greedy) and score them; write ``eval/``.

    Returns ``{"beam<k>": scores dict}`` (:meth:`chexradi.reportgen.scoring.ReportScores.as_dict` plus the
    decoding settings and counts). A result already written with the same settings, the same data and the same
    checkpoint file (path, size, modification time) is read back, not recomputed.

    Raises
    ------
    FileNotFoundError
        ``run`` is not a finished run (no ``run.json`` or ``fit/best.pt``).
    ValueError
        The run's tokenizer.json is not its checkpoint's; empty reference reports (named); bad settings.
    """
    from .._progress import progress_bar
    from .scoring import score_reports

    run = Path(run)
    if not (run / "run.json").is_file():
        raise FileNotFoundError(f"{run} is not a report-generation run (no run.json); give the --out folder of "
                                f"`chexradi reportgen train`")
    record = read_json(run / "run.json", what="report-generation run file", hint="give a run folder")
    ckpt = Path(checkpoint) if checkpoint is not None else run / "fit" / "best.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} does not exist: the run has not finished an epoch; run `chexradi reportgen "
                                f"train` with the same --out to resume it")
    tok_file = run / "tokenizer.json"
    model, tok, meta = load_generator(ckpt, tokenizer=tok_file if tok_file.is_file() else None, device=device)
    s = record["settings"]
    spec = data if data is not None else record.get("data")
    if spec is None:
        raise ValueError(f"{run / 'run.json'} records no data spec (trained on Splits); pass data=")
    splits = _open(spec, s.get("size"), s.get("seed", 0))
    part = getattr(splits, split, None)
    if part is None:
        raise ValueError(f"split must be train, val or test, got {split!r}")
    ds = StudyDataset(part, tok, views=model.views, sections=s["sections"], split=split, on_empty="fail")
    refs = reference_texts(ds.texts, tok)
    empty = [sid for sid, r in zip(ds.study_ids, refs) if not r.replace("<unk>", "").replace(".", "").split()]
    if empty:
        raise ValueError(f"{len(empty)} reference report(s) of the {split} split have no known word "
                         f"({', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}); they cannot be scored: "
                         f"remove those studies from the data or give their text")
    out_dir = run / "eval"
    results: dict[str, Any] = {}
    collate = collate_studies(tok.pad_id)
    for beam in beams:
        settings = {"split": split, "beam": int(beam), "length_penalty": float(length_penalty),
                    "block_trigrams": bool(block_trigrams), "max_length": max_length or tok.max_length,
                    "label_set": label_set, "meteor": bool(meteor), "checkpoint": str(ckpt.resolve()),
                    "checkpoint_file": [ckpt.stat().st_size, ckpt.stat().st_mtime_ns], "data": spec}
        target = out_dir / f"{split}_beam{int(beam)}.json"
        if target.is_file():
            done = read_json(target, what="evaluation file", hint="remove it to recompute")
            if done.get("settings") == settings:
                results[f"beam{int(beam)}"] = done
                continue
        hyps: list[str] = []
        probs = []
        loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
        bar = progress_bar(progress, total=len(ds), desc=f"{split} beam {beam}", unit="study")
        for batch in loader:
            texts, _, p = generate(model, batch, tok, beam=int(beam), max_length=max_length,
                                   length_penalty=length_penalty, block_trigrams=block_trigrams)
            hyps.extend(texts)
            probs.append(p)
            if bar is not None:
                bar.update(len(texts))
        if bar is not None:
            bar.close()
        scores = score_reports(refs, hyps, ids=ds.study_ids, label_set=label_set, meteor=meteor)
        doc = {"settings": settings, "counts": ds.counts, "scores": scores.as_dict(), "row": scores.row()}
        out_dir.mkdir(exist_ok=True)
        names = list(model.config.get("class_names") or [])
        pr = torch.cat(probs).numpy() if probs else np.zeros((0, len(names)))
        rows = [{"study": sid, "reference": r, "generated": h,
                 **{f"p_{n}": round(float(pr[i, k]), 6) for k, n in enumerate(names)}}
                for i, (sid, r, h) in enumerate(zip(ds.study_ids, refs, hyps))]
        write_csv(out_dir / f"{split}_beam{int(beam)}_reports.csv", rows)
        with atomic_write(target) as fh:
            json.dump(doc, fh, indent=1)
        results[f"beam{int(beam)}"] = doc
    return results
