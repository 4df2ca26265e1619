"""Neural networks (torch only): triplet attention, classifiers by name, checkpoints.

- :class:`TripletAttention` — Misra et al.'s three-branch attention block;
- :func:`create_model` / :func:`list_models` / :func:`register_model` — models by
  name (:mod:`.registry`); the classifiers (:mod:`.models`: torchvision backbones
  with or without triplet attention and a multi-label head, in one or more
  channels) are registered here, text models where they are defined;
- :func:`save_checkpoint` / :func:`load_model` — one-file checkpoints of any
  registered model;
- :func:`resolve_device`, :func:`class_indices` — the device and class selection shared by
  training and inference.
"""
from .attention import AttentionGate, TripletAttention, ZPool
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .device import resolve_device
from .models import (ATTENTIONS, CLASSIFIER, OUTPUT_STRIDES, Classifier, class_indices, create_classifier,
                     load_backbone_weights)
from .registry import ModelSpec, create_model, list_models, model_from_config, model_name, model_spec, register_model

__all__ = ["TripletAttention", "AttentionGate", "ZPool", "Classifier", "create_model", "create_classifier",
           "list_models", "register_model", "model_spec", "model_from_config", "model_name", "ModelSpec", "CLASSIFIER",
           "load_backbone_weights", "class_indices", "resolve_device", "ATTENTIONS", "OUTPUT_STRIDES",
           "save_checkpoint", "read_checkpoint", "load_model"]
