"""The base class of the class-activation-map methods: hooks inside a context manager.

A CAM method is a small subclass of :class:`BaseCAM` (see :mod:`chexradi.cam.methods`)
that implements one method, ``_raw_maps(x, classes)``: the ``(B, k, h, w)`` maps at the
resolution of the target layer. The base class owns everything else, as in
pytorch-grad-cam:

- resolving the target layer by its name in ``model.named_modules()``;
- the forward hook on that layer, registered on ``__enter__`` and removed on
  ``__exit__`` (also when the block raises), so that nothing outlives the ``with``
  block: no hook, no stored activation, no graph;
- eval mode while the context is open (batch norm uses its running statistics, dropout
  is off, so the images of a batch are independent), the previous train/eval flag of
  every module restored on exit;
- input checks, then upsampling of the raw maps to the image size (bilinear,
  ``align_corners=False``) and a min-max scaling of each (image, class) map to
  ``[0, 1]``; a constant map (a Grad-CAM map that the ReLU zeroed, say) becomes all
  zeros.

Usage::

    with GradCAM(model, target_layer="backbone.layer4") as cam:
        maps = cam(x)                    # (B, K, H, W) float32 in [0, 1], detached, on x.device
        maps = cam(x, classes=[0, 3])    # (B, 2, H, W)
        cam.logits                       # (B, num_classes) detached logits of the last call

The method registry ``METHODS`` and the one-call helper ``heatmaps`` live in
:mod:`chexradi.cam.methods` (they name the subclasses; keeping them out of this module
avoids an import cycle).
"""
from __future__ import annotations

import numbers
from types import TracebackType
from typing import Any, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

__all__ = ["BaseCAM", "scale_maps"]

#: A map whose range is at most this fraction of its largest magnitude counts as constant
#: (bilinear upsampling of a constant map may differ from it by a few float32 ulps).
CONSTANT_RTOL = 1e-6

Classes = Union[int, Sequence[int], None]


