"""Any aihwkit noise model as memsim's device physics (profile section aihwkit_noise_model)."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

pytest.importorskip("aihwkit")

import memsim  # noqa: E402
from memsim import ProfileError  # noqa: E402
from memsim.physics import PCMJoshi2020, device_model  # noqa: E402
from memsim.physics_aihwkit import AihwkitDeviceModel, torch_seed  # noqa: E402
from memsim.seeds import device_seed  # noqa: E402

TIMES = {"1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}
CMO = "rram_cmo_aihwkit"


def _variant(base: str, name: str = "variant", **sections) -> memsim.DeviceProfile:
    data = memsim.load_profile(base).model_dump(by_alias=True)
    for key, val in sections.items():
        data[key] = {**data[key], **val} if isinstance(data.get(key), dict) else val
    data["name"] = name
    return memsim.validate_profile(data)


def _pcm_via_aihwkit() -> memsim.DeviceProfile:
    """pcm_joshi2020 with its physics replaced by aihwkit's PCMLikeNoiseModel."""
    prof = memsim.load_profile("pcm_joshi2020_aihwkit")
    assert prof.aihwkit_noise_model.class_name == "PCMLikeNoiseModel"
    assert prof.programming_noise.model.value == prof.drift.model.value == "none"
    return prof


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def _same_stream(gen: torch.Generator) -> torch.Generator:
    """A generator that gives the normals aihwkit draws under ``gen``'s derived seed."""
    peek = torch.Generator()
    peek.set_state(gen.get_state())
    return torch.Generator().manual_seed(torch_seed(peek))


# -- PCMLikeNoiseModel inside memsim == memsim's native pcm_joshi2020 -------------------


@pytest.fixture(scope="module")
def pcm_layers():
    """One 1024 x 1024 layer (2,097,152 devices) on both profiles, independent seeds."""
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(1024, 1024, bias=False))
    out = {}
    for key, prof, seed in (("native", "pcm_joshi2020", 1), ("aihwkit", _pcm_via_aihwkit(), 2)):
        chip = memsim.convert(lin, prof, seed=seed)
        layer = memsim.analog_layers(chip)[0][1]
        g_t = layer.target_conductances()
        g0 = layer.g_now.clone()  # the first read, t0 after programming
        ratios = {}
        sel = (g_t > 1.0) & (g0 > 0.5)  # G(t)/G(t0) is meaningless near G = 0
        for label, t in TIMES.items():
            memsim.drift(chip, t)
            ratios[label] = (layer.g_now[sel] / g0[sel]).mean().item()
        out[key] = (layer, g_t, layer.g_prog - g_t, ratios)
    assert isinstance(out["aihwkit"][0].physics, AihwkitDeviceModel)
    assert isinstance(out["native"][0].physics, PCMJoshi2020)
    return out


def test_pcm_programming_error_matches_native_with_shared_random_numbers(pcm_layers):
    # Same target conductances, same normals (memsim's derived seed drives aihwkit's draw):
    # any difference is a difference of formulas or units.
    layer, g_t, _, _ = pcm_layers["native"]
    assert g_t.numel() == 2 * 1024 * 1024
    native, ours = PCMJoshi2020(layer.profile), device_model(_pcm_via_aihwkit())
    gen = torch.Generator().manual_seed(device_seed(7, 2, 0))
    e_ms = native.program(g_t, _same_stream(gen)) - g_t
    e_ai = ours.program(g_t, gen) - g_t
    assert e_ms.mean().item() > 0.04  # the bias of clamping G >= 0 at the g_min devices
    assert _rel(e_ai.mean().item(), e_ms.mean().item()) < 0.01
    assert _rel(e_ai.std().item(), e_ms.std().item()) < 0.01
    assert torch.allclose(e_ai, e_ms, atol=1e-5)


