"""The objective of a guided round: the image head plus every source's terms, heads by name.

:class:`GuidedObjective` is what :func:`chexradi.train.fit` trains when guidance sources are
active: the image model's own head (``"image"``: what the deployed model has) with its masked
BCE, plus, for each source, the terms and heads its module adds (a radiomics source: the
``"fused"`` head and an alignment; a text source: its own). Every module implements

- ``heads``: the names of the heads it adds;
- ``terms(features, batch, target) -> (added, head_logits, named)``: the tensors added to the loss
  in order, the logits of its heads, and its named terms (for the record);
- ``head_logits(head, features, batch)``: one head's logits at evaluation;

where ``features`` is the batch's :class:`ImageFeatures`: the image model's final feature map
(``map``, ``(B, C, h, w)``: the regions a text source attends over) and its pooled embedding
(``emb``, ``(B, C)``: what a radiomics vector is fused with), computed once per batch for every
module. A module may also offer ``heatmap_methods``: name -> ``fn(model, x) -> (maps, logits)``,
heatmaps the loop's ``heatmap.method`` can name (TandemNet's attention: ``"tandem"``).

``logits(model, batch, head=...)`` evaluates any head by name (``"image"`` is
``model(image)``, which needs nothing but the image); without ``head`` it evaluates
``select_on``, the head whose validation score picks the best epoch.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import Tensor, nn

from ..train.objectives import _check_weights, masked_bce_with_logits

__all__ = ["GuidedObjective", "IMAGE_HEAD", "guided_loss", "ImageFeatures", "image_features", "SourceObjective"]

#: The image model's own head — the one every guided model is deployed with.
IMAGE_HEAD = "image"


@dataclass
class ImageFeatures:
    """What a source module sees of a batch's images: the final feature map ``map`` ``(B, C, h, w)`` and its
    global average pool ``emb`` ``(B, C)`` (the image head's input)."""

    map: Tensor
    emb: Tensor


def image_features(model: nn.Module, image: Tensor) -> ImageFeatures:
    """The :class:`ImageFeatures` of an image batch (one forward pass of the backbone)."""
    fmap = model.forward_features(image)
    return ImageFeatures(map=fmap, emb=model.embed_features(fmap))


def guided_loss(model: nn.Module, batch: Mapping[str, Any], modules: Mapping[str, Any], *,
                pos_weight: Optional[Tensor] = None) -> tuple[Tensor, dict[str, Tensor], dict[str, float]]:
    """The image head's masked BCE plus every module's terms, added in order: ``(loss, logits by head, named
    terms)``; a module's named terms are ``"<name>:<term>"`` (plain ``"<term>"`` for the name ``""``)."""
    feats = image_features(model, batch["image"])
    target = batch["target"]
    image_logits = model.forward_head(feats.emb)
    bce_image = masked_bce_with_logits(image_logits, target, pos_weight=pos_weight)
    total = bce_image
    logits = {IMAGE_HEAD: image_logits}
    named: dict[str, float] = {"bce_image": float(bce_image.detach())}
    for name, m in modules.items():
        added, heads, terms = m.terms(feats, batch, target)
        for t in added:
            total = total + t
        logits.update(heads)
        named.update({(f"{name}:{k}" if name else k): float(v.detach()) for k, v in terms.items()})
    named["loss"] = float(total.detach())
    return total, logits, named


class SourceObjective:
    """A source module that is also an objective of its own for :func:`chexradi.train.fit` (a mixin): the image
    head's BCE plus the module's terms (:func:`guided_loss`), and its heads by name, ``default_head`` when none is
    asked (``"image"`` is the model's own head). The module has ``pos_weight`` and ``last_terms``."""

    default_head: str = IMAGE_HEAD

    def logits(self, model: nn.Module, batch: Mapping[str, Any], *, head: Optional[str] = None) -> Tensor:
        """``(B, K)`` logits of ``head`` (default ``default_head``)."""
        h = self.default_head if head is None else head
        if h == IMAGE_HEAD:
            return model(batch["image"])
        return self.head_logits(h, image_features(model, batch["image"]), batch)  # type: ignore[attr-defined]

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """The image head's BCE plus this module's terms, and the image head's logits."""
        total, logits, named = guided_loss(model, batch, {"": self}, pos_weight=self.pos_weight)  # type: ignore
        self.last_terms = named
        return total, logits[IMAGE_HEAD]


class GuidedObjective(nn.Module):
    """Image head + each source's terms (see the module docstring).

    Parameters
    ----------
    modules:
        Source name -> its objective module (``heads``, ``terms``, ``head_logits``).
    num_classes:
        ``K``.
    pos_weight:
        Optional ``(K,)`` positive-class weights of the image head's BCE.
    select_on:
        The head :meth:`logits` returns by default (model selection): ``"image"`` or a head a
        module adds.

    Raises
    ------
    ValueError
        Two modules adding the same head, a ``select_on`` no module has, bad ``pos_weight``.
    """

    def __init__(self, modules: Mapping[str, nn.Module], num_classes: int, *, pos_weight: Optional[Any] = None,
                 select_on: str = IMAGE_HEAD) -> None:
        super().__init__()
        self.sources = nn.ModuleDict(dict(modules))
        owner: dict[str, str] = {}
        for name, m in self.sources.items():
            for h in getattr(m, "heads", ()):
                if h == IMAGE_HEAD or h in owner:
                    raise ValueError(f"source {name!r} adds a head {h!r} that {owner.get(h, 'the image model')!r} "
                                     f"already has; give each source's head its own name")
                owner[h] = name
        self.head_owner = owner
        if select_on != IMAGE_HEAD and select_on not in owner:
            raise ValueError(f"select_on={select_on!r} is not a head of this objective (heads: "
                             f"{', '.join(self.heads)})")
        self.select_on = select_on
        pw = None if pos_weight is None else _check_weights(pos_weight, "pos_weight", int(num_classes))
        self.register_buffer("pos_weight", pw)
        self.last_terms: dict[str, float] = {}

    @property
    def heads(self) -> tuple[str, ...]:
        """``"image"`` and every head the sources add, in source order."""
        return (IMAGE_HEAD, *self.head_owner)

    def logits(self, model: nn.Module, batch: Mapping[str, Any], *, head: Optional[str] = None) -> Tensor:
        """``(B, K)`` logits of ``head`` (default ``select_on``).

        Raises
        ------
        ValueError
            An unknown head (the message lists the heads).
        """
        h = self.select_on if head is None else head
        if h == IMAGE_HEAD:
            return model(batch["image"])
        if h not in self.head_owner:
            raise ValueError(f"unknown head {h!r}; this objective has {', '.join(self.heads)}")
        return self.sources[self.head_owner[h]].head_logits(h, image_features(model, batch["image"]), batch)

    def heatmap_methods(self) -> dict[str, Callable[..., Any]]:
        """Heatmap name -> ``fn(model, x) -> (maps (B, K, H, W) in [0, 1], logits (B, K))`` of every module that
        offers some (``heatmap_methods``; none but the CAM methods for a radiomics source)."""
        out: dict[str, Callable[..., Any]] = {}
        for m in self.sources.values():
            out.update(getattr(m, "heatmap_methods", None) or {})
        return out

    def loss(self, model: nn.Module, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """The image head's masked BCE plus every source's terms, and the logits of ``select_on``."""
        total, logits, named = guided_loss(model, batch, self.sources, pos_weight=self.pos_weight)
        self.last_terms = named
        return total, logits.get(self.select_on, logits[IMAGE_HEAD])

    def extra_repr(self) -> str:
        return f"sources={list(self.sources)}, heads={list(self.heads)}, select_on={self.select_on!r}"
