"""Class activation map methods over :class:`~chexradi.cam.base.BaseCAM`, and a one-call helper.

Each method is one small class that computes the raw ``(B, k, h, w)`` maps of a batch
from a single forward pass; the base class upsamples them to the image size and scales
each to ``[0, 1]``.

- :class:`CAM` (Zhou et al., CVPR 2016): the head weights times the final feature map.
- :class:`GradCAM` (Selvaraju et al., ICCV 2017): gradient-weighted activations of any
  convolutional layer.
- :class:`GradCAMPlusPlus` (Chattopadhay et al., WACV 2018): Grad-CAM with pixel-wise
  weights on the positive gradients, which spreads the map over several instances of a
  class and over the whole extent of one.

``METHODS`` maps method names to classes, and :func:`heatmaps` opens the context for one
batch. Both live here, not in :mod:`chexradi.cam.base`, because they name the subclasses
(``base`` imports nothing from this module, so there is no import cycle). A new method is
a subclass implementing ``_raw_maps`` plus an entry in ``METHODS``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from .base import BaseCAM, Classes

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "METHODS", "heatmaps"]


class CAM(BaseCAM):
    """Class activation maps (Zhou et al., "Learning Deep Features for Discriminative
    Localization", CVPR 2016).

    For a model ``logit_k = b_k + sum_c w_kc * mean_xy F_c(x, y)`` (final feature map
    ``F``, global average pooling, linear head with weights ``w = model.classifier_weight``
    and bias ``b``), the map of class ``k`` is

    .. math::

        M_k(x, y) = \\sum_c w_{kc} F_c(x, y),

    so that ``mean_xy M_k + b_k = logit_k`` in eval mode: the map splits the logit over
    the positions. ``F`` is captured by a forward hook and the logits come from the same
    single forward pass, run under :func:`torch.no_grad`.

    Parameters
    ----------
    model:
        A classifier with ``feature_layer`` (the name of the final feature map that feeds
        the global-average-pool head) and ``classifier_weight`` (the ``(K, C)`` head
        weights), e.g. :class:`chexradi.nn.models.Classifier`.
    target_layer:
        Must name ``model.feature_layer`` (the default); CAM is defined there only.

    Raises
    ------
    ValueError
        The model lacks ``feature_layer`` or ``classifier_weight``; ``target_layer`` is
        unknown or is not the final feature map (use :class:`GradCAM` for other layers);
        at call time, the head weights do not match the feature channels.
    """

    def __init__(self, model: nn.Module, *, target_layer: Optional[str] = None) -> None:
        feature_layer = getattr(model, "feature_layer", None)
        if feature_layer is None or not isinstance(getattr(model, "classifier_weight", None), Tensor):
            raise ValueError(f"CAM needs a model with a global-average-pool linear head: "
                             f"{type(model).__name__} lacks feature_layer or classifier_weight; "
                             f"use GradCAM instead")
        super().__init__(model, target_layer=target_layer)
        if self.target_module is not model.get_submodule(feature_layer):
            raise ValueError(f"CAM is defined only on the final feature map that feeds the "
                             f"global-average-pool head (target_layer={feature_layer!r}), got "
                             f"target_layer={self.target_layer!r}; use GradCAM for other layers")

    def _raw_maps(self, x: Tensor, classes: list[int]) -> Tensor:
        with torch.no_grad():
            _, features = self._forward(x)
            weight = self.model.classifier_weight
            if weight.dim() != 2 or weight.shape[1] != features.shape[1]:
                raise ValueError(f"classifier_weight has shape {tuple(weight.shape)} but the feature "
                                 f"map {self.target_layer!r} has {features.shape[1]} channels; CAM "
                                 f"needs a (K, C) head over the pooled final feature map")
            w = weight[classes]
            if w.dtype != features.dtype:
                w = w.type(features.dtype)
            return torch.einsum("kc,bchw->bkhw", w, features)


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
    Gradient-based Localization", ICCV 2017).

    With ``A`` the ``(C, h, w)`` activation of the target layer and ``y_k`` the logit of
    class ``k``:

    .. math::

        \\alpha_{kc} = \\frac{1}{hw} \\sum_{x,y} \\frac{\\partial y_k}{\\partial A_c(x, y)},
        \\qquad
        M_k = \\operatorname{ReLU}\\Big(\\sum_c \\alpha_{kc} A_c\\Big).

    A batch takes one forward pass with gradients enabled (also when the caller is under
    :func:`torch.no_grad` or :func:`torch.inference_mode`), then one
    :func:`torch.autograd.grad` of ``y[:, k].sum()`` with respect to ``A`` per requested
    class. In eval mode the images of a batch do not interact, so the gradient of the sum
    is each image's own gradient. Gradients are taken with respect to ``A`` only:
    ``.grad`` of the model parameters (and of ``x``) is never touched.

    The forward hook hands the rest of the network a clone of ``A``, so in-place
    operations after the layer (``ReLU(inplace=True)``, the residual ``out += identity``
    of torchvision's ResNet blocks) cannot alter ``A`` or its gradient. (A module
    backward hook, ``register_full_backward_hook``, fails on such in-place operations.)

    Parameters
    ----------
    model:
        The classifier; ``model(x)`` gives ``(B, num_classes)`` logits.
    target_layer:
        Any layer with a ``(B, C, h, w)`` output on the path to the logits, e.g.
        ``"backbone.layer4"``; default ``model.feature_layer``, the final feature map
        (for that layer and a GAP-linear head, Grad-CAM equals ReLU(CAM) up to the
        positive factor ``1 / hw``).

    Raises
    ------
    ValueError
        Unknown ``target_layer`` (see :class:`~chexradi.cam.base.BaseCAM`).
    RuntimeError
        At call time, the logits do not depend on the target layer.
    """

    requires_grad = True

    def _raw_maps(self, x: Tensor, classes: list[int]) -> Tensor:
        with torch.inference_mode(False), torch.enable_grad():
            if x.is_inference():  # made under inference_mode: autograd cannot record it
                x = x.clone()
            logits, act = self._forward(x)
            if not logits.requires_grad:
                raise RuntimeError(self._unused_message())
            maps = []
            for i, k in enumerate(classes):
                (grad,) = torch.autograd.grad(logits[:, k].sum(), act, retain_graph=i < len(classes) - 1,
                                              allow_unused=True)
                if grad is None:
                    raise RuntimeError(self._unused_message())
                maps.append(self._combine(grad, act.detach()))
            return torch.stack(maps, dim=1)

    @staticmethod
    def _combine(grad: Tensor, act: Tensor) -> Tensor:
        """The ``(B, h, w)`` map of one class from dy/dA and A (both ``(B, C, h, w)``)."""
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        return torch.relu((alpha * act).sum(dim=1))

    def _unused_message(self) -> str:
        return (f"the logits of {type(self.model).__name__} do not depend on target_layer "
                f"{self.target_layer!r}; pick a layer on the path from image to logits")


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based Visual
    Explanations for Deep Convolutional Networks", WACV 2018).

    With ``A`` the ``(C, h, w)`` activation of the target layer, ``y_k`` the logit of
    class ``k`` and ``g = dy_k / dA``, the paper's weights for ``Y_k = exp(y_k)`` (whose
    higher derivatives are powers of ``g``, their eq. 19) are

    .. math::

        a_{kc}(x, y) = \\frac{g_c(x, y)^2}
            {2 g_c(x, y)^2 + \\sum_{x', y'} A_c(x', y') \\, g_c(x, y)^3},
        \\qquad
        w_{kc} = \\sum_{x, y} a_{kc}(x, y) \\operatorname{ReLU}(g_c(x, y)),

    with ``a = 0`` where the denominator is 0 (``g = 0``: the ratio is 0/0 there), and the map is
    ``M_k = ReLU(sum_c w_kc A_c)``. The gradients, hooks and modes are those of
    :class:`GradCAM`; only how a class's gradient and activation are combined differs.
    Where a feature map's gradient is the same at every position (the final map of a
    global-average-pool head), ``w_kc`` is a positive multiple of ``ReLU(g_c)`` and the
    map differs from Grad-CAM's in that negative-gradient channels drop out.
    """

    @staticmethod
    def _combine(grad: Tensor, act: Tensor) -> Tensor:
        g2 = grad * grad
        denom = 2.0 * g2 + act.sum(dim=(2, 3), keepdim=True) * g2 * grad
        defined = denom != 0  # 0 exactly where g = 0 (or where the two terms cancel): a = 0 there
        a = torch.where(defined, g2 / torch.where(defined, denom, torch.ones_like(denom)), torch.zeros_like(g2))
        w = (a * torch.relu(grad)).sum(dim=(2, 3), keepdim=True)
        return torch.relu((w * act).sum(dim=1))


#: CAM methods by name, for :func:`heatmaps` (the names, torch-free, are :data:`chexradi.names.CAM_METHODS`).
METHODS: dict[str, type[BaseCAM]] = {"cam": CAM, "gradcam": GradCAM, "gradcampp": GradCAMPlusPlus}


def heatmaps(model: nn.Module, x: Tensor, *, method: str = "gradcam", classes: Classes = None,
             target_layer: Optional[str] = None) -> tuple[Tensor, Tensor]:
    """Class activation maps and logits of one batch, with hooks removed on return.

    Equivalent to::

        with METHODS[method](model, target_layer=target_layer) as cam:
            return cam(x, classes), cam.logits

    Parameters
    ----------
    model:
        The classifier (see :class:`~chexradi.cam.base.BaseCAM`).
    x:
        ``(B, in_chans, H, W)`` image batch.
    method:
        A key of :data:`METHODS`: ``"gradcam"`` (default), ``"cam"`` or ``"gradcampp"``
        (Grad-CAM++).
    classes:
        Class indices; default all classes.
    target_layer:
        Layer name; default ``model.feature_layer``.

    Returns
    -------
    maps : Tensor
        ``(B, k, H, W)`` float32 maps in ``[0, 1]``, detached.
    logits : Tensor
        ``(B, num_classes)`` detached logits from the same forward pass (eval mode).

    Raises
    ------
    ValueError
        Unknown ``method`` (the message lists :data:`METHODS`), or any input error of the
        method (bad ``x``, ``classes`` or ``target_layer``).
    """
    try:
        cls = METHODS[method]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CAM method {method!r}; use one of {sorted(METHODS)}") from None
    with cls(model, target_layer=target_layer) as cam:
        maps = cam(x, classes)
        logits = cam.logits
    assert logits is not None
    return maps, logits
