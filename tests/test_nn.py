"""chexradi.nn: triplet attention against hand computations, the model registry, weights, checkpoints."""
from __future__ import annotations

import socket

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import chexradi
from chexradi.nn import (TripletAttention, create_model, list_models, load_model, read_checkpoint,
                         save_checkpoint)
from chexradi.nn.checkpoint import FORMAT

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def n_attention(model: nn.Module) -> int:
    return sum(isinstance(m, TripletAttention) for m in model.modules())


def randomize_gate(gate: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial conv weights, BN running statistics and BN affine parameters."""
    with torch.no_grad():
        gate.conv.weight.copy_(torch.randn(gate.conv.weight.shape, generator=gen))
        gate.bn.running_mean.copy_(torch.randn(1, generator=gen))
        gate.bn.running_var.copy_(0.5 + torch.rand(1, generator=gen) * 2)
        gate.bn.weight.copy_(torch.randn(1, generator=gen) * 2)
        gate.bn.bias.copy_(torch.randn(1, generator=gen))


def hand_gate(planes: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    """sigmoid(BN_eval(conv(planes))) for a (B, 2, P, Q) stack of [max, mean] planes -> (B, P, Q)."""
    w = gate.conv.weight
    k = w.shape[-1]
    y = F.conv2d(planes, w, padding=k // 2)
    bn = gate.bn
    y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    return torch.sigmoid(y)[:, 0]


def hand_cw(x: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    """C-W branch: pool over H, gate on the (C, W) plane, broadcast over H."""
    planes = torch.stack([x.amax(dim=2), x.mean(dim=2)], dim=1)  # (B, 2, C, W)
    g = hand_gate(planes, gate)  # (B, C, W)
    return x * g[:, :, None, :]


def hand_hc(x: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    """H-C branch: pool over W, gate on the (H, C) plane, broadcast over W."""
    planes = torch.stack([x.amax(dim=3).transpose(1, 2), x.mean(dim=3).transpose(1, 2)], dim=1)  # (B,2,H,C)
    g = hand_gate(planes, gate)  # (B, H, C)
    return x * g.transpose(1, 2)[:, :, :, None]


def hand_hw(x: torch.Tensor, gate: nn.Module) -> torch.Tensor:
    """H-W (spatial) branch: pool over C, gate on the (H, W) plane, broadcast over C."""
    planes = torch.stack([x.amax(dim=1), x.mean(dim=1)], dim=1)  # (B, 2, H, W)
    g = hand_gate(planes, gate)  # (B, H, W)
    return x * g[:, None, :, :]


@pytest.fixture(scope="module")
def resnet18_ta():
    torch.manual_seed(0)
    return create_model("resnet18_ta", num_classes=3, in_chans=1).eval()


@pytest.fixture(scope="module")
def resnet50_ta():
    torch.manual_seed(0)
    return create_model("resnet50_ta", num_classes=3, in_chans=1).eval()


@pytest.fixture(scope="module")
def densenet121_ta():
    torch.manual_seed(0)
    return create_model("densenet121_ta", num_classes=3, in_chans=1).eval()


# ---------------------------------------------------------------------------------------------
# TripletAttention
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 4, 5), (2, 8, 16, 16), (3, 7, 5, 11), (1, 16, 9, 2)])
@pytest.mark.parametrize("no_spatial", [False, True])
def test_triplet_shape_preserved(shape, no_spatial):
    torch.manual_seed(1)
    att = TripletAttention(shape[1], no_spatial=no_spatial).eval()
    x = torch.randn(shape)
    out = att(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()
    assert all(b.shape == x.shape for b in att.branches(x))


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_triplet_branches_equal_hand_computation(kernel_size):
    gen = torch.Generator().manual_seed(123)
    att = TripletAttention(3, kernel_size=kernel_size)
    for gate in (att.cw, att.hc, att.hw):
        randomize_gate(gate, gen)
    att.eval()
    x = torch.randn(2, 3, 4, 5, generator=gen)
    with torch.no_grad():
        cw, hc, hw = att.branches(x)
        want_cw, want_hc, want_hw = hand_cw(x, att.cw), hand_hc(x, att.hc), hand_hw(x, att.hw)
        out = att(x)
    torch.testing.assert_close(cw, want_cw, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hc, want_hc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hw, want_hw, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, (want_cw + want_hc + want_hw) / 3, rtol=1e-5, atol=1e-6)
    # The three branches really differ, so a swapped rotation would be caught.
    assert not torch.allclose(want_cw, want_hc, atol=1e-3)
    assert not torch.allclose(want_cw, want_hw, atol=1e-3)
    assert not torch.allclose(want_hc, want_hw, atol=1e-3)
    # and the H-C gate is not the transposed-plane one (kernel orientation matters).
    planes_ch = torch.stack([x.amax(dim=3), x.mean(dim=3)], dim=1)  # (B, 2, C, H): wrong orientation
    wrong = x * hand_gate(planes_ch, att.hc)[:, :, :, None]
    assert not torch.allclose(hc, wrong, atol=1e-3)


def test_triplet_no_spatial_is_mean_of_two():
    gen = torch.Generator().manual_seed(7)
    att = TripletAttention(3, kernel_size=5, no_spatial=True)
    assert att.hw is None
    for gate in (att.cw, att.hc):
        randomize_gate(gate, gen)
    att.eval()
    x = torch.randn(2, 3, 6, 4, generator=gen)
    with torch.no_grad():
        branches = att.branches(x)
        out = att(x)
    assert len(branches) == 2
    want = (hand_cw(x, att.cw) + hand_hc(x, att.hc)) / 2
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)


def test_zpool_order_is_max_then_mean():
    from chexradi.nn import ZPool

    x = torch.tensor([[[[1.0]], [[5.0]], [[0.0]]]])  # (1, 3, 1, 1)
    z = ZPool()(x)
    assert z.shape == (1, 2, 1, 1)
    assert z.flatten().tolist() == [5.0, 2.0]


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_triplet_parameter_count(k):
    assert n_params(TripletAttention(kernel_size=k)) == 3 * (2 * k * k) + 6
    assert n_params(TripletAttention(kernel_size=k, no_spatial=True)) == 2 * (2 * k * k) + 4
    # no bias in the convolutions
    assert TripletAttention(kernel_size=k).cw.conv.bias is None


def test_triplet_parameter_count_paper():
    assert n_params(TripletAttention(64)) == 300
    assert n_params(TripletAttention(64, no_spatial=True)) == 200


def test_triplet_channels_mismatch_raises():
    att = TripletAttention(4)
    att(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="4 channels, got 5"):
        att(torch.randn(1, 5, 3, 3))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        att(torch.randn(4, 3, 3))
    # without channels any channel count works
    TripletAttention()(torch.randn(1, 5, 3, 3))


@pytest.mark.parametrize("bad", [0, -3, 2, 4, 6, 3.0, "7"])
def test_triplet_bad_kernel_size(bad):
    with pytest.raises(ValueError, match="kernel_size"):
        TripletAttention(8, kernel_size=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_triplet_bad_channels(bad):
    with pytest.raises(ValueError, match="channels"):
        TripletAttention(bad)


def test_triplet_gradients_flow():
    torch.manual_seed(3)
    att = TripletAttention(4, kernel_size=3).train()
    x = torch.randn(3, 4, 5, 6, requires_grad=True)
    att(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in att.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_resnet18_ta_attention_convs_get_gradients():
    torch.manual_seed(4)
    model = create_model("resnet18_ta", num_classes=3, in_chans=1).train()
    x = torch.randn(2, 1, 64, 64)
    model(x).sum().backward()
    convs = [(n, m) for n, m in model.named_modules() if n.split(".")[-1] == "conv" and ".attention." in n]
    assert len(convs) == 8 * 3
    for name, conv in convs:
        assert conv.weight.grad is not None, name
        assert torch.isfinite(conv.weight.grad).all(), name
        assert conv.weight.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------

def test_list_models():
    names = list_models("classifier")
    for base in ("resnet18", "resnet50", "densenet121"):
        assert base in names
        assert base + "_ta" in names
    assert names == sorted(names)


def test_unknown_model_lists_known():
    with pytest.raises(ValueError) as info:
        create_model("nope")
    msg = str(info.value)
    assert "nope" in msg
    for name in list_models("classifier"):
        assert name in msg


def test_unknown_attention_raises():
    with pytest.raises(ValueError, match="attention"):
        create_model("resnet18", attention="cbam")


def test_attention_none_gives_plain_model():
    model = create_model("resnet18_ta", attention=None)
    assert n_attention(model) == 0
    assert model.config["name"] == "resnet18"
    assert model.config["attention"] is None
    assert n_params(model) == n_params(create_model("resnet18"))
    # and the other way round
    model = create_model("resnet18", attention="triplet")
    assert n_attention(model) == 8
    assert model.config["name"] == "resnet18_ta"


@pytest.mark.parametrize("name,count", [("resnet18", 8), ("resnet50", 16), ("densenet121", 4)])
def test_attention_count_and_parameters(name, count):
    ta = create_model(name + "_ta")
    plain = create_model(name)
    assert n_attention(ta) == count
    assert n_attention(plain) == 0
    assert n_params(ta) - n_params(plain) == 300 * count


def test_kernel_size_reaches_blocks():
    model = create_model("resnet18_ta", kernel_size=3)
    atts = [m for m in model.modules() if isinstance(m, TripletAttention)]
    assert atts and all(a.kernel_size == 3 and a.cw.conv.kernel_size == (3, 3) for a in atts)
    assert n_params(model) - n_params(create_model("resnet18")) == 8 * (3 * 2 * 9 + 6)


# ---------------------------------------------------------------------------------------------
# placement
# ---------------------------------------------------------------------------------------------

def _check_block_placement(block: nn.Module, last_bn: nn.Module, x: torch.Tensor) -> None:
    seen = {}

    def grab(key, idx=None):
        def hook(module, inputs, output):
            seen[key] = (inputs[0] if idx == "in" else output).detach().clone()
            if idx == "in":
                seen[key + "_out"] = output.detach().clone()
        return hook

    handles = [last_bn.register_forward_hook(grab("bn")),
               block.attention.register_forward_hook(grab("att", "in")),
               block.register_forward_hook(grab("block", "in"))]
    if block.downsample is not None:
        handles.append(block.downsample.register_forward_hook(grab("down")))
    try:
        with torch.no_grad():
            block(x)
    finally:
        for h in handles:
            h.remove()
    identity = seen["down"] if block.downsample is not None else seen["block"]
    torch.testing.assert_close(seen["att"], seen["bn"], rtol=0, atol=0)
    torch.testing.assert_close(seen["block_out"], torch.relu(seen["att_out"] + identity))
    # the attention really changes something, so the placement check is meaningful
    assert not torch.allclose(seen["att_out"], seen["att"])


@pytest.mark.parametrize("layer", ["layer1", "layer2"])
def test_resnet18_attention_before_residual_add(resnet18_ta, layer):
    block = getattr(resnet18_ta.backbone, layer)[0]
    assert isinstance(block, torchvision.models.resnet.BasicBlock)
    assert (block.downsample is None) == (layer == "layer1")
    torch.manual_seed(5)
    cin = block.conv1.in_channels
    _check_block_placement(block, block.bn2, torch.randn(2, cin, 8, 8))


@pytest.mark.parametrize("layer", ["layer1", "layer3"])
def test_resnet50_attention_before_residual_add(resnet50_ta, layer):
    seq = getattr(resnet50_ta.backbone, layer)
    block = seq[0] if layer == "layer1" else seq[1]  # layer1.0 has a downsample, layer3.1 does not
    assert isinstance(block, torchvision.models.resnet.Bottleneck)
    torch.manual_seed(6)
    cin = block.conv1.in_channels
    _check_block_placement(block, block.bn3, torch.randn(2, cin, 8, 8))


def test_every_resnet_block_has_attention(resnet18_ta, resnet50_ta):
    for model in (resnet18_ta, resnet50_ta):
        for layer in ("layer1", "layer2", "layer3", "layer4"):
            for block in getattr(model.backbone, layer):
                assert isinstance(block.attention, TripletAttention)
                last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
                assert block.attention.channels == last_bn.num_features


def test_densenet_attention_after_every_dense_block(densenet121_ta):
    feats = densenet121_ta.backbone.features
    names = [n for n, _ in feats.named_children()]
    expected = {1: 256, 2: 512, 3: 1024, 4: 1024}
    for i, channels in expected.items():
        pos = names.index(f"denseblock{i}")
        assert names[pos + 1] == f"attention{i}"
        assert getattr(feats, f"attention{i}").channels == channels
    # run the features and check the dense blocks' real output channels
    outs = {}
    handles = [getattr(feats, f"denseblock{i}").register_forward_hook(
        lambda m, inp, out, i=i: outs.__setitem__(i, out.shape)) for i in expected]
    try:
        with torch.no_grad():
            densenet121_ta.forward_features(torch.randn(1, 1, 64, 64))
    finally:
        for h in handles:
            h.remove()
    for i, channels in expected.items():
        assert outs[i][1] == channels


# ---------------------------------------------------------------------------------------------
# channels and outputs
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18_ta", "densenet121"])
def test_in_chans_one(name):
    model = create_model(name, num_classes=2, in_chans=1).eval()
    stem = model.backbone.conv1 if name.startswith("resnet") else model.backbone.features.conv0
    assert stem.in_channels == 1 and stem.weight.shape[1] == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2)
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*in_chans=1"):
            model(torch.randn(2, 3, 32, 32))
        with pytest.raises(ValueError, match="image batch"):
            model(torch.randn(1, 32, 32))


def test_in_chans_three():
    model = create_model("resnet18_ta", num_classes=2, in_chans=3).eval()
    assert model.backbone.conv1.in_channels == 3
    assert model.in_chans == 3
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)
        with pytest.raises(ValueError):
            model(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("fixture,features", [("resnet18_ta", 512), ("resnet50_ta", 2048),
                                              ("densenet121_ta", 1024)])
def test_outputs(request, fixture, features):
    model = request.getfixturevalue(fixture)
    model.eval()
    torch.manual_seed(8)
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        logits = model(x)
        fmap = model.forward_features(x)
        emb = model.embed(x)
    assert model.num_features == features
    assert logits.shape == (2, 3)
    assert fmap.shape == (2, features, 2, 2)
    assert emb.shape == (2, features)
    torch.testing.assert_close(emb, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(logits, model.head(emb))
    torch.testing.assert_close(logits, emb @ model.classifier_weight.T + model.head.bias)
    assert model.classifier_weight.shape == (3, features)
    assert model.classifier_weight is model.head.weight
    assert model.num_classes == 3
    assert model.class_names == ["class_0", "class_1", "class_2"]


def test_densenet_features_are_relu(densenet121_ta):
    with torch.no_grad():
        fmap = densenet121_ta.forward_features(torch.randn(1, 1, 64, 64))
    assert (fmap >= 0).all() and (fmap > 0).any()


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_classes=3, class_names=["a", "b"]), "class_names"),
    (dict(num_classes=0), "num_classes"),
    (dict(num_classes=-2), "num_classes"),
    (dict(in_chans=0), "in_chans"),
    (dict(drop_rate=1.0), "drop_rate"),
    (dict(drop_rate=-0.1), "drop_rate"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model("resnet18", **kwargs)


def test_class_names_kept():
    model = create_model("resnet18", num_classes=2, class_names=["Atelectasis", "Mass"], drop_rate=0.2)
    assert model.class_names == ["Atelectasis", "Mass"]
    assert model.dropout.p == 0.2


# ---------------------------------------------------------------------------------------------
# weights=PATH
# ---------------------------------------------------------------------------------------------

def _perturb_buffers(net: nn.Module, seed: int) -> None:
    """Non-default BN running stats so that loading them is visible."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))


@pytest.fixture(scope="module")
def tv_resnet18(tmp_path_factory):
    torch.manual_seed(11)
    net = torchvision.models.resnet18(weights=None)
    _perturb_buffers(net, 11)
    sd = net.state_dict()
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(sd, path)
    return sd, path


@pytest.mark.parametrize("in_chans", [1, 3])
def test_resnet_weights_loaded(tv_resnet18, in_chans):
    sd, path = tv_resnet18
    torch.manual_seed(99)
    fresh = create_model("resnet18_ta", in_chans=in_chans, num_classes=2)
    torch.manual_seed(99)
    model = create_model("resnet18_ta", in_chans=in_chans, num_classes=2, weights=path)
    own = model.state_dict()
    for key in ("layer1.0.conv1.weight", "layer3.1.bn2.weight", "layer4.1.conv2.weight",
                "layer2.0.downsample.0.weight", "bn1.running_mean", "layer4.0.bn1.running_var"):
        torch.testing.assert_close(own["backbone." + key], sd[key], rtol=0, atol=0)
    # every backbone tensor except the stem comes from the file
    for key, value in sd.items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        torch.testing.assert_close(own["backbone." + key], value, rtol=0, atol=0, msg=key)
    stem = own["backbone.conv1.weight"]
    want = sd["conv1.weight"].sum(dim=1, keepdim=True) if in_chans == 1 else sd["conv1.weight"]
    torch.testing.assert_close(stem, want, rtol=0, atol=0)
    # attention blocks and head keep the fresh initialisation
    fresh_sd = fresh.state_dict()
    att_keys = [k for k in own if ".attention." in k]
    assert len(att_keys) == 8 * 3 * 6  # per gate: conv.weight, bn.{weight,bias,running_*,num_batches_tracked}
    for key in att_keys + ["head.weight", "head.bias"]:
        assert torch.isfinite(own[key].float()).all(), key
        torch.testing.assert_close(own[key], fresh_sd[key], rtol=0, atol=0, msg=key)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, in_chans, 32, 32)).shape == (1, 2)


