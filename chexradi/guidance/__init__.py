"""Guidance: what a guided round of the loop trains with besides the images, source by source.

A guidance **source** (:mod:`.source`) is a peer behind one protocol: what it needs from a
round (masks, or nothing), whether it is static across rounds or recomputed, how it prepares
each split's data, how its items reach a batch, and the objective terms and heads it adds.
The loop (:func:`chexradi.iterate`) iterates over the configured sources
(``guidance={"sources": [...]}``) and names none of them. chexradi's own:

- ``radiomics`` (:mod:`.radiomics`): features inside each (image, class) mask -> one standardised
  vector per image; recomputed every round from the previous round's masks; adds the ``"fused"``
  head and an alignment term.
- ``tandem`` and ``vkd`` (:mod:`.text`): the image's radiology report, static, from round 0;
  TandemNet's dual attention (:class:`TextReference`, heads ``"tandem"`` image-only and
  ``"tandem_report"``) and VKD's variational distillation (:class:`VariationalTeacher`, heads
  ``"vkd"`` image-only and ``"vkd_report"``).

The pieces sources are built from:

- :class:`Standardizer` (:mod:`.standardize`) -- per-column z-scores fitted on the training split;
- :class:`GuidanceDataset` (:mod:`.dataset`) -- items that carry a vector (``guidance``,
  ``guidance_valid``);
- :class:`RadiomicsGuidance` (:mod:`.fusion`) -- a fixed-length vector fused with the image
  embedding: fused head + alignment (usable alone as an objective for :func:`chexradi.train.fit`);
- :func:`nt_xent` (:mod:`.losses`) -- the SimCLR contrastive loss;
- :class:`GuidedObjective` (:mod:`.objective`) -- the image head plus every source's terms, heads by
  name;
- the report-text parts: :mod:`.tandem` (TandemNet's sentence encoder and dual attention over regions
  and sentences), :mod:`.variational` (VKD's Gaussian KL, reparameterisation, cyclical KL annealing,
  report encoder), :mod:`.report_classifier` (the report branches alone, report -> labels) and
  :mod:`.pretrained` (a local Hugging Face model as VKD's encoder, optional).

Only torch and numpy are imported here; the radiomics engine only where a source runs.
"""
from __future__ import annotations

from ..names import ALIGNMENTS
from .dataset import GuidanceDataset
from .fusion import MODES, RadiomicsGuidance
from .losses import masked_mse, nt_xent
from .objective import IMAGE_HEAD, GuidedObjective, ImageFeatures
from .source import (GuidanceSource, KeyCollate, Prepared, RoundContext, batch_collate, get_source, list_sources,
                     register_source, source_defaults)
from .standardize import Standardizer
from .tandem import TextReference
from .variational import VariationalTeacher

__all__ = ["Standardizer", "GuidanceDataset", "RadiomicsGuidance", "GuidedObjective", "nt_xent", "masked_mse",
           "ALIGNMENTS", "MODES", "IMAGE_HEAD", "GuidanceSource", "RoundContext", "Prepared", "register_source",
           "get_source", "list_sources", "source_defaults", "KeyCollate", "batch_collate", "TextReference",
           "VariationalTeacher", "ImageFeatures"]
