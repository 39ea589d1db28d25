"""committee: k copies of the network on independent arrays, outputs averaged."""

from __future__ import annotations

import torch
from torch import nn

import memsim
from lab.fitness.digital import Committee

PROFILE = "rram_1t1r_faulty_chen2015"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    chip = memsim.convert(model, memsim.load_profile(PROFILE), seed=4, chip_seed=9)
    memsim.calibrate(chip, x)
    with torch.no_grad():
        return chip.eval()(x)


def test_a_committee_of_one_is_the_single_chip():
    x = torch.rand(16, 1, 8, 8)
    assert torch.equal(_outputs(Committee(_net(), 1), x), _outputs(_net(), x))


def test_a_committee_averages_copies_on_independent_arrays():
    x = torch.rand(16, 1, 8, 8)
    net = _net()
    chip = memsim.convert(Committee(net, 3), memsim.load_profile(PROFILE), seed=4, chip_seed=9)
    layers = memsim.analog_layers(chip)
    assert len(layers) == 6
    faults = [layer.tiles.fault for name, layer in layers if name.endswith(".1")]
    assert not torch.equal(faults[0], faults[1])  # each copy has its own stuck devices
    memsim.calibrate(chip, x)
    seen: list[torch.Tensor] = []
    for m in chip.members:
        m.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        out = chip.eval()(x)  # read noise is per call: compare within this one call
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])
    assert torch.allclose(out, sum(seen) / 3, atol=1e-6)