def test_resnet_weights_other_channel_counts(tv_resnet18):
    sd, path = tv_resnet18
    rgb = sd["conv1.weight"]
    # timm's rule: tile the RGB kernels and rescale by 3 / in_chans
    stem2 = create_model("resnet18", in_chans=2, weights=path).backbone.conv1.weight.detach()
    torch.testing.assert_close(stem2, rgb[:, :2] * 1.5)
    stem6 = create_model("resnet18", in_chans=6, weights=path).backbone.conv1.weight.detach()
    torch.testing.assert_close(stem6, torch.cat([rgb, rgb], dim=1) / 2)
    # so a constant 6-channel image gives the response of the constant RGB image
    torch.testing.assert_close(stem6.sum(dim=1), rgb.sum(dim=1))


def test_densenet_old_style_keys_remapped(tmp_path):
    torch.manual_seed(12)
    net = torchvision.models.densenet121(weights=None)
    _perturb_buffers(net, 12)
    sd = net.state_dict()
    old = {}
    for key, value in sd.items():
        if key.endswith("num_batches_tracked"):
            continue  # the old-style files (torchvision's densenet121-a639ec97.pth) predate this buffer
        for part in ("norm", "relu", "conv"):
            for j in ("1", "2"):
                key = key.replace(f".{part}{j}.", f".{part}.{j}.")
        old[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    assert "features.denseblock1.denselayer1.norm1.weight" not in old
    path = tmp_path / "densenet121_old.pth"
    torch.save(old, path)
    model = create_model("densenet121_ta", in_chans=1, weights=path)
    own = model.state_dict()
    for key in ("features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock1.denselayer1.conv1.weight",
                "features.denseblock4.denselayer16.conv2.weight", "features.norm5.running_mean",
                "features.transition2.conv.weight"):
        torch.testing.assert_close(own["backbone." + key], sd[key], rtol=0, atol=0)
    for key, value in sd.items():
        if key.startswith("classifier.") or key == "features.conv0.weight":
            continue
        torch.testing.assert_close(own["backbone." + key], value, rtol=0, atol=0, msg=key)
    torch.testing.assert_close(own["backbone.features.conv0.weight"],
                               sd["features.conv0.weight"].sum(dim=1, keepdim=True), rtol=0, atol=0)
    for i in range(1, 5):
        assert any(k.startswith(f"backbone.features.attention{i}.") for k in own)


def test_weights_nested_and_module_prefix(tmp_path, tv_resnet18):
    sd, _ = tv_resnet18
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    model = create_model("resnet18", weights=path)
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight.detach(), sd["layer1.0.conv1.weight"])