def test_pcm_drift_matches_native_with_shared_random_numbers(pcm_layers):
    layer, g_t, _, _ = pcm_layers["native"]
    native, ours = PCMJoshi2020(layer.profile), device_model(_pcm_via_aihwkit())
    g_prog = native.program(g_t, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(4)
    nu_ms = native.drift_exponents(g_t, _same_stream(gen))
    nu_ai = ours.drift_exponents(g_t, gen)
    assert torch.allclose(nu_ai, nu_ms, atol=1e-6)
    reads = {}
    for i, (label, t) in enumerate({"t0": 0.0, **TIMES}.items()):
        gen = torch.Generator().manual_seed(10 + i)
        reads[label] = (
            native.drift(g_prog, nu_ms, t, _same_stream(gen)),
            ours.drift(g_prog, nu_ai, t, gen),
        )
    g0_ms, g0_ai = reads.pop("t0")
    assert torch.allclose(g0_ai, g0_ms, atol=1e-4)
    # G(t)/G(t0) over devices away from G = 0 at both reads (a ratio of noisy numbers
    # near zero is meaningless).
    sel = (g_t > 1.0) & (g0_ms > 0.5) & (g0_ai > 0.5)
    for label, (g_ms, g_ai) in reads.items():
        f_ms = (g_ms[sel] / g0_ms[sel]).mean().item()
        f_ai = (g_ai[sel] / g0_ai[sel]).mean().item()
        assert f_ms < 0.8, label  # it did drift
        assert _rel(f_ai, f_ms) < 0.005, (label, f_ai, f_ms)


def test_pcm_layer_moments_match_native_with_independent_seeds(pcm_layers):
    _, _, e_ms, r_ms = pcm_layers["native"]
    _, _, e_ai, r_ai = pcm_layers["aihwkit"]
    # Independent draws on 2,097,152 devices: the std of the error agrees to ~0.2 %, its
    # mean (a small clamping bias) only to its sampling error, ~0.8 %.
    assert _rel(e_ai.std().item(), e_ms.std().item()) < 0.01
    assert _rel(e_ai.mean().item(), e_ms.mean().item()) < 0.04
    for label in TIMES:
        assert r_ms[label] < 0.8
        assert _rel(r_ai[label], r_ms[label]) < 0.005, (label, r_ai[label], r_ms[label])


# -- ReRamCMONoiseModel on real networks ---------------------------------------------


def _cmo_faulty() -> memsim.DeviceProfile:
    return _variant(
        CMO, "cmo_faulty", faults={"stuck_at_gmin_rate": 0.05, "stuck_at_gmax_rate": 0.03}
    )


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def _dwconv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32),  # depthwise
        nn.ReLU(),
        nn.Conv2d(32, 48, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(48, 10),
    )


def _cmo_sigma(g: torch.Tensor) -> torch.Tensor:
    """ReRamCMONoiseModel's 2 % acceptance-range fit (aihwkit 1.1.0 coeff_dict[2])."""
    return 0.0112185391 + 0.01129027418 * g


def _check_stuck(chip: nn.Module, prof: memsim.DeviceProfile) -> int:
    n = 0
    for _, layer in memsim.analog_layers(chip):
        lo, hi = layer.fault == 1, layer.fault == 2
        assert torch.all(layer.g_now[lo] == prof.device.g_min_uS)
        assert torch.all(layer.g_now[hi] == prof.device.g_max_uS)
        n += int(lo.sum() + hi.sum())
    return n


