"""chexradi.cam.base / chexradi.cam.methods: CAM and Grad-CAM against direct computations.

The references below do not use the hooks: CAM is the einsum of the head weights with
``model.forward_features(x)``; Grad-CAM is rebuilt by running the backbone by hand, split
at the target layer, and differentiating with ``torch.autograd.grad``. Batch-norm running
statistics are randomised so that eval mode and train mode give different results.
"""
from __future__ import annotations

import gc
import tracemalloc
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chexradi.cam.base import BaseCAM
from chexradi.cam.methods import CAM, METHODS, GradCAM, GradCAMPlusPlus, heatmaps
from chexradi.names import CAM_METHODS
from chexradi.nn import create_model
from chexradi.nn.models import Classifier

SIZE = 64
K = 3


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _randomize_bn(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so eval != train mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


def make(name: str, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=K, in_chans=1)
    _randomize_bn(model)
    with torch.no_grad():
        model.head.bias.normal_(0.0, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def resnet() -> Classifier:
    return make("resnet18")


@pytest.fixture(scope="module")
def resnet_ta() -> Classifier:
    return make("resnet18_ta", seed=1)


@pytest.fixture(scope="module")
def densenet() -> Classifier:
    return make("densenet121", seed=2)


def images(b: int, seed: int = 0, size: int = SIZE, chans: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, chans, size, size, generator=g)


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", ())) for m in model.modules())


def ref_scale(raw: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample bilinearly and min-max scale each map, one map at a time; constant -> 0."""
    up = F.interpolate(raw, size=size, mode="bilinear", align_corners=False)
    out = torch.zeros_like(up)
    for b in range(up.shape[0]):
        for k in range(up.shape[1]):
            m = up[b, k]
            if m.max() > m.min():
                out[b, k] = (m - m.min()) / (m.max() - m.min())
    return out


def ref_cam(model: Classifier, x: Tensor, classes: list[int]) -> Tensor:
    with torch.no_grad():
        feats = model.forward_features(x)
        raw = torch.einsum("kc,bchw->bkhw", model.classifier_weight[classes], feats)
    return ref_scale(raw, x.shape[-2:])


def backbone_stages(model: Classifier) -> list[tuple[str, nn.Module]]:
    """The backbone as a flat list of (full name, module), in execution order."""
    if "features" in model.backbone._modules:  # DenseNet: features.* then relu
        return ([(f"backbone.features.{n}", m) for n, m in model.backbone.features.named_children()]
                + [("backbone.relu", model.backbone.relu)])
    return [(f"backbone.{n}", m) for n, m in model.backbone.named_children()]


def split_at(model: Classifier, x: Tensor, split: str) -> tuple[Tensor, Tensor]:
    """The activation ``A`` of stage ``split`` (or of the whole backbone), as a leaf requiring grad, and the
    logits computed from it with the rest of the network run by hand."""
    stages = backbone_stages(model)
    names = [n for n, _ in stages]
    cut = len(stages) if split == "backbone" else names.index(split) + 1
    with torch.no_grad():
        a = x
        for _, m in stages[:cut]:
            a = m(a)
    a = a.clone().requires_grad_(True)
    with torch.enable_grad():
        y = a
        for _, m in stages[cut:]:
            y = m(y)
        logits = model.head(model.embed_features(y))
    return a, logits


def ref_gradcam(model: Classifier, x: Tensor, classes: list[int], split: str) -> Tensor:
    """Grad-CAM by hand: A = output of stage ``split`` (or of the whole backbone)."""
    a, logits = split_at(model, x, split)
    raw = []
    for k in classes:
        (g,) = torch.autograd.grad(logits[:, k].sum(), a, retain_graph=True)
        alpha = g.mean(dim=(2, 3), keepdim=True)
        raw.append(torch.relu((alpha * a).sum(dim=1)))
    return ref_scale(torch.stack(raw, 1).detach(), x.shape[-2:])


def nonconstant(maps: Tensor) -> int:
    return int((maps.flatten(2).amax(-1) > maps.flatten(2).amin(-1)).sum())


# --- CAM -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet", "resnet_ta", "densenet"])
def test_cam_equals_head_weights_times_features(name: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(name)
    x = images(3, seed=1)
    with CAM(model) as cam:
        maps = cam(x)
        some = cam(x, classes=[2, 0])
    ref = ref_cam(model, x, [0, 1, 2])
    assert nonconstant(ref) == 3 * K
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(some, ref[:, [2, 0]], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["resnet", "resnet_ta", "densenet"])
def test_cam_raw_map_mean_plus_bias_is_the_logit(name: str, request: pytest.FixtureRequest) -> None:
    # Global average pooling is linear: mean_xy sum_c w_kc F_c + b_k = w_k . GAP(F) + b_k.
    model = request.getfixturevalue(name)
    x = images(2, seed=2)
    with CAM(model) as cam:
        raw = cam._raw_maps(x, [0, 1, 2])
        logits = cam.logits
    assert raw.shape[:2] == (2, K) and raw.shape[2:] != x.shape[2:]  # feature resolution
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(raw.mean(dim=(2, 3)) + model.head.bias, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits, expected)


def test_gradcam_at_the_final_layer_is_relu_cam_over_hw(resnet: Classifier) -> None:
    x = images(2, seed=3)
    with CAM(resnet) as cam:
        c = cam._raw_maps(x, [0, 1, 2])
    with GradCAM(resnet) as gcam:
        g = gcam._raw_maps(x, [0, 1, 2])
    hw = c.shape[2] * c.shape[3]
    torch.testing.assert_close(g, torch.relu(c) / hw, atol=1e-6, rtol=1e-4)


# --- Grad-CAM ------------------------------------------------------------------------


@pytest.mark.parametrize("name, split", [
    ("resnet", "backbone"), ("resnet", "backbone.layer4"), ("resnet", "backbone.layer3"),
    ("resnet_ta", "backbone.layer3"), ("densenet", "backbone.features.denseblock4"),
    ("densenet", "backbone"),
])
def test_gradcam_equals_autograd_on_a_split_backbone(name: str, split: str,
                                                     request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(name)
    x = images(3, seed=4)
    classes = [2, 0]
    target = None if split == "backbone" else split
    with GradCAM(model, target_layer=target) as cam:
        maps = cam(x, classes=classes)
    ref = ref_gradcam(model, x, classes, split)
    assert nonconstant(ref) >= 2, "the reference should not be all zero"
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)


def test_gradcam_layer_followed_by_inplace_ops(resnet: Classifier) -> None:
    # layer4[1].bn2's output is modified in place by `out += identity` and ReLU(inplace=True):
    # A and dlogit/dA must be those of bn2's own output.
    x = images(2, seed=5)
    with GradCAM(resnet, target_layer="backbone.layer4.1.bn2") as cam:
        maps = cam(x)
    bb, block = resnet.backbone, resnet.backbone.layer4[1]
    with torch.no_grad():
        inp = bb.layer4[0](bb.layer3(bb.layer2(bb.layer1(bb.maxpool(bb.relu(bb.bn1(bb.conv1(x))))))))
        a = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(inp)))))
    a.requires_grad_(True)
    with torch.enable_grad():
        logits = resnet.head(resnet.embed_features(torch.relu(a + inp)))
        raw = []
        for k in range(K):
            (g,) = torch.autograd.grad(logits[:, k].sum(), a, retain_graph=True)
            raw.append(torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1)))
    ref = ref_scale(torch.stack(raw, 1).detach(), x.shape[-2:])
    assert nonconstant(ref) >= 2
    torch.testing.assert_close(maps, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("grad_mode", ["no_grad", "inference_mode", "x_requires_grad"])
def test_gradcam_under_callers_grad_modes(resnet: Classifier, grad_mode: str) -> None:
    x = images(2, seed=6)
    with GradCAM(resnet, target_layer="backbone.layer3") as cam:
        expected = cam(x)
        if grad_mode == "no_grad":
            with torch.no_grad():
                got = cam(x)
        elif grad_mode == "inference_mode":
            with torch.inference_mode():
                got = cam(x.clone())
        else:
            xg = x.clone().requires_grad_(True)
            got = cam(xg)
            assert xg.grad is None
    assert not got.requires_grad
    torch.testing.assert_close(got, expected)


# --- both methods --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcampp"])
def test_batch_equals_images_one_at_a_time(method: str, resnet_ta: Classifier) -> None:
    x = images(3, seed=7)
    with METHODS[method](resnet_ta) as cam:
        batch = cam(x)
        logits = cam.logits
        for i in range(3):
            torch.testing.assert_close(cam(x[i:i + 1]), batch[i:i + 1], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(cam.logits, logits[i:i + 1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcampp"])
def test_output_logits_grads_and_modes(method: str) -> None:
    model = make("resnet18", seed=3).train()
    model.backbone.bn1.eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    x = images(4, seed=8)
    with torch.no_grad():
        train_logits = model(x)  # batch statistics
        eval_logits = model.eval()(x)
    for m, mode in zip(model.modules(), modes):
        m.training = mode
    before = hook_count(model)
    with METHODS[method](model) as cam:
        assert not model.training and not model.backbone.layer1[0].bn1.training
        assert hook_count(model) == before + 1
        maps = cam(x)
        assert cam._activation is None  # nothing of the batch is kept between calls
        torch.testing.assert_close(cam.logits, eval_logits)
        assert not torch.allclose(cam.logits, train_logits, atol=1e-3)
    assert [m.training for m in model.modules()] == modes
    assert hook_count(model) == before
    assert maps.shape == (4, K, SIZE, SIZE) and maps.dtype == torch.float32
    assert not maps.requires_grad and maps.grad_fn is None
    assert cam.logits is not None and not cam.logits.requires_grad
    assert all(p.grad is None for p in model.parameters())
    lo, hi = maps.flatten(2).amin(-1), maps.flatten(2).amax(-1)
    varying = hi > 0
    assert varying.sum() >= 2
    assert torch.all(lo == 0)
    assert torch.all(hi[varying] == 1)
    assert cam._activation is None and cam._modes is None and not cam._handles


def test_constant_maps_become_zero() -> None:
    # A zero head gives M_k = 0 everywhere (CAM) and zero gradients (Grad-CAM).
    model = make("resnet18", seed=4)
    with torch.no_grad():
        model.head.weight[1].zero_()
    x = images(2, seed=9)
    for method in METHODS.values():
        with method(model) as cam:
            maps = cam(x)
        assert torch.all(maps[:, 1] == 0)
        assert torch.all(maps[:, [0, 2]].flatten(2).amax(-1) == 1)


def test_heatmaps_helper(resnet: Classifier) -> None:
    x = images(2, seed=10)
    maps, logits = heatmaps(resnet, x, method="cam", classes=[1])
    torch.testing.assert_close(maps, ref_cam(resnet, x, [1]), atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        torch.testing.assert_close(logits, resnet(x))
    gmaps, _ = heatmaps(resnet, x, target_layer="backbone.layer3", classes=1)
    torch.testing.assert_close(gmaps, ref_gradcam(resnet, x, [1], "backbone.layer3"), atol=1e-5, rtol=1e-4)
    assert hook_count(resnet) == 0
    with pytest.raises(ValueError, match="unknown CAM method 'scorecam'.*gradcam"):
        heatmaps(resnet, x, method="scorecam")


def test_two_open_contexts_do_not_interfere(resnet: Classifier) -> None:
    x = images(2, seed=11)
    with GradCAM(resnet, target_layer="backbone.layer3") as g3:
        alone3 = g3(x)
    with GradCAM(resnet) as g:
        alone = g(x)
    # The hook of a context acts only during its own calls: g's hook, further down the
    # network, must not cut g3's graph nor keep g3's activations (and vice versa).
    with GradCAM(resnet, target_layer="backbone.layer3") as g3, GradCAM(resnet) as g, CAM(resnet) as c:
        assert hook_count(resnet) == 3
        torch.testing.assert_close(g3(x), alone3)
        assert g._activation is None and c._activation is None
        torch.testing.assert_close(g(x), alone)
        torch.testing.assert_close(c(x), ref_cam(resnet, x, [0, 1, 2]), atol=1e-5, rtol=1e-4)
    assert hook_count(resnet) == 0


# --- hooks and errors ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["cam", "gradcam"])
def test_hooks_removed_after_an_exception(method: str, resnet: Classifier) -> None:
    before = hook_count(resnet)
    with pytest.raises(KeyError):
        with METHODS[method](resnet) as cam:
            cam(images(2))
            raise KeyError("boom")
    assert hook_count(resnet) == before
    with pytest.raises(ValueError):
        with METHODS[method](resnet) as cam:
            cam(images(2), classes=[7])
    assert hook_count(resnet) == before
    assert not resnet.training
    assert cam._activation is None


def test_target_layer_output_must_be_a_feature_map(resnet: Classifier) -> None:
    with GradCAM(resnet, target_layer="head") as cam:
        with pytest.raises(ValueError, match=r"'head' must output a \(B, C, h, w\)"):
            cam(images(2))
    assert hook_count(resnet) == 0


def test_call_outside_with_is_an_error(resnet: Classifier) -> None:
    cam = GradCAM(resnet)
    with pytest.raises(RuntimeError, match=r"with GradCAM\(model\) as cam"):
        cam(images(1))
    with cam:
        cam(images(1))
        with pytest.raises(RuntimeError, match="already open"):
            cam.__enter__()
    with pytest.raises(RuntimeError, match="with GradCAM"):
        cam(images(1))
    with cam:  # may be opened again
        assert cam(images(1)).shape == (1, K, SIZE, SIZE)
    assert hook_count(resnet) == 0


@pytest.mark.parametrize("classes", [[], [3], [-1], [0.5], ["0"], "0", [True], [0, K]])
def test_bad_classes(classes: object, resnet: Classifier) -> None:
    with CAM(resnet) as cam:
        with pytest.raises(ValueError, match=r"classes .*\[0, 2\]"):
            cam(images(1), classes=classes)


def test_unknown_target_layer_names_it_and_suggests(resnet: Classifier) -> None:
    with pytest.raises(ValueError, match=r"unknown target_layer 'backbone.layer9'.*backbone.layer4"):
        GradCAM(resnet, target_layer="backbone.layer9")
    with pytest.raises(ValueError, match="target_layer"):
        GradCAM(resnet, target_layer="")


def test_cam_needs_the_final_feature_map(resnet: Classifier, densenet: Classifier) -> None:
    with pytest.raises(ValueError, match="use GradCAM"):
        CAM(resnet, target_layer="backbone.layer3")
    with pytest.raises(ValueError, match="use GradCAM"):
        CAM(densenet, target_layer="backbone.features.norm5")  # before the final ReLU
    assert CAM(resnet, target_layer="backbone").target_layer == "backbone"


@pytest.mark.parametrize("x, match", [
    (images(2, chans=3), r"3 channel\(s\).*in_chans=1"),
    (torch.randn(1, SIZE, SIZE), r"\(B, 1, H, W\).*unsqueeze"),
    (torch.zeros(1, 1, SIZE, SIZE, dtype=torch.uint8), "floating-point"),
])
def test_bad_input(x: Tensor, match: str, resnet: Classifier) -> None:
    for method in METHODS.values():
        with method(resnet) as cam:
            with pytest.raises(ValueError, match=match):
                cam(x)


def test_is_a_base_cam_registry() -> None:
    assert METHODS == {"cam": CAM, "gradcam": GradCAM, "gradcampp": GradCAMPlusPlus}
    assert all(issubclass(m, BaseCAM) for m in METHODS.values())
    assert set(METHODS) == set(CAM_METHODS)  # the torch-free names the CLI and settings accept


# --- Grad-CAM++ ----------------------------------------------------------------------


def ref_gradcampp(model: Classifier, x: Tensor, classes: list[int], split: str) -> Tensor:
    """Grad-CAM++ by hand: the split backbone's autograd gradient, then Chattopadhay et al.'s eq. 19
    weights computed position by position in float64 numpy."""
    a, logits = split_at(model, x, split)
    raw = np.zeros((x.shape[0], len(classes), a.shape[2], a.shape[3]))
    for j, k in enumerate(classes):
        (g,) = torch.autograd.grad(logits[:, k].sum(), a, retain_graph=True)
        g64, a64 = g.double().numpy(), a.detach().double().numpy()
        for b in range(g64.shape[0]):
            for c in range(g64.shape[1]):
                s = a64[b, c].sum()
                w = 0.0
                for i in range(g64.shape[2]):
                    for jj in range(g64.shape[3]):
                        gv = g64[b, c, i, jj]
                        den = 2 * gv ** 2 + s * gv ** 3
                        alpha = gv ** 2 / den if den != 0 else 0.0
                        w += alpha * max(gv, 0.0)
                raw[b, j] += w * a64[b, c]
    return ref_scale(torch.from_numpy(np.maximum(raw, 0.0)).float(), x.shape[-2:])


@pytest.mark.parametrize("name, split", [("resnet", "backbone.layer3"), ("resnet_ta", "backbone.layer4"),
                                         ("densenet", "backbone.features.denseblock4")])
def test_gradcampp_equals_the_formula_by_hand(name: str, split: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(name)
    x = images(2, seed=11)
    with GradCAMPlusPlus(model, target_layer=split) as cam:
        maps = cam(x, classes=[0, 2])
    ref = ref_gradcampp(model, x, [0, 2], split)
    assert nonconstant(ref) >= 2
    torch.testing.assert_close(maps, ref, atol=2e-4, rtol=1e-3)
    with GradCAM(model, target_layer=split) as gc_:
        assert not torch.allclose(gc_(x, classes=[0, 2]), maps, atol=1e-3)  # a method of its own


def test_gradcampp_at_the_final_map_of_a_gap_head(resnet: Classifier) -> None:
    # dy_k/dF_c(x, y) = w_kc / hw everywhere, so a = 1 / (2 + S_c w_kc / hw) and the weight of channel c
    # is hw * ReLU(w_kc / hw) / (2 + S_c w_kc / hw), with S_c the sum of F_c over the map
    x = images(2, seed=12)
    with GradCAMPlusPlus(resnet) as cam:
        maps = cam(x)
    with torch.no_grad():
        f = resnet.forward_features(x).double()
        hw = f.shape[2] * f.shape[3]
        g = resnet.classifier_weight.double()[None, :, :] / hw            # (1, K, C)
        s = f.sum(dim=(2, 3))[:, None, :]                                 # (B, 1, C)
        w = hw * torch.relu(g) / (2 + s * g)
        raw = torch.relu(torch.einsum("bkc,bchw->bkhw", w, f))
    torch.testing.assert_close(maps, ref_scale(raw.float(), x.shape[-2:]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("stride", [16, 8])
@pytest.mark.parametrize("arch", ["resnet18_ta", "densenet121"])
def test_every_method_at_a_finer_output_stride(arch: str, stride: int) -> None:
    torch.manual_seed(3)
    model = create_model(arch, num_classes=K, in_chans=1, output_stride=stride)
    _randomize_bn(model)
    model.eval()
    x = images(2, seed=13)
    assert model.forward_features(x).shape[-1] == SIZE // stride
    with CAM(model) as cam:
        torch.testing.assert_close(cam(x), ref_cam(model, x, list(range(K))), atol=1e-5, rtol=1e-4)
    with GradCAM(model) as cam:
        torch.testing.assert_close(cam(x), ref_gradcam(model, x, list(range(K)), "backbone"), atol=1e-5,
                                   rtol=1e-4)
    with GradCAMPlusPlus(model) as cam:
        maps = cam(x)
    assert maps.shape == (2, K, SIZE, SIZE) and nonconstant(maps) >= 2


# --- memory --------------------------------------------------------------------------

ITERATIONS = 300
# Python allocations that may grow over a whole loop of ITERATIONS calls. Keeping what a call
# returns (one more tensor and list entry per iteration, `kept.append(maps)`) grows
# tracemalloc's count by about 88 B per iteration: 26 KB over 300 iterations, 13 KB over the
# 150 that the test runs to show it. The code as written grew by 0.1-1.5 KB over 300 (lazy
# caches in torch; `Tensor.to(dtype)` alone leaks ~67 B per ~100 calls in torch 2.14, which
# is why base.py converts only when needed). The live-tensor count must not grow at all (it
# grows by one per iteration with `kept.append(maps)`).
MAX_GROWTH = 8 * 1024
LEAKY_ITERATIONS = 150


def _live_tensors() -> int:
    return sum(1 for o in gc.get_objects() if issubclass(type(o), Tensor))


def _growth(run: Callable[[], None]) -> tuple[int, int]:
    """(traced Python bytes, live tensors) gained by ``run()``, after a garbage collection."""
    gc.collect()
    bytes0, tensors0 = tracemalloc.get_traced_memory()[0], _live_tensors()
    run()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - bytes0, _live_tensors() - tensors0


def _fresh_contexts(model: Classifier, x: Tensor, n: int, kept: list | None = None) -> None:
    for _ in range(n):
        with GradCAM(model) as cam:
            maps = cam(x)
        if kept is not None:
            kept.append(maps)


def _one_context(model: Classifier, x: Tensor, n: int) -> None:
    with GradCAM(model, target_layer="backbone.layer3") as cam:
        for _ in range(n):
            cam(x, classes=[1])


@pytest.mark.slow
def test_memory_stays_flat_over_many_calls(record_property: Callable[[str, object], None]) -> None:
    model = make("resnet18", seed=5)
    x = images(2, size=32)
    hooks = hook_count(model)
    _fresh_contexts(model, x, 10)
    _one_context(model, x, 10)  # warm-up: lazy initialisation in torch
    tracemalloc.start()
    try:
        fresh = _growth(lambda: _fresh_contexts(model, x, ITERATIONS))
        same = _growth(lambda: _one_context(model, x, ITERATIONS))
        kept: list[Tensor] = []
        leaky = _growth(lambda: _fresh_contexts(model, x, LEAKY_ITERATIONS, kept))
    finally:
        tracemalloc.stop()
    record_property("python_bytes_growth_fresh_same_leaky", (fresh[0], same[0], leaky[0]))
    assert fresh[0] < MAX_GROWTH and fresh[1] == 0, fresh
    assert same[0] < MAX_GROWTH and same[1] == 0, same
    # the bound is one a real leak breaks:
    assert leaky[0] > MAX_GROWTH and leaky[1] == LEAKY_ITERATIONS, leaky
    assert hook_count(model) == hooks
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="needs a CUDA device (torch.cuda.is_available() is False)")
def test_cuda_memory_stays_flat() -> None:
    model = make("resnet18", seed=6).cuda()
    x = images(2, size=32).cuda()
    _fresh_contexts(model, x, 10)
    _one_context(model, x, 10)
    torch.cuda.synchronize()
    start = torch.cuda.memory_allocated()
    with GradCAM(model) as cam:
        maps = cam(x)
        assert maps.device == x.device and cam.logits is not None and cam.logits.device == x.device
    del maps, cam
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == start
    _fresh_contexts(model, x, ITERATIONS)
    _one_context(model, x, ITERATIONS)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == start
    kept: list[Tensor] = []
    _fresh_contexts(model, x, 20, kept)
    assert torch.cuda.memory_allocated() > start  # the measure sees a kept map
    del kept
    assert hook_count(model) == 0
