"""Chest X-ray classifiers: torchvision backbones, optional triplet attention, a multi-label head.

Built by name through the model registry (:mod:`chexradi.nn.registry`, as timm
does); every name of :data:`chexradi.names.MODEL_NAMES` is registered here, family
``"classifier"``::

    model = create_model("resnet50_ta", num_classes=14, in_chans=1)

``<arch>_ta`` inserts :class:`~chexradi.nn.attention.TripletAttention` where
Misra et al. put it in ResNets (on the residual branch, before the residual add,
in every block) and after every dense block of a DenseNet. ``<arch>`` (or
``attention=None``) is the plain backbone, for ablations.

Every model is a :class:`Classifier`: ``backbone`` maps an image batch to the
final feature map, global average pooling gives the embedding, and a linear
``head`` gives one logit per class (multi-label: a sigmoid per class, trained
with BCE). Nothing is downloaded: ImageNet weights are used only when the user
passes a local ``weights=PATH`` (a torchvision ``state_dict`` file).
"""
from __future__ import annotations

import functools
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet

from ..names import DENSENET_CONFIGS, MODEL_NAMES, OUTPUT_STRIDES, RESNET_LAYERS
from .attention import TripletAttention

__all__ = ["Classifier", "create_classifier", "class_indices", "ATTENTIONS", "OUTPUT_STRIDES", "CLASSIFIER"]

#: The registry family of the classifiers.
CLASSIFIER = "classifier"

#: Attention blocks by name (``None`` = plain backbone).
ATTENTIONS: dict[str, Callable[..., nn.Module]] = {"triplet": TripletAttention}


def _dilate(conv: nn.Conv2d, dilation: int) -> None:
    """Make a 3x3 convolution dilated in place: same weights, same output size at stride 1."""
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation, dilation)


class _BasicBlock(tv_resnet.BasicBlock):
    """torchvision's BasicBlock that also takes ``dilation`` (torchvision's refuses it): both 3x3
    convolutions are dilated, as in DeepLab's dilated ResNets. Built with ``dilation=1`` it is
    torchvision's block unchanged (the same modules, initialised from the same random draws)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[..., nn.Module]] = None) -> None:
        super().__init__(inplanes, planes, stride, downsample, groups, base_width, 1, norm_layer)
        if dilation > 1:
            _dilate(self.conv1, dilation)
            _dilate(self.conv2, dilation)


class _TABasicBlock(_BasicBlock):
    """The BasicBlock with attention on the residual branch, before the add."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attention = _block_attention(self.bn2.num_features)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attention(self.bn2(self.conv2(out)))
        return self.relu(out + identity)


