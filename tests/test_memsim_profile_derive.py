"""Profiles in Python: ``load_profile(dict)`` with ``extends``, ``derive`` and provenance."""

import json

import pytest

import memsim
from memsim import ProfileError, load_profile, validate_profile
from memsim.profiles import ADC


def test_dict_extends_equals_the_file_derivation(tmp_path):
    data = {"name": "wan4", "extends": "rram_wan2022", "adc": {"bits": 4}}
    path = tmp_path / "wan4.json"
    path.write_text(json.dumps(data))
    from_file = load_profile(path)
    from_dict = load_profile(data)
    assert from_dict == from_file
    # without a name the file takes its stem; a dict gets the parent's name plus the change
    path.write_text(json.dumps({"extends": "rram_wan2022", "adc": {"bits": 4}}))
    assert load_profile(path).name == "wan4"
    anon = load_profile({"extends": "rram_wan2022", "adc": {"bits": 4}})
    assert anon.name == "rram_wan2022+adc.bits=4"
    assert anon.model_dump(exclude={"name", "description", "source"}) == from_file.model_dump(
        exclude={"name", "description", "source"}
    )


def test_validate_profile_honours_extends():
    # it used to ignore extends: g_max 25 µS (the default) and no programming noise
    p = validate_profile({"extends": "rram_wan2022", "name": "x", "adc": {"bits": 4}})
    assert p.device.g_max_uS == 40.0
    assert p.programming_noise.model.value == "polynomial"
    assert p.adc.bits == 4 and p.adc.mode.value == "calibrated"
    assert p.extends == "rram_wan2022"


def test_derive_marks_provenance():
    wan = load_profile("rram_wan2022")
    child = wan.derive(adc={"bits": 4})
    assert child.adc.bits == 4 and child.dac == wan.dac and child.extends == "rram_wan2022"
    assert child.name == "rram_wan2022+adc.bits=4"
    assert "adc.bits 8 -> 4" in child.description
    assert "changed in" in child.source["adc.bits"] and "was 8" in child.source["adc.bits"]
    # the parent's citation of the section says it no longer covers the changed field
    assert child.source["adc"].startswith(wan.source["adc"])
    assert "adc.bits changed" in child.source["adc"]
    assert child.source["general"] == wan.source["general"]
    # an unchanged value is no change
    same = wan.derive(adc={"bits": 8}, name="same")
    assert "adc.bits" not in same.source and same.source["adc"] == wan.source["adc"]


def test_derive_forms_agree_and_cite():
    wan = load_profile("rram_wan2022")
    a = wan.derive({"adc": {"bits": 4}}, name="w4")
    b = wan.derive(adc=ADC(bits=4, mode="calibrated"), name="w4")
    c = load_profile({"extends": "rram_wan2022", "name": "w4", "adc": {"bits": 4}})
    assert a == b == c
    cited = wan.derive(
        adc={"bits": 4}, name="w4", description="mine", source={"adc.bits": "our own 4-bit ADC"}
    )
    assert cited.description == "mine" and cited.source["adc.bits"] == "our own 4-bit ADC"


def test_derive_refuses_bad_values_and_round_trips():
    wan = load_profile("rram_wan2022")
    with pytest.raises(ProfileError, match="adc.bits"):
        wan.derive(adc={"bits": 99})
    with pytest.raises(ProfileError, match="unknown field"):
        wan.derive(adc={"bitz": 4})
    child = wan.derive(adc={"bits": 4})
    # the dump of a derived profile re-validates to itself (extends is resolved again)
    assert validate_profile(child.model_dump(mode="json")) == child
    assert validate_profile(child.model_dump(mode="json"), resolve=False) == child
    # a derived profile converts like any other
    import torch

    chip = memsim.convert(torch.nn.Linear(4, 3), child, seed=0)
    assert memsim.analog_layers(chip)[0][1].profile.adc.bits == 4


def test_dict_extends_errors():
    with pytest.raises(ProfileError, match="extends.*unknown profile name"):
        load_profile({"extends": "nope", "adc": {"bits": 4}})
    with pytest.raises(ProfileError, match="must be a profile name"):
        load_profile({"extends": 3})
    with pytest.raises(ProfileError, match="field 'name'"):
        load_profile({"adc": {"bits": 4}})


def test_shipped_derived_profiles_keep_their_own_texts():
    faulty = load_profile("rram_1t1r_faulty_chen2015")
    assert faulty.description.startswith("The Yao et al. (2020) 1T1R RRAM chip")
    # its own "faults" citation covers the changed rates: no extra entries
    assert not [k for k in faulty.source if k.startswith("faults.")]
