"""The cost model against the published component breakdown of one ISAAC IMA and tile.

Reference: A. Shafiee et al., "ISAAC: A Convolutional Neural Network Accelerator with
In-Situ Analog Arithmetic in Crossbars", ISCA 2016, doi:10.1109/ISCA.2016.12, Table 2
(32 nm, 1.2 GHz).  An IMA holds 8 crossbars of 128 x 128 2-bit cells, 8 ADCs (8 b),
8 x 128 1-bit DACs, sample-and-hold, 4 shift-and-add units and input/output registers;
a tile holds 12 IMAs plus eDRAM, bus, router share, sigmoid, max-pool and registers.
The per-IMA rows below are the table's; its ADC, DAC and shift-and-add rows are also
reproduced in the ISAAC component file of the Accelergy hwcomponents library.

Only per-operation numbers derived from that table (ADC, DAC, shift-add energies and
areas) enter the profile :data:`ISAAC_PROFILE`; the array itself has no published
per-read energy, so it gets DNN+NeuroSim V1.4's read voltage and on/off resistances,
and nothing is adjusted to match.  The workload is one IMA: a 128-input, 1024-output
linear layer (8 tiles of 128 x 128) with 16-bit inputs in [0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import memsim
from memsim.cost import input_cycles

ISAAC_CYCLE_S = 100e-9
"""ISAAC's crossbar cycle: one 128-row read and 128 conversions per ADC every 100 ns."""

ISAAC_IMA: dict[str, tuple[float, float]] = {
    "ADC": (16.0, 0.0096),
    "DAC": (4.0, 0.00017),
    "S+H": (0.01, 0.00004),
    "array": (2.4, 0.0002),
    "S+A": (0.2, 0.00024),
    "IR": (1.24, 0.0021),
    "OR": (0.23, 0.00077),
}
"""ISAAC Table 2, one IMA: component -> (power mW, area mm²)."""

ISAAC_TILE_MW, ISAAC_TILE_MM2, IMAS_PER_TILE = 330.0, 0.372, 12
"""ISAAC Table 2: one tile (12 IMAs and the tile's shared units)."""

_G_ON_US, _G_OFF_US = 1e6 / 100e3, 1e6 / (100e3 * 17)

ISAAC_PROFILE: dict = {
    "name": "isaac_shafiee2016",
    "description": "One ISAAC IMA as memsim tiles: 128 x 128 crossbars, 1-bit DACs "
    "(16-bit inputs bit-serially), one 8-bit ADC per crossbar muxed over 128 columns.",
    "source": {
        "general": "A. Shafiee et al., ISAAC, ISCA 2016, Table 2 (per IMA, 32 nm).",
        "tile": "ISAAC: 128 x 128 crossbars; memsim puts each weight on a differential "
        "pair, ISAAC on one biased cell, so memsim has twice the devices.",
        "device": "DNN+NeuroSim V1.4 Param.cpp: resistanceOn 100 kOhm, resistanceOff "
        "17 x 100 kOhm (ISAAC gives no conductances); levels 4 = ISAAC's 2-bit cells.",
        "dac": "ISAAC: 16-bit inputs, applied one bit per cycle through 1-bit DACs.",
        "adc": "ISAAC: 8-bit ADCs.",
        "periphery.read_voltage_V": "DNN+NeuroSim V1.4 Param.cpp: 0.55 V (ISAAC gives none).",
        "periphery.read_pulse_s": "ISAAC: one crossbar read per 100 ns cycle.",
        "periphery.dac_energy_pJ": "ISAAC Table 2: 4 mW / 1024 DACs x 100 ns = 0.39 pJ.",
        "periphery.adc_energy_pJ": "ISAAC Table 2: 16 mW / 8 ADCs at 1.28 GS/s = 1.5625 pJ.",
        "periphery.cols_per_adc": "ISAAC: one ADC per 128-column crossbar.",
        "periphery.shift_add_energy_pJ": "ISAAC Table 2: S+A 0.2 mW per IMA over 8 x 1.28e9 "
        "ADC results per second = 0.0195 pJ.",
        "periphery.cell_area_um2": "ISAAC Table 2: 8 crossbars of 128 x 128 in 0.0002 mm^2.",
        "periphery.dac_area_um2": "ISAAC Table 2: 1024 DACs in 0.00017 mm^2.",
        "periphery.adc_area_um2": "ISAAC Table 2: 8 ADCs in 0.0096 mm^2.",
        "periphery.digital_area_um2_per_tile": "ISAAC Table 2: 4 S+A in 0.00024 mm^2 per 8 "
        "crossbars.",
        "periphery.scale_energy_pJ": "0: ISAAC's IMA keeps fixed-point weights and has no "
        "per-output rescaling (memsim's default charges a 32-bit multiply per output).",
        "periphery.accumulate_energy_pJ": "Equal to the ISAAC shift-add energy (one add).",
    },
    "device": {"g_min_uS": _G_OFF_US, "g_max_uS": _G_ON_US, "levels": 4},
    "tile": {"rows": 128, "cols": 128},
    "dac": {"bits": 16, "mode": "dynamic"},
    "adc": {"bits": 8, "mode": "dynamic"},
    "periphery": {
        "read_voltage_V": 0.55,
        "read_pulse_s": ISAAC_CYCLE_S,
        "input_encoding": "bit_serial",
        "dac_energy_pJ": 0.39,
        "adc_energy_pJ": 1.5625,
        "adc_reference_bits": 8,
        "adc_conversion": "per_input_bit",
        "adc_sample_rate_Hz": 1.28e9,
        "cols_per_adc": 128,
        "shift_add_energy_pJ": 0.0195,
        "accumulate_energy_pJ": 0.0195,
        "scale_energy_pJ": 0.0,
        "cell_area_um2": 0.0002e6 / (8 * 128 * 128),
        "dac_area_um2": 0.00017e6 / 1024,
        "adc_area_um2": 0.0096e6 / 8,
        "digital_area_um2_per_tile": 0.00024e6 / 8,
    },
}
"""The profile of one ISAAC crossbar and its share of the IMA periphery."""