class _TABottleneck(tv_resnet.Bottleneck):
    """torchvision's Bottleneck with attention on the residual branch, before the add."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attention = _block_attention(self.bn3.num_features)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attention(self.bn3(self.conv3(out)))
        return self.relu(out + identity)


# The attention factory used while torchvision builds the blocks (set by _build_resnet).
_ATTENTION_FACTORY: list[Callable[[int], nn.Module]] = []


def _make_attention(block: Callable[..., nn.Module], channels: int, *, kernel_size: int) -> nn.Module:
    return block(channels, kernel_size=kernel_size)


def _block_attention(channels: int) -> nn.Module:
    return _ATTENTION_FACTORY[-1](channels)


_BLOCKS = {"basic": (_BasicBlock, _TABasicBlock), "bottleneck": (tv_resnet.Bottleneck, _TABottleneck)}
_RESNETS = {name: (*_BLOCKS[kind], list(layers)) for name, (kind, layers) in RESNET_LAYERS.items()}
_DENSENETS = DENSENET_CONFIGS


def _dilation_plan(output_stride: int) -> list[bool]:
    """Which of the last three stages keep their resolution (stride 1, dilated) for ``output_stride``:
    torchvision's ``replace_stride_with_dilation`` for ResNets (stages 2-4), the same for DenseNets
    (the pools of transitions 2 and 3)."""
    return {32: [False, False, False], 16: [False, False, True], 8: [False, True, True]}[output_stride]


def _stem_conv(old: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    return nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)


def _build_resnet(arch: str, attention: Optional[Callable[[int], nn.Module]], in_chans: int,
                  output_stride: int = 32) -> tuple[nn.Module, int]:
    plain, with_att, layers = _RESNETS[arch]
    dilate = _dilation_plan(output_stride)
    if attention is None:
        net = tv_resnet.ResNet(plain, layers, replace_stride_with_dilation=dilate)
    else:
        _ATTENTION_FACTORY.append(attention)
        try:
            net = tv_resnet.ResNet(with_att, layers, replace_stride_with_dilation=dilate)
        finally:
            _ATTENTION_FACTORY.pop()
    net.conv1 = _stem_conv(net.conv1, in_chans)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    body = nn.Sequential(OrderedDict(
        (name, getattr(net, name))
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    ))
    return body, net.fc.in_features


def _build_densenet(arch: str, attention: Optional[Callable[[int], nn.Module]], in_chans: int,
                    output_stride: int = 32) -> tuple[nn.Module, int]:
    growth, blocks, init = _DENSENETS[arch]
    net = tv_densenet.DenseNet(growth_rate=growth, block_config=blocks, num_init_features=init)
    # output stride 16 / 8: the average pool of transition 3 (and 2) goes, and every 3x3 convolution of the
    # dense blocks after it is dilated by the resolution kept (2, then 4), as in DeepLab's dilated backbones
    keep = _dilation_plan(output_stride)[1:]  # transitions 2 and 3
    dilation = 1
    feats = OrderedDict()
    for name, module in net.features.named_children():
        if name == "conv0":
            module = _stem_conv(module, in_chans)
            nn.init.kaiming_normal_(module.weight)
        if name in ("transition2", "transition3") and keep[int(name[-1]) - 2]:
            module.pool = nn.Identity()
            dilation *= 2
        if name.startswith("denseblock") and dilation > 1:
            for layer in module.children():
                _dilate(layer.conv2, dilation)
        feats[name] = module
        if attention is not None and name.startswith("denseblock"):
            channels = _densenet_channels(init, growth, blocks, int(name[len("denseblock"):]))
            feats["attention" + name[len("denseblock"):]] = attention(channels)
    body = nn.Sequential(OrderedDict([("features", nn.Sequential(feats)), ("relu", nn.ReLU(inplace=False))]))
    return body, net.classifier.in_features


def _densenet_channels(init: int, growth: int, blocks: Sequence[int], k: int) -> int:
    """Channels after dense block ``k`` (1-based): each transition halves them."""
    c = init
    for i in range(k):
        c = c + blocks[i] * growth
        if i < k - 1:
            c //= 2
    return c


class Classifier(nn.Module):
    """A multi-label chest X-ray classifier: ``backbone -> global average pool -> dropout -> linear``.

    Attributes
    ----------
    backbone:
        Image batch ``(B, in_chans, H, W)`` -> final feature map ``(B, C, h, w)``.
        Its registered name, ``feature_layer == "backbone"``, is the default
        Grad-CAM target layer.
    head:
        ``nn.Linear(C, num_classes)``; ``head.weight`` are the CAM weights.
    config:
        Everything :func:`create_classifier` needs to rebuild the model (saved in checkpoints).
    """

    feature_layer = "backbone"

    def __init__(self, backbone: nn.Module, num_features: int, *, config: dict[str, Any],
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, int(config["num_classes"]))
        self.num_features = num_features
        self.config = dict(config)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def in_chans(self) -> int:
        return int(self.config["in_chans"])

    @property
    def class_names(self) -> list[str]:
        return list(self.config["class_names"])

    @property
    def classifier_weight(self) -> Tensor:
        """The ``(num_classes, C)`` head weights that CAM multiplies with the feature map."""
        return self.head.weight

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature map ``(B, C, h, w)``."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected an image batch of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}; "
                f"grey radiographs go in as one channel (in_chans=1)")
        return self.backbone(x)

    def embed_features(self, features: Tensor) -> Tensor:
        """Global average pool of a feature map: the ``(B, C)`` embedding."""
        return torch.flatten(self.pool(features), 1)

    def forward_head(self, embedding: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` from the embedding (apply a sigmoid for probabilities)."""
        return self.head(self.dropout(embedding))

    def embed(self, x: Tensor) -> Tensor:
        """The ``(B, C)`` image embedding used for guidance."""
        return self.embed_features(self.forward_features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.embed(x))


