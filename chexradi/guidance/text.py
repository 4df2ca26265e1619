"""Report text as a guidance source: what the text teachers (``tandem``, ``vkd``) share.

A text source reads each training image's report, trains with it, and leaves a model that
classifies images alone. The shared part, :class:`TextSource`:

- **Reports.** A dataset that has reports answers ``report_at(i)`` (the phantom's, written from its
  ground truth; IU X-ray, MIMIC-CXR and CSV records joined to their reports by
  :mod:`chexradi.data.reports_join`). The text is the report's ``sections`` setting joined
  (default Findings then Impression); a report with none of them gives its whole ``text``. An image
  without a report, or whose report has no word, trains without the text term: it is counted
  (``missing``, ``empty`` in the History), never an error.
- **Vocabulary.** :class:`~chexradi.reports.tokenizer.Tokenizer` (R2Gen's word-level convention,
  ``"."`` between sentences) fitted on the *training* split's reports only, or read from
  ``vocabulary=PATH`` (a saved tokenizer). It is written to ``<run>/<source>/tokenizer.json``
  once per run and read back every round, so a resumed run uses the same ids; a ``vocabulary``
  that is not the run's is refused by name. Reports longer than ``max_length`` words are cut
  (counted: ``truncated``); words outside the vocabulary become ``<unk>`` (counted: ``unknown``;
  reports with no known word: ``only_unknown``).
- **Batches.** :class:`ReportTokens` adds the item keys ``<source>_tokens`` (the ids, a 1-D long
  tensor; ``[]`` without text) and ``<source>_has_text``; :func:`pad_tokens` pads a batch's
  sequences with ``<pad>`` into one ``(B, L)`` tensor (the source's ``collate``).
- **Static**, needing no masks: a text source guides from round 0, and with radiomics in the later
  rounds.

What each teacher adds on top (its objective module and settings) is in :mod:`.tandem`
(``tandem``) and :mod:`.variational` (``vkd``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


__all__ = ["TextSource", "TandemSource", "VKDSource", "ReportTokens", "pad_tokens", "report_texts", "TEXT_DEFAULTS", "encode_split"]

#: Settings every text source has (its own are added to these).
TEXT_DEFAULTS: dict[str, Any] = {
    "sections": "findings,impression",  # the report sections read, in order (none of them: the whole text)
    "min_count": 3,          # a word in the vocabulary is seen this many times in the training reports
    "max_length": 100,       # words kept per report (the rest cut, counted)
    "vocabulary": None,      # a saved tokenizer (JSON) to use instead of fitting one on the training reports
    "weight": 1.0,           # weight of the source's classification term in the loss
}


def _sections(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace("+", ",").split(",")]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"sections must be a comma-separated string or a list of section names, got {value!r}")
    out = tuple(str(v).strip().lower() for v in value if str(v).strip())
    if not out:
        raise ValueError("sections names no section; give e.g. 'findings,impression'")
    return out


def report_texts(dataset: Any, sections: Any = TEXT_DEFAULTS["sections"]) -> list[Optional[str]]:
    """Each image's report text (``sections`` joined; a report with none of them: its whole ``text``), or None
    for an image without a report (or a dataset without ``report_at``)."""
    secs = _sections(sections)
    get: Optional[Callable[[int], Any]] = getattr(dataset, "report_at", None)
    out: list[Optional[str]] = []
    for i in range(len(dataset)):
        rep = get(i) if get is not None else None
        if rep is None:
            out.append(None)
            continue
        if isinstance(rep, str):
            out.append(rep)
            continue
        by_name = dict(getattr(rep, "sections", None) or {})
        parts = [str(by_name[s]).strip() for s in secs if str(by_name.get(s, "") or "").strip()]
        out.append(" ".join(parts) if parts else str(getattr(rep, "text", "") or ""))
    return out


def encode_split(texts: Sequence[Optional[str]], tokenizer: Any) -> tuple[list[list[int]], dict[str, int]]:
    """Token ids of each text (``[]`` for a missing or wordless one) and the counts the History keeps."""
    counts = {"reports": 0, "missing": 0, "empty": 0, "truncated": 0, "unknown": 0, "only_unknown": 0}
    ids: list[list[int]] = []
    stop = tokenizer.stoi.get(".", -1)
    for t in texts:
        if t is None:
            counts["missing"] += 1
            ids.append([])
            continue
        enc = tokenizer.encode_report(t)
        if enc.n_words == 0:
            counts["empty"] += 1
            ids.append([])
            continue
        counts["reports"] += 1
        counts["truncated"] += int(enc.truncated)
        counts["unknown"] += enc.n_unknown
        stops = sum(1 for i in enc.ids if i == stop)  # "." is punctuation, not a word
        counts["only_unknown"] += int(enc.n_unknown == len(enc.ids) - 2 - stops)
        ids.append(list(enc.ids))
    return ids, counts


class ReportTokens(Dataset):
    """``dataset``'s items with the source's token keys: ``<key>_tokens`` (1-D long ids, empty without text) and
    ``<key>_has_text`` (bool)."""

    def __init__(self, dataset: Any, ids: Sequence[Sequence[int]], key: str) -> None:
        if len(ids) != len(dataset):
            raise ValueError(f"{len(ids)} token sequences for a dataset of {len(dataset)} image(s); the text source "
                             f"must give one per image")
        self.dataset = dataset
        self.ids = [np.asarray(x, np.int64) for x in ids]
        self.key = key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        ids = self.ids[int(index)]
        item[f"{self.key}_tokens"] = torch.from_numpy(ids.copy())
        item[f"{self.key}_has_text"] = torch.tensor(bool(ids.size))
        return item

    def __getattr__(self, name: str) -> Any:  # targets, class_names, boxes_at... of the wrapped dataset
        if name in ("dataset", "ids", "key"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def pad_tokens(pad_id: int) -> Callable[[list[Tensor]], Tensor]:
    """A collate function: 1-D id tensors of different lengths -> ``(B, L)`` padded with ``pad_id`` (``L`` >= 1)."""
    def collate(values: list[Tensor]) -> Tensor:
        length = max(1, max(int(v.numel()) for v in values))
        out = torch.full((len(values), length), int(pad_id), dtype=torch.long)
        for b, v in enumerate(values):
            out[b, :v.numel()] = v
        return out

    return collate


def check_text_settings(name: str, s: Mapping[str, Any]) -> None:
    """The shared settings' checks (``name``: the source, for the message)."""
    def bad(key: str, want: str) -> None:
        raise ValueError(f"{name}[{key!r}] = {s[key]!r} is invalid: {want}")

    try:
        _sections(s["sections"])
    except ValueError as exc:
        raise ValueError(f"{name}['sections']: {exc}") from None
    for key in ("min_count", "max_length"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 1:
            bad(key, "give an integer >= 1")
    v = s["vocabulary"]
    if v is not None and not (isinstance(v, (str, Path)) and Path(v).is_file()):
        bad("vocabulary", "give None (fit on the training reports) or the path of a saved tokenizer JSON that exists")
    if isinstance(s["weight"], bool) or not isinstance(s["weight"], (int, float)) or not s["weight"] > 0:
        bad("weight", "give a number > 0")


class TextSource:
    """The part of a report-text guidance source the teachers share (see the module docstring).

    Subclasses set ``name``, ``defaults`` (over :data:`TEXT_DEFAULTS`), ``check_module_settings`` and
    ``module``.
    """

    name = "text"
    needs_masks = False
    static = True
    defaults: Mapping[str, Any] = TEXT_DEFAULTS

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        check_text_settings(self.name, settings)
        self.check_module_settings(settings)

    def check_module_settings(self, settings: Mapping[str, Any]) -> None:
        """The teacher's own settings' checks."""

    # -- the run's vocabulary ------------------------------------------------------------------------
    def tokenizer_path(self, run_dir: Path) -> Path:
        return Path(run_dir) / self.name / "tokenizer.json"

    def _vocabulary(self, ctx: Any) -> Any:
        from ..reports.tokenizer import Tokenizer
        from .pretrained import PretrainedTokenizer, load_vocabulary

        s = ctx.settings
        if s.get("text_encoder"):  # a local Hugging Face model brings its own tokenizer
            return PretrainedTokenizer(s["text_encoder"], max_length=int(s["max_length"]))
        if s["vocabulary"] is not None:
            return load_vocabulary(s["vocabulary"])
        texts = [t for t in report_texts(ctx.parts["train"], s["sections"]) if t is not None]
        if not texts:
            raise ValueError(f"guidance source {self.name!r}: none of the {len(ctx.parts['train'])} training images "
                             f"has a report, so there is no text to learn from; use a data spec with reports "
                             f"(phantom, iu_xray:DIR, mimic:DIR with reports, csv:FILE with a text column) or drop "
                             f"{self.name!r} from guidance['sources']")
        try:
            return Tokenizer.fit(texts, min_count=int(s["min_count"]), max_length=int(s["max_length"]))
        except ValueError as exc:
            raise ValueError(f"guidance source {self.name!r}: {exc}") from None

    def setup(self, ctx: Any) -> None:
        """Fit (or read) the vocabulary and write it to ``<run>/<name>/tokenizer.json`` (kept when already there:
        a resumed run keeps its ids; a ``vocabulary`` that is not the run's is refused)."""
        from .pretrained import load_vocabulary

        path = self.tokenizer_path(ctx.run_dir)
        if path.is_file():
            have = load_vocabulary(path)
            if ctx.settings["vocabulary"] is not None:
                have.check_same(load_vocabulary(ctx.settings["vocabulary"]),
                                what=f"the vocabulary {ctx.settings['vocabulary']} (this run's is {path})")
            return
        tok = self._vocabulary(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(path)
        ctx.say(f"{self.name}: vocabulary of {tok.vocab_size} ids written to {path}")

    def start(self, settings: Mapping[str, Any]) -> None:
        return None

    def close(self) -> None:
        return None

    def prepare(self, ctx: Any) -> Any:
        """Every split's token ids (same every round: the run's vocabulary) and the counts the History keeps."""
        from .pretrained import load_vocabulary
        from .source import Prepared

        t0 = time.perf_counter()
        path = self.tokenizer_path(ctx.run_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the {self.name!r} source's setup() writes it before round 0; "
                                    f"resume the run (or delete its folder and start again)")
        tok = load_vocabulary(path)
        data: dict[str, Any] = {"tokenizer": tok, "ids": {}, "settings": dict(ctx.settings)}
        train = getattr(ctx, "train", None) or {}
        if train.get("epochs") and train.get("batch_size"):  # optimizer steps of the round (a schedule's length)
            n = len(ctx.parts["train"])
            data["total_steps"] = int(train["epochs"]) * -(-n // int(train["batch_size"]))
        record: dict[str, Any] = {"vocabulary": tok.vocab_size, "fingerprint": tok.fingerprint}
        for split, ds in ctx.parts.items():
            ids, counts = encode_split(report_texts(ds, ctx.settings["sections"]), tok)
            data["ids"][split] = ids
            record[split] = counts
        tr = record.get("train", {})
        if tr.get("missing") or tr.get("empty"):
            ctx.say(f"round {ctx.k}: {self.name}: {tr.get('missing', 0)} training image(s) without a report and "
                    f"{tr.get('empty', 0)} with an empty one train without the text term")
        return Prepared(data=data, record=record, seconds=time.perf_counter() - t0)

    def wrap(self, dataset: Any, prepared: Any, split: str) -> Any:
        return ReportTokens(dataset, prepared.data["ids"][split], self.name)

    def collate(self, prepared: Any) -> dict[str, Callable[[list[Any]], Any]]:
        return {f"{self.name}_tokens": pad_tokens(prepared.data["tokenizer"].pad_id)}

    def stop_id(self, prepared: Any) -> int:
        """The id of ``"."``, the sentence stop (the tokenizer's vocabulary has it when any report has two
        sentences; -1 otherwise: every report is one sentence)."""
        return int(prepared.data["tokenizer"].stoi.get(".", -1))


def _check_numbers(name: str, s: Mapping[str, Any], rules: Mapping[str, tuple[str, float, float]]) -> None:
    """``key -> (kind, low, high)``: kind ``"int"`` (an integer in [low, high]) or ``"float"`` (a number in
    [low, high])."""
    for key, (kind, lo, hi) in rules.items():
        v = s[key]
        ok = not isinstance(v, bool) and (isinstance(v, int) if kind == "int" else isinstance(v, (int, float)))
        if not ok or not lo <= v <= hi:
            what = "an integer" if kind == "int" else "a number"
            raise ValueError(f"{name}[{key!r}] = {v!r} is invalid: give {what} in [{lo:g}, {hi:g}]")


class TandemSource(TextSource):
    """``tandem``: TandemNet's dual attention over regions and sentences (:class:`~.tandem.TextReference`).

    Settings (over :data:`TEXT_DEFAULTS`): ``text_drop`` (0.5; 0 = always the text, 1 = never: image-only
    training), ``embed_dim`` (128), ``hidden`` (256: the word LSTM), ``word_dropout`` (0.4), ``dim`` (256),
    ``dropout`` (0.5), ``max_sentences`` (16). Offers ``heatmap.method="tandem"``.
    """

    name = "tandem"
    defaults = {**TEXT_DEFAULTS, "text_drop": 0.5, "embed_dim": 128, "hidden": 256, "word_dropout": 0.4,
                "dim": 256, "dropout": 0.5, "max_sentences": 16}

    def check_module_settings(self, s: Mapping[str, Any]) -> None:
        inf = float("inf")
        _check_numbers(self.name, s, {"text_drop": ("float", 0.0, 1.0), "embed_dim": ("int", 1, inf),
                                      "hidden": ("int", 1, inf), "word_dropout": ("float", 0.0, 0.99),
                                      "dim": ("int", 1, inf), "dropout": ("float", 0.0, 0.99),
                                      "max_sentences": ("int", 1, inf)})

    def module(self, prepared: Any, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> Any:
        from .tandem import TextReference

        tok, s = prepared.data["tokenizer"], prepared.data["settings"]
        return TextReference(num_features, tok.vocab_size, num_classes, pad_id=tok.pad_id, stop_id=self.stop_id(prepared),
                             ignore_ids=(tok.bos_id, tok.eos_id), key=self.name, text_drop=float(s["text_drop"]),
                             embed_dim=s["embed_dim"], hidden=s["hidden"], word_dropout=float(s["word_dropout"]),
                             dim=s["dim"], dropout=float(s["dropout"]), max_sentences=s["max_sentences"],
                             weight=float(s["weight"]), pos_weight=pos_weight)


class VKDSource(TextSource):
    """``vkd``: VKD's variational knowledge distillation (:class:`~.variational.VariationalTeacher`).

    Settings (over :data:`TEXT_DEFAULTS`): ``z_dim`` (512), ``text_dim`` (256), ``heads`` (4), ``hidden``
    (512), ``dropout`` (0.1), ``kl_weight`` (1e-3), ``cycles`` (4; the annealing runs over the round's
    ``epochs x batches per epoch`` steps), ``inference`` (``"prior_mean"`` or ``"samples"``), ``samples`` (10),
    ``text_encoder`` (None: the report encoder trained from scratch; a local Hugging Face model folder, with
    ``transformers`` installed: :mod:`.pretrained`).
    """

    name = "vkd"
    defaults = {**TEXT_DEFAULTS, "z_dim": 512, "text_dim": 256, "heads": 4, "hidden": 512, "dropout": 0.1,
                "kl_weight": 1e-3, "cycles": 4, "inference": "prior_mean", "samples": 10, "text_encoder": None}

    def check_module_settings(self, s: Mapping[str, Any]) -> None:
        from .variational import INFERENCE

        inf = float("inf")
        _check_numbers(self.name, s, {"z_dim": ("int", 1, inf), "text_dim": ("int", 1, inf), "heads": ("int", 1, inf),
                                      "hidden": ("int", 1, inf), "dropout": ("float", 0.0, 0.99),
                                      "kl_weight": ("float", 0.0, inf), "cycles": ("int", 1, inf),
                                      "samples": ("int", 1, inf)})
        if s["text_dim"] % s["heads"]:
            raise ValueError(f"{self.name}['text_dim'] = {s['text_dim']} is invalid: it must be a multiple of "
                             f"{self.name}['heads'] = {s['heads']}")
        if s["inference"] not in INFERENCE:
            raise ValueError(f"{self.name}['inference'] = {s['inference']!r} is invalid: use one of "
                             f"{', '.join(INFERENCE)}")
        if s["text_encoder"] is not None:
            from .pretrained import require_transformers

            if not isinstance(s["text_encoder"], (str, Path)) or not (Path(s["text_encoder"]) / "config.json").is_file():
                raise ValueError(f"{self.name}['text_encoder'] = {s['text_encoder']!r} is invalid: give None (a report "
                                 f"encoder trained from scratch) or a local folder a Hugging Face model and its "
                                 f"tokenizer were saved to (with config.json)")
            if s["vocabulary"] is not None:
                raise ValueError(f"{self.name}: give text_encoder or vocabulary, not both (the model brings its own "
                                 f"tokenizer)")
            require_transformers()

    def module(self, prepared: Any, *, num_features: int, num_classes: int, guidance: Mapping[str, Any],
               pos_weight: Any) -> Any:
        from .variational import VariationalTeacher

        tok, s = prepared.data["tokenizer"], prepared.data["settings"]
        steps = prepared.data.get("total_steps")
        return VariationalTeacher(num_features, tok.vocab_size, num_classes, pad_id=tok.pad_id, key=self.name,
                                  z_dim=s["z_dim"], text_dim=s["text_dim"], heads=s["heads"], hidden=s["hidden"],
                                  dropout=float(s["dropout"]), max_length=tok.max_length + 2,
                                  kl_weight=float(s["kl_weight"]), cycles=s["cycles"],
                                  total_steps=steps if steps is not None and steps >= s["cycles"] else None,
                                  inference=s["inference"], samples=s["samples"], weight=float(s["weight"]),
                                  pos_weight=pos_weight, text_encoder=s.get("text_encoder"))