@dataclass(frozen=True)
class Row:
    """One component: ISAAC's published power/area and memsim's, per IMA."""

    component: str
    isaac_mW: float
    memsim_mW: float | None
    isaac_mm2: float
    memsim_mm2: float | None

    @property
    def power_ratio(self) -> float | None:
        """Ratio memsim / ISAAC of the power (``None`` where memsim has no such term)."""
        return None if self.memsim_mW is None else self.memsim_mW / self.isaac_mW

    @property
    def area_ratio(self) -> float | None:
        """Ratio memsim / ISAAC of the area."""
        return None if self.memsim_mm2 is None else self.memsim_mm2 / self.isaac_mm2


def isaac_comparison(seed: int = 0) -> tuple[list[Row], memsim.CostReport]:
    """Model one ISAAC IMA and return the per-component rows and the cost report.

    memsim's energies per MVM are turned into power over ISAAC's time base
    (``cycles * 100 ns`` per MVM), so that the comparison is of the energy terms and
    not of memsim's serial read-then-convert latency (reported separately).
    """
    prof = memsim.validate_profile(ISAAC_PROFILE, "lab.cost_isaac.ISAAC_PROFILE")
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(128, 1024, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(1024, 128, generator=gen) * 2 - 1)
    chip = memsim.convert(layer, prof, seed=seed)
    x = torch.rand(64, 128, generator=gen)
    report = memsim.cost_report(chip, x)
    (ima,) = report.layers
    assert ima.tiles == 8
    t = input_cycles(prof) * ISAAC_CYCLE_S  # ISAAC's time for one MVM of all 8 crossbars

    def mw(joules: float) -> float:
        return joules / t * 1e3

    per = prof.periphery
    cells = 8 * 2 * 128 * 128 * per.cell_area_um2 * 1e-6
    memsim_rows = {
        "ADC": (mw(ima.adc_J), 8 * per.adc_area_um2 * 1e-6),
        "DAC": (mw(ima.dac_J), 8 * 128 * per.dac_area_um2 * 1e-6),
        "array": (mw(ima.array_J), cells),
        "S+A": (mw(ima.digital_J), 8 * per.digital_area_um2_per_tile * 1e-6),
    }
    rows = []
    for comp, (p_isaac, a_isaac) in ISAAC_IMA.items():
        p_mem, a_mem = memsim_rows.get(comp, (None, None))
        rows.append(Row(comp, p_isaac, p_mem, a_isaac, a_mem))
    return rows, report


def format_comparison(rows: list[Row], report: memsim.CostReport) -> str:
    """Markdown table of the comparison, with IMA and tile totals."""
    lines = [
        "| component (one IMA) | ISAAC mW | memsim mW | ratio | ISAAC mm² | memsim mm² | ratio |",
        "|---|---|---|---|---|---|---|",
    ]

    def f(v: float | None, spec: str) -> str:
        return "not modeled" if v is None else format(v, spec)

    for r in rows:
        lines.append(
            f"| {r.component} | {r.isaac_mW:.3g} | {f(r.memsim_mW, '.3g')} | "
            f"{f(r.power_ratio, '.3f')} | {r.isaac_mm2:.3g} | {f(r.memsim_mm2, '.3g')} | "
            f"{f(r.area_ratio, '.3f')} |"
        )
    p_isaac = sum(r.isaac_mW for r in rows)
    a_isaac = sum(r.isaac_mm2 for r in rows)
    p_mem = sum(r.memsim_mW for r in rows if r.memsim_mW is not None)
    a_mem = sum(r.memsim_mm2 for r in rows if r.memsim_mm2 is not None)
    lines.append(
        f"| IMA total | {p_isaac:.4g} | {p_mem:.4g} | {p_mem / p_isaac:.3f} | "
        f"{a_isaac:.4g} | {a_mem:.4g} | {a_mem / a_isaac:.3f} |"
    )
    tp, ta = IMAS_PER_TILE * p_mem, IMAS_PER_TILE * a_mem
    lines.append(
        f"| tile (12 IMAs + shared units) | {ISAAC_TILE_MW:.4g} | {tp:.4g} | "
        f"{tp / ISAAC_TILE_MW:.3f} | {ISAAC_TILE_MM2:.4g} | {ta:.4g} | "
        f"{ta / ISAAC_TILE_MM2:.3f} |"
    )
    (ima,) = report.layers
    isaac_lat = 16 * ISAAC_CYCLE_S
    lines.append("")
    lines.append(
        f"latency of one 16-bit MVM: ISAAC {isaac_lat * 1e9:.0f} ns (16 pipelined 100 ns "
        f"cycles), memsim {ima.latency_s * 1e9:.0f} ns ({ima.latency_s / isaac_lat:.3f}x)"
    )
    return "\n".join(lines)
