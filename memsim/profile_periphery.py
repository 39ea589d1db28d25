"""The ``periphery`` section of a device profile: numbers of the cost model.

Every field is used by :mod:`memsim.cost` (energy, latency and area of the tiles).
The section is optional: a profile without it gets the defaults below, which are the
ISAAC converter numbers (Shafiee et al., ISCA 2016, Table 2) and the DNN+NeuroSim
V1.4 array defaults (``Inference_pytorch/NeuroSIM/Param.cpp``, 22 nm).  Units are in
the field names: ``_V`` volt, ``_s`` second, ``_Hz`` samples per second, ``_pJ``
picojoule, ``_um2`` square micrometre.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class InputEncoding(str, Enum):
    """How a DAC code reaches the word line."""

    bit_serial = "bit_serial"
    analog = "analog"


class UnusedCells(str, Enum):
    """What the cells of an allocated tile that hold no weight draw."""

    g_min = "g_min"
    absent = "absent"


class AdcConversion(str, Enum):
    """When a column is digitized."""

    per_input_bit = "per_input_bit"
    per_mvm = "per_mvm"


class AdcScaling(str, Enum):
    """Law of the ADC energy per conversion in the resolution ``b``."""

    exponential = "exponential"
    linear = "linear"


class Periphery(BaseModel):
    """Energy, latency and area numbers of one tile's array and periphery.

    The defaults are published numbers; see :data:`DEFAULT_SOURCES` for where each
    comes from.  A profile that sets any of them must cite its own source.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)

    read_voltage_V: float = Field(0.55, gt=0.0, le=5.0)
    """Word-line read voltage of a driven row (V): a full-scale input bit or level."""
    read_pulse_s: float = Field(10e-9, gt=0.0, le=1e-3)
    """Duration of one read pulse (s), per input bit or per analog level."""
    input_encoding: InputEncoding = InputEncoding.bit_serial
    """bit_serial: the |DAC code| is applied one bit per cycle at ``read_voltage_V``
    (sign by the driver polarity), ``dac.bits - 1`` cycles; analog: one cycle at
    ``read_voltage_V * |code| / code_max``."""
    unused_cells: UnusedCells = UnusedCells.g_min
    """g_min: cells of an allocated tile that hold no weight sit at g_min and conduct
    when their row is driven; absent: they draw nothing."""
    dac_energy_pJ: float = Field(0.39, ge=0.0, le=1e6)
    """Energy of one row's DAC for one input bit (bit_serial) or one analog level (pJ)."""
    adc_energy_pJ: float = Field(1.5625, ge=0.0, le=1e6)
    """Energy of one ADC conversion at ``adc_reference_bits`` (pJ)."""
    adc_reference_bits: int = Field(8, ge=1, le=16)
    """Resolution at which ``adc_energy_pJ`` was given."""
    adc_scaling: AdcScaling = AdcScaling.exponential
    """exponential: E(b) = E_ref * 2**(b - b_ref) (constant Walden figure of merit);
    linear: E(b) = E_ref * b / b_ref."""
    adc_conversion: AdcConversion = AdcConversion.per_input_bit
    """per_input_bit: every used column is converted after every input bit (ISAAC);
    per_mvm: the column integrates all input bits and is converted once."""
    adc_sample_rate_Hz: float = Field(1.28e9, gt=0.0, le=1e12)
    """Conversions per second of one ADC (its conversion time is the inverse)."""
    cols_per_adc: int = Field(8, ge=1, le=65536)
    """Weight columns multiplexed onto one ADC (capped at ``tile.cols``)."""
    parallel_tiles: int | None = Field(None, ge=1, le=10**9)
    """Tiles of one layer that compute at the same time; ``null``: all of them."""
    shift_add_energy_pJ: float = Field(0.0195, ge=0.0, le=1e6)
    """Digital shift-and-add of one ADC result into its partial sum (pJ)."""
    accumulate_energy_pJ: float = Field(0.0195, ge=0.0, le=1e6)
    """Digital addition of one tile's partial sum into its output (pJ)."""
    bias_energy_pJ: float = Field(0.1, ge=0.0, le=1e6)
    """Digital bias addition per output of a layer with a bias (pJ)."""
    scale_energy_pJ: float = Field(3.1, ge=0.0, le=1e6)
    """Digital rescaling (weight scale, DAC range) per output (pJ)."""
    cell_area_um2: float = Field(0.0768, gt=0.0, le=1e6)
    """Area of one device (one of the two of a weight's differential pair) (µm²)."""
    dac_area_um2: float = Field(0.166, ge=0.0, le=1e9)
    """Area of one row DAC (µm²); one per tile row."""
    adc_area_um2: float = Field(1200.0, ge=0.0, le=1e9)
    """Area of one ADC (µm²); ``ceil(tile.cols / cols_per_adc)`` per tile."""
    digital_area_um2_per_tile: float = Field(30.0, ge=0.0, le=1e9)
    """Shift-add and accumulation logic of one tile (µm²)."""


