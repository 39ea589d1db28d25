"""Device read-back (memsim.readback) and the digital output trim (memsim.trim)."""

import math

import pytest
import torch
from torch import nn

import memsim
from models.protonet import ProtoNet


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _faulty_protonet_chip(chip_seed: int = 11) -> nn.Module:
    torch.manual_seed(0)
    return memsim.convert(
        ProtoNet(in_channels=1, hidden=64, blocks=4).eval(),
        "rram_1t1r_faulty_chen2015",
        seed=0,
        chip_seed=chip_seed,
    )


@pytest.mark.parametrize("chip_seed", [11, 12])
def test_estimate_finds_stuck_devices_of_a_faulty_chip(chip_seed):
    # the digits ProtoNet on chip 11/12 of the ~11 %-stuck profile, at its own read noise
    # (0.5 % of the window per read) and programming noise (1.5 %), one read per device
    chip = _faulty_protonet_chip(chip_seed)
    est = memsim.estimate_defects(chip, reads=1, seed=3)
    true_stuck = found = working = false_pos = 0
    for name, layer in memsim.analog_layers(chip):
        truth, guess = layer.fault, est[f"{name}.weight"].fault
        stuck = truth != 0
        true_stuck += int(stuck.sum())
        found += int((stuck & (guess == truth)).sum())
        working += int((~stuck).sum())
        false_pos += int((~stuck & (guess != 0)).sum())
    assert true_stuck > 0.09 * (true_stuck + working)  # the profile's ~10.8 % stuck
    assert found / true_stuck >= 0.95
    assert false_pos / working <= 0.02


def test_estimated_gains_match_the_chip_within_the_programming_noise():
    chip = _faulty_protonet_chip()
    est = memsim.estimate_defects(chip, reads=16, seed=5)
    name, layer = memsim.analog_layers(chip)[1]
    working = (layer.fault == 0) & (est[f"{name}.weight"].fault == 0)
    err = (est[f"{name}.weight"].gain - layer.gain)[working]
    # gain_hat = read(g_max) - read(g_min): two programmings with sigma = 1.5 % of the
    # window each (times the gain ~1) plus the averaged read noise; its std is then
    # sqrt(2 (0.015^2 + 0.005^2 / 16)) ~= 0.0213
    expected = math.sqrt(2 * (0.015**2 + 0.005**2 / 16))
    assert abs(float(err.mean())) < 0.002
    assert float(err.std()) == pytest.approx(expected, rel=0.1)


def test_read_back_mean_and_noise_follow_the_profile():
    # no programming noise, no faults, no device variation: the reads are the target
    # plus read noise averaged over `reads`, std sigma / sqrt(reads)
    d = memsim.load_profile("rram_1t1r_yao2020").model_dump(mode="json")
    d["programming_noise"] = {"model": "none"}
    d["faults"] = {"stuck_at_gmin_rate": 0.0, "stuck_at_gmax_rate": 0.0, "d2d_sigma": 0.0}
    d["read_noise"] = {"model": "gaussian", "sigma": 0.05}
    profile = memsim.DeviceProfile.model_validate(d)
    chip = memsim.convert(nn.Sequential(nn.Linear(200, 100)), profile, seed=0, chip_seed=0)
    reads = memsim.read_back(chip, 0.75, reads=4, seed=1)["0.weight"]
    assert reads.shape == (2, 100, 200)
    assert float(reads.mean()) == pytest.approx(0.75, abs=0.002)
    assert float(reads.std()) == pytest.approx(0.05 / 2, rel=0.03)
    with pytest.raises(ValueError, match="level must be in"):
        memsim.read_back(chip, 1.5, reads=1, seed=0)
    with pytest.raises(ValueError, match="reads must be"):
        memsim.read_back(chip, 0.5, reads=0, seed=0)


def test_estimated_map_reproduces_the_true_stuck_offsets():
    chip = _faulty_protonet_chip()
    est = memsim.estimate_defects(chip, reads=4, seed=2)
    truth = memsim.defect_maps(chip)
    for key, e in est.items():
        assert torch.equal(e.defect_map.offset, truth[key].offset)


def test_output_trim_is_gain_times_output_plus_offset():
    torch.manual_seed(0)
    chip = memsim.convert(nn.Sequential(nn.Linear(30, 5)), "rram_1t1r_yao2020", seed=0)
    x = torch.randn(8, 30)
    memsim.program(chip, seed=4)
    memsim.calibrate(chip, x)
    plain = chip(x)
    bias = chip[0].bias.detach()
    gain, offset = torch.linspace(0.5, 1.5, 5), torch.linspace(-1.0, 1.0, 5)
    memsim.program(chip, seed=4)  # same read-noise stream again
    memsim.calibrate(chip, x)
    memsim.set_output_trim(chip, {"0.weight": (gain, offset)})
    trimmed = chip(x)
    torch.testing.assert_close(trimmed - bias, gain * (plain - bias) + offset)
    memsim.program(chip, seed=9)  # the trim is digital: programming keeps it
    assert memsim.output_trim(chip)["0.weight"][0].tolist() == gain.tolist()
    memsim.clear_output_trim(chip)
    assert memsim.output_trim(chip) == {}
    with pytest.raises(ValueError, match="must have shape"):
        memsim.set_output_trim(chip, {"0.weight": (gain[:3], offset)})
    with pytest.raises(ValueError, match="no analog layer"):
        memsim.set_output_trim(chip, {"1.weight": (gain, offset)})
