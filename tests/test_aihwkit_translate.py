"""Translation of memsim device profiles into aihwkit InferenceRPUConfigs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("aihwkit")

from aihwkit.inference.compensation.drift import GlobalDriftCompensation  # noqa: E402
from aihwkit.inference.noise.pcm import PCMLikeNoiseModel  # noqa: E402
from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel  # noqa: E402
from aihwkit.simulator.parameters.enums import (  # noqa: E402
    BoundManagementType,
    NoiseManagementType,
    WeightNoiseType,
)

import memsim  # noqa: E402
from memsim.backends import aihwkit as ab  # noqa: E402


def _profile(base: str = "ideal", **sections: dict) -> memsim.DeviceProfile:
    p = memsim.load_profile(base)
    data = p.model_dump()
    for key, upd in sections.items():
        data[key] = {**data[key], **upd}
    return memsim.DeviceProfile.model_validate(data)


def test_pcm_profile_translates_to_matching_rpu_config():
    tr = ab.translate("pcm_joshi2020")
    cfg, f = tr.rpu_config, tr.rpu_config.forward
    assert cfg.mapping.max_input_size == 256 and cfg.mapping.max_output_size == 256
    assert cfg.mapping.weight_scaling_omega == 1.0 and not cfg.mapping.weight_scaling_columnwise
    assert f.inp_res == pytest.approx(1 / 254) and f.out_res == pytest.approx(1 / 254)
    assert f.out_bound == 12.0 and f.inp_bound == 1.0
    assert f.out_noise == 0.0 and f.w_noise == 0.0 and f.inp_noise == 0.0
    assert f.bound_management == BoundManagementType.NONE
    assert f.noise_management == NoiseManagementType.ABS_MAX  # dynamic DAC
    nm = cfg.noise_model
    assert isinstance(nm, PCMLikeNoiseModel)
    assert nm.g_max == 25.0 and nm.g_converter.g_min == 0.0
    assert nm.prog_coeff == [0.26348, 1.9650, -1.1731]
    assert nm.prog_coeff_g_max_reference == 25.0
    assert nm.t_0 == 20.0 and nm.t_read == 2.5e-7
    assert isinstance(cfg.drift_compensation, GlobalDriftCompensation)
    assert tr.drifts
    fields = {k.field: k.status for k in tr.untranslated()}
    assert fields == {
        "mapping.weight_scaling": ab.APPROXIMATED,
        "drift.compensation": ab.APPROXIMATED,
        "dac.mode": ab.APPROXIMATED,
    }


@pytest.mark.parametrize("name", memsim.list_profiles())
def test_every_shipped_profile_translates_and_reports_every_knob(name):
    tr = ab.translate(name)
    statuses = {k.status for k in tr.knobs}
    assert statuses <= {ab.TRANSLATED, ab.APPROXIMATED, ab.NOT_TRANSLATED}
    fields = " ".join(k.field for k in tr.knobs)
    for section in (
        "tile",
        "weight_scaling",
        "programming_noise",
        "read_noise",
        "drift.model",
        "drift.compensation",
        "faults.stuck_at_gmin_rate",
        "faults.d2d_sigma",
        "dac.bits",
        "adc.bits",
        "output_noise",
        "ir_drop",
        "device.levels",
    ):
        assert section in fields, (name, section)
    table = tr.table(everything=True)
    assert table.count("\n") == len(tr.knobs) + 1


def test_untranslatable_knobs_of_the_rram_chip_are_reported_not_dropped():
    tr = ab.translate("rram_1t1r_yao2020")
    bad = {k.field: k.status for k in tr.untranslated()}
    for f in (
        "faults.stuck_at_gmin_rate",
        "faults.stuck_at_gmax_rate",
        "faults.d2d_sigma",
        "device.levels",
        "adc.mode",
    ):
        assert bad[f] == ab.NOT_TRANSLATED, f
    assert bad["drift.model"] == ab.APPROXIMATED
    f = tr.rpu_config.forward
    assert f.w_noise == pytest.approx(math.sqrt(2) * 0.005)
    assert f.w_noise_type == WeightNoiseType.ADDITIVE_CONSTANT
    assert tr.rpu_config.mapping.max_input_size == 128
    assert tr.rpu_config.mapping.max_output_size == 8


def test_wan2022_profile_uses_aihwkit_reram_model():
    tr = ab.translate("rram_wan2022")
    nm = tr.rpu_config.noise_model
    assert isinstance(nm, ReRamWan2022NoiseModel)
    assert nm.g_max == 40.0 and nm.g_converter.g_min == 1.0
    assert nm.coeff_g_max_reference == 40.0
    assert not tr.drifts
    assert tr.rpu_config.drift_compensation is None
    assert tr.rpu_config.mapping.weight_scaling_columnwise  # per_column


@pytest.mark.parametrize(
    ("bound", "nm", "thres"),
    [(1.0, NoiseManagementType.NONE, None), (2.5, NoiseManagementType.CONSTANT, 2.5)],
)
def test_fixed_dac_maps_to_none_or_constant_noise_management(bound, nm, thres):
    p = _profile(dac={"bits": 6, "mode": "fixed", "bound": bound})
    f = ab.translate(p).rpu_config.forward
    assert f.noise_management == nm
    assert f.inp_res == pytest.approx(1 / 62)
    if thres is not None:
        assert f.nm_thres == thres


def test_calibrated_dac_uses_the_layer_range_when_given():
    p = _profile(dac={"bits": 8, "mode": "calibrated"})
    assert ab.translate(p).rpu_config.forward.noise_management == NoiseManagementType.ABS_MAX
    f = ab.translate(p, dac_range=3.0).rpu_config.forward
    assert f.noise_management == NoiseManagementType.CONSTANT and f.nm_thres == 3.0


def test_gaussian_and_proportional_programming_noise_are_polynomials():
    g = _profile(programming_noise={"model": "gaussian", "sigma": 0.02})
    nm = ab.translate(g).rpu_config.noise_model
    assert nm.prog_coeff == [pytest.approx(0.02 * 25.0)]
    p = _profile(programming_noise={"model": "proportional", "sigma": 0.03})
    nm = ab.translate(p).rpu_config.noise_model
    assert nm.prog_coeff == [0.0, pytest.approx(0.03 * 25.0)]
    # Measured: proportional noise has std sigma * G_target in aihwkit too.
    torch.manual_seed(0)
    g_t = torch.full((200_000,), 10.0)
    std = (nm.apply_programming_noise_to_conductance(g_t) - g_t).std().item()
    assert std == pytest.approx(0.3, rel=0.02)


def test_aligned_profile_removes_what_aihwkit_cannot_model():
    p, changes = ab.aligned_profile("rram_1t1r_yao2020")
    assert p.faults.stuck_at_gmin_rate == 0 and p.faults.d2d_sigma == 0
    assert p.device.levels is None and p.adc.mode.value == "fixed"
    assert {c.field.split(".")[0] for c in changes} == {"faults", "device", "adc"}
    assert ab.translate(p).untranslated() == [
        k
        for k in ab.translate(p).knobs
        if k.field in {"drift.model", "drift.compensation", "dac.mode"}
    ]
    pcm, changes = ab.aligned_profile("pcm_joshi2020")
    assert pcm.mapping.weight_scaling.value == "per_tile" and len(changes) == 1
    assert pcm.programming_noise == memsim.load_profile("pcm_joshi2020").programming_noise


def _run_both(profile, layer: nn.Module, x: torch.Tensor):
    chip = memsim.convert(nn.Sequential(layer), profile, seed=0)
    dep = ab.convert(nn.Sequential(layer), profile, seed=0)
    with torch.no_grad():
        return chip(x), dep.model(x), layer(x)


@pytest.mark.parametrize("dac_mode", ["fixed", "dynamic"])
def test_noise_free_periphery_is_bit_exact_like_for_like(dac_mode):
    # 8-bit DAC and ADC, no device noise: both codes must compute the same quantized MVM.
    p = _profile(
        mapping={"weight_scaling": "per_tile"},
        dac={"bits": 8, "mode": dac_mode, "bound": 1.0},
        adc={"bits": 8, "mode": "fixed", "bound": 3.0},
    )
    torch.manual_seed(0)
    layer = nn.Linear(200, 60)
    x = torch.rand(64, 200) * 2 - 1
    y_m, y_a, y_d = _run_both(p, layer, x)
    step = 3.0 / 127 * layer.weight.abs().max().item()  # one ADC LSB in weight units
    diff = (y_m - y_a).abs()
    assert diff.max().item() <= step * 1.01  # ties may round differently
    assert (diff > 1e-4).float().mean().item() < 0.01
    assert (y_m - y_d).abs().max().item() > 1e-3  # quantization did act


def test_ideal_profile_is_exact_in_both():
    torch.manual_seed(1)
    layer = nn.Linear(600, 300)  # 3 x 2 tiles in aihwkit
    x = torch.randn(16, 600) * 3
    y_m, y_a, y_d = _run_both("ideal", layer, x)
    torch.testing.assert_close(y_a, y_d, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y_m, y_d, atol=1e-4, rtol=1e-4)


def test_read_noise_is_per_mvm_with_the_same_std_in_both():
    # memsim: per-device Gaussian read noise; aihwkit: output-referred w_noise per MVM.
    p = _profile(
        mapping={"weight_scaling": "per_tile"},
        read_noise={"model": "gaussian", "sigma": 0.02},
        output_noise={"sigma": 0.01},
    )
    torch.manual_seed(2)
    layer = nn.Linear(100, 50, bias=False)
    x = (torch.rand(1, 100) * 2 - 1).expand(2000, 100).contiguous()  # same vector 2000 times
    y_m, y_a, _ = _run_both(p, layer, x)
    s = layer.weight.abs().max().item()
    expected = s * math.sqrt((math.sqrt(2) * 0.02) ** 2 * x[0].pow(2).sum().item() + 0.01**2)
    assert y_m.std(0).mean().item() == pytest.approx(expected, rel=0.05)
    assert y_a.std(0).mean().item() == pytest.approx(expected, rel=0.05)
