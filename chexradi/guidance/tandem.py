"""TandemNet's parts (Zhang et al., MICCAI 2017): a sentence encoder and the dual attention over regions and sentences.

What the authors' Torch7 code does, and what is built here over any chexradi backbone:

- **Regions.** The final feature map ``(B, C, h, w)`` of the image model gives ``N = h w`` region
  vectors (TandemNet's wide ResNet: 256 × 14 × 14, 196 regions). Dropout 0.5, then a 1×1
  convolution to ``dim`` and tanh.
- **Sentences.** :class:`SentenceEncoder`: a word LSTM over the whole report (embedding 128,
  hidden 256, dropout 0.4 on the embeddings); the hidden state at each sentence end (the
  tokenizer's ``"."`` token, or the report's last word when it has none) is that sentence's
  vector, at most ``max_sentences`` of them. Dropout 0.5, then a linear map (a 1×1 convolution
  on a sequence) to ``dim`` and tanh.
- **Scores.** Region ``i``: ``e_i = u_v · tanh(W_v v_i + W'_v mean(S))``; sentence ``j``:
  ``e_j = u_s · tanh(W_s s_j + W'_s avgpool(V))``. **One** softmax over the regions and the
  sentences together: ``alpha = softmax([e_1..e_N, e_1..e_M])``.
- **Context** ``c = sum_i alpha_i v_i + sum_j alpha_j s_j``; the visual skip adds the global
  average pool of the regions: ``logits = W_o dropout_0.5(c + avgpool(V))``.
- **Text drop.** During training the whole text of a sample is dropped with probability
  ``text_drop`` (0.5 in the paper), independently per sample. At evaluation with text, the
  sentence vectors are scaled by ``1 - text_drop`` (Torch7's dropout scales at test time).
  ``text_drop = 0`` always uses the text, ``1`` never does (image-only training).
- **Image only.** Without text (``text=None``, a sample whose report is missing, or a dropped
  one) the sentences are left out of the softmax and ``mean(S)`` is 0: the attention is over the
  regions alone. A dropped report in training and a missing one at inference are the same
  computation, so the image-only logits are those the training saw for dropped samples (the
  authors' code feeds zero text instead; removing it makes "image only" independent of how many
  empty sentences a zero report would have had).

The image part of the attention, ``alpha`` over the ``h × w`` regions, is a heatmap
(:attr:`TandemOutput.region_attention`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from .objective import SourceObjective

__all__ = ["SentenceEncoder", "DualAttention", "TandemOutput", "sentence_ends", "TextReference"]


def sentence_ends(tokens: Tensor, *, stop_id: int, pad_id: int, max_sentences: int,
                  ignore_ids: tuple[int, ...] = ()) -> tuple[Tensor, Tensor]:
    """Positions of the sentence ends in each row of ``tokens`` ``(B, L)``: ``(positions (B, M), valid (B, M))``.

    A sentence ends at a ``stop_id`` token that follows a word (a stop after a stop, or before any
    word, ends nothing); the last word of a row (a token that is not pad and not in
    ``ignore_ids``, e.g. ``<bos>``/``<eos>``) ends a last sentence without a stop. The first
    ``max_sentences`` ends are kept; ``M`` is the most any row has (at least 1). A row without a
    word has no sentence (``valid`` all False).
    """
    if tokens.dim() != 2:
        raise ValueError(f"tokens must be (B, L) token ids, got shape {tuple(tokens.shape)}")
    rows: list[list[int]] = []
    skip = {int(pad_id), *(int(i) for i in ignore_ids)}
    for row in tokens.detach().cpu().tolist():  # one transfer, then plain Python (no per-token device sync)
        ends: list[int] = []
        open_at = -1  # the last word of a sentence not yet ended; -1 when none
        for p, t in enumerate(row):
            if t in skip:
                continue
            if t != stop_id:
                open_at = p
            elif open_at >= 0:  # a stop after a word ends a sentence; a stop after a stop is nothing
                ends.append(p)
                open_at = -1
        if open_at >= 0:
            ends.append(open_at)
        rows.append(ends[:max_sentences])
    m = max(1, max(len(r) for r in rows))
    pos = torch.zeros((tokens.shape[0], m), dtype=torch.long, device=tokens.device)
    valid = torch.zeros((tokens.shape[0], m), dtype=torch.bool, device=tokens.device)
    for b, r in enumerate(rows):
        if r:
            pos[b, :len(r)] = torch.tensor(r, dtype=torch.long)
            valid[b, :len(r)] = True
    return pos, valid


def _check_sizes(who: str, dropout: float, **sizes: int) -> None:
    """Refuse a size that is not a positive integer or a dropout outside [0, 1), naming ``who`` and the argument."""
    for name, v in sizes.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{who}: {name} must be a positive integer, got {v!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout!r}")


class SentenceEncoder(nn.Module):
    """A word LSTM over a report; the hidden state at each sentence end is the sentence's vector.

    Parameters
    ----------
    vocab_size, pad_id, stop_id:
        The tokenizer's vocabulary size, ``<pad>`` id and ``"."`` id.
    embed_dim, hidden, dropout:
        TandemNet's 128, 256 and 0.4 (dropout on the word embeddings).
    max_sentences:
        Sentences kept per report (the first ones).
    ignore_ids:
        Token ids that are not words (``<bos>``, ``<eos>``).
    """

    def __init__(self, vocab_size: int, *, pad_id: int, stop_id: int, embed_dim: int = 128, hidden: int = 256,
                 dropout: float = 0.4, max_sentences: int = 16, ignore_ids: tuple[int, ...] = ()) -> None:
        super().__init__()
        _check_sizes("SentenceEncoder", dropout, vocab_size=vocab_size, embed_dim=embed_dim, hidden=hidden,
                     max_sentences=max_sentences)
        self.pad_id, self.stop_id, self.max_sentences = int(pad_id), int(stop_id), int(max_sentences)
        self.ignore_ids = tuple(int(i) for i in ignore_ids)
        self.out_dim = hidden
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``tokens (B, L)`` -> sentence vectors ``(B, M, hidden)`` and their validity ``(B, M)``.

        Pads come after the words, so the hidden states at the sentence ends do not see them.
        """
        pos, valid = sentence_ends(tokens, stop_id=self.stop_id, pad_id=self.pad_id,
                                   max_sentences=self.max_sentences, ignore_ids=self.ignore_ids)
        states, _ = self.lstm(self.drop(self.embed(tokens)))
        s = torch.gather(states, 1, pos.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
        return s * valid.unsqueeze(-1), valid


@dataclass
class TandemOutput:
    """What :class:`DualAttention` returns.

    Attributes
    ----------
    logits:
        ``(B, K)``.
    region_attention:
        ``(B, h, w)``: the attention on each region (the heatmap).
    sentence_attention:
        ``(B, M)``: the attention on each sentence (0 where there is no sentence); with the regions'
        it sums to 1 per sample.
    text_used:
        ``(B,)`` bool: whether the sample's text took part (not missing, not dropped).
    """

    logits: Tensor
    region_attention: Tensor
    sentence_attention: Tensor
    text_used: Tensor


class DualAttention(nn.Module):
    """TandemNet's dual attention over image regions and report sentences (see the module docstring).

    Parameters
    ----------
    region_dim:
        ``C``, the channels of the image model's final feature map.
    sentence_dim:
        The sentence vectors' size (``SentenceEncoder.out_dim``).
    num_classes:
        ``K`` (multi-label logits).
    dim:
        The common size regions and sentences are projected to (TandemNet: 256).
    dropout:
        On the regions, the sentences and before the output layer (0.5).
    text_drop:
        Probability of dropping a sample's whole text during training (0.5); see the module docstring.
    """

    def __init__(self, region_dim: int, sentence_dim: int, num_classes: int, *, dim: int = 256,
                 dropout: float = 0.5, text_drop: float = 0.5) -> None:
        super().__init__()
        _check_sizes("DualAttention", dropout, region_dim=region_dim, sentence_dim=sentence_dim,
                     num_classes=num_classes, dim=dim)
        if not 0.0 <= float(text_drop) <= 1.0:
            raise ValueError(f"DualAttention: text_drop must be in [0, 1] (0: always text, 1: never), "
                             f"got {text_drop!r}")
        self.text_drop = float(text_drop)
        self.drop = nn.Dropout(dropout)
        self.region_proj = nn.Conv2d(region_dim, dim, kernel_size=1)
        self.sentence_proj = nn.Linear(sentence_dim, dim)
        self.w_region = nn.Linear(dim, dim)
        self.w_region_ctx = nn.Linear(dim, dim, bias=False)
        self.u_region = nn.Linear(dim, 1)
        self.w_sentence = nn.Linear(dim, dim)
        self.w_sentence_ctx = nn.Linear(dim, dim, bias=False)
        self.u_sentence = nn.Linear(dim, 1)
        self.out = nn.Linear(dim, num_classes)

    def forward(self, features: Tensor, sentences: Optional[Tensor] = None,
                sentence_valid: Optional[Tensor] = None) -> TandemOutput:
        """``features (B, C, h, w)``, optional ``sentences (B, M, D_s)`` with ``sentence_valid (B, M)``.

        ``sentences=None`` is image-only. In training mode each sample's text is dropped with
        probability ``text_drop``.
        """
        if features.dim() != 4:
            raise ValueError(f"features must be a (B, C, h, w) feature map, got shape {tuple(features.shape)}")
        b, _, h, w = features.shape
        regions = torch.tanh(self.region_proj(self.drop(features))).flatten(2).transpose(1, 2)  # (B, N, D)
        v_mean = regions.mean(1)
        dev = features.device
        if sentences is None:
            used = torch.zeros(b, dtype=torch.bool, device=dev)
            sent = regions.new_zeros((b, 1, regions.shape[-1]))
            valid = torch.zeros((b, 1), dtype=torch.bool, device=dev)
        else:
            if sentences.dim() != 3 or sentences.shape[0] != b:
                raise ValueError(f"sentences must be (B, M, D) with B = {b}, got shape {tuple(sentences.shape)}")
            if sentence_valid is not None and tuple(sentence_valid.shape) != tuple(sentences.shape[:2]):
                raise ValueError(f"sentence_valid must be (B, M) = {tuple(sentences.shape[:2])} like the sentences, "
                                 f"got shape {tuple(sentence_valid.shape)}")
            valid = (torch.ones(sentences.shape[:2], dtype=torch.bool, device=dev) if sentence_valid is None
                     else sentence_valid.to(device=dev, dtype=torch.bool))
            used = valid.any(1)
            if self.training:
                used = used & (torch.rand(b, device=dev) >= self.text_drop)
                scale = 1.0
            else:
                scale = 1.0 - self.text_drop
                used = used & (self.text_drop < 1.0)
            valid = valid & used.unsqueeze(1)
            sent = torch.tanh(self.sentence_proj(self.drop(sentences * scale))) * valid.unsqueeze(-1)
        n_valid = valid.sum(1, keepdim=True)
        s_mean = sent.sum(1) / n_valid.clamp(min=1)  # 0 without text
        e_regions = self.u_region(torch.tanh(self.w_region(regions) + self.w_region_ctx(s_mean).unsqueeze(1)))
        e_sentences = self.u_sentence(torch.tanh(self.w_sentence(sent) + self.w_sentence_ctx(v_mean).unsqueeze(1)))
        e_sentences = e_sentences.squeeze(-1).masked_fill(~valid, float("-inf"))
        alpha = torch.softmax(torch.cat([e_regions.squeeze(-1), e_sentences], dim=1), dim=1)
        n = regions.shape[1]
        a_regions, a_sentences = alpha[:, :n], alpha[:, n:]
        context = (a_regions.unsqueeze(-1) * regions).sum(1) + (a_sentences.unsqueeze(-1) * sent).sum(1)
        logits = self.out(self.drop(context + v_mean))
        return TandemOutput(logits=logits, region_attention=a_regions.reshape(b, h, w),
                            sentence_attention=a_sentences, text_used=used)


class TextReference(SourceObjective, nn.Module):
    """TandemNet as guidance: the report is a reference the image attends with in training, and is removed at test.

    An objective module (:class:`~chexradi.guidance.objective.GuidedObjective`'s protocol; also an objective of
    its own for :func:`chexradi.train.fit`): a :class:`SentenceEncoder` over the batch's report tokens
    (``batch[key + "_tokens"]``) and a :class:`DualAttention` over the image model's final feature map and the
    sentences. Its loss term is the masked BCE of the dual-attention logits (text dropped per sample with
    probability ``text_drop``), times ``weight``; its heads:

    ``"tandem"``
        the dual attention with the text **removed** (image only: what is deployed; every arm is evaluated
        this way);
    ``"tandem_report"``
        the same with the report (an upper reference that needs the text; never the deployed model).

    ``heatmap_methods["tandem"]`` is the image-only attention over the ``h x w`` regions, upsampled to the
    input and scaled to [0, 1] per image, the same map for every class (TandemNet's attention is one
    distribution, not one per class); the loop's ``heatmap.method="tandem"`` takes its masks from it.

    Parameters
    ----------
    num_features:
        ``C``, the channels of the model's final feature map.
    vocab_size, pad_id, stop_id, ignore_ids:
        The tokenizer's (``stop_id``: the ``"."`` token; ``ignore_ids``: ``<bos>``, ``<eos>``).
    num_classes:
        ``K``.
    key:
        The batch keys' prefix (the source's name).
    text_drop, embed_dim, hidden, word_dropout, dim, dropout, max_sentences:
        TandemNet's settings (0.5, 128, 256, 0.4, 256, 0.5; 16 sentences).
    weight:
        Weight of the term in the loss.
    pos_weight:
        Optional ``(K,)`` positive-class weights of the BCE.
    """

    heads = ("tandem", "tandem_report")
    default_head = "tandem"

    def __init__(self, num_features: int, vocab_size: int, num_classes: int, *, pad_id: int, stop_id: int,
                 ignore_ids: tuple[int, ...] = (), key: str = "tandem", text_drop: float = 0.5,
                 embed_dim: int = 128, hidden: int = 256, word_dropout: float = 0.4, dim: int = 256,
                 dropout: float = 0.5, max_sentences: int = 16, weight: float = 1.0,
                 pos_weight: Optional[Tensor] = None) -> None:
        super().__init__()
        from ..train.objectives import _check_weights

        self.encoder = SentenceEncoder(vocab_size, pad_id=pad_id, stop_id=stop_id, embed_dim=embed_dim,
                                       hidden=hidden, dropout=word_dropout, max_sentences=max_sentences,
                                       ignore_ids=ignore_ids)
        self.attention = DualAttention(num_features, hidden, num_classes, dim=dim, dropout=dropout,
                                       text_drop=text_drop)
        if not float(weight) > 0:
            raise ValueError(f"TextReference: weight must be > 0, got {weight!r}")
        self.weight = float(weight)
        self.key = str(key)
        pw = None if pos_weight is None else _check_weights(pos_weight, "pos_weight", int(num_classes))
        self.register_buffer("pos_weight", pw)
        self.last_terms: dict[str, float] = {}

    @property
    def required_keys(self) -> tuple[str, ...]:
        """The batch keys a training batch must carry."""
        return ("image", "target", f"{self.key}_tokens")

    @property
    def heatmap_methods(self) -> dict[str, Any]:
        return {"tandem": self.heatmaps}

    def _text(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        tokens = batch.get(f"{self.key}_tokens")
        if not isinstance(tokens, Tensor):
            raise ValueError(f"the batch has no {self.key}_tokens (the report token ids the {self.key!r} source adds); "
                             f"wrap the dataset with the source (chexradi.guidance.text.ReportTokens)")
        return self.encoder(tokens)

    def _forward(self, features: Any, batch: Mapping[str, Any], *, with_text: bool) -> TandemOutput:
        if not with_text:
            return self.attention(features.map)
        s, valid = self._text(batch)
        return self.attention(features.map, s, valid)

    def head_logits(self, head: str, features: Any, batch: Mapping[str, Any]) -> Tensor:
        """``(B, K)`` logits of ``"tandem"`` (image only) or ``"tandem_report"`` (with the report)."""
        if head not in self.heads:
            raise ValueError(f"TextReference has no {head!r} head (heads: {', '.join(self.heads)})")
        return self._forward(features, batch, with_text=head == "tandem_report").logits

    def terms(self, features: Any, batch: Mapping[str, Any], target: Tensor
              ) -> tuple[list[Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """``weight * BCE`` of the dual attention with the text (dropped per sample in training)."""
        from ..train.objectives import masked_bce_with_logits

        out = self._forward(features, batch, with_text=True)
        bce = masked_bce_with_logits(out.logits, target, pos_weight=self.pos_weight)
        used = out.text_used.float().mean()
        return [self.weight * bce], {"tandem_report": out.logits}, {"bce_tandem": bce, "text_used": used}

    @torch.no_grad()
    def heatmaps(self, model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """Image-only attention maps ``(B, K, H, W)`` in [0, 1] (one map repeated for the K classes) and the
        ``"tandem"`` head's logits, for an image batch ``x`` (eval mode)."""
        import torch.nn.functional as F

        was = self.training
        self.eval()
        try:
            self.to(x.device)
            out = self.attention(model.forward_features(x))
        finally:
            self.train(was)
        a = out.region_attention.float()
        lo = a.flatten(1).min(1).values.view(-1, 1, 1)
        hi = a.flatten(1).max(1).values.view(-1, 1, 1)
        a = (a - lo) / (hi - lo).clamp(min=1e-12)
        maps = F.interpolate(a.unsqueeze(1), size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        k = out.logits.shape[1]
        return maps.clamp(0, 1).expand(-1, k, -1, -1).contiguous(), out.logits

    def extra_repr(self) -> str:
        return f"key={self.key!r}, weight={self.weight}"
