"""The cost model (memsim.cost) against hand computations."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import memsim
from memsim.cost import CostModelError, adc_energy_J, input_cycles
from memsim.profile_periphery import Periphery

V, T_READ = 0.3, 20e-9
E_DAC, E_ADC_REF, ADC_BITS = 0.5e-12, 2.0e-12, 6
E_SA, E_ACC, E_BIAS, E_SCALE = 0.03e-12, 0.04e-12, 0.1e-12, 1.5e-12
RATE, MUX = 1e9, 2
A_CELL, A_DAC, A_ADC, A_DIG = 0.05, 0.2, 900.0, 25.0
G_MIN, G_MAX = 1.0, 11.0


def _profile(**periphery: object) -> memsim.DeviceProfile:
    per = {
        "read_voltage_V": V,
        "read_pulse_s": T_READ,
        "dac_energy_pJ": E_DAC * 1e12,
        "adc_energy_pJ": E_ADC_REF * 1e12,
        "adc_reference_bits": 8,
        "adc_sample_rate_Hz": RATE,
        "cols_per_adc": MUX,
        "shift_add_energy_pJ": E_SA * 1e12,
        "accumulate_energy_pJ": E_ACC * 1e12,
        "bias_energy_pJ": E_BIAS * 1e12,
        "scale_energy_pJ": E_SCALE * 1e12,
        "cell_area_um2": A_CELL,
        "dac_area_um2": A_DAC,
        "adc_area_um2": A_ADC,
        "digital_area_um2_per_tile": A_DIG,
    }
    per.update(periphery)
    return memsim.validate_profile(
        {
            "name": "hand",
            "device": {"g_min_uS": G_MIN, "g_max_uS": G_MAX},
            "tile": {"rows": 4, "cols": 4},
            "dac": {"bits": 4, "mode": "fixed", "bound": 1.0},
            "adc": {"bits": ADC_BITS, "mode": "fixed", "bound": 10.0},
            "periphery": per,
        }
    )


W = torch.tensor([[0.5, -1.0, 0.25, 0.0], [-0.75, 0.5, 1.0, -0.25], [0.0, 0.25, -0.5, 0.75]])
CODES = [[7, -3, 0, 5], [1, 2, -6, 0]]


def _one_tile(**periphery: object) -> tuple[memsim.CostReport, nn.Module]:
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.zero_()
    chip = memsim.convert(lin, _profile(**periphery), seed=0)
    x = torch.tensor(CODES, dtype=torch.float32) / 7.0
    return memsim.cost_report(chip, x), chip


def _hand_conductances() -> list[list[tuple[float, float]]]:
    """(G+, G-) of each of the 3 x 4 weights: max|w| = 1 maps to the 10 µS window."""
    return [[(G_MIN + max(w, 0) * 10, G_MIN + max(-w, 0) * 10) for w in row] for row in W.tolist()]


def test_single_tile_matches_hand_computation_term_by_term():
    report, chip = _one_tile()
    g = _hand_conductances()
    got = memsim.conductances(chip)["weight"]
    for o in range(3):
        for r in range(4):
            assert got[0, o, r].item() == pytest.approx(g[o][r][0], rel=1e-6)
            assert got[1, o, r].item() == pytest.approx(g[o][r][1], rel=1e-6)
    cycles = 3  # 4-bit signed codes: 3 magnitude bits
    e_array = 0.0
    for codes in CODES:
        for r, code in enumerate(codes):
            for col in range(4):  # column 3 holds no weight: both devices at g_min
                cell = sum(g[col][r]) if col < 3 else 2 * G_MIN
                for bit in range(cycles):
                    if (abs(code) >> bit) & 1:
                        e_array += V**2 * cell * 1e-6 * T_READ
    e_array /= 2  # per inference
    e_dac = 4 * cycles * E_DAC
    conversions = 3 * cycles
    e_adc = conversions * E_ADC_REF * 2.0 ** (ADC_BITS - 8)
    e_dig = conversions * E_SA + 3 * E_ACC + 3 * (E_SCALE + E_BIAS)
    (layer,) = report.layers
    assert layer.array_J == pytest.approx(e_array, rel=1e-12)
    assert layer.dac_J == pytest.approx(e_dac, rel=1e-12)
    assert layer.adc_J == pytest.approx(e_adc, rel=1e-12)
    assert layer.digital_J == pytest.approx(e_dig, rel=1e-12)
    assert layer.latency_s == pytest.approx(cycles * (T_READ + MUX / RATE), rel=1e-12)
    area = 2 * 16 * A_CELL + 4 * A_DAC + 2 * A_ADC + A_DIG
    assert layer.area_mm2 == pytest.approx(area * 1e-6, rel=1e-12)
    assert layer.macs == 12 and layer.tiles == 1 and layer.mvms == 1
    total = e_array + e_dac + e_adc + e_dig
    assert report.energy_J == pytest.approx(total, rel=1e-12)
    assert report.tops_per_w == pytest.approx(2 * 12 / total / 1e12, rel=1e-12)
    tops_mm2 = 2 * 12 / layer.latency_s / (area * 1e-6) / 1e12
    assert report.tops_per_mm2 == pytest.approx(tops_mm2, rel=1e-12)


def test_single_tile_analog_levels_absent_cells_and_one_conversion_per_mvm():
    report, _ = _one_tile(input_encoding="analog", unused_cells="absent", adc_conversion="per_mvm")
    g = _hand_conductances()
    e_array = 0.0
    for codes in CODES:
        for r, code in enumerate(codes):
            for col in range(3):
                e_array += (V * abs(code) / 7) ** 2 * sum(g[col][r]) * 1e-6 * T_READ
    (layer,) = report.layers
    assert layer.array_J == pytest.approx(e_array / 2, rel=1e-12)
    assert layer.dac_J == pytest.approx(4 * E_DAC, rel=1e-12)
    assert layer.adc_J == pytest.approx(3 * E_ADC_REF / 4, rel=1e-12)
    assert layer.digital_J == pytest.approx(3 * E_SA + 3 * E_ACC + 3 * (E_SCALE + E_BIAS))
    assert layer.latency_s == pytest.approx(T_READ + MUX / RATE, rel=1e-12)


def test_zero_inputs_give_zero_array_energy():
    torch.manual_seed(0)
    # no biases, so that zeros reach the second layer too
    model = nn.Sequential(nn.Linear(20, 16, bias=False), nn.ReLU(), nn.Linear(16, 5, bias=False))
    chip = memsim.convert(model, "rram_1t1r_yao2020", seed=1)
    memsim.calibrate(chip, torch.randn(32, 20))
    report = memsim.cost_report(chip, torch.zeros(8, 20))
    assert report.term("array_J") == 0.0
    assert all(r.array_J == 0.0 for r in report.layers)
    assert report.term("dac_J") > 0 and report.term("adc_J") > 0
    busy = memsim.cost_report(chip, torch.randn(8, 20))
    assert busy.term("array_J") > 0


@pytest.mark.parametrize(("law", "factor"), [("exponential", 16.0), ("linear", 2.0)])
def test_doubling_adc_bits_changes_only_the_adc_term(law, factor):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 4))
    base = memsim.load_profile("rram_1t1r_yao2020")
    per = base.periphery.model_copy(update={"adc_scaling": law})
    x = torch.randn(4, 2, 8, 8)
    reports = []
    for bits in (4, 8):
        prof = base.model_copy(
            update={"adc": base.adc.model_copy(update={"bits": bits}), "periphery": per}
        )
        chip = memsim.convert(model, prof, seed=3)
        memsim.calibrate(chip, x)
        reports.append(memsim.cost_report(chip, x))
    lo, hi = reports
    for a, b in zip(lo.layers, hi.layers):
        assert b.array_J == pytest.approx(a.array_J, rel=1e-12)
        assert b.dac_J == a.dac_J and b.digital_J == a.digital_J
        assert b.latency_s == a.latency_s and b.area_mm2 == a.area_mm2
        assert b.adc_J == pytest.approx(factor * a.adc_J, rel=1e-12)
    assert adc_energy_J(base, 8) == pytest.approx(1.5625e-12)


@pytest.mark.parametrize("unused", ["absent", "g_min"])
def test_grouped_conv_counts_only_the_cells_it_uses(unused):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=2)
    prof = _profile(unused_cells=unused).model_copy(
        update={"tile": memsim.profiles.Tile(rows=64, cols=8)}
    )
    chip = memsim.convert(conv, prof, seed=0)
    layer = chip
    assert layer.layout.n_tiles == 1 and layer.layout.groups_per_tile == 2
    x = torch.rand(2, 4, 5, 5) * 2 - 1
    report = memsim.cost_report(chip, x)
    codes = torch.clamp(torch.round(x.double() * 7), -7, 7)
    pop = sum(((codes.abs().long() >> b) & 1) for b in range(3)).double()
    g = memsim.conductances(chip)["weight"].double().sum(0)  # (4 outputs, 18 rows)
    e_used = 0.0
    rows_per_mvm = 0
    for grp in range(2):
        patches = F.unfold(pop[:, 2 * grp : 2 * grp + 2], 3, padding=1)  # (B, 18, 25)
        rows_g = g[2 * grp : 2 * grp + 2].sum(0)  # both outputs of this group only
        if unused == "g_min":
            rows_g = rows_g + 2 * G_MIN * (8 - 2)  # the other 6 columns of each driven row
        e_used += float((patches * rows_g[None, :, None]).sum())
        rows_per_mvm += 18
    (cost,) = report.layers
    assert cost.array_J == pytest.approx(V**2 * T_READ * e_used * 1e-6 / 2, rel=1e-9)
    assert cost.mvms == 25
    assert cost.dac_J == pytest.approx(25 * rows_per_mvm * 3 * E_DAC, rel=1e-12)
    assert cost.adc_J == pytest.approx(25 * 4 * 3 * E_ADC_REF / 4, rel=1e-12)
    assert cost.macs == 25 * 4 * 18


def test_bad_periphery_values_are_refused_naming_the_field():
    with pytest.raises(memsim.ProfileError, match=r"periphery\.read_voltage_V"):
        memsim.validate_profile({"name": "bad", "periphery": {"read_voltage_V": -0.1}})
    with pytest.raises(memsim.ProfileError, match=r"periphery\.cols_per_adc"):
        memsim.validate_profile({"name": "bad", "periphery": {"cols_per_adc": 0}})
    with pytest.raises(memsim.ProfileError, match=r"periphery\.adc_scaling"):
        memsim.validate_profile({"name": "bad", "periphery": {"adc_scaling": "cubic"}})
    with pytest.raises(memsim.ProfileError, match=r"periphery\.adc_energy_fJ.*unknown field"):
        memsim.validate_profile({"name": "bad", "periphery": {"adc_energy_fJ": 1.0}})


def test_old_profiles_load_with_default_periphery_and_ideal_converters_are_refused():
    p = memsim.validate_profile({"name": "old", "dac": {"bits": 8}, "adc": {"bits": 8}})
    assert p.periphery == Periphery()
    assert input_cycles(p) == 7
    chip = memsim.convert(nn.Linear(4, 2), "ideal", seed=0)
    with pytest.raises(CostModelError, match=r"dac\.bits"):
        memsim.cost_report(chip, torch.randn(2, 4))


def test_report_table_csv_and_dict_agree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    chip = memsim.convert(model, "rram_wan2022", seed=0)
    x = torch.randn(3, 1, 8, 8)
    memsim.calibrate(chip, x)
    report = memsim.cost_report(chip, x)
    d = json.loads(json.dumps(report.to_dict()))
    assert [r["name"] for r in d["layers"]] == ["0", "3"]
    assert d["totals"]["energy_J"] == pytest.approx(sum(r["energy_J"] for r in d["layers"]))
    rows = report.to_csv().strip().splitlines()
    assert rows[0].startswith("name,kind,tiles") and rows[-1].startswith("total,")
    assert float(rows[-1].split(",")[9]) == pytest.approx(report.energy_J)
    text = str(report)
    assert "TOPS/W" in text and "total" in text and "rram_wan2022" in text
    assert math.isfinite(report.tops_per_mm2) and report.tops_per_mm2 > 0
    # the layers run one after the other
    assert report.latency_s == pytest.approx(sum(r.latency_s for r in report.layers))


def test_report_follows_reprogramming_and_leaves_no_probe_behind():
    report, chip = _one_tile()
    assert chip.cost_probe is None and "cost_probe" not in chip.__dict__
    x = torch.tensor(CODES, dtype=torch.float32) / 7.0
    # all-zero weights: every device at g_min, so each driven cell conducts 2 g_min
    memsim.program(chip, {"weight": torch.zeros(3, 4)}, seed=0)
    zero = memsim.cost_report(chip, x)
    pulses = sum(bin(abs(c)).count("1") for row in CODES for c in row)
    expected = V**2 * T_READ * pulses * 4 * 2 * G_MIN * 1e-6 / 2
    assert zero.layers[0].array_J == pytest.approx(expected, rel=1e-12)
    assert zero.layers[0].array_J < report.layers[0].array_J
    # a forward that fails after the analog layer still removes the probe
    with pytest.raises(NotImplementedError):
        memsim.cost_report(nn.Sequential(chip, nn.Module()), x)
    assert chip.cost_probe is None
