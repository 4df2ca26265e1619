"""Training and inference for one round of the loop: :func:`fit` and :func:`predict`.

:func:`fit` trains any model under an objective with AdamW and a per-step cosine
schedule, validates every epoch with an *evaluator* (:mod:`.evaluators`: masked
BCE and AUC per class for a multi-label classifier, the default; the objective's
loss for any other model), stops early on the evaluator's score and keeps the
best weights. Batches of variable-length items (token sequences) are built by a
``collate_fn`` the caller gives. With
``out=DIR`` it writes ``DIR/last.pt`` (everything needed to resume) after every
epoch, ``DIR/best.pt`` when the validation score improves, and
``DIR/history.json``; a run that was stopped resumes from ``last.pt`` and
reproduces, weight for weight, the run that was not stopped.

:func:`predict` returns probabilities, logits, targets and, on request,
heatmaps (CAM / Grad-CAM from :mod:`chexradi.cam.methods`) and embeddings.

What the loss is lives in an *objective*, the extension point for guidance
(radiomics vectors, report text): any object with

``loss(model, batch) -> (loss, logits)``
    the scalar training loss of a batch and the ``(B, K)`` logits it used;
``logits(model, batch) -> logits``
    the ``(B, K)`` logits for evaluation (validation AUC and loss);

and optionally ``required_keys`` (the item keys its loss reads, checked on every
batch; ``("image", "target")`` when absent), ``parameters()`` (extra trainable
tensors, added to the optimizer), ``state_dict()`` / ``load_state_dict(state)`` (saved in ``last.pt``
and restored on resume). An objective that is a :class:`torch.nn.Module` is
moved to the device and switched between train and eval mode with the model.
``batch`` is a dict of the collated items, tensors on the device; it holds
``"image"`` ``(B, C, H, W)`` float32, ``"target"`` ``(B, K)`` float32 (NaN =
unknown) and every other key the dataset items carry (``"index"``, radiomics
vectors, ...). The default objective is :class:`BCEObjective`.

Reproducibility: at the start of epoch ``e`` the Python, NumPy and torch random
generators are seeded from ``(seed, e)`` and the shuffle order comes from a
generator seeded the same way, so epoch ``e`` does not depend on how the run got
there. Together with the optimizer, scheduler, scaler and objective states in
``last.pt`` this is what makes a resumed run identical to an uninterrupted one
(on CPU bit for bit; on CUDA as far as the kernels are deterministic: cuDNN is
put in deterministic mode during :func:`fit` and restored afterwards).

Distributed: under ``torchrun``, :func:`chexradi.train.distributed.init_from_env`
joins the process group (nccl on GPUs, gloo on CPU) and :func:`fit` then trains
with DistributedDataParallel, the global batch split over the ranks, validation
sharded and gathered, checkpoints written by rank 0 (see the "Distributed"
paragraph of :func:`fit`). :mod:`.distributed` also gives the loop what it needs
to shard other work (:meth:`~chexradi.train.distributed.Dist.shard`, gathers,
broadcasts); without ``torchrun`` it is a no-op.

Layout (data flows one way: ``.fit`` and ``.predict`` use the rest, never
the reverse): :mod:`.objectives` (the protocol, masked BCE, class weights),
:mod:`.data` (:class:`ArrayDataset`, item checks, loaders), :mod:`.runtime`
(device, AMP, argument checks, random generators, optimizer), :mod:`.epochs`
(one epoch of training and validation, the resumable progress),
:mod:`.evaluators` (what validation computes and selects by), :mod:`.options`
(:func:`fit`'s argument checks and recorded settings), :mod:`.trainer` (start or
resume, one epoch after another, checkpoints, the result),
:mod:`.checkpoints` (``last.pt``, ``best.pt``, ``history.json``), :mod:`.distributed`
(the process group, sharding, collectives, the DDP wrapper), ``.fit`` and
``.predict``.
"""
from __future__ import annotations

from . import distributed
from .data import ArrayDataset
from .evaluators import ClassifierEvaluator, Evaluation, Evaluator, LossEvaluator
from .fit import FitResult, fit
from .objectives import (BALANCED_CLIP, BCEObjective, Objective, balanced_pos_weight, class_pos_weight,
                         masked_bce_with_logits)
from .predict import Prediction, predict

__all__ = ["fit", "predict", "FitResult", "Prediction", "ArrayDataset", "BCEObjective", "Objective",
           "masked_bce_with_logits", "balanced_pos_weight", "class_pos_weight", "BALANCED_CLIP", "distributed",
           "Evaluator", "Evaluation", "ClassifierEvaluator", "LossEvaluator"]
