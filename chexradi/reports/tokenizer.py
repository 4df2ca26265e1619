"""Report text -> token ids and back: a word-level tokenizer fitted on the training split only.

The convention is R2Gen's for IU X-ray (Chen et al., EMNLP 2020), which the report-generation
papers' BLEU / METEOR / ROUGE-L / CIDEr figures are computed on:

1. **Cleaning** (:func:`clean_report`): lowercase; ``..`` -> ``.``; the text split into
   sentences at ``". "``; in each sentence the characters ``. , ? ; * ! % ^ & _ + ( ) : - [ ]
   { }``, quotes, slashes and backslashes removed, spaces collapsed; empty sentences dropped;
   the sentences joined with ``" . "`` and ended with ``" ."``: so ``"."`` is the one
   punctuation token, between sentences. IU's anonymisation mark ``XXXX`` stays a word
   (``xxxx``).
2. **Vocabulary** (:meth:`Tokenizer.fit`): the words seen at least ``min_count`` (3) times in
   the *training* reports, sorted; every other word is ``<unk>``. Four special tokens come
   first: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.
3. **Length**: :meth:`Tokenizer.encode` keeps the first ``max_length`` (60) words and says so
   (``truncated``), between ``<bos>`` and ``<eos>``.

Why a word-level vocabulary and not a WordPiece one (``tokenizers``, trained locally): the
metrics the field reports are computed on these words, so a generator's output is scored on
the same tokens it was trained on, and R2Gen's published figures stay comparable; IU X-ray's
training reports have a small vocabulary (a few hundred words seen three times), which a
WordPiece model would only fragment; and there is no dependency to install. A text *encoder*
(issue: text guidance) uses the same tokenizer.

A tokenizer is saved with the model that uses it (:meth:`~Tokenizer.to_dict` / :meth:`~Tokenizer.from_dict`, JSON)
and identified by :attr:`~Tokenizer.fingerprint`, so a checkpoint whose vocabulary is not the data's is
refused by name (:meth:`~Tokenizer.check_same`).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

__all__ = ["Tokenizer", "Encoded", "SPECIAL_TOKENS", "PAD", "BOS", "EOS", "UNK", "clean_report"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
FORMAT = "chexradi-tokenizer/1"

_STRIP = re.compile(r"[.,?;*!%^&_+():\-\[\]{}]")


def clean_report(text: str) -> str:
    """R2Gen's cleaning of an IU X-ray report (see the module docstring); ``""`` for a report without words."""
    t = str(text).replace("..", ".").lower()
    sentences = []
    for s in t.strip().split(". "):
        s = s.replace('"', "").replace("/", "").replace("\\", "").replace("'", "").strip()
        s = " ".join(_STRIP.sub("", s).split())
        if s:
            sentences.append(s)
    return " . ".join(sentences) + " ." if sentences else ""


@dataclass(frozen=True)
class Encoded:
    """A report as ids: ``ids`` (``<bos>`` ... ``<eos>``), the number of words that were ``<unk>``, and whether
    words beyond ``max_length`` were cut."""

    ids: list[int]
    n_words: int
    n_unknown: int
    truncated: bool