def scale_maps(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample raw maps to ``size`` and min-max scale each map to ``[0, 1]``.

    .. math::

        \\hat M = \\operatorname{up}(M), \\qquad
        S = \\frac{\\hat M - \\min \\hat M}{\\max \\hat M - \\min \\hat M}

    per (image, class) map, with ``up`` bilinear interpolation (``align_corners=False``).
    A map with ``max - min <= CONSTANT_RTOL * max(|min|, |max|)`` (in particular an
    all-zero map) becomes all zeros.

    Parameters
    ----------
    raw:
        ``(B, k, h, w)`` maps at feature resolution.
    size:
        ``(H, W)`` of the input images.

    Returns
    -------
    Tensor
        ``(B, k, H, W)`` float32 maps in ``[0, 1]``, detached.
    """
    raw = raw.detach()
    if raw.dtype in (torch.float16, torch.bfloat16):
        raw = raw.float()
    maps = F.interpolate(raw, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)
    lo = maps.amin(dim=(2, 3), keepdim=True)
    hi = maps.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    constant = span <= CONSTANT_RTOL * torch.maximum(lo.abs(), hi.abs())
    scaled = (maps - lo) / torch.where(constant, torch.ones_like(span), span)
    scaled = torch.where(constant, torch.zeros_like(scaled), scaled)
    return scaled if scaled.dtype == torch.float32 else scaled.float()


def _layer_suggestions(model: nn.Module, limit: int = 8) -> list[str]:
    """A few target-layer names worth suggesting: the backbone and its stages."""
    names = []
    for name, _ in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if last == "backbone" or last.startswith(("layer", "denseblock")):
            names.append(name)
    return names[:limit] or [n for n, _ in model.named_modules() if n][:limit]


class BaseCAM:
    """Base class of the CAM methods: a context manager that owns the hooks.

    Parameters
    ----------
    model:
        The classifier, e.g. a :class:`chexradi.nn.models.Classifier`: ``model(x)`` gives
        ``(B, num_classes)`` logits. ``model.in_chans`` (when present) is checked against
        the input, ``model.feature_layer`` is the default target layer.
    target_layer:
        Name of the layer whose output the maps are computed from, as in
        ``model.named_modules()`` (``"backbone"``, ``"backbone.layer4"``,
        ``"backbone.features.denseblock4"``, ...). Default: ``model.feature_layer``, the
        final feature map. Its output must be a ``(B, C, h, w)`` tensor. If the layer
        runs more than once per forward pass, its last call is used.

    Attributes
    ----------
    model, target_layer, target_module:
        The model, the resolved layer name and the module it names.

    Raises
    ------
    ValueError
        No ``target_layer`` given and the model has no ``feature_layer``, or the name is
        not a submodule of the model (the message lists a few valid names).

    Notes
    -----
    Not thread-safe: use one instance per thread. An instance may be entered again after
    it was exited, but not while it is open.
    """

    #: Whether ``_raw_maps`` differentiates through the target activation.
    requires_grad: bool = False

    def __init__(self, model: nn.Module, *, target_layer: Optional[str] = None) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if target_layer is None:
            target_layer = getattr(model, "feature_layer", None)
            if target_layer is None:
                raise ValueError(f"{type(model).__name__} has no feature_layer; pass target_layer=NAME, "
                                 f"one of model.named_modules(), e.g. {_layer_suggestions(model)}")
        if not isinstance(target_layer, str) or not target_layer:
            raise ValueError(f"target_layer must be a non-empty module name, got {target_layer!r}; "
                             f"valid names include {_layer_suggestions(model)}")
        try:
            module = model.get_submodule(target_layer)
        except AttributeError:
            raise ValueError(f"unknown target_layer {target_layer!r}: not a submodule of "
                             f"{type(model).__name__}; valid names include {_layer_suggestions(model)} "
                             f"(any name from model.named_modules())") from None
        self.model = model
        self.target_layer = target_layer
        self.target_module: nn.Module = module
        self._handles: list[RemovableHandle] = []
        self._modes: Optional[list[tuple[nn.Module, bool]]] = None
        self._active = False
        self._capturing = False
        self._activation: Optional[Tensor] = None
        self._logits: Optional[Tensor] = None

    # -- context manager ---------------------------------------------------------------

    def __enter__(self) -> "BaseCAM":
        if self._active:
            raise RuntimeError(f"this {type(self).__name__} is already open; use one `with` block at a time")
        self._modes = [(m, m.training) for m in self.model.modules()]
        try:
            self._handles.append(self.target_module.register_forward_hook(self._save_activation))
            self.model.eval()
        except BaseException:
            self._close()
            raise
        self._active = True
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._close()
        return None  # never suppress the exception

    def _close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._modes is not None:
            for module, mode in self._modes:
                module.training = mode
        self._modes = None
        self._activation = None
        self._capturing = False
        self._active = False

    # -- hooks -------------------------------------------------------------------------

    def _save_activation(self, module: nn.Module, inputs: Any, output: Any) -> Optional[Tensor]:
        """Forward hook: keep the target activation of this instance's own forward pass.

        For gradient methods the output is replaced by a differentiable leaf ``A`` (its
        history before the layer is not needed) and the rest of the network receives a
        clone of ``A``: later in-place operations (``relu(inplace=True)``, ``out +=
        identity``) then modify the clone, never ``A``, so ``A`` and ``d logit / d A``
        are those of the layer's output itself.
        """
        if not self._capturing:  # another forward pass of the model (or another CAM's)
            return None
        if not isinstance(output, Tensor) or output.dim() != 4:
            desc = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ValueError(f"target_layer {self.target_layer!r} must output a (B, C, h, w) feature map, "
                             f"got {desc}; pick a convolutional stage, e.g. {_layer_suggestions(self.model)}")
        if self.requires_grad and torch.is_grad_enabled():
            leaf = output.detach().requires_grad_(True)
            self._activation = leaf
            return leaf.clone()
        self._activation = output.detach()
        return None

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One forward pass of the model: ``(logits, activation of the target layer)``.

        The logits are stored (detached) in :attr:`logits`; the activation is handed to
        the caller and not kept on the instance.
        """
        self._require_active()
        self._capturing = True
        try:
            logits = self.model(x)
            activation = self._activation
        finally:
            self._capturing = False
            self._activation = None
        if activation is None:
            raise RuntimeError(f"target_layer {self.target_layer!r} did not run in the forward pass of "
                               f"{type(self.model).__name__}; pick a layer on the path from image to logits")
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
            desc = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"model(x) must return (B, num_classes) logits, got {desc}")
        self._logits = logits.detach()
        return logits, activation

    # -- checks ------------------------------------------------------------------------

    def _require_active(self) -> None:
        if not self._active:
            name = type(self).__name__
            raise RuntimeError(f"{name} registers hooks only inside a `with` block; use "
                               f"`with {name}(model) as cam: maps = cam(x)`")

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a torch.Tensor image batch, got {type(x).__name__}")
        in_chans = getattr(self.model, "in_chans", None)
        want = f"(B, {in_chans}, H, W)" if in_chans is not None else "(B, C, H, W)"
        if x.dim() != 4:
            raise ValueError(f"x must be an image batch of shape {want}, got shape {tuple(x.shape)}; "
                             f"add the batch dimension with x.unsqueeze(0)" if x.dim() == 3 else
                             f"x must be an image batch of shape {want}, got shape {tuple(x.shape)}")
        if in_chans is not None and x.shape[1] != in_chans:
            raise ValueError(f"x has {x.shape[1]} channel(s) but the model takes in_chans={in_chans}: "
                             f"expected shape {want}, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}; "
                             f"convert with x.float()")
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"x must hold at least one non-empty image, got shape {tuple(x.shape)}")

    def _num_classes(self) -> Optional[int]:
        n = getattr(self.model, "num_classes", None)
        return int(n) if isinstance(n, numbers.Integral) else None

    @staticmethod
    def _check_classes(classes: Classes, num_classes: int) -> list[int]:
        valid = f"integers in [0, {num_classes - 1}]"
        if classes is None:
            return list(range(num_classes))
        if isinstance(classes, Tensor):
            classes = classes.tolist()
        if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
            classes = [classes]
        if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
            raise ValueError(f"classes must be a sequence of {valid} or None (all classes), got {classes!r}")
        out = list(classes)
        if not out:
            raise ValueError(f"classes must not be empty: give {valid}, or None for all classes")
        for c in out:
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= int(c) < num_classes:
                raise ValueError(f"classes must be {valid} (the model has {num_classes} classes), got {c!r} "
                                 f"in {out!r}")
        return [int(c) for c in out]

    # -- the call ----------------------------------------------------------------------

    @property
    def logits(self) -> Optional[Tensor]:
        """``(B, num_classes)`` detached logits of the last call, ``None`` before the first."""
        return self._logits

    def __call__(self, x: Tensor, classes: Classes = None) -> Tensor:
        """Class activation maps of a batch, one per (image, requested class).

        Parameters
        ----------
        x:
            ``(B, in_chans, H, W)`` floating-point image batch, on the model's device.
        classes:
            Class indices (an int or a sequence of ints in ``[0, num_classes)``); default
            all classes in head order.

        Returns
        -------
        Tensor
            ``(B, k, H, W)`` float32 maps in ``[0, 1]`` (a constant map is all zeros),
            detached, on ``x.device``; ``k = len(classes)``, in the order given.

        Raises
        ------
        RuntimeError
            Called outside the ``with`` block.
        ValueError
            ``x`` is not a 4-D floating-point batch with ``model.in_chans`` channels;
            ``classes`` is empty or holds a non-integer or an index out of range; the
            target layer does not output a ``(B, C, h, w)`` map.
        """
        self._require_active()
        self._check_input(x)
        num_classes = self._num_classes()
        if num_classes is not None:
            wanted = self._check_classes(classes, num_classes)
        else:  # a model without num_classes: learn it from one forward pass
            with torch.no_grad():
                wanted = self._check_classes(classes, self._forward(x)[0].shape[1])
        raw = self._raw_maps(x, wanted)
        return scale_maps(raw, (x.shape[2], x.shape[3]))

    def _raw_maps(self, x: Tensor, classes: list[int]) -> Tensor:
        """``(B, len(classes), h, w)`` maps at the target layer's resolution (before scaling).

        Subclasses run one forward pass with :meth:`_forward` (which also records the
        logits) and combine the activation. Must be called inside the ``with`` block.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layer={self.target_layer!r}, active={self._active})"
