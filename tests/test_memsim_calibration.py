"""Calibrating over several batches does not depend on their order or sizes."""

import pytest
import torch

import memsim
from models.small import lenet5, mlp


def _profile(name: str, **over) -> memsim.DeviceProfile:
    base = memsim.load_profile(name).model_dump()
    base.update(name=f"{name}-quiet", read_noise={"model": "none", "sigma": 0.0}, **over)
    return memsim.validate_profile(base)


def _ranges(chip) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.dac_range.clone(), m.adc_range.clone()) for _, m in memsim.analog_layers(chip)]


@pytest.mark.parametrize(
    "net, profile, shape",
    [
        (mlp, "rram_wan2022", (40, 1, 28, 28)),
        (lenet5, "rram_1t1r_yao2020", (40, 1, 28, 28)),
    ],
    ids=["mlp-wan", "lenet-yao"],
)
def test_calibration_is_independent_of_batch_order_and_size(net, profile, shape):
    torch.manual_seed(0)
    model = net()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen).relu()
    x[:4] *= 0.2  # a few small-range images: first or last must not matter
    test = torch.randn(shape, generator=gen).relu()
    prof = _profile(profile)
    splits = [
        [x],
        [x[:4], x[4:]],
        [x[4:], x[:4]],
        [x[:3], x[3:17], x[17:]],
        [x[17:], x[3:17], x[:3]],
    ]
    ranges, outputs = [], []
    for batches in splits:
        chip = memsim.convert(model, prof, seed=0, chip_seed=3)
        memsim.calibrate(chip, batches)
        ranges.append(_ranges(chip))
        with torch.no_grad():
            outputs.append(chip(test))
    for other, out in zip(ranges[1:], outputs[1:], strict=True):
        for (dac0, adc0), (dac1, adc1) in zip(ranges[0], other, strict=True):
            assert torch.allclose(dac0, dac1, rtol=1e-6, atol=0)
            assert torch.allclose(adc0, adc1, rtol=1e-5, atol=0)
        assert torch.allclose(outputs[0], out, rtol=1e-5, atol=1e-6)


def test_calibrated_adc_range_is_relative_to_the_dac_full_scale():
    # one layer, a calibrated DAC: the ADC range is max |partial sum| over the batches in
    # units where a full-window device driven at the DAC's full scale gives 1
    prof = _profile("rram_wan2022", tile={"rows": 16, "cols": 4})
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(16, 4, bias=False))
    chip = memsim.convert(model, prof, seed=0)
    x = torch.rand(32, 16)
    memsim.calibrate(chip, [x[:5], x[5:]])
    layer = memsim.analog_layers(chip)[0][1]
    bound = x.abs().max()
    assert layer.dac_range.item() == pytest.approx(bound.item())
    partial = (x / bound) @ layer.w_norm.T  # normalized weights, inputs at the DAC scale
    expected = partial.abs().amax(0)  # one column per tile here: per-column tiles of 4
    tiles = layer.tile_of_partial[:, 0]
    per_tile = torch.zeros(layer.layout.n_tiles).scatter_reduce(0, tiles, expected, "amax")
    assert torch.allclose(layer.adc_range, per_tile * prof.adc.margin, rtol=1e-5)


def _identity_chip(**sections) -> torch.nn.Module:
    base = memsim.load_profile("ideal").model_dump()
    base.update(name="converters", **sections)
    lin = torch.nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4))
    return memsim.convert(torch.nn.Sequential(lin), memsim.validate_profile(base), seed=0)


def test_dac_ties_round_half_to_even_and_one_bit_maps_zero_to_plus_bound():
    chip = _identity_chip(dac={"bits": 3, "mode": "fixed", "bound": 3.0})  # step 1.0
    with torch.no_grad():
        y = chip(torch.tensor([[0.5, 1.5, 2.5, -0.5]]))
    assert torch.equal(y, torch.tensor([[0.0, 2.0, 2.0, 0.0]]))
    chip = _identity_chip(dac={"bits": 1, "mode": "fixed", "bound": 3.0})
    with torch.no_grad():
        y = chip(torch.tensor([[0.0, -0.1, 0.3, -0.0]]))
    assert torch.equal(y, torch.tensor([[3.0, -3.0, 3.0, 3.0]]))


def test_fixed_adc_bound_is_relative_to_the_dac_full_scale():
    # DAC full scale 4: input 4 on a full-window device is 1.0 in ADC units, so an ADC
    # bound of 0.5 saturates at 0.5 x 4 = 2 activation units (not at 0.5)
    chip = _identity_chip(
        dac={"bits": 8, "mode": "fixed", "bound": 4.0},
        adc={"bits": 8, "mode": "fixed", "bound": 0.5},
    )
    with torch.no_grad():
        y = chip(torch.tensor([[4.0, 1.0, 0.0, -4.0]]))
    assert torch.allclose(y, torch.tensor([[2.0, 1.0, 0.0, -2.0]]), atol=0.02)
