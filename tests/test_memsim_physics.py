"""Acceptance 2-5: programming noise, levels, faults, drift."""

import math

import pytest
import torch
from torch import nn

import memsim
from memsim.profiles import DeviceProfile


def _profile(**sections) -> DeviceProfile:
    base = memsim.load_profile("ideal").model_dump()
    for name, values in sections.items():
        base[name] = {**base[name], **values}
    base["name"] = "test"
    return memsim.validate_profile(base)


def _linear(out=256, inp=512, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inp, out, bias=False))


def _layer(model):
    return memsim.analog_layers(model)[0][1]


def test_gaussian_programming_noise_sigma():
    sigma = 0.02
    prof = _profile(
        device={"g_min_uS": 5.0, "g_max_uS": 25.0},
        programming_noise={"model": "gaussian", "sigma": sigma},
    )
    chip = memsim.convert(_linear(), prof, seed=3)  # 131,072 weights = 262,144 devices
    layer = _layer(chip)
    assert layer.g_prog.numel() >= 65536
    err = (layer.g_prog - layer.target_conductances()) / (25.0 - 5.0)
    assert err.std().item() == pytest.approx(sigma, rel=0.05)
    assert abs(err.mean().item()) < 4 * sigma / math.sqrt(err.numel())


def test_polynomial_programming_noise_at_three_states():
    coeffs = [0.26348, 1.9650, -1.1731]
    prof = _profile(
        device={"g_min_uS": 0.0, "g_max_uS": 25.0},
        programming_noise={"model": "polynomial", "coeffs_uS": coeffs, "coeffs_g_max_ref_uS": 25.0},
    )
    states = torch.tensor([0.25, 0.5, 1.0])
    w = states.repeat_interleave(30000).view(90, 1000)  # per-layer scale 1 -> ghat = w
    model = nn.Sequential(nn.Linear(1000, 90, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w)
    layer = _layer(memsim.convert(model, prof, seed=5))
    err = layer.g_prog[0] - layer.target_conductances()[0]
    for i, ghat in enumerate(states.tolist()):
        expected = sum(c * ghat**p for p, c in enumerate(coeffs))
        got = err[i * 30 : (i + 1) * 30].std().item()
        assert got == pytest.approx(expected, rel=0.05), (ghat, got, expected)


def test_levels_and_half_step_error():
    levels = 8
    prof = _profile(
        device={"g_min_uS": 2.0, "g_max_uS": 20.0, "levels": levels},
        tile={"rows": 128, "cols": 8},
        mapping={"weight_scaling": "per_tile"},
    )
    model = _linear(64, 300, seed=2)
    layer = _layer(memsim.convert(model, prof, seed=0))
    allowed = 2.0 + torch.arange(levels) / (levels - 1) * 18.0
    g = layer.g_prog.reshape(-1, 1)
    assert torch.isclose(g, allowed.view(1, -1), atol=1e-4).any(1).all()
    assert torch.unique(torch.round(layer.g_prog * 1e3)).numel() <= levels
    w_eff = memsim.effective_weights(nn.Sequential(layer))["0.weight"]
    step = memsim.mapping.expand_partial(layer.scale, layer.layout) / (levels - 1)
    err = (w_eff - model[0].weight.detach()).abs()
    assert (err <= step / 2 + 1e-6).all()
    assert err.max() > step.min() / 4  # the bound is not vacuous


def test_stuck_at_rates_and_chip_identity():
    rates = (0.01, 0.02)
    prof = _profile(
        faults={"stuck_at_gmin_rate": rates[0], "stuck_at_gmax_rate": rates[1], "d2d_sigma": 0.05},
        device={"g_min_uS": 1.0, "g_max_uS": 20.0},
        programming_noise={"model": "gaussian", "sigma": 0.01},
    )
    chip = memsim.convert(_linear(), prof, seed=1, chip_seed=42)
    layer = _layer(chip)
    n = layer.fault.numel()
    for code, p in zip((1, 2), rates):
        frac = (layer.fault == code).float().mean().item()
        assert abs(frac - p) <= 4 * math.sqrt(p * (1 - p) / n)
    stuck_min, stuck_max = layer.fault == 1, layer.fault == 2
    assert torch.all(layer.g_prog[stuck_min] == 1.0) and torch.all(layer.g_prog[stuck_max] == 20.0)
    fault_before, gain_before, g_before = (
        layer.fault.clone(),
        layer.gain.clone(),
        layer.g_prog.clone(),
    )
    memsim.program(chip, seed=2)  # same chip, fresh programming noise
    assert torch.equal(layer.fault, fault_before) and torch.equal(layer.gain, gain_before)
    healthy = layer.fault == 0
    assert not torch.equal(layer.g_prog[healthy], g_before[healthy])
    other = _layer(memsim.convert(_linear(), prof, seed=1, chip_seed=43))
    assert not torch.equal(other.fault, fault_before)
    again = _layer(memsim.convert(_linear(), prof, seed=1, chip_seed=42))
    assert torch.equal(again.g_prog, g_before)


@pytest.mark.parametrize("t", [3600.0, 86400.0])
def test_power_law_drift_mean(t):
    nu_mean, t0 = 0.06, 20.0
    prof = _profile(drift={"model": "power_law", "nu_mean": nu_mean, "nu_std": 0.01, "t0_s": t0})
    chip = memsim.convert(_linear(), prof, seed=0)
    layer = _layer(chip)
    g0 = memsim.conductances(chip)["0.weight"].clone()
    memsim.drift(chip, t)
    gt = memsim.conductances(chip)["0.weight"]
    on = g0 > 1.0  # devices at g_min = 0 carry no information
    ratio = (gt[on] / g0[on]).mean().item()
    assert ratio == pytest.approx((t / t0) ** -nu_mean, rel=0.02)
    assert layer.t_s == t
    memsim.drift(chip, 0.0)  # drift is absolute in time: back to the programmed state
    assert torch.allclose(memsim.conductances(chip)["0.weight"], g0)


def test_global_drift_compensation_lowers_error():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(200, 100), nn.ReLU(), nn.Linear(100, 10))
    x = torch.randn(512, 200)
    with torch.no_grad():
        ref = model(x)
    errs = {}
    for comp in ("none", "global"):
        prof = _profile(
            drift={"model": "power_law", "nu_mean": 0.05, "nu_std": 0.02, "compensation": comp},
            programming_noise={"model": "gaussian", "sigma": 0.01},
            device={"g_min_uS": 0.0, "g_max_uS": 25.0},
        )
        chip = memsim.convert(model, prof, seed=7)
        memsim.drift(chip, 86400.0)
        with torch.no_grad():
            errs[comp] = ((chip(x) - ref).norm() / ref.norm()).item()
    assert errs["global"] < 0.5 * errs["none"]


