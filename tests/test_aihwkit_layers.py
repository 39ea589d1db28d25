"""Model conversion to aihwkit: layer report, grouped convs, seeded programming and drift."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("aihwkit")

from aihwkit.nn import AnalogConv2d, AnalogLinear  # noqa: E402

import memsim  # noqa: E402
from memsim.backends import aihwkit as ab  # noqa: E402
from models.small import lenet5, mlp  # noqa: E402


def _separable() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
        nn.Conv2d(8, 16, 3, padding=1, groups=2),  # grouped
        nn.Conv2d(16, 16, 1),  # pointwise
        nn.Flatten(),
        nn.Linear(16 * 6 * 6, 10),
    ).eval()


def test_grouped_and_depthwise_convs_stay_digital_layer_by_layer():
    torch.manual_seed(0)
    model = _separable()
    dep = ab.convert(model, "pcm_joshi2020", seed=0)
    where = {r.name: r.aihwkit for r in dep.layers}
    assert where == {"0": "analog", "2": "digital", "3": "digital", "4": "analog", "6": "analog"}
    notes = {r.name: r.note for r in dep.layers}
    assert "depthwise" in notes["2"] and "groups=8" in notes["2"]
    assert "grouped" in notes["3"] and "groups=2" in notes["3"]
    assert dep.digital_layers == ["2", "3"]
    inner = dep.model
    assert isinstance(inner.get_submodule("0"), AnalogConv2d)
    assert type(inner.get_submodule("2")) is nn.Conv2d
    assert isinstance(inner.get_submodule("6"), AnalogLinear)
    table = dep.layer_table()
    assert "| `2` | conv2d | digital |" in table
    # memsim maps every one of them onto tiles.
    chip = memsim.convert(model, "pcm_joshi2020", seed=0)
    assert len(memsim.analog_layers(chip)) == 5
    x = torch.randn(4, 3, 6, 6)
    with torch.no_grad():
        assert dep.model(x).shape == chip(x).shape == (4, 10)


def test_layer_report_shows_how_tilings_differ():
    # Linear layers: both codes share the inputs equally over the fewest row tiles
    dep = ab.convert(mlp(), "pcm_joshi2020", seed=0)
    first = dep.layers[0]
    assert first.memsim_rows == first.aihwkit_rows == (196, 196, 196, 196)
    assert first.memsim_tiles == first.aihwkit_tiles == 4
    assert first.note == "" and dep.layers[1].note == ""
    le = ab.convert(lenet5(), "pcm_joshi2020", seed=0)
    fc1 = [r for r in le.layers if r.name == "7"][0]
    assert fc1.memsim_rows == fc1.aihwkit_rows == (200, 200)
    # convs: memsim keeps 3x3 kernels whole (22 channels = 198 rows), aihwkit does not
    conv = ab.convert(torch.nn.Sequential(torch.nn.Conv2d(64, 32, 3)), "pcm_joshi2020", seed=0)
    row = conv.layers[0]
    assert row.memsim_rows == (198, 198, 180) and row.aihwkit_rows == (192, 192, 192)
    assert "row tiles differ" in row.note


def test_programming_and_drift_are_seeded_and_leave_the_caller_rng_alone():
    torch.manual_seed(0)
    model = mlp().eval()
    x = torch.randn(32, 1, 28, 28)
    dep = ab.convert(model, "pcm_joshi2020", seed=5)
    state = torch.random.get_rng_state()
    with torch.no_grad():
        y5 = dep.model(x)
        dep.program(6)
        y6 = dep.model(x)
        dep.program(5)
        assert torch.equal(dep.model(x), y5)
        assert not torch.allclose(y5, y6)
        dep.drift(86400.0)
        y_day = dep.model(x)
        dep.drift(86400.0)
        assert torch.equal(dep.model(x), y_day)
    assert torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="t_s"):
        dep.drift(-1.0)


def test_weight_quantization_is_applied_before_conversion():
    torch.manual_seed(0)
    layer = nn.Linear(40, 10)
    dep = ab.convert(nn.Sequential(layer), "paper_ternary_5pct", seed=0)
    w = dep.model.get_submodule("0").get_weights()[0]
    # Ternary weights programmed with noise: three clusters, no longer the trained values.
    assert not torch.allclose(w, layer.weight, atol=1e-3)
    knobs = {k.field: k for k in dep.translation.knobs}
    assert knobs["mapping.weight_quant"].status == ab.TRANSLATED
