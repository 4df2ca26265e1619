"""A user's local Hugging Face text model as VKD's report encoder (``vkd={"text_encoder": PATH}``).

Nothing is downloaded: ``PATH`` is a folder written by ``save_pretrained`` (a model and its
tokenizer, e.g. a clinical BERT the user already has), loaded with ``local_files_only=True``.
``transformers`` is an optional extra (``pip install "chexradi[text]"``), imported only here.

- :class:`PretrainedTokenizer`: the model's own tokenizer behind the interface the text sources
  use (``encode_report``, ``pad_id``, ``vocab_size``, ``fingerprint``, ``save``); the run records
  the folder and the vocabulary's fingerprint in ``<run>/vkd/tokenizer.json``.
- :class:`PretrainedReportEncoder`: the model's last hidden states, averaged over the report's
  tokens (padding excluded), fine-tuned with the rest.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Union

from torch import Tensor, nn

from .._io import atomic_write
from ..about import install_hint

__all__ = ["PretrainedTokenizer", "PretrainedReportEncoder", "FORMAT", "require_transformers", "load_vocabulary"]

FORMAT = "chexradi-pretrained-tokenizer/1"


def require_transformers() -> Any:
    """``transformers``, or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError:
        raise ImportError("text_encoder=PATH loads a local Hugging Face model, which needs transformers: "
                          f"{install_hint('text')} (or pip install transformers); or leave text_encoder "
                          "unset to train chexradi's own report encoder from scratch") from None
    return transformers


def _folder(path: Union[str, Path]) -> Path:
    p = Path(path).expanduser()
    if not (p.is_dir() and (p / "config.json").is_file()):
        raise FileNotFoundError(f"text_encoder={path}: not a folder with a config.json; give the folder a Hugging Face "
                                f"model was saved to (model.save_pretrained(PATH) and tokenizer.save_pretrained(PATH))")
    return p


class PretrainedTokenizer:
    """A local Hugging Face tokenizer with the interface of :class:`chexradi.reports.tokenizer.Tokenizer` that the
    text sources use."""

    def __init__(self, path: Union[str, Path], *, max_length: int = 100) -> None:
        from chexradi.reports.tokenizer import Encoded

        self._Encoded = Encoded
        tf = require_transformers()
        self.path = _folder(path)
        self.max_length = int(max_length)
        self.tok = tf.AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        pad = self.tok.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.bos_id = int(self.tok.cls_token_id if self.tok.cls_token_id is not None else -1)
        self.eos_id = int(self.tok.sep_token_id if self.tok.sep_token_id is not None else -1)
        self.unk_id = int(self.tok.unk_token_id if self.tok.unk_token_id is not None else -1)
        self.stoi = dict(self.tok.get_vocab())

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode_report(self, text: str) -> Any:
        pieces = self.tok.tokenize(str(text))
        ids = self.tok(str(text), truncation=True, max_length=self.max_length + 2)["input_ids"]
        special = {self.bos_id, self.eos_id, self.pad_id}
        words = [i for i in ids if i not in special]
        return self._Encoded(ids=list(ids), n_words=len(pieces), n_unknown=sum(1 for i in words if i == self.unk_id),
                             truncated=len(pieces) > len(words))

    def encode(self, text: str) -> list[int]:
        return self.encode_report(text).ids

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps([FORMAT, sorted(self.stoi.items()), self.max_length]).encode())
        return h.hexdigest()[:16]

    def check_same(self, other: Any, *, what: str = "the checkpoint") -> None:
        if getattr(other, "fingerprint", None) != self.fingerprint:
            raise ValueError(f"{what} has another vocabulary than this run's tokenizer (fingerprints "
                             f"{getattr(other, 'fingerprint', None)} and {self.fingerprint}); use the run's")

    def save(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        with atomic_write(path) as fh:
            json.dump({"format": FORMAT, "path": str(self.path), "max_length": self.max_length,
                       "fingerprint": self.fingerprint}, fh, indent=1)
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "PretrainedTokenizer":
        d = json.loads(Path(path).read_text())
        tok = cls(d["path"], max_length=int(d["max_length"]))
        if tok.fingerprint != d.get("fingerprint"):
            raise ValueError(f"{path}: the tokenizer in {d['path']} changed since this run started (fingerprint "
                             f"{tok.fingerprint}, the run's {d.get('fingerprint')}); restore it or start a new run")
        return tok


class PretrainedReportEncoder(nn.Module):
    """A local Hugging Face model's mean last hidden state over the report's tokens: ``(B, L)`` ids ->
    ``(B, hidden_size)``."""

    def __init__(self, path: Union[str, Path], *, pad_id: int) -> None:
        super().__init__()
        tf = require_transformers()
        self.path = str(_folder(path))
        self.model = tf.AutoModel.from_pretrained(self.path, local_files_only=True)
        self.pad_id = int(pad_id)
        self.out_dim = int(self.model.config.hidden_size)

    def forward(self, tokens: Tensor) -> Tensor:
        mask = tokens != self.pad_id
        empty = ~mask.any(1)
        mask = mask.clone()
        mask[empty, 0] = True  # a row without a token attends to one pad (its output is zeroed below)
        h = self.model(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
        keep = (mask & ~empty.unsqueeze(1)).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def load_vocabulary(path: Union[str, Path]) -> Any:
    """A run's saved vocabulary: chexradi's :class:`~chexradi.reports.tokenizer.Tokenizer`, or a
    :class:`PretrainedTokenizer` record."""
    from chexradi.reports.tokenizer import Tokenizer

    try:
        fmt = json.loads(Path(path).read_text()).get("format")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a saved tokenizer ({exc})") from None
    return PretrainedTokenizer.load(path) if fmt == FORMAT else Tokenizer.load(path)
