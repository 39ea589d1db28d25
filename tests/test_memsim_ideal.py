"""Acceptance 1: the ideal profile reproduces the digital model."""

import pytest
import torch
import torchvision

import memsim
from memsim.profiles import Tile
from models.small import lenet5, mlp


def _ideal(rows=64, cols=64):
    return memsim.load_profile("ideal").model_copy(update={"tile": Tile(rows=rows, cols=cols)})


def _settle_bn(model, x):
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def _rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize(
    "build, shape",
    [
        (lambda: mlp(), (16, 1, 28, 28)),
        (lambda: lenet5(), (16, 1, 28, 28)),
        (lambda: torchvision.models.mobilenet_v2(num_classes=10), (4, 3, 32, 32)),
    ],
    ids=["mlp", "lenet5", "mobilenet_v2"],
)
def test_ideal_matches_digital(build, shape):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(*shape)
    model = _settle_bn(model, x)
    analog = memsim.convert(model, _ideal(), seed=0)
    # layers must actually span several tiles
    report = memsim.tile_report(analog)
    assert max(r.tiles for r in report.layers) > 1
    with torch.no_grad():
        assert _rel_err(analog(x), model(x)) < 1e-5
    for name, w in memsim.effective_weights(analog).items():
        ref = model.get_parameter(name)
        assert torch.allclose(w, ref, rtol=1e-5, atol=1e-7), name


def test_convert_leaves_original_untouched_and_replaces_all():
    torch.manual_seed(0)
    model = lenet5()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    analog = memsim.convert(model, "ideal", seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) for m in analog.modules())
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(memsim.analog_layers(analog)) == 5


@pytest.mark.parametrize("rows, cols", [(7, 5), (16, 3), (300, 300)])
def test_ideal_exact_for_grouped_conv_any_tile(rows, cols):
    torch.manual_seed(1)
    conv = torch.nn.Sequential(
        torch.nn.Conv2d(12, 24, 3, padding=1, groups=3, stride=2, bias=True),
        torch.nn.Conv2d(24, 24, 5, padding=2, groups=24, dilation=1),
        torch.nn.Conv2d(24, 8, 1),
    )
    x = torch.randn(3, 12, 11, 11)
    analog = memsim.convert(conv, _ideal(rows, cols), seed=0)
    with torch.no_grad():
        assert _rel_err(analog(x), conv(x)) < 1e-5


def test_depthwise_packing_utilization():
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)
    analog = memsim.convert(torch.nn.Sequential(conv), _ideal(64, 64), seed=0)
    layer = memsim.tile_report(analog).layers[0]
    # 7 depthwise groups of 9 rows x 1 column fit per 64x64 tile, block-diagonally
    assert layer.groups_per_tile == 7
    assert layer.tiles == 10
    assert layer.utilization == pytest.approx(64 * 9 / (10 * 64 * 64))