@pytest.mark.parametrize("make, shape", [(_mlp, (32, 64)), (_dwconv, (8, 3, 12, 12))])
def test_cmo_convert_program_drift_calibrate_with_stuck_faults(make, shape):
    prof = _cmo_faulty()
    model = make().eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    chip = memsim.convert(model, prof, seed=3)
    layers = memsim.analog_layers(chip)
    assert len(layers) == sum(isinstance(m, nn.Linear | nn.Conv2d) for m in model.modules())
    assert all(isinstance(layer.physics, AihwkitDeviceModel) for _, layer in layers)
    memsim.calibrate(chip, x)
    with torch.no_grad():
        y_ref = model(x)
        y0 = chip(x)
    assert torch.isfinite(y0).all() and not torch.equal(y0, y_ref)
    n_stuck = _check_stuck(chip, prof)
    assert n_stuck > 0

    # Programming error of the working devices is the CMO fit, sigma(G) = c0 + c1 G µS.
    errs = []
    for _, layer in layers:
        g_t = layer.target_conductances()
        ok = layer.fault == 0
        errs.append(((layer.g_prog - g_t) / _cmo_sigma(g_t))[ok])
    z = torch.cat(errs)
    assert z.numel() > 5000
    assert z.std().item() == pytest.approx(1.0, rel=0.05)
    assert abs(z.mean().item()) < 0.05

    # One day: the working devices above the clamp relax by -0.0890 ln(t) µS on average.
    memsim.drift(chip, 86400.0)
    shift = []
    for _, layer in layers:
        ok = (layer.fault == 0) & (layer.g_prog > 20.0) & (layer.g_prog < 80.0)
        shift.append((layer.g_now - layer.g_prog)[ok])
    d = torch.cat(shift)
    if d.numel() > 200:
        assert d.mean().item() == pytest.approx(-0.08900206 * math.log(86400.0), rel=0.1)
    assert _check_stuck(chip, prof) == n_stuck  # stuck devices stay stuck and do not drift
    with torch.no_grad():
        y1 = chip(x)
    assert torch.isfinite(y1).all() and not torch.equal(y1, y0)

    # Re-programming on the same chip: new noise, the same stuck devices.
    faults = [layer.fault.clone() for _, layer in layers]
    before = [layer.g_prog.clone() for _, layer in layers]
    memsim.program(chip, seed=4)
    memsim.calibrate(chip, x)
    for (_, layer), f, g in zip(layers, faults, before):
        assert torch.equal(layer.fault, f)
        assert not torch.equal(layer.g_prog, g)
    assert _check_stuck(chip, prof) == n_stuck
    with torch.no_grad():
        assert torch.isfinite(chip(x)).all()