class Tokenizer:
    """A word-level vocabulary with R2Gen's cleaning (see the module docstring).

    Parameters
    ----------
    words:
        The vocabulary's words (without the special tokens), in id order.
    max_length:
        Words kept per report (default 60).
    min_count:
        The threshold the vocabulary was fitted with (recorded).

    Raises
    ------
    ValueError
        An empty vocabulary, a repeated word, a special token among the words, ``max_length`` < 1.
    """

    def __init__(self, words: Sequence[str], *, max_length: int = 60, min_count: int = 3) -> None:
        words = [str(w) for w in words]
        if not words:
            raise ValueError("a tokenizer needs at least one word; fit it on training reports that have text")
        dup = sorted({w for w in words if words.count(w) > 1}) if len(set(words)) != len(words) else []
        if dup:
            raise ValueError(f"the vocabulary lists {dup[:5]} more than once")
        special = [w for w in words if w in SPECIAL_TOKENS]
        if special:
            raise ValueError(f"the vocabulary must not contain the special tokens {special}")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be an integer >= 1 (words per report), got {max_length!r}")
        self.itos: list[str] = [*SPECIAL_TOKENS, *words]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.max_length = int(max_length)
        self.min_count = int(min_count)

    # -- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: Iterable[str], *, min_count: int = 3, max_length: int = 60) -> "Tokenizer":
        """The vocabulary of ``texts`` (the *training* reports): words seen at least ``min_count`` times.

        Raises
        ------
        ValueError
            ``min_count`` < 1, or no word reaches it.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        counts: Counter[str] = Counter()
        n = 0
        for t in texts:
            counts.update(clean_report(t).split())
            n += 1
        words = sorted(w for w, k in counts.items() if k >= min_count and w not in SPECIAL_TOKENS)
        if not words:
            raise ValueError(f"no word occurs {min_count} times in the {n} training report(s); give more reports or "
                             f"a lower min_count")
        return cls(words, max_length=max_length, min_count=min_count)

    # -- use ---------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included."""
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def unk_id(self) -> int:
        return 3

    def tokens(self, text: str) -> list[str]:
        """The cleaned words of ``text`` (before truncation and the ``<unk>`` mapping)."""
        return clean_report(text).split()

    def encode_report(self, text: str) -> Encoded:
        """``text`` as ids with what happened on the way (unknown words, truncation)."""
        words = self.tokens(text)
        kept = words[: self.max_length]
        ids = [self.stoi.get(w, self.unk_id) for w in kept]
        return Encoded(ids=[self.bos_id, *ids, self.eos_id], n_words=len(words),
                       n_unknown=sum(1 for i in ids if i == self.unk_id), truncated=len(words) > self.max_length)

    def encode(self, text: str) -> list[int]:
        """``[<bos>, word ids (the first max_length words; unknown -> <unk>), <eos>]``."""
        return self.encode_report(text).ids

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Ids back to text: special tokens dropped, stopping at the first ``<eos>`` (unless told not to).

        Raises
        ------
        ValueError
            An id outside the vocabulary.
        """
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise ValueError(f"token id {i} is outside this vocabulary of {len(self.itos)} ids; decode with the "
                                 f"tokenizer the model was trained with")
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.pad_id, self.bos_id, self.eos_id):
                continue
            out.append(self.itos[i])
        return " ".join(out)

    # -- identity and files ------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """A short hash of the vocabulary, cleaning and length — what a checkpoint records."""
        h = hashlib.sha256(json.dumps([FORMAT, self.itos, self.max_length]).encode())
        return h.hexdigest()[:16]

    def check_same(self, other: "Tokenizer", *, what: str = "the checkpoint") -> None:
        """Refuse ``other`` (e.g. the data's tokenizer) when it is not this one.

        Raises
        ------
        ValueError
            The vocabularies or lengths differ (the message gives both fingerprints and sizes).
        """
        if self.fingerprint != other.fingerprint:
            raise ValueError(f"{what} was trained with another vocabulary ({self.vocab_size} ids, fingerprint "
                             f"{self.fingerprint}) than the one given ({other.vocab_size} ids, fingerprint "
                             f"{other.fingerprint}); use the tokenizer saved with {what}")

    def to_dict(self) -> dict[str, Any]:
        """The tokenizer as a JSON-able dict: its words, ``max_length``, ``min_count`` and :attr:`fingerprint`."""
        return {"format": FORMAT, "words": self.itos[len(SPECIAL_TOKENS):], "max_length": self.max_length,
                "min_count": self.min_count, "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tokenizer":
        """The tokenizer :meth:`to_dict` wrote.

        Raises
        ------
        ValueError
            Not a chexradi tokenizer, or a fingerprint that does not match its words.
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a chexradi tokenizer (expected format {FORMAT!r})")
        tok = cls(d["words"], max_length=int(d["max_length"]), min_count=int(d.get("min_count", 3)))
        if d.get("fingerprint") not in (None, tok.fingerprint):
            raise ValueError("the tokenizer's words do not match its fingerprint: the file was edited or damaged")
        return tok

    def save(self, path: Union[str, Path]) -> Path:
        """Write :meth:`to_dict` as JSON, atomically."""
        from .._io import atomic_write

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(p) as fh:
            json.dump(self.to_dict(), fh, indent=1)
        return p

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Tokenizer":
        """Read a tokenizer written by :meth:`save`.

        Raises
        ------
        FileNotFoundError, ValueError
            Missing or unreadable file.
        """
        from .._io import read_json

        p = Path(path)
        d = read_json(p, what="tokenizer file", hint="give the tokenizer.json saved with the model")
        try:
            return cls.from_dict(d)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{p}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.fingerprint == other.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __repr__(self) -> str:
        return f"Tokenizer({self.vocab_size} ids, max_length={self.max_length}, fingerprint {self.fingerprint})"
