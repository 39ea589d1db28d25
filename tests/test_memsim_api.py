import pytest
import torch
from torch import nn

import memsim
from models.small import lenet5


def test_program_with_weights_and_errors():
    torch.manual_seed(0)
    model = lenet5()
    chip = memsim.convert(model, "ideal", seed=0)
    new = {"0.weight": torch.zeros_like(model[0].weight)}
    memsim.program(chip, new, seed=1)
    eff = memsim.effective_weights(chip)
    assert torch.count_nonzero(eff["0.weight"]) == 0
    assert torch.allclose(eff["3.weight"], model[3].weight)
    assert torch.equal(memsim.target_weights(chip)["0.weight"], new["0.weight"])
    with pytest.raises(KeyError, match="unknown analog weight"):
        memsim.program(chip, {"nope.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="shape"):
        memsim.program(chip, {"0.weight": torch.zeros(3)})


def test_program_seed_controls_noise():
    model = nn.Sequential(nn.Linear(20, 20))
    chip = memsim.convert(model, "paper_2bit_5pct", seed=0)
    a = memsim.effective_weights(chip)["0.weight"]
    memsim.program(chip, seed=0)
    assert torch.equal(memsim.effective_weights(chip)["0.weight"], a)
    memsim.program(chip, seed=1)
    assert not torch.equal(memsim.effective_weights(chip)["0.weight"], a)


def test_paper_profile_is_the_training_definition():
    from memsim.quantization import quantize_symmetric

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200, bias=False))
    chip = memsim.convert(model, "paper_2bit_5pct", seed=3)
    w = model[0].weight.detach()
    q = quantize_symmetric(w, 2)
    eff = memsim.effective_weights(chip)["0.weight"]
    rel = eff / q - 1.0
    assert torch.unique(q).numel() == 4
    assert rel.mean().abs() < 0.002 and rel.std().item() == pytest.approx(0.05, rel=0.03)
    assert torch.equal(torch.sign(eff), torch.sign(q))


def test_drift_rejects_negative_time():
    chip = memsim.convert(nn.Sequential(nn.Linear(3, 3)), "pcm_joshi2020", seed=0)
    with pytest.raises(ValueError, match="t_seconds"):
        memsim.drift(chip, -1.0)


def test_api_errors_on_digital_model():
    with pytest.raises(ValueError, match="convert"):
        memsim.program(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        memsim.convert(nn.Sequential(nn.ReLU()), "ideal")


def test_tile_report_text():
    chip = memsim.convert(lenet5(), "rram_1t1r_yao2020", seed=0)
    rep = memsim.tile_report(chip)
    text = str(rep)
    assert "total tiles" in text and "128x8" in text
    assert rep.total_tiles == sum(r.tiles for r in rep.layers)
    assert 0 < rep.utilization <= 1


def test_calibrate_freezes_ranges():
    torch.manual_seed(0)
    chip = memsim.convert(lenet5(), "rram_1t1r_yao2020", seed=0)
    x = torch.randn(32, 1, 28, 28)
    memsim.calibrate(chip, [x[:16], x[16:]])
    layer = memsim.analog_layers(chip)[0][1]
    rng = layer.adc_range.clone()
    with torch.no_grad():
        chip(x * 3)
    assert torch.equal(layer.adc_range, rng)
    memsim.program(chip, seed=1)  # re-programming invalidates the calibration
    assert not layer.calibrated


def test_state_moves_with_module_to():
    chip = memsim.convert(lenet5(), "rram_1t1r_yao2020", seed=0)
    chip = chip.to(torch.float64)
    layer = memsim.analog_layers(chip)[0][1]
    assert layer._w_part.dtype == torch.float64