DEFAULT_SOURCES: dict[str, str] = {
    "read_voltage_V": "DNN+NeuroSim V1.4 Param.cpp: readVoltage = 0.55 V at technode 22.",
    "read_pulse_s": "DNN+NeuroSim V1.4 Param.cpp: readPulseWidth = 10e-9 s.",
    "dac_energy_pJ": "ISAAC (Shafiee et al., ISCA 2016) Table 2: 8x128 1-bit DACs per IMA, "
    "4 mW, so 3.9 uW each, over its 100 ns cycle: 0.39 pJ per row per input bit.",
    "adc_energy_pJ": "ISAAC Table 2: 8 ADCs (8 b) per IMA, 16 mW, so 2 mW each at "
    "1.28 GS/s: 1.5625 pJ per conversion.",
    "adc_sample_rate_Hz": "ISAAC: 128 columns converted in one 100 ns cycle, 1.28 GS/s.",
    "cols_per_adc": "DNN+NeuroSim V1.4 Param.cpp: numColMuxed = 8.",
    "shift_add_energy_pJ": "ISAAC Table 2: shift-and-add 0.2 mW per IMA for its 8 ADCs at "
    "1.28 GS/s: 0.2e-3 / 10.24e9 = 0.0195 pJ per ADC result.",
    "accumulate_energy_pJ": "Assumed equal to the ISAAC shift-and-add energy (one add).",
    "bias_energy_pJ": "M. Horowitz, ISSCC 2014 (45 nm): 32-bit integer add 0.1 pJ.",
    "scale_energy_pJ": "M. Horowitz, ISSCC 2014 (45 nm): 32-bit integer multiply 3.1 pJ.",
    "cell_area_um2": "DNN+NeuroSim V1.4 Param.cpp: 1T1R cell 4F x 12F with F = 40 nm "
    "(wireWidth at technode 22): 0.0768 um^2.",
    "dac_area_um2": "ISAAC Table 2: 1024 DACs per IMA in 0.00017 mm^2: 0.166 um^2 each.",
    "adc_area_um2": "ISAAC Table 2: 8 ADCs per IMA in 0.0096 mm^2: 1200 um^2 each.",
    "digital_area_um2_per_tile": "ISAAC Table 2: shift-and-add 0.00024 mm^2 per IMA of 8 "
    "arrays: 30 um^2 per array.",
    "input_encoding": "ISAAC and Yao 2020 apply inputs bit-serially (1-bit DAC pulses).",
    "adc_conversion": "ISAAC converts every column after every input bit.",
    "unused_cells": "Assumed: unprogrammed cells are left at g_min (memsim's zero state).",
    "parallel_tiles": "Assumed: weight-stationary, every tile of a layer computes at once.",
}
"""Where each default of :class:`Periphery` comes from (shown by the cost report)."""