def test_pcm_drift_matches_published_mean():
    chip = memsim.convert(_linear(), "pcm_joshi2020", seed=0)
    g0 = memsim.conductances(chip)["0.weight"].clone()
    memsim.drift(chip, 3600.0)
    g1 = memsim.conductances(chip)["0.weight"]
    on = g0 > 5.0
    assert 0.6 < (g1[on] / g0[on]).mean().item() < 0.95


def test_ir_drop_access_exact_and_wires_reduce_far_cells():
    # The first-order formula this test used to assert is gone: IR drop is now a nodal
    # solve (tests/test_memsim_irdrop.py holds it against an independent KCL solve).
    model = _linear(16, 64, seed=3)
    base = dict(device={"g_min_uS": 0.0, "g_max_uS": 50.0}, tile={"rows": 64, "cols": 16})
    plain = memsim.effective_weights(memsim.convert(model, _profile(**base), seed=0))["0.weight"]
    off = _profile(**base, ir_drop={"enabled": True, "r_wire_ohm": 0.0, "r_access_ohm": 0.0})
    same = memsim.effective_weights(memsim.convert(model, off, seed=0))["0.weight"]
    assert torch.allclose(plain, same)
    # without wires the access transistor is exactly in series: G / (1 + G r_access)
    acc = _profile(**base, ir_drop={"enabled": True, "r_wire_ohm": 0.0, "r_access_ohm": 2000.0})
    ratio = memsim.effective_weights(memsim.convert(model, acc, seed=0))["0.weight"] / plain
    g = plain.abs() / plain.abs().max() * 50.0
    assert torch.allclose(ratio, 1.0 / (1.0 + g * 1e-6 * 2000.0), rtol=1e-5)
    on = _profile(**base, ir_drop={"enabled": True, "r_wire_ohm": 20.0, "r_access_ohm": 2000.0})
    dropped = memsim.effective_weights(memsim.convert(model, on, seed=0))["0.weight"]
    ratio = dropped / plain
    # (near-zero weights also pick up sneak-path currents, so only clear weights are checked)
    big = plain.abs() > 0.2 * plain.abs().max()
    assert torch.all(ratio[big] < 1.0) and torch.all(ratio[big] > 0.3)
    # the cell farthest from driver and sense amplifier loses the most
    assert ratio[15, 0] < ratio[0, 63]
