"""DAC and ADC levels per tile (acceptance 6), and read noise per MVM."""

import math

import pytest
import torch
from torch import nn

import memsim


def _profile(**sections):
    base = memsim.load_profile("ideal").model_dump()
    for name, values in sections.items():
        base[name] = {**base[name], **values}
    base["name"] = "test"
    return memsim.validate_profile(base)


@pytest.mark.parametrize("bits", [2, 4, 6])
def test_adc_levels_per_tile(bits):
    torch.manual_seed(0)
    prof = _profile(
        adc={"bits": bits, "mode": "calibrated"},
        tile={"rows": 128, "cols": 8},
        mapping={"weight_scaling": "per_layer"},
    )
    conv = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1, bias=False))  # K = 72: one row tile
    chip = memsim.convert(conv, prof, seed=0)
    x = torch.randn(16, 8, 10, 10)
    memsim.calibrate(chip, x)
    with torch.no_grad():
        y = chip(torch.randn(16, 8, 10, 10) * 1.5)  # beyond the calibrated range: saturates
    assert memsim.tile_report(chip).layers[0].tiles == 4
    for tile in range(4):
        vals = y[:, tile * 8 : (tile + 1) * 8]
        assert torch.unique(vals).numel() <= 2**bits
    assert torch.unique(y).numel() > 2**bits  # tiles have their own ranges


def test_adc_and_dac_on_partial_sums_of_several_row_tiles():
    torch.manual_seed(0)
    prof = _profile(
        adc={"bits": 3, "mode": "calibrated"},
        dac={"bits": 3, "mode": "dynamic"},
        tile={"rows": 16, "cols": 16},
    )
    lin = nn.Sequential(nn.Linear(64, 4, bias=False))  # 4 row tiles of one column tile
    chip = memsim.convert(lin, prof, seed=0)
    layer = memsim.analog_layers(chip)[0][1]
    x = torch.randn(200, 64)
    codes, bound, u = layer._dac(x, (1,))
    assert torch.unique(codes).numel() <= 2**3 and u == 1 / 3
    with torch.no_grad():
        y = chip(x)
    # each output is a sum of 4 partial sums, each with at most 2**3 - 1 levels,
    # scaled by the per-sample DAC range
    y_codes = y / bound
    assert torch.unique(torch.round(y_codes * 1e4)).numel() <= (2**3 - 1) ** 4


@pytest.mark.parametrize("bits", [1, 3, 8])
def test_dac_levels(bits):
    prof = _profile(dac={"bits": bits, "mode": "fixed", "bound": 2.0})
    chip = memsim.convert(nn.Sequential(nn.Linear(50, 3)), prof, seed=0)
    layer = memsim.analog_layers(chip)[0][1]
    x = torch.randn(1000, 50) * 3
    codes, bound, u = layer._dac(x, (1,))
    assert torch.unique(codes).numel() <= 2**bits
    assert bound == 2.0


def test_read_noise_is_per_mvm_with_the_right_std():
    sigma = 0.02
    prof = _profile(read_noise={"model": "gaussian", "sigma": sigma}, tile={"rows": 64, "cols": 64})
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(100, 3, bias=False))  # 2 row tiles
    chip = memsim.convert(lin, prof, seed=0)
    x = torch.randn(1, 100).expand(20000, -1).contiguous()
    with torch.no_grad():
        y = chip(x)
        ref = lin(x[:1])
    scale = lin[0].weight.abs().max()
    expected = math.sqrt(2) * sigma * x[0].norm() * scale
    assert torch.allclose(y.mean(0), ref[0], atol=4 * expected.item() / math.sqrt(20000))
    std = y.std(0)
    assert torch.allclose(std, expected.expand(3), rtol=0.03)
    # independent between input vectors and between columns
    c = torch.corrcoef(torch.stack([y[:-1, 0], y[1:, 0], y[:-1, 1]]))
    assert c[0, 1].abs() < 0.05 and c[0, 2].abs() < 0.05
    # and fresh on every call
    with torch.no_grad():
        assert not torch.equal(chip(x[:5]), chip(x[:5]))


def test_read_noise_seeded_reproducible():
    prof = _profile(read_noise={"model": "gaussian", "sigma": 0.05})
    lin = nn.Sequential(nn.Conv2d(3, 4, 3))
    x = torch.randn(2, 3, 8, 8)
    outs = []
    for _ in range(2):
        chip = memsim.convert(lin, prof, seed=11)
        with torch.no_grad():
            outs.append(chip(x))
    assert torch.equal(outs[0], outs[1])


def test_output_noise_std():
    prof = _profile(output_noise={"sigma": 0.1})
    lin = nn.Sequential(nn.Linear(10, 2, bias=False))
    chip = memsim.convert(lin, prof, seed=0)
    x = torch.ones(20000, 10)
    with torch.no_grad():
        y = chip(x)
    scale = lin[0].weight.abs().max()
    assert torch.allclose(y.std(0), (0.1 * scale).expand(2), rtol=0.03)


def test_bank_sampler_statistics_and_reproducibility():
    from memsim.sampling import NoiseSampler, standard_normal

    gen = torch.Generator().manual_seed(0)
    a = standard_normal((500, 400), gen, NoiseSampler.bank, torch.device("cpu"), torch.float32)
    b = standard_normal((500, 400), gen, NoiseSampler.bank, torch.device("cpu"), torch.float32)
    assert abs(a.mean().item()) < 0.01 and a.std().item() == pytest.approx(1.0, abs=0.01)
    assert not torch.equal(a, b)  # a fresh window each call
    gen2 = torch.Generator().manual_seed(0)
    a2 = standard_normal((500, 400), gen2, NoiseSampler.bank, torch.device("cpu"), torch.float32)
    assert torch.equal(a, a2)
    prof = _profile(read_noise={"model": "gaussian", "sigma": 0.02})
    lin = nn.Sequential(nn.Linear(100, 3, bias=False))
    chip = memsim.convert(lin, prof, seed=0, noise_sampler="bank")
    x = torch.randn(1, 100).expand(20000, -1).contiguous()
    with torch.no_grad():
        y = chip(x)
    expected = math.sqrt(2) * 0.02 * x[0].norm() * lin[0].weight.abs().max()
    assert torch.allclose(y.std(0), expected.expand(3), rtol=0.03)
