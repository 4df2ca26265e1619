"""VKD's probabilistic parts (van Sonsbeek et al., IPMI 2021): Gaussian KL, sampling, cyclical annealing.

The teacher's posterior ``q(z | x, t)`` (image and report) and the student's prior ``p(z | x)``
(image alone) are diagonal Gaussians given by a mean and a **log-variance**. Two things here
differ on purpose from the authors' public code, which (a) passes the log-variance where the
standard deviation belongs when sampling and (b) computes the KL in the reverse direction:

- :func:`reparameterize` draws ``z = mu + exp(logvar / 2) * eps`` (the standard deviation is
  ``exp(logvar / 2)``);
- :func:`gaussian_kl` is ``KL(q || p)``, the term of the evidence lower bound
  ``E_q[log p(y | z)] - KL(q(z | x, t) || p(z | x))``: it pulls the image-only prior towards the
  report-informed posterior.

The KL weight follows VKD: ``1e-3`` times a cyclical linear annealing schedule
(:func:`cyclical_annealing`, Fu et al., NAACL 2019) with 4 cycles.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from .objective import SourceObjective

__all__ = ["gaussian_kl", "reparameterize", "cyclical_annealing", "ReportEncoder", "VariationalTeacher",
           "INFERENCE"]

#: How the image-only head predicts — from the prior's mean, or the mean probability of samples from it.
INFERENCE = ("prior_mean", "samples")


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """``KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)))`` of diagonal Gaussians, summed over the last dim.

    ``0.5 * sum(logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1)``;
    shape: the inputs' without their last dimension.
    """
    if not (mu_q.shape == logvar_q.shape == mu_p.shape == logvar_p.shape):
        raise ValueError(f"gaussian_kl: means and log-variances must have one shape, got {tuple(mu_q.shape)}, "
                         f"{tuple(logvar_q.shape)}, {tuple(mu_p.shape)}, {tuple(logvar_p.shape)}")
    # exp(lv_q - lv_p) + d^2 exp(-lv_p): the same value, without exp(lv_q) / exp(lv_p) overflowing first
    return 0.5 * (logvar_p - logvar_q + (logvar_q - logvar_p).exp() + (mu_q - mu_p) ** 2 * (-logvar_p).exp()
                  - 1.0).sum(-1)


def reparameterize(mu: Tensor, logvar: Tensor, *, generator: "torch.Generator | None" = None) -> Tensor:
    """A draw ``mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``, differentiable in ``mu`` and ``logvar``."""
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + torch.exp(0.5 * logvar) * eps


def cyclical_annealing(step: int, total_steps: int, *, cycles: int = 4, ratio: float = 0.5) -> float:
    """The KL weight's schedule at optimizer step ``step`` (0-based) of ``total_steps``: in ``[0, 1]``.

    The steps are cut into ``cycles`` equal periods of ``total_steps / cycles``; within a period at
    position ``tau`` in ``[0, 1)`` the weight rises linearly, ``tau / ratio``, and stays at 1 once
    ``tau >= ratio`` (Fu et al., 2019). Steps past ``total_steps`` stay at 1.
    """
    for name, v in (("total_steps", total_steps), ("cycles", cycles)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"cyclical_annealing: {name} must be a positive integer, got {v!r}")
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"cyclical_annealing: ratio must be in (0, 1], got {ratio!r}")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"cyclical_annealing: step must be an integer >= 0, got {step!r}")
    if cycles > total_steps:
        raise ValueError(f"cyclical_annealing: {cycles} cycles do not fit in {total_steps} steps; use at most "
                         f"one cycle per step")
    if step >= total_steps:
        return 1.0
    period = total_steps / cycles
    tau = math.fmod(step, period) / period
    return min(1.0, tau / float(ratio))


class ReportEncoder(nn.Module):
    """VKD's report encoder, trained from scratch: token embeddings + learned positions -> one transformer encoder
    layer -> the mean over the report's tokens (padding excluded): ``(B, L)`` ids -> ``(B, dim)``.

    A report without tokens (all padding) gives zeros.
    """

    def __init__(self, vocab_size: int, *, pad_id: int, dim: int = 256, heads: int = 4, ff: int = 512,
                 dropout: float = 0.1, max_length: int = 128) -> None:
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("dim", dim), ("heads", heads), ("ff", ff),
                        ("max_length", max_length)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"ReportEncoder: {name} must be a positive integer, got {v!r}")
        if dim % heads:
            raise ValueError(f"ReportEncoder: dim ({dim}) must be a multiple of heads ({heads})")
        self.pad_id = int(pad_id)
        self.out_dim = dim
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Embedding(max_length, dim)
        self.layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff, dropout=dropout, batch_first=True)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (B, L) token ids, got shape {tuple(tokens.shape)}")
        tokens = tokens[:, : self.position.num_embeddings]
        pad = tokens == self.pad_id
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.embed(tokens) + self.position(pos).unsqueeze(0)
        empty = pad.all(1)
        # a row of padding only would make the attention softmax over nothing (NaN): let it see one token
        h = self.layer(h, src_key_padding_mask=pad & ~(empty.unsqueeze(1) & (pos == 0).unsqueeze(0)))
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def _gaussian_head(d_in: int, hidden: int, z_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2 * z_dim))


class VariationalTeacher(SourceObjective, nn.Module):
    """VKD as guidance: a report-informed posterior teaches an image-only prior (see the module docstring).

    An objective module (:class:`~chexradi.guidance.objective.GuidedObjective`'s protocol; also an objective of
    its own for :func:`chexradi.train.fit`). With ``e`` the image embedding (the pooled final feature map) and
    ``t`` the report's encoding (:class:`ReportEncoder`, over ``batch[key + "_tokens"]``):

    - prior ``p(z | x) = N(mu_p, exp(lv_p))`` from ``e``; posterior ``q(z | x, t)`` from ``[t; e]``;
    - training: ``z ~ q`` (``z ~ p`` for an image without a report), logits ``W [z; e]``; the term is
      ``weight * (BCE + kl_weight * beta(step) * KL(q || p))``, the KL averaged over the batch's reports and
      ``beta`` the cyclical schedule (:func:`cyclical_annealing`, ``cycles`` over ``total_steps`` optimizer
      steps; 1 throughout when ``total_steps`` is None);
    - heads: ``"vkd"``, image only, from the prior's mean (``inference="prior_mean"``) or the mean probability
      of ``samples`` draws from the prior (``"samples"``; a fixed seed per batch, so evaluation repeats);
      ``"vkd_report"``, from the posterior's mean (needs the report: a reference, never deployed).

    Parameters
    ----------
    num_features, vocab_size, num_classes, pad_id:
        ``C``, the tokenizer's size and ``<pad>`` id, ``K``.
    key:
        The batch keys' prefix (the source's name).
    z_dim, text_dim, heads, hidden, dropout, max_length:
        Latent size (VKD: 512), the report encoder's width, attention heads, the MLPs' width, the encoder's
        dropout, the longest token sequence it reads.
    kl_weight, cycles, total_steps:
        The KL's weight (VKD: 1e-3) and its annealing.
    inference, samples:
        See above.
    weight, pos_weight:
        The term's weight; optional ``(K,)`` positive-class weights.
    text_encoder:
        None (:class:`ReportEncoder`, trained from scratch) or the folder of a local Hugging Face model
        (:class:`~chexradi.guidance.pretrained.PretrainedReportEncoder`; needs ``transformers``), whose
        tokenizer must be the one the batch's ids come from.
    """

    heads = ("vkd", "vkd_report")
    default_head = "vkd"

    def __init__(self, num_features: int, vocab_size: int, num_classes: int, *, pad_id: int, key: str = "vkd",
                 z_dim: int = 512, text_dim: int = 256, heads: int = 4, hidden: int = 512, dropout: float = 0.1,
                 max_length: int = 128, kl_weight: float = 1e-3, cycles: int = 4,
                 total_steps: Optional[int] = None, inference: str = "prior_mean", samples: int = 10,
                 weight: float = 1.0, pos_weight: Optional[Tensor] = None, text_encoder: Optional[str] = None) -> None:
        super().__init__()
        from ..train.objectives import _check_weights

        for name, v in (("num_features", num_features), ("z_dim", z_dim), ("hidden", hidden),
                        ("cycles", cycles), ("samples", samples), ("num_classes", num_classes)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"VariationalTeacher: {name} must be a positive integer, got {v!r}")
        if total_steps is not None and (not isinstance(total_steps, int) or isinstance(total_steps, bool)
                                        or total_steps < cycles):
            raise ValueError(f"VariationalTeacher: total_steps must be None or an integer >= cycles ({cycles}), "
                             f"got {total_steps!r}")
        if inference not in INFERENCE:
            raise ValueError(f"VariationalTeacher: inference must be one of {', '.join(INFERENCE)}, got {inference!r}")
        for name, v in (("kl_weight", kl_weight), ("weight", weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or (name == "weight" and not v > 0):
                raise ValueError(f"VariationalTeacher: {name} must be a number {'> 0' if name == 'weight' else '>= 0'}"
                                 f", got {v!r}")
        self.key = str(key)
        self.z_dim = int(z_dim)
        if text_encoder is not None:  # a local Hugging Face model (optional extra), fine-tuned here
            from .pretrained import PretrainedReportEncoder

            self.encoder: nn.Module = PretrainedReportEncoder(text_encoder, pad_id=pad_id)
        else:
            self.encoder = ReportEncoder(vocab_size, pad_id=pad_id, dim=text_dim, heads=heads, ff=2 * text_dim,
                                         dropout=dropout, max_length=max_length)
        text_dim = int(self.encoder.out_dim)
        self.prior = _gaussian_head(num_features, hidden, z_dim)
        self.posterior = _gaussian_head(text_dim + num_features, hidden, z_dim)
        self.classifier = nn.Linear(z_dim + num_features, num_classes)
        self.kl_weight, self.cycles, self.total_steps = float(kl_weight), int(cycles), total_steps
        self.inference, self.samples, self.weight = inference, int(samples), float(weight)
        pw = None if pos_weight is None else _check_weights(pos_weight, "pos_weight", int(num_classes))
        self.register_buffer("pos_weight", pw)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # optimizer steps seen (saved, resumed)
        self.last_terms: dict[str, float] = {}

    @property
    def required_keys(self) -> tuple[str, ...]:
        return ("image", "target", f"{self.key}_tokens")

    def beta(self) -> float:
        """The annealing factor at the current step."""
        if self.total_steps is None:
            return 1.0
        return cyclical_annealing(int(self.step), self.total_steps, cycles=self.cycles)

    @staticmethod
    def _split(out: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-20.0, 20.0)

    def _tokens(self, batch: Mapping[str, Any]) -> Tensor:
        tokens = batch.get(f"{self.key}_tokens")
        if not isinstance(tokens, Tensor):
            raise ValueError(f"the batch has no {self.key}_tokens (the report token ids the {self.key!r} source adds); "
                             f"wrap the dataset with the source (chexradi.guidance.text.ReportTokens)")
        return tokens

    def _posterior(self, emb: Tensor, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        tokens = self._tokens(batch)
        has = (tokens != self.encoder.pad_id).any(1)
        t = self.encoder(tokens).to(emb.dtype)
        mu, lv = self._split(self.posterior(torch.cat([t, emb], dim=1)))
        return mu, lv, has

    def head_logits(self, head: str, features: Any, batch: Mapping[str, Any]) -> Tensor:
        """``(B, K)`` logits of ``"vkd"`` (image only) or ``"vkd_report"`` (posterior mean)."""
        if head not in self.heads:
            raise ValueError(f"VariationalTeacher has no {head!r} head (heads: {', '.join(self.heads)})")
        emb = features.emb
        if head == "vkd_report":
            mu_q, _, has = self._posterior(emb, batch)
            mu_p, _ = self._split(self.prior(emb))
            z = torch.where(has.unsqueeze(1), mu_q, mu_p)  # no report: the prior's mean
            return self.classifier(torch.cat([z, emb], dim=1))
        mu_p, lv_p = self._split(self.prior(emb))
        if self.inference == "prior_mean":
            return self.classifier(torch.cat([mu_p, emb], dim=1))
        gen = torch.Generator(device=emb.device).manual_seed(0)
        probs = torch.stack([torch.sigmoid(self.classifier(torch.cat([reparameterize(mu_p, lv_p, generator=gen),
                                                                       emb], dim=1)))
                             for _ in range(self.samples)]).mean(0)
        p = probs.clamp(1e-7, 1 - 1e-7)
        return torch.log(p) - torch.log1p(-p)

    def terms(self, features: Any, batch: Mapping[str, Any], target: Tensor
              ) -> tuple[list[Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """``weight * (BCE + kl_weight * beta * KL)`` (see the class docstring); in training mode each call is one
        optimizer step of the annealing schedule."""
        from ..train.objectives import masked_bce_with_logits

        emb = features.emb
        mu_p, lv_p = self._split(self.prior(emb))
        mu_q, lv_q, has = self._posterior(emb, batch)
        if self.training:
            z_q, z_p = reparameterize(mu_q, lv_q), reparameterize(mu_p, lv_p)
        else:
            z_q, z_p = mu_q, mu_p
        z = torch.where(has.unsqueeze(1), z_q, z_p)
        logits = self.classifier(torch.cat([z, emb], dim=1))
        bce = masked_bce_with_logits(logits, target, pos_weight=self.pos_weight)
        kl_each = gaussian_kl(mu_q.float(), lv_q.float(), mu_p.float(), lv_p.float())
        n = has.sum()
        kl = (kl_each * has.float()).sum() / n.clamp(min=1)
        beta = self.beta()
        if self.training:
            self.step += 1
        total = self.weight * (bce + self.kl_weight * beta * kl)
        return ([total], {"vkd_report": logits},
                {"bce_vkd": bce, "kl": kl, "beta": torch.tensor(beta), "text_used": has.float().mean()})

    def extra_repr(self) -> str:
        return (f"key={self.key!r}, z_dim={self.z_dim}, kl_weight={self.kl_weight}, cycles={self.cycles}, "
                f"total_steps={self.total_steps}, inference={self.inference!r}")
