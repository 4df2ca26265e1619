"""The report generator: a chexradi classifier's feature map, read by an LSTM with soft attention.

``show_attend_tell`` (registered in the model registry, family ``"report_generator"``, so
:func:`chexradi.train.fit` trains, checkpoints and resumes it and :func:`chexradi.nn.load_model`
rebuilds it):

**Encoder.** Any chexradi classifier (:func:`chexradi.nn.create_classifier`; a DenseNet-121 as
CheXNet, or the ``best.pt`` of a loop round, so that image-only and guided backbones can be
compared). Its final feature map ``(C, h, w)`` gives ``h * w`` regions per view; a study's views
(IU X-ray's frontal and lateral, up to ``views``) go through the same encoder and their regions
are pooled into one set, each region projected to ``feature_dim`` and tagged with a learned
embedding of its view's position. ``freeze_encoder=True`` keeps the classifier's weights and its
batch-norm statistics fixed (evaluation mode, no gradient); False fine-tunes it.

**Decoder** (Xu et al., 2015, "Show, Attend and Tell", soft attention): the mean of the regions
initialises the LSTM's state (``h0, c0 = tanh(W mean)``); at each step the previous hidden state
attends over the regions (``e_i = w . tanh(W_f f_i + W_h h)``, softmax over the study's regions,
padding views masked), the context is gated (``beta = sigmoid(W_b h)``), the LSTM reads the
previous word's embedding with the context, and the next word's logits come from the hidden
state and the context through dropout. Training uses teacher forcing.

**Label conditioning** (``label_conditioning=True``, after Jing et al., 2018, co-attention over
visual and semantic features): the classifier's own head predicts the ``K`` labels from the
views' pooled embedding; label ``k`` becomes the semantic vector ``p_k * E_k`` (a learned
embedding scaled by its predicted probability); a second attention over these ``K`` vectors,
driven by the same hidden state, adds a semantic context to the LSTM's input and to the output.
When the encoder is fine-tuned and the data's labels are the classifier's classes, the
objective adds the labels' BCE (:class:`~chexradi.reportgen.objective.ReportObjective`), as Jing
et al. train their tag predictor.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from ..nn.registry import model_from_config, register_model
from ..reports.tokenizer import BOS, SPECIAL_TOKENS

__all__ = ["ReportGenerator", "show_attend_tell", "FAMILY"]

FAMILY = "report_generator"
_BOS_ID = SPECIAL_TOKENS.index(BOS)  # the tokenizer's convention: <pad> <bos> <eos> <unk> first


class _Attention(nn.Module):
    """Additive attention of a query (the LSTM state) over a set of vectors, masked."""

    def __init__(self, dim: int, query_dim: int, att_dim: int) -> None:
        super().__init__()
        self.key = nn.Linear(dim, att_dim)
        self.query = nn.Linear(query_dim, att_dim)
        self.score = nn.Linear(att_dim, 1)

    def forward(self, keys: Tensor, projected: Tensor, mask: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        e = self.score(torch.tanh(projected + self.query(h)[:, None, :])).squeeze(-1)
        alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
        return (alpha.unsqueeze(-1) * keys).sum(1), alpha


class ReportGenerator(nn.Module):
    """See the module docstring. Build it with :func:`show_attend_tell` (or ``create_model``)."""

    def __init__(self, encoder: nn.Module, vocab_size: int, *, config: dict[str, Any], views: int = 2,
                 feature_dim: int = 512, embed_dim: int = 256, hidden: int = 512, att_dim: int = 256,
                 dropout: float = 0.5, freeze_encoder: bool = True, label_conditioning: bool = False,
                 label_dim: int = 128) -> None:
        super().__init__()
        if not hasattr(encoder, "forward_features") or not hasattr(encoder, "forward_head"):
            raise ValueError(f"the encoder must be a chexradi classifier (forward_features / forward_head), got "
                             f"{type(encoder).__name__}; build it with chexradi.nn.create_classifier or load a "
                             f"classifier checkpoint")
        self.encoder = encoder
        self.config = dict(config)
        self.views = int(views)
        self.freeze_encoder = bool(freeze_encoder)
        self.label_conditioning = bool(label_conditioning)
        channels = int(encoder.num_features)
        self.region = nn.Linear(channels, feature_dim)
        self.view_embedding = nn.Embedding(self.views, feature_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=int(config.get("pad_id", 0)))
        self.init_h = nn.Linear(feature_dim, hidden)
        self.init_c = nn.Linear(feature_dim, hidden)
        self.attention = _Attention(feature_dim, hidden, att_dim)
        self.gate = nn.Linear(hidden, feature_dim)
        sem = 0
        if self.label_conditioning:
            k = int(encoder.num_classes)
            self.label_embedding = nn.Parameter(torch.randn(k, label_dim) * 0.1)
            self.semantic_attention = _Attention(label_dim, hidden, att_dim)
            sem = label_dim
        self.lstm = nn.LSTMCell(embed_dim + feature_dim + sem, hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden + feature_dim + sem, vocab_size)
        if self.freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    # -- modes -------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "ReportGenerator":
        """Set training mode as :meth:`torch.nn.Module.train` does; a frozen encoder (``freeze_encoder``) stays in
        eval mode, keeping its batch-norm statistics. Returns ``self``."""
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    @property
    def vocab_size(self) -> int:
        return self.out.out_features

    # -- encoding ----------------------------------------------------------------------------------
    def encode(self, images: Tensor, views: Optional[Tensor] = None) -> dict[str, Tensor]:
        """A batch of studies ``(B, V, C, H, W)`` (``views`` ``(B, V)`` bool: which are real) -> what decoding reads:
        ``regions`` ``(B, V*h*w, D)``, their ``mask``, the label ``logits`` ``(B, K)`` and, with label
        conditioning, the ``semantic`` vectors ``(B, K, E)``."""
        if images.dim() == 4:
            images = images.unsqueeze(1)
        if images.dim() != 5:
            raise ValueError(f"expected studies of shape (B, V, C, H, W) (or (B, C, H, W) for one view), "
                             f"got {tuple(images.shape)}")
        b, v = images.shape[:2]
        if v > self.views:
            raise ValueError(f"a study has {v} views but the model takes at most {self.views}; build it with "
                             f"views={v}")
        if views is None:
            views = torch.ones(b, v, dtype=torch.bool, device=images.device)
        views = views.bool()
        real = views.flatten()
        if not bool(views[:, 0].all()):
            raise ValueError("every study needs its first view (views[:, 0] must be True)")
        flat = images.flatten(0, 1)[real]  # padding views never reach the encoder (nor its batch-norm statistics)
        if self.freeze_encoder:
            with torch.no_grad():
                part = self.encoder.forward_features(flat)
        else:
            part = self.encoder.forward_features(flat)
        c, h, w = part.shape[1:]
        fmap = part.new_zeros((b * v, c, h, w))
        fmap[real] = part
        pooled = self.encoder.embed_features(fmap).view(b, v, c)
        weights = views.float().unsqueeze(-1)
        study = (pooled * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        logits = self.encoder.forward_head(study)
        regions = fmap.view(b, v, c, h * w).transpose(2, 3)  # (B, V, hw, C)
        regions = self.region(regions) + self.view_embedding.weight[:v].view(1, v, 1, -1)
        regions = regions.reshape(b, v * h * w, -1)
        mask = views.repeat_interleave(h * w, dim=1)
        enc = {"regions": regions, "mask": mask, "logits": logits}
        if self.label_conditioning:
            p = torch.sigmoid(logits.float()).to(regions.dtype)
            enc["semantic"] = p.unsqueeze(-1) * self.label_embedding.unsqueeze(0)
        return enc

    def initial_state(self, enc: dict[str, Tensor]) -> tuple:
        """The decoder's state before ``<bos>``: ``(h, c, regions, projected regions, mask[, semantic, projected])``."""
        regions, mask = enc["regions"], enc["mask"]
        m = mask.unsqueeze(-1).to(regions.dtype)
        mean = (regions * m).sum(1) / m.sum(1).clamp(min=1.0)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        state: tuple = (h, c, regions, self.attention.key(regions), mask)
        if self.label_conditioning:
            sem = enc["semantic"]
            state = state + (sem, self.semantic_attention.key(sem))
        return state

    # -- decoding -----------------------------------------------------------------------------------
    def _step(self, tokens: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        h, c, regions, proj, mask = state[:5]
        ctx, _ = self.attention(regions, proj, mask, h)
        ctx = torch.sigmoid(self.gate(h)) * ctx
        parts = [self.embedding(tokens), ctx]
        outs = [ctx]
        if self.label_conditioning:
            sem, sem_proj = state[5], state[6]
            sctx, _ = self.semantic_attention(sem, sem_proj, torch.ones(sem.shape[:2], dtype=torch.bool,
                                                                        device=sem.device), h)
            parts.append(sctx)
            outs.append(sctx)
        h, c = self.lstm(torch.cat(parts, dim=1), (h, c))
        logits = self.out(self.drop(torch.cat([h, *outs], dim=1)))
        return logits, (h, c, *state[2:])

    def step(self, tokens: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        """The decoding step (:mod:`chexradi.reportgen.decode`): log-probabilities of the next token; ``<pad>``
        and ``<bos>`` are never generated."""
        logits, state = self._step(tokens, state)
        lp = torch.log_softmax(logits.float(), dim=-1)
        lp[:, [int(self.config.get("pad_id", 0)), _BOS_ID]] = float("-inf")
        return lp, state

    def teacher_forcing(self, enc: dict[str, Tensor], tokens: Tensor) -> Tensor:
        """Next-token logits ``(B, L-1, V)`` for positions 1..L-1 of ``tokens`` ``(B, L)`` (``<bos>`` ... ``<eos>``
        padded), each step reading the reference's previous word."""
        state = self.initial_state(enc)
        steps = []
        for t in range(tokens.shape[1] - 1):
            logits, state = self._step(tokens[:, t], state)
            steps.append(logits)
        return torch.stack(steps, dim=1)

    def forward(self, images: Tensor, tokens: Tensor, views: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Teacher forcing from the images: next-token logits ``(B, L-1, V)`` and the label logits ``(B, K)``."""
        enc = self.encode(images, views)
        return self.teacher_forcing(enc, tokens), enc["logits"]


def _build(encoder: nn.Module, vocab_size: int, config: dict[str, Any]) -> ReportGenerator:
    keys = ("views", "feature_dim", "embed_dim", "hidden", "att_dim", "dropout", "freeze_encoder",
            "label_conditioning", "label_dim")
    return ReportGenerator(encoder, vocab_size, config=config, **{k: config[k] for k in keys})


def _encoder_from(encoder: Union[str, nn.Module], class_names: Optional[list[str]], in_chans: int,
                  weights: Optional[str]) -> tuple[nn.Module, str]:
    if isinstance(encoder, nn.Module):
        return encoder, "module"
    from pathlib import Path

    from ..nn import create_classifier
    from ..nn.checkpoint import load_model

    if isinstance(encoder, str) and (encoder.endswith(".pt") or Path(encoder).is_file()):
        model, _ = load_model(encoder)
        if not hasattr(model, "forward_features"):
            raise ValueError(f"encoder={encoder}: the checkpoint holds a {type(model).__name__}, not a classifier; "
                             f"give a classifier's best.pt (a loop round's round_<k>/fit/best.pt)")
        return model, str(Path(encoder).resolve())
    names = list(class_names) if class_names else None
    model = create_classifier(str(encoder), num_classes=len(names) if names else 14, class_names=names,
                              in_chans=in_chans, weights=weights)
    return model, str(encoder)


@register_model(family=FAMILY, from_config=lambda config: _from_config(config))
def show_attend_tell(vocab_size: int = 1000, encoder: Union[str, nn.Module] = "densenet121",
                     class_names: Optional[list[str]] = None, in_chans: int = 1, weights: Optional[str] = None,
                     views: int = 2, feature_dim: int = 512, embed_dim: int = 256, hidden: int = 512,
                     att_dim: int = 256, dropout: float = 0.5, freeze_encoder: bool = True,
                     label_conditioning: bool = False, label_dim: int = 128, pad_id: int = 0) -> ReportGenerator:
    """A Show-Attend-and-Tell report generator over a chexradi classifier (see the module docstring).

    Parameters
    ----------
    vocab_size:
        The tokenizer's size (:attr:`chexradi.reports.tokenizer.Tokenizer.vocab_size`).
    encoder:
        A classifier name (``"densenet121"``, ``"resnet18_ta"``, ...; built with ``class_names``,
        ``in_chans`` and optional ``weights``), the path of a classifier checkpoint (a loop round's
        ``best.pt``) or a classifier module.
    views:
        Most views per study (2: frontal and lateral).
    freeze_encoder:
        Keep the encoder's weights fixed (True) or fine-tune them.
    label_conditioning:
        Condition the decoder on the classifier's predicted labels (semantic attention).
    """
    for name, v in (("vocab_size", vocab_size), ("views", views), ("feature_dim", feature_dim),
                    ("embed_dim", embed_dim), ("hidden", hidden), ("att_dim", att_dim), ("label_dim", label_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    enc, source = _encoder_from(encoder, class_names, in_chans, weights)
    config = {"name": "show_attend_tell", "vocab_size": int(vocab_size), "encoder": dict(enc.config),
              "encoder_source": source, "views": int(views), "feature_dim": int(feature_dim),
              "embed_dim": int(embed_dim), "hidden": int(hidden), "att_dim": int(att_dim), "dropout": float(dropout),
              "freeze_encoder": bool(freeze_encoder), "label_conditioning": bool(label_conditioning),
              "label_dim": int(label_dim), "pad_id": int(pad_id), "class_names": list(enc.class_names)}
    return _build(enc, int(vocab_size), config)


def _from_config(config: dict[str, Any]) -> ReportGenerator:
    encoder = model_from_config(dict(config["encoder"]))  # fresh weights: the generator's state dict holds them
    return _build(encoder, int(config["vocab_size"]), dict(config))
