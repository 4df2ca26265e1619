"""A model that is not an image classifier, for the tests of :func:`chexradi.train.fit` on any model.

Items are variable-length token sequences (what a report tokenizer gives) with a
multi-label target: class ``k`` is positive when the sequence holds the marker
token ``MARKERS[k]``. :func:`pad_collate` pads a list of items into a batch, and
:class:`BagOfTokens` (mean of the token embeddings, a linear head; no
batch-norm, no dropout) classifies it. Imported by ``test_fit_models.py`` and by
the torchrun worker of ``test_distributed.py``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

VOCAB = 24
PAD = 0
MARKERS = (5, 9)          # class k is positive when MARKERS[k] occurs in the sequence
LENGTHS = (3, 12)         # sequence lengths drawn uniformly from this closed range


class TokenDataset(torch.utils.data.Dataset):
    """``n`` sequences of tokens 1..VOCAB-1 without a marker, each marker inserted with probability 1/2."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        plain = [t for t in range(1, VOCAB) if t not in MARKERS]
        self.items: list[dict[str, Tensor]] = []
        for _ in range(n):
            tokens = list(rng.choice(plain, size=int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))))
            target = rng.random(len(MARKERS)) < 0.5
            for k in np.flatnonzero(target):
                tokens.insert(int(rng.integers(0, len(tokens) + 1)), MARKERS[k])
            self.items.append({"tokens": torch.tensor(tokens, dtype=torch.long),
                               "target": torch.tensor(target, dtype=torch.float32)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.items[i]


def pad_collate(items: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Pad the token sequences of ``items`` with PAD to the longest: ``tokens (B, L)``, ``lengths (B,)``, ``target``."""
    lengths = torch.tensor([len(it["tokens"]) for it in items], dtype=torch.long)
    tokens = torch.full((len(items), int(lengths.max())), PAD, dtype=torch.long)
    for i, it in enumerate(items):
        tokens[i, :len(it["tokens"])] = it["tokens"]
    return {"tokens": tokens, "lengths": lengths, "target": torch.stack([it["target"] for it in items])}


class BagOfTokens(nn.Module):
    """Mean of the non-pad token embeddings, then a linear layer to one logit per class."""

    def __init__(self, vocab_size: int = VOCAB, dim: int = 8, num_classes: int = len(MARKERS),
                 name: str = "test_bag_of_tokens") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.config = {"name": name, "vocab_size": vocab_size, "dim": dim, "num_classes": num_classes}
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        keep = (tokens != PAD).unsqueeze(-1).float()
        pooled = (self.embed(tokens) * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)


class TokenObjective:
    """Mean BCE over every (item, class) of the model's logits on ``batch["tokens"]``."""

    required_keys = ("tokens", "target")

    def logits(self, model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        return model(batch["tokens"])

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits = self.logits(model, batch)
        return nn.functional.binary_cross_entropy_with_logits(logits, batch["target"]), logits
