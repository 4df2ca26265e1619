"""Neural networks (torch only): triplet attention, classifiers by name, checkpoints.

- :class:`TripletAttention` — Misra et al.'s three-branch attention block;
- :func:`create_model` / :func:`list_models` — torchvision backbones with or
  without triplet attention and a multi-label head, in one or more channels;
- :func:`save_checkpoint` / :func:`load_model` — one-file checkpoints.
"""
from .attention import AttentionGate, TripletAttention, ZPool
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .models import ATTENTIONS, Classifier, create_model, list_models, load_backbone_weights

__all__ = ["TripletAttention", "AttentionGate", "ZPool", "Classifier", "create_model", "list_models",
           "load_backbone_weights", "ATTENTIONS", "save_checkpoint", "read_checkpoint", "load_model"]
