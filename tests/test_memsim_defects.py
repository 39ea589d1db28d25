"""memsim.defect_maps: the chip's stuck-at faults and gains as a differentiable weight map."""

import pytest
import torch
from torch import nn

import memsim


def _noiseless(name: str, **faults) -> memsim.DeviceProfile:
    d = memsim.load_profile(name).model_dump(mode="json")
    d["programming_noise"] = {"model": "none", "sigma": 0.0}
    d["read_noise"] = {"model": "gaussian", "sigma": 0.0}
    d["drift"]["model"] = "none"
    d["faults"].update(faults)
    return memsim.DeviceProfile.model_validate(d)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.Conv2d(8, 8, 3, groups=4),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 300),
        nn.Linear(300, 10),
    )


@pytest.mark.parametrize("name", ["rram_1t1r_yao2020", "paper_2bit_5pct", "rram_wan2022"])
def test_defect_map_equals_the_chip_without_random_noise(name):
    prof = _noiseless(name, stuck_at_gmin_rate=0.05, stuck_at_gmax_rate=0.03, d2d_sigma=0.1)
    model = _model()
    chip = memsim.convert(model, prof, seed=0, chip_seed=4)
    maps = memsim.defect_maps(chip)
    held = memsim.effective_weights(chip)
    weight_map = memsim.defect_weight_map(chip)
    for key, w in model.state_dict().items():
        if key.endswith(".weight"):
            torch.testing.assert_close(maps[key].apply(w), held[key], rtol=1e-5, atol=1e-6)
            assert torch.equal(weight_map(key, w), maps[key].apply(w))
    # the map belongs to the chip instance: another chip seed holds other weights
    other = memsim.defect_maps(memsim.convert(model, prof, seed=0, chip_seed=5))
    w = model[3].weight
    assert not torch.allclose(other["3.weight"].apply(w), maps["3.weight"].apply(w))


def test_defect_free_map_is_the_quantizer_and_passes_gradients():
    prof = _noiseless(
        "rram_1t1r_yao2020", stuck_at_gmin_rate=0.0, stuck_at_gmax_rate=0.0, d2d_sigma=0.0
    )
    model = _model()
    chip = memsim.convert(model, prof, seed=0, chip_seed=1)
    m = memsim.defect_maps(chip)["4.weight"]
    w = model[4].weight.detach().clone().requires_grad_(True)
    y = m.apply(w)
    torch.testing.assert_close(y, memsim.effective_weights(chip)["4.weight"])
    (y * torch.arange(w.numel()).reshape(w.shape)).sum().backward()
    # straight through everywhere inside the range (|w| <= scale)
    torch.testing.assert_close(w.grad, torch.arange(w.numel()).reshape(w.shape).float())


def test_stuck_devices_get_no_gradient_and_fixed_values():
    prof = _noiseless(
        "rram_1t1r_yao2020", stuck_at_gmin_rate=0.2, stuck_at_gmax_rate=0.2, d2d_sigma=0.0
    )
    model = _model()
    chip = memsim.convert(model, prof, seed=0, chip_seed=2)
    layer = dict(memsim.analog_layers(chip))["4"]
    m = memsim.defect_maps(chip)["4.weight"]
    w = model[4].weight.detach().clone().requires_grad_(True)
    m.apply(w).sum().backward()
    both_stuck = (layer.fault[0] != 0) & (layer.fault[1] != 0)
    assert both_stuck.any()
    assert (w.grad[both_stuck] == 0).all()


def test_defect_maps_needs_a_converted_model():
    with pytest.raises(ValueError, match="memsim.convert"):
        memsim.defect_maps(_model())
    with pytest.raises(ValueError, match="weight shape"):
        chip = memsim.convert(_model(), "ideal", seed=0)
        memsim.defect_maps(chip)["4.weight"].apply(torch.zeros(3))