def test_seeded_chip_gives_the_same_outputs_twice_and_leaves_global_rng_alone():
    prof = _cmo_faulty()
    x = torch.randn(16, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    outs = []
    torch.manual_seed(123)
    state = torch.get_rng_state()
    for seed in (5, 5, 6):
        chip = memsim.convert(_dwconv().eval(), prof, seed=seed, chip_seed=9)
        memsim.calibrate(chip, x)
        memsim.drift(chip, 3600.0)
        with torch.no_grad():
            outs.append(chip(x))
    # _dwconv() reseeds the global RNG itself; restore and check memsim never touched it.
    small = nn.Sequential(nn.Linear(8, 4))  # its init draws from the global RNG
    torch.set_rng_state(state)
    chip = memsim.convert(small, prof, seed=1)
    memsim.program(chip, seed=2)
    memsim.drift(chip, 60.0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


# -- users' own models, units, pitfalls ------------------------------------------------


def test_own_subclass_by_dotted_path_with_a_linear_window_map():
    prof = _variant(
        "ideal",
        "own",
        device={"g_min_uS": 0.0, "g_max_uS": 25.0},
        aihwkit_noise_model={
            "class": "aihwkit_noise_support.ConstantNoiseModel",
            "kwargs": {"sigma": 0.01, "rate_per_s": 1e-6},
            "conductance_map": "linear",
        },
    )
    torch.manual_seed(0)
    chip = memsim.convert(nn.Sequential(nn.Linear(512, 256, bias=False)), prof, seed=0)
    layer = memsim.analog_layers(chip)[0][1]
    g_t = layer.target_conductances()
    # sigma 0.01 of the model's g_max = 1 is 0.25 µS on memsim's 25 µS window.
    assert (layer.g_prog - g_t).std().item() == pytest.approx(0.25, rel=0.01)
    memsim.drift(chip, 1000.0)
    assert torch.allclose(layer.g_now, layer.g_prog * (1.0 - 1e-3), rtol=1e-5, atol=1e-6)


def test_wan2022_default_coefficients_are_rescaled_and_fixed_times_enforced():
    # aihwkit 1.1.0 leaves the 40 µS reference unused; at g_max 20 µS sigma must halve.
    prof = _variant(
        "rram_wan2022",
        "wan_aihwkit",
        device={"g_min_uS": 0.0, "g_max_uS": 20.0},
        programming_noise={"model": "none"},
        aihwkit_noise_model={"class": "ReRamWan2022NoiseModel", "kwargs": {"g_max": 20.0}},
    )
    phys = device_model(prof)
    g_t = torch.full((200_000,), 10.0)  # g / g_max = 0.5
    ghat = 0.5
    coeffs = (0.348, 16.030, -43.853, 45.393, -16.815)
    sigma40 = sum(c * ghat**i for i, c in enumerate(coeffs))
    err = phys.program(g_t, torch.Generator().manual_seed(0)) - g_t
    assert err.std().item() == pytest.approx(sigma40 * 20.0 / 40.0, rel=0.01)
    nu = phys.drift_exponents(g_t, torch.Generator().manual_seed(1))
    g_prog = g_t + err
    assert torch.equal(phys.drift(g_prog, nu, 0.0, torch.Generator()), g_prog)
    assert phys.drift(g_prog, nu, 86400.0, torch.Generator().manual_seed(2)).std() > 0
    with pytest.raises(ValueError, match="cannot drift to t = 3600"):
        phys.drift(g_prog, nu, 3600.0, torch.Generator())


def _bad(**section) -> dict:
    data = memsim.load_profile(CMO).model_dump(by_alias=True)
    data["aihwkit_noise_model"] = {**data["aihwkit_noise_model"], **section}
    return data


@pytest.mark.parametrize(
    "data, field",
    [
        (_bad(**{"class": "NoSuchNoiseModel"}), "aihwkit_noise_model.class"),
        (_bad(**{"class": "aihwkit_noise_support.NotANoiseModel"}), "aihwkit_noise_model.class"),
        (_bad(**{"class": "no_such_module.Model"}), "aihwkit_noise_model.class"),
        (_bad(**{"class": "BaseNoiseModel"}), "aihwkit_noise_model.class"),
        (_bad(**{"class": ""}), "aihwkit_noise_model.class"),
        (_bad(kwargs={"g_max": 88.2, "g_min": 9.0, "bogus": 1}), "aihwkit_noise_model.kwargs"),
        (
            _bad(kwargs={"g_max": 8.0, "g_min": 9.0, "acceptance_range": 2}),
            "aihwkit_noise_model.kwargs",
        ),
        (
            _bad(kwargs={"g_max": 88.2, "g_min": 9.0, "acceptance_range": 0.02}),
            "aihwkit_noise_model.kwargs.acceptance_range",
        ),
        (_bad(kwargs={"g_max": 80.0, "g_min": 9.0, "acceptance_range": 2}), "device.g_max_uS"),
        (_bad(kwargs={"g_max": 88.2, "g_min": 5.0, "acceptance_range": 2}), "device.g_min_uS"),
        (_bad(conductance_map="affine"), "aihwkit_noise_model.conductance_map"),
        (_bad(extra=1), "aihwkit_noise_model.extra"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(data, field):
    with pytest.raises(ProfileError, match=f"field '{field}'"):
        memsim.validate_profile(data, "bad.json")


def test_memsim_physics_sections_must_be_none():
    data = memsim.load_profile(CMO).model_dump(by_alias=True)
    data["programming_noise"] = {"model": "gaussian", "sigma": 0.01}
    with pytest.raises(ProfileError, match="field 'programming_noise.model'"):
        memsim.validate_profile(data)
    data = memsim.load_profile(CMO).model_dump(by_alias=True)
    data["drift"] = {"model": "power_law", "nu_mean": 0.01}
    with pytest.raises(ProfileError, match="field 'drift.model'"):
        memsim.validate_profile(data)


def test_linear_map_matches_the_window_and_by_name_round_trip():
    prof = _variant(
        CMO,
        "cmo_mapped",
        device={"g_min_uS": 1.0, "g_max_uS": 40.0},
        aihwkit_noise_model={"conductance_map": "linear"},
    )
    assert memsim.validate_profile(prof.model_dump()) == prof  # by field name
    assert memsim.validate_profile(prof.model_dump(by_alias=True)) == prof
    phys = device_model(prof)
    g = torch.tensor([1.0, 40.0, 20.5])
    model_g = phys._to_model(g)
    assert torch.allclose(model_g, torch.tensor([9.0, 88.2, 48.6]), atol=1e-4)
    assert torch.allclose(phys._from_model(model_g), g, atol=1e-5)


def test_missing_aihwkit_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "aihwkit.inference", None)  # import now fails
    with pytest.raises(ProfileError, match=r"pip install 'memsim\[aihwkit\]'") as info:
        memsim.load_profile(CMO)
    assert "field 'aihwkit_noise_model'" in str(info.value)