def test_wrong_architecture_weights(tmp_path):
    torch.manual_seed(13)
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(ValueError) as info:
        create_model("resnet18_ta", weights=path)
    assert str(path) in str(info.value)
    assert "resnet18" in str(info.value)


def test_incomplete_weights(tmp_path, tv_resnet18):
    sd, _ = tv_resnet18
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("layer4.")}, path)
    with pytest.raises(ValueError, match="lacks"):
        create_model("resnet18", weights=path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        create_model("resnet18", weights=tmp_path / "nothere.pth")


def test_garbage_weights_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file at all" * 10)
    with pytest.raises(ValueError, match="garbage.pth"):
        create_model("resnet18", weights=path)
    path2 = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path2)
    with pytest.raises(ValueError, match="state_dict"):
        create_model("resnet18", weights=path2)


def test_no_network_without_weights(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("create_model tried to download something")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api.WeightsEnum, "get_state_dict", refuse)
    for name in list_models("classifier"):
        model = create_model(name, weights=None)
        assert isinstance(model, chexradi.nn.Classifier)


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(21)
    names = ["Atelectasis", "Cardiomegaly", "Effusion"]
    model = create_model("resnet18_ta", num_classes=3, class_names=names, in_chans=1, drop_rate=0.1)
    # one training step so that BN running stats differ from their defaults
    model.train()
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    model.eval()
    path = save_checkpoint(tmp_path / "ckpt" / "best.pt", model, meta={"image_size": 32}, epoch=4)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # atomic: no temp files left
    loaded, ckpt = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded.class_names == names
    assert ckpt["format"] == FORMAT
    assert ckpt["meta"] == {"image_size": 32}
    assert ckpt["epoch"] == 4
    assert ckpt["versions"]["chexradi"] == chexradi.__version__
    assert ckpt["versions"]["torch"] == torch.__version__
    assert ckpt["versions"]["torchvision"] == torchvision.__version__
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)
    # overwrite in place, still no temp files
    save_checkpoint(path, loaded)
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]
    assert load_model(path, expect="resnet18_ta")[0].config["name"] == "resnet18_ta"


