"""Forward shapes of the three networks and their mapping onto crossbars by memsim.convert."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import memsim
from models.micronet import VARIANTS, ChannelShuffle, DynamicShiftMax, micronet
from models.mobilenet import mobilenet_v2_cifar
from models.protonet import ProtoNet


def _crossbar_layers(model: nn.Module) -> list[str]:
    # exact type check: the analog replacements may subclass nn.Linear / nn.Conv2d
    return [n for n, m in model.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]


def _warm_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    # fresh running stats (mean 0, var 1) make a deep untrained net's eval output vanish;
    # one train-mode pass with cumulative averaging gives realistic statistics
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def _build(name: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model: nn.Module
    if name == "mobilenet":
        model = mobilenet_v2_cifar(num_classes=10, width_mult=0.25)
    elif name in ("m0", "m1"):
        model = micronet(num_classes=100, variant=name)
    else:
        model, x = ProtoNet(in_channels=1), x[:, :1, :28, :28]
    _warm_batchnorm(model, x)
    return model, x


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0])
def test_mobilenet_v2_cifar_forward_shape(width: float) -> None:
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(num_classes=10, width_mult=width).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_mobilenet_v2_cifar_is_the_cifar_variant_with_depthwise_convs() -> None:
    model = mobilenet_v2_cifar(10, 1.0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].stride == (1, 1)  # stem keeps 32x32
    depthwise = [c for c in convs if c.groups > 1]
    assert len(depthwise) == 17 and all(c.groups == c.in_channels for c in depthwise)
    feats = model.features(torch.randn(1, 3, 32, 32))
    assert feats.shape == (1, 1280, 4, 4)  # downsampling by 8
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(2.24e6, rel=0.02)


@pytest.mark.parametrize("variant", ["m0", "m1"])
def test_micronet_forward_shape_and_final_map(variant: str) -> None:
    model, x = _build(variant)
    assert model(x).shape == (8, 100)
    last = VARIANTS[variant].blocks[-1][2]
    assert model.features(x).shape == (8, last, 4, 4)


def test_micronet_uses_micro_factorized_convs_and_dynamic_shift_max() -> None:
    model = micronet(100, "m0")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    grouped_pointwise = [c for c in convs if c.kernel_size == (1, 1) and c.groups > 1]
    kx1 = [c for c in convs if c.kernel_size[1] == 1 and c.kernel_size[0] > 1]
    onexk = [c for c in convs if c.kernel_size[0] == 1 and c.kernel_size[1] > 1]
    assert len(grouped_pointwise) >= 8
    assert len(kx1) == len(onexk) >= 7
    # all spatial convs after the stem are depthwise (groups == in_channels)
    assert all(c.groups == c.in_channels for c in (kx1 + onexk)[2:] if c.in_channels > 3)
    assert any(isinstance(m, DynamicShiftMax) and m.branches == 2 for m in model.modules())
    assert any(isinstance(m, DynamicShiftMax) and m.branches == 1 for m in model.modules())
    assert any(isinstance(m, ChannelShuffle) for m in model.modules())


def test_dynamic_shift_max_starts_near_identity_and_shifts_within_groups() -> None:
    act = DynamicShiftMax(channels=8, groups=2, branches=1, reduction=4)
    # channel i of group k is paired with channel i+1 of group k+1 (mod)
    assert act.shift.tolist() == [5, 6, 7, 4, 1, 2, 3, 0]
    for layer in act.fc:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    x = torch.randn(2, 8, 3, 3)
    # zero MLP -> coefficients (h_sigmoid(0) - 0.5) * 4 = 0 -> a = 1, b = 0 -> identity
    torch.testing.assert_close(act(x), x)


def test_channel_shuffle_is_a_permutation() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


@pytest.mark.parametrize("name", ["mobilenet", "m0", "m1", "protonet"])
def test_every_conv_and_linear_converts_and_matches_on_an_ideal_chip(name: str) -> None:
    model, x = _build(name)
    assert _crossbar_layers(model)  # there is something to convert
    n_layers = len(_crossbar_layers(model))
    chip = memsim.convert(model, memsim.load_profile("ideal"), seed=0)
    chip.eval()
    assert _crossbar_layers(chip) == []
    assert len(memsim.analog_layers(chip)) == n_layers
    assert len(_crossbar_layers(model)) == n_layers  # the original is untouched
    with torch.no_grad():
        ref = model(x)
        assert float(ref.std()) > 1e-2  # a non-degenerate output, so the check has teeth
        torch.testing.assert_close(chip(x), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize("name", ["mobilenet", "m0"])
def test_paper_profile_deployment_runs_and_perturbs(name: str) -> None:
    model, x = _build(name)
    chip_a = memsim.convert(model, "paper_2bit_5pct", seed=1).eval()
    chip_b = memsim.convert(model, "paper_2bit_5pct", seed=1).eval()
    chip_c = memsim.convert(model, "paper_2bit_5pct", seed=2).eval()
    with torch.no_grad():
        out_a, out_b, out_c, ref = chip_a(x), chip_b(x), chip_c(x), model(x)
    assert torch.isfinite(out_a).all()
    torch.testing.assert_close(out_a, out_b)  # same seed, same chip
    assert not torch.allclose(out_a, out_c)  # another noise draw
    assert float((out_a - ref).norm() / ref.norm()) > 1e-3  # 2-bit weights differ