def _parse_name(name: str) -> tuple[str, Optional[str]]:
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise ValueError(f"unknown classifier {name!r}; known: {', '.join(MODEL_NAMES)}")
    if name.endswith("_ta"):
        return name[: -len("_ta")], "triplet"
    return name, None


_UNSET: Any = object()


def create_classifier(
    name: str,
    *,
    num_classes: int = 14,
    in_chans: int = 1,
    attention: Union[str, None] = _UNSET,
    kernel_size: int = 7,
    class_names: Optional[Sequence[str]] = None,
    drop_rate: float = 0.0,
    weights: Union[str, Path, None] = None,
    output_stride: int = 32,
) -> Classifier:
    """Build a classifier by name (what :func:`chexradi.nn.create_model` calls for a classifier's name).

    Parameters
    ----------
    name:
        One of :data:`chexradi.names.MODEL_NAMES` (``list_models("classifier")``), e.g. ``"resnet50_ta"``, ``"densenet121"``.
    num_classes:
        Number of labels (14 for ChestX-ray14); ``class_names`` must have as many.
    in_chans:
        Image channels: 1 for grey radiographs (the image is not tripled).
    attention:
        ``"triplet"`` or ``None``; overrides what the name says (``resnet50_ta`` with
        ``attention=None`` is the plain ResNet-50, for ablations).
    kernel_size:
        Kernel of the triplet-attention convolutions.
    class_names:
        Label names, in head order; defaults to ``class_0 ... class_{K-1}``.
    drop_rate:
        Dropout before the head.
    weights:
        Path to a local torchvision ``state_dict`` of the same backbone (e.g. ImageNet
        weights). The stem convolution is adapted to ``in_chans`` (summed over RGB
        for one channel); attention blocks and the head start from scratch.
    output_stride:
        Input side over the final feature map's side: 32 (the backbone as published),
        16 or 8. Below 32 the last stage (16) or the last two stages (8) keep their
        resolution and dilate their 3x3 convolutions instead (torchvision's
        ``replace_stride_with_dilation`` for ResNets; for DenseNets the average pool of
        transition 3 (and 2) is removed and the later dense blocks are dilated), so a
        224-px input gives a 14x14 (16) or 28x28 (8) map for CAM instead of 7x7. The
        weights keep their shapes, so local ImageNet weights load at every stride.
        Recorded in ``config`` (and so in checkpoints).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones), unknown attention, bad
        sizes, an output stride not in :data:`OUTPUT_STRIDES`, class names that do
        not match ``num_classes``, or a weights file that is not a state dict of this
        backbone.
    FileNotFoundError
        ``weights`` does not exist.
    """
    arch, att_name = _parse_name(name)
    if attention is not _UNSET:
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; use one of {sorted(ATTENTIONS)} or None")
        att_name = attention
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be a positive integer (1 for grey radiographs), got {in_chans!r}")
    if not 0.0 <= float(drop_rate) < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    if isinstance(output_stride, bool) or output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {', '.join(map(str, OUTPUT_STRIDES))} (input side over "
                         f"the final feature map's side), got {output_stride!r}")
    if class_names is None:
        class_names = [f"class_{i}" for i in range(num_classes)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names but num_classes is {num_classes}; "
                         f"give one name per class")

    factory: Optional[Callable[[int], nn.Module]] = None
    if att_name is not None:
        block = ATTENTIONS[att_name]
        factory = functools.partial(_make_attention, block, kernel_size=kernel_size)

    if arch in _RESNETS:
        body, nf = _build_resnet(arch, factory, in_chans, int(output_stride))
    else:
        body, nf = _build_densenet(arch, factory, in_chans, int(output_stride))
    config = {
        "name": arch + ("_ta" if att_name == "triplet" else ""),
        "arch": arch,
        "attention": att_name,
        "kernel_size": kernel_size,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "class_names": class_names,
        "drop_rate": float(drop_rate),
        "output_stride": int(output_stride),
    }
    model = Classifier(body, nf, config=config, drop_rate=float(drop_rate))
    if weights is not None:
        load_backbone_weights(model, weights)
    return model