def test_checkpoint_plain_model_round_trip(tmp_path):
    torch.manual_seed(22)
    model = create_model("resnet50_ta", attention=None, num_classes=2, in_chans=3).eval()
    path = save_checkpoint(tmp_path / "plain.pt", model)
    loaded, _ = load_model(path, expect="resnet50")
    assert n_attention(loaded) == 0 and loaded.in_chans == 3
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    torch.manual_seed(23)
    model = create_model("resnet18_ta", num_classes=2)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "model.pt", model)


def test_checkpoint_expect_mismatch(small_checkpoint):
    with pytest.raises(ValueError) as info:
        load_model(small_checkpoint, expect="densenet121")
    assert "densenet121" in str(info.value) and "resnet18_ta" in str(info.value)


def test_checkpoint_truncated(small_checkpoint, tmp_path):
    data = small_checkpoint.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_model(bad)


def test_checkpoint_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model(tmp_path / "absent.pt")


def test_checkpoint_torchvision_state_dict(tv_resnet18):
    _, path = tv_resnet18
    with pytest.raises(ValueError, match=r"weights=PATH"):
        load_model(path)


def test_checkpoint_unknown_model_and_bad_weights(small_checkpoint, tmp_path):
    ckpt = read_checkpoint(small_checkpoint)
    unknown = dict(ckpt, config=dict(ckpt["config"], name="vit_huge"))
    torch.save(unknown, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match="vit_huge"):
        load_model(tmp_path / "unknown.pt")
    state = dict(ckpt["state_dict"])
    state.pop("head.bias")
    torch.save(dict(ckpt, state_dict=state), tmp_path / "short.pt")
    with pytest.raises(ValueError, match="short.pt"):
        load_model(tmp_path / "short.pt")


