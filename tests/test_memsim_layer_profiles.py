"""Per-layer profiles in convert: by module name, prefix or pattern."""

import numpy as np
import pytest
import torch
from torch import nn

import memsim
from memsim import ProfileError


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def _profiles(chip):
    return {n: m.profile for n, m in memsim.analog_layers(chip)}


def test_first_and_last_layer_get_an_8_bit_adc():
    base = memsim.load_profile("rram_wan2022").derive(adc={"bits": 4}, name="wan4")
    chip = memsim.convert(
        _net(), base, seed=0, layer_profiles={"0": {"adc": {"bits": 8}}, "5": {"adc": {"bits": 8}}}
    )
    profs = _profiles(chip)
    assert [p.adc.bits for p in profs.values()] == [8, 4, 8]
    assert profs["3"] is base
    assert profs["0"].name == "wan4@0" and profs["0"].extends == "wan4"
    assert "adc.bits" in profs["0"].source  # provenance marked
    x = torch.rand(5, 1, 6, 6)
    memsim.calibrate(chip, x)
    assert chip(x).shape == (5, 3)
    # the same as converting each layer with its own profile
    whole = memsim.convert(_net(), profs["0"], seed=0)
    l0, w0 = memsim.analog_layers(chip)[0][1], memsim.analog_layers(whole)[0][1]
    assert torch.equal(l0.tiles.g_prog, w0.tiles.g_prog)


def test_patterns_order_and_whole_profiles():
    chip = memsim.convert(
        _net(),
        "rram_wan2022",
        seed=0,
        layer_profiles={"*": {"adc": {"bits": 6}}, "[35]": {"dac": {"bits": 8}}, "5": "ideal"},
    )
    profs = _profiles(chip)
    assert profs["0"].adc.bits == 6 and profs["0"].dac.bits == 4
    assert profs["3"].adc.bits == 6 and profs["3"].dac.bits == 8
    assert profs["5"].name == "ideal"  # a whole profile replaces what came before
    # a state dict round trip with per-layer profiles stays exact
    again = memsim.convert(
        _net(),
        "rram_wan2022",
        seed=9,
        layer_profiles={"*": {"adc": {"bits": 6}}, "[35]": {"dac": {"bits": 8}}, "5": "ideal"},
    )
    again.load_state_dict(chip.state_dict())
    x = torch.rand(4, 1, 6, 6)
    memsim.calibrate(chip, x)
    again.load_state_dict(chip.state_dict())
    torch.testing.assert_close(again(x), chip(x), rtol=0, atol=0)


def test_export_records_each_layers_profile(tmp_path):
    chip = memsim.convert(
        _net(), "rram_wan2022", seed=0, layer_profiles={"5": {"adc": {"bits": 6}}}
    )
    path = memsim.export_chip(chip, tmp_path / "chip.npz")
    z = np.load(path)
    assert '"bits": 6' in str(z["layer2.profile_json"]) and '"bits": 8' in str(z["profile_json"])
    assert '"bits": 8' in str(z["layer0.profile_json"])
    memsim.import_conductances(chip, path)


def test_bad_keys_and_values_are_refused():
    with pytest.raises(ValueError, match=r"match no analog layer.*'0', '3', '5'"):
        memsim.convert(_net(), "ideal", layer_profiles={"classifier": {"adc": {"bits": 8}}})
    with pytest.raises(ProfileError, match="adc.bits"):
        memsim.convert(_net(), "ideal", layer_profiles={"0": {"adc": {"bits": 99}}})
    with pytest.raises(ProfileError, match="unknown profile name"):
        memsim.convert(_net(), "ideal", layer_profiles={"0": "nope"})