def _classifier_from_config(config: dict[str, Any]) -> Classifier:
    """Rebuild a classifier from the ``config`` its checkpoint holds (fresh weights)."""
    return create_classifier(config["name"], num_classes=config["num_classes"], in_chans=config["in_chans"],
                             attention=config.get("attention"), kernel_size=config.get("kernel_size", 7),
                             class_names=config.get("class_names"), drop_rate=config.get("drop_rate", 0.0),
                             output_stride=config.get("output_stride", 32))


def _register_classifiers() -> None:
    from .registry import register_model

    def factory_of(name: str) -> Callable[..., Classifier]:
        def factory(**kwargs: Any) -> Classifier:
            return create_classifier(name, **kwargs)

        factory.__qualname__ = factory.__name__ = name
        factory.__doc__ = f"The {name} classifier: create_classifier({name!r}, **kwargs)."
        return factory

    for name in MODEL_NAMES:
        register_model(name, family=CLASSIFIER, from_config=_classifier_from_config,
                       description="torchvision backbone" + (" with triplet attention" if name.endswith("_ta")
                                                             else "") + ", multi-label head")(factory_of(name))


_register_classifiers()


_DENSE_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def load_backbone_weights(model: Classifier, path: Union[str, Path]) -> None:
    """Load a local torchvision ``state_dict`` (e.g. ImageNet weights) into ``model.backbone``.

    The torchvision classifier (``fc`` / ``classifier``) is dropped; the stem is
    adapted to ``model.in_chans``; attention blocks keep their fresh initialisation.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        The file is not a state dict, or its keys or shapes are not those of this backbone.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p} (pass weights=PATH to a local torchvision "
                                f"state_dict, or weights=None to start from scratch)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"cannot read weights file {p}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights file {p} does not hold a state_dict of tensors")
    arch = model.config["arch"]
    mapped: dict[str, Tensor] = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key.startswith(("fc.", "classifier.")):
            continue
        m = _DENSE_OLD_KEY.match(key)
        if m:
            key = m.group(1) + m.group(2)
        mapped["backbone." + key] = value
    stem = "backbone.conv1.weight" if arch in _RESNETS else "backbone.features.conv0.weight"
    if stem in mapped:
        mapped[stem] = _adapt_stem(mapped[stem], model.in_chans)
    own = model.state_dict()
    unexpected = sorted(k for k in mapped if k not in own)
    wrong = sorted(k for k in mapped if k in own and own[k].shape != mapped[k].shape)
    if unexpected or wrong or not mapped:
        detail = (f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}" if unexpected
                  else f"shape mismatch in {wrong[:3]}" if wrong else "no backbone keys")
        raise ValueError(f"weights file {p} is not a torchvision {arch} state_dict ({detail}); "
                         f"pass the weights of the same architecture")
    missing = [k for k in own if k.startswith("backbone.") and k not in mapped
               and ".attention" not in k and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"weights file {p} lacks {len(missing)} {arch} key(s), e.g. {missing[:3]}")
    model.load_state_dict(mapped, strict=False)


def _adapt_stem(weight: Tensor, in_chans: int) -> Tensor:
    """RGB stem weights for ``in_chans`` inputs: summed for 1, tiled and rescaled otherwise."""
    have = weight.shape[1]
    if have == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // have)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (have / in_chans)


def class_indices(model: nn.Module, classes: Any) -> list[int]:
    """Head indices of ``classes``: class names (``model.class_names``) or indices, in the order given.

    Raises
    ------
    ValueError
        Empty, an unknown name (the message lists the model's classes), an index out of range.
    """
    k = getattr(model, "num_classes", None)
    names = list(getattr(model, "class_names", []) or [])
    if isinstance(classes, (str, int, np.integer)):
        classes = [classes]
    if not isinstance(classes, Sequence) or len(classes) == 0:
        raise ValueError(f"classes must be a non-empty list of class indices or names, got {classes!r}")
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"unknown class name {c!r} in classes; the model's classes are {', '.join(names)}")
            out.append(names.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if k is not None and not 0 <= int(c) < k:
                raise ValueError(f"class index {c} in classes is out of range; the model has {k} classes "
                                 f"(0 .. {k - 1})")
            out.append(int(c))
        else:
            raise ValueError(f"classes must hold class indices or names, got {c!r}")
    return out