# ---------------------------------------------------------------------------------------------
# output stride (dilated backbones)
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "resnet18_ta", "resnet50_ta", "densenet121", "densenet121_ta"])
@pytest.mark.parametrize("stride", [32, 16, 8])
def test_output_stride_sets_the_final_map(name, stride):
    torch.manual_seed(31)
    model = create_model(name, num_classes=2, output_stride=stride).eval()
    with torch.no_grad():
        f = model.forward_features(torch.randn(1, 1, 128, 96))
        logits = model(torch.randn(2, 1, 128, 96))
    assert f.shape[-2:] == (128 // stride, 96 // stride)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    assert model.config["output_stride"] == stride


@pytest.mark.parametrize("name", ["resnet18_ta", "resnet50", "densenet121_ta"])
def test_output_stride_keeps_the_weights_and_their_draws(name):
    # the same parameters, drawn in the same order: only strides, pools and dilations differ
    torch.manual_seed(32)
    a = create_model(name, num_classes=2)
    torch.manual_seed(32)
    b = create_model(name, num_classes=2, output_stride=8)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    dilated = [m for m in b.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation != (1, 1)]
    assert dilated and all(m.padding == m.dilation and m.kernel_size == (3, 3) for m in dilated)
    assert not [m for m in a.modules() if isinstance(m, torch.nn.Conv2d) and m.dilation != (1, 1)]


def test_dilated_resnet18_block_matches_a_dilated_convolution_by_hand():
    torch.manual_seed(33)
    model = create_model("resnet18", num_classes=2, output_stride=16).eval()
    block = model.backbone.layer4[1]  # dilation 2, stride 1
    x = torch.randn(1, 512, 6, 6)
    with torch.no_grad():
        ref = F.conv2d(x, block.conv1.weight, padding=2, dilation=2)
        torch.testing.assert_close(block.conv1(x), ref)
    assert model.backbone.layer4[0].conv1.stride == (1, 1) and model.backbone.layer4[0].downsample is not None


@pytest.mark.parametrize("bad", [4, 64, 0, True, "16", None])
def test_output_stride_bad_values(bad):
    with pytest.raises(ValueError, match="output_stride must be one of 32, 16, 8"):
        create_model("resnet18", output_stride=bad)


def test_output_stride_in_the_checkpoint(tmp_path):
    torch.manual_seed(34)
    model = create_model("resnet18_ta", num_classes=2, output_stride=16).eval()
    path = save_checkpoint(tmp_path / "s16.pt", model)
    loaded, ckpt = load_model(path)
    assert ckpt["config"]["output_stride"] == 16 and loaded.config["output_stride"] == 16
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert loaded.forward_features(x).shape[-1] == 4
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def test_checkpoint_without_output_stride_loads_at_32(tmp_path):
    # checkpoints written before output_stride existed have no such key: they were stride 32
    torch.manual_seed(35)
    model = create_model("resnet18", num_classes=2).eval()
    path = save_checkpoint(tmp_path / "old.pt", model)
    ckpt = torch.load(path, weights_only=False)
    del ckpt["config"]["output_stride"]
    torch.save(ckpt, path)
    loaded, _ = load_model(path)
    assert loaded.config["output_stride"] == 32
