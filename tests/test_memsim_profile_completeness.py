"""Every profile field acts in the simulator (or documents) and is translated to aihwkit
(or is listed as inexpressible there); the ADC offset as the example of a new field."""

import importlib.util

import pytest
import torch
from profile_completeness_support import (
    covered,
    knob_fields,
    run_workload,
    schema_fields,
    traced_reads,
    workload_profiles,
)
from torch import nn

import memsim
from memsim.periphery import ADC
from memsim.profiles import DOC_ONLY_FIELDS

HAS_AIHWKIT = importlib.util.find_spec("aihwkit") is not None


@pytest.fixture(scope="module")
def observed():
    reads: set[str] = set()
    translated: set[str] = set()
    for profile in workload_profiles():
        with traced_reads() as r:
            run_workload(profile)
        reads |= r
        if HAS_AIHWKIT:
            import memsim.backends.aihwkit as ab

            translated |= knob_fields(ab.translate(profile).knobs)
    return reads, translated


def test_every_profile_field_is_used_or_documentation_only(observed):
    reads, _ = observed
    unused = sorted(f for f in schema_fields() if f not in reads and f not in DOC_ONLY_FIELDS)
    assert not unused, f"profile fields read by nothing in the simulator: {unused}"


@pytest.mark.skipif(not HAS_AIHWKIT, reason="needs aihwkit")
def test_every_profile_field_is_translated_or_listed_as_inexpressible(observed):
    import memsim.backends.aihwkit as ab

    _, translated = observed
    known = translated | set(ab.NOT_EXPRESSED)
    missing = sorted(
        f for f in schema_fields() if f not in DOC_ONLY_FIELDS and not covered(f, known)
    )
    assert not missing, f"profile fields the aihwkit translation forgets: {missing}"


@pytest.mark.skipif(not HAS_AIHWKIT, reason="needs aihwkit")
def test_a_forgotten_translation_is_caught(monkeypatch):
    import memsim.backends.aihwkit as ab

    prof = memsim.load_profile("rram_1t1r_yao2020").derive(adc={"offset": 0.01})
    before = knob_fields(ab.translate(prof).knobs)
    assert covered("adc.offset", before)
    orig = ADC.aihwkit
    monkeypatch.setattr(
        ADC, "aihwkit", lambda self, f: [k for k in orig(self, f) if k.field != "adc.offset"]
    )
    after = knob_fields(ab.translate(prof).knobs) | set(ab.NOT_EXPRESSED)
    assert not covered("adc.offset", after)


def test_an_unread_field_is_caught():
    prof = memsim.load_profile("ideal")
    with traced_reads() as reads:
        prof.adc.bits  # noqa: B018
    assert reads == {"adc.bits"}


def test_adc_offset_shifts_each_conversion():
    # one 8-bit fixed-range ADC on an ideal tile: y = scale step round((p + offset) / step)
    prof = memsim.load_profile("ideal").derive(
        adc={"bits": 8, "mode": "fixed", "bound": 4.0, "offset": 0.05}
    )
    torch.manual_seed(0)
    lin = nn.Linear(5, 3, bias=False)
    chip = memsim.convert(lin, prof, seed=0)
    x = torch.randn(7, 5)
    w = lin.weight.detach()
    scale = w.abs().max()
    step = 4.0 / 127
    p = x @ (w / scale).T
    expected = scale * step * ((p + 0.05) / step).round().clamp(-127, 127)
    torch.testing.assert_close(chip(x), expected, rtol=1e-5, atol=1e-6)
    no_offset = memsim.convert(lin, prof.derive(adc={"offset": 0.0}), seed=0)
    assert not torch.allclose(chip(x), no_offset(x))
    # an ideal ADC has no offset
    ideal = memsim.convert(lin, prof.derive(adc={"bits": None}), seed=0)
    torch.testing.assert_close(ideal(x), x @ w.T, rtol=1e-5, atol=1e-6)
