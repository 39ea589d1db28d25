"""The sections of a device profile (pydantic v2): each a frozen, validated model.

:class:`memsim.profiles.DeviceProfile` assembles them; the loader and the derivation of
profiles are in :mod:`memsim.profiles`.  Units are in the field names: ``_uS``
micro-siemens, ``_s`` seconds, ``_ohm`` ohm.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from . import laws


class _Section(BaseModel):
    # allow_inf_nan=False: NaN and +-inf are refused in every float, including list
    # items and optional fields, where no range check would catch them
    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, frozen=True, allow_inf_nan=False
    )


class ProfileError(ValueError):
    """A device profile could not be found, parsed or validated."""


class LawName(str):
    """The name of a registered device law (:mod:`memsim.laws`), as given in the JSON."""

    @property
    def value(self) -> str:
        """The name (as the ``.value`` of the enums that list memsim's own laws)."""
        return str(self)


Law = Annotated[str, AfterValidator(LawName)]
"""A profile field naming a device law; checked against the registry by its section."""

Params = dict[str, Any]
"""A law's own parameters (checked by the law's ``Params`` model)."""


def _check_law(kind: str, section: Any) -> None:
    laws.check_section(kind, section)


class WeightScaling(str, Enum):
    """Which group of weights shares one weight-to-conductance scale."""

    per_layer = "per_layer"
    per_tile = "per_tile"
    per_column = "per_column"


class WeightQuant(str, Enum):
    """Digital weight quantization applied to targets before programming."""

    none = "none"
    symmetric = "symmetric"
    ternary = "ternary"


class ProgNoiseModel(str, Enum):
    """memsim's own programming-noise laws (any registered name is accepted)."""

    none = "none"
    gaussian = "gaussian"
    proportional = "proportional"
    polynomial = "polynomial"


class ReadNoiseModel(str, Enum):
    """memsim's own per-MVM read-noise laws (any registered name is accepted)."""

    none = "none"
    gaussian = "gaussian"
    proportional = "proportional"


class DriftModel(str, Enum):
    """memsim's own conductance-drift laws (any registered name is accepted)."""

    none = "none"
    power_law = "power_law"
    pcm_joshi2020 = "pcm_joshi2020"


class DriftCompensation(str, Enum):
    """Drift compensation applied digitally to the outputs."""

    none = "none"
    globally = "global"


class RangeMode(str, Enum):
    """How the range of a DAC or ADC is set."""

    fixed = "fixed"
    calibrated = "calibrated"
    dynamic = "dynamic"


class Device(_Section):
    """The conductance window of one memristive device."""

    g_min_uS: float = Field(0.0, ge=0.0, le=1e6)
    """Lowest programmable conductance in µS (the "off" device of a pair)."""
    g_max_uS: float = Field(25.0, ge=1e-3, le=1e6)
    """Highest programmable conductance in µS, 0.001 to 1e6 (float32 conductances
    cannot resolve a smaller one)."""
    levels: int | None = Field(None, ge=2, le=65536)
    """Programmable conductance levels per device, evenly spaced in [g_min, g_max];
    ``null`` means analog (continuous)."""

    @model_validator(mode="after")
    def _window(self) -> Device:
        if self.g_min_uS >= self.g_max_uS:
            raise ValueError(f"g_min_uS ({self.g_min_uS}) must be < g_max_uS ({self.g_max_uS})")
        # conductances are float32 (7 digits): a narrower window would be rounding noise
        if self.g_max_uS - self.g_min_uS < 1e-3 * self.g_max_uS:
            raise ValueError(
                f"the window g_max_uS - g_min_uS ({self.g_max_uS - self.g_min_uS:g}) must be "
                f">= 0.1% of g_max_uS ({self.g_max_uS:g})"
            )
        return self


class Mapping(_Section):
    """How weights become differential pairs G+ - G- (one device of each pair at g_min)."""

    weight_scaling: WeightScaling = WeightScaling.per_layer
    """Group sharing one scale: max|w| of the group maps to g_max - g_min."""
    weight_quant: WeightQuant = WeightQuant.none
    """Digital quantization of target weights before programming (the seed paper's
    model; see ``memsim.quantization``)."""
    weight_bits: int | None = Field(None, ge=1, le=16)
    """Bits for ``weight_quant = symmetric``, 1..16."""

    @model_validator(mode="after")
    def _bits(self) -> Mapping:
        if self.weight_quant == WeightQuant.symmetric and self.weight_bits is None:
            raise ValueError("weight_bits (1..16) is required when weight_quant is 'symmetric'")
        return self


class ProgrammingNoise(_Section):
    """Error of a programmed conductance around its target (write-verify residual)."""

    model: Law = LawName("none")
    """none | gaussian (sigma x (g_max - g_min)) | proportional (sigma x G_target) |
    polynomial (sigma(ĝ) = sum_i coeffs_uS[i] * ĝ**i µS, ĝ = G_target / g_max), or the name
    of a registered law (:func:`memsim.register_device_law`)."""
    params: Params = Field(default_factory=dict)
    """Parameters of a registered law that takes its own (its ``Params`` model)."""
    sigma: float = Field(0.0, ge=0.0, le=10.0)
    """Relative std (fraction) for the gaussian and proportional models."""
    coeffs_uS: list[Annotated[float, Field(ge=-1e6, le=1e6)]] = Field(
        default_factory=list, max_length=16
    )
    """Polynomial coefficients in µS, lowest order first, each in [-1e6, 1e6]."""
    coeffs_g_max_ref_uS: float | None = Field(None, ge=1e-3, le=1e6)
    """g_max (µS) at which ``coeffs_uS`` were fitted; sigma is scaled by
    g_max / reference (aihwkit's convention).  ``null``: the profile's g_max."""

    @model_validator(mode="after")
    def _coeffs(self) -> ProgrammingNoise:
        if self.model == ProgNoiseModel.polynomial and not self.coeffs_uS:
            raise ValueError("coeffs_uS must be non-empty for the polynomial model")
        _check_law("programming_noise", self)
        return self


class ReadNoise(_Section):
    """Read noise, drawn independently for every device and every MVM."""

    model: Law = LawName("none")
    """none | gaussian (state-independent) | proportional (state-dependent: each device's
    std is sigma x G / (g_max - g_min)), or the name of a registered law."""
    sigma: float = Field(0.0, ge=0.0, le=10.0)
    """Std of each device's read conductance as a fraction of g_max - g_min (gaussian;
    proportional: at G = g_max - g_min)."""
    params: Params = Field(default_factory=dict)
    """Parameters of a registered law that takes its own."""

    @model_validator(mode="after")
    def _law(self) -> ReadNoise:
        _check_law("read_noise", self)
        return self


class Drift(_Section):
    """Power-law drift G(t) = G(t0) * (t / t0) ** -nu, nu drawn per device."""

    model: Law = LawName("none")
    """none | power_law (nu ~ N(nu_mean, nu_std)) | pcm_joshi2020 (state-dependent nu and
    accumulated 1/f noise, the formulas of aihwkit's PCMLikeNoiseModel), or the name of a
    registered law."""
    params: Params = Field(default_factory=dict)
    """Parameters of a registered law that takes its own."""
    t0_s: float = Field(20.0, gt=0.0, le=1e9)
    """Time after programming of the first read (s); drift is measured from it."""
    nu_mean: float = Field(0.0, ge=0.0, le=1.0)
    """Mean drift exponent (power_law)."""
    nu_std: float = Field(0.0, ge=0.0, le=1.0)
    """Device-to-device std of the drift exponent (power_law)."""
    t_read_s: float = Field(250e-9, ge=1e-12, le=1.0)
    """Read pulse width (s) of the 1/f accumulated-noise fit (pcm_joshi2020), 1 ps to 1 s."""
    compensation: DriftCompensation = DriftCompensation.none
    """none | global: one digital gain per tile from a reference read of the tile."""

    @model_validator(mode="after")
    def _law(self) -> Drift:
        _check_law("drift", self)
        return self


class Faults(_Section):
    """Defects fixed per chip instance (drawn from the chip seed)."""

    stuck_at_gmin_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of devices stuck at g_min."""
    stuck_at_gmax_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Fraction of devices stuck at g_max."""
    d2d_sigma: float = Field(0.0, ge=0.0, le=1.0)
    """Device-to-device variation: relative std of each device's fixed gain on
    G - g_min (fixed per chip, not corrected by programming)."""

    @model_validator(mode="after")
    def _rates(self) -> Faults:
        if self.stuck_at_gmin_rate + self.stuck_at_gmax_rate > 1.0:
            raise ValueError("stuck_at_gmin_rate + stuck_at_gmax_rate must be <= 1")
        return self


class Tile(_Section):
    """Crossbar tile size; each cell is one differential pair (two 1T1R devices)."""

    rows: int = Field(256, ge=1, le=65536)
    """Word lines (inputs) per tile."""
    cols: int = Field(256, ge=1, le=65536)
    """Weight columns (outputs) per tile; each uses two physical bit lines."""


class DAC(_Section):
    """Input digital-to-analog converter."""

    bits: int | None = Field(None, ge=1, le=16)
    """Resolution, 1..16; ``null`` = ideal (no quantization, no clipping).  Codes round
    half to even (``torch.round``); 1 bit is the sign, with 0 mapped to +bound."""
    mode: RangeMode = RangeMode.dynamic
    """fixed: clip at ``bound``; dynamic: per input vector max|x|; calibrated: per-layer
    max|x| over a calibration batch."""
    bound: float = Field(1.0, ge=1e-6, le=1e6)
    """Input full scale for the fixed mode (activation units), 1e-6 to 1e6."""


class ADC(_Section):
    """Per-tile output analog-to-digital converter."""

    bits: int | None = Field(None, ge=1, le=16)
    """Resolution, 1..16; ``null`` = ideal."""
    mode: RangeMode = RangeMode.calibrated
    """fixed: ``bound``; calibrated: per tile, max|partial sum| over a calibration batch
    times ``margin``; dynamic: per tile max over the current batch."""
    bound: float = Field(10.0, ge=1e-6, le=1e9)
    """Full scale for the fixed mode, 1e-6 to 1e9, in normalized units relative to the DAC
    full scale: one device at full window driven at the DAC's full-scale input gives 1.0
    (an input of 1.0 only when the DAC range is 1).  Codes round half to even; 1 bit is
    the sign, with 0 mapped to +range."""
    margin: float = Field(1.0, gt=0.0, le=100.0)
    """Multiplier on the calibrated range."""
    offset: float = Field(0.0, ge=-1e3, le=1e3)
    """Input-referred offset of every conversion of a quantizing ADC, in the units of
    ``bound``, added to each partial sum before it is digitized (an ideal ADC has none)."""


class OutputNoise(_Section):
    """Additive Gaussian noise on each bit-line partial sum, before the ADC."""

    sigma: float = Field(0.0, ge=0.0, le=100.0)
    """Std in normalized output units (aihwkit's ``out_noise``)."""


class IRDropModel(str, Enum):
    """How the IR drop of a tile is computed (see :mod:`memsim.irdrop`)."""

    exact = "exact"
    fast = "fast"


class PairLayout(str, Enum):
    """Where the two devices of a differential pair sit."""

    interleaved = "interleaved"
    separate = "separate"


class WordLineDriver(str, Enum):
    """Side of the word-line drivers."""

    left = "left"
    right = "right"


class SenseSide(str, Enum):
    """Side of the bit-line sense amplifiers."""

    bottom = "bottom"
    top = "top"


class UnusedCells(str, Enum):
    """What the cells of a tile that hold no weight contain."""

    g_min = "g_min"
    none = "none"


class IRDrop(_Section):
    """IR drop of the 1T1R array: wire and access resistance, solved per tile.

    Word line ``i`` runs from its driver (one wire segment before the first cell, one
    between neighbouring cells); bit line ``k`` runs from its far end to its sense
    amplifier (virtual ground, one segment after the last cell).  Each cell is its
    device in series with its access transistor.  After every programming, drift or
    fault change the layer computes each tile's transfer matrix from driver voltages
    to sense currents (``exact``: a direct nodal solve; ``fast``: each line solved
    exactly with the crossing lines ideal) and the forward pass uses it in place of
    the conductances.  See :mod:`memsim.irdrop`.
    """

    enabled: bool = False
    """Apply IR drop."""
    model: IRDropModel = IRDropModel.exact
    """exact (direct nodal solve, float64) | fast (line-decoupled, O(rows x cols))."""
    pair_layout: PairLayout = PairLayout.interleaved
    """interleaved: G+ and G- of a column on adjacent bit lines of one array (2 x cols bit
    lines per word line) | separate: a G+ array and a G- array, each rows x cols."""
    word_line_driver: WordLineDriver = WordLineDriver.left
    """Side of the word-line drivers: left = next to column 0."""
    sense_amp: SenseSide = SenseSide.bottom
    """Side of the sense amplifiers: bottom = next to the last row."""
    unused_cells: UnusedCells = UnusedCells.g_min
    """Cells outside every weight block (and rows/columns a layer does not fill):
    g_min = both devices at g_min, loading the lines | none = no device."""
    r_wire_ohm: float = Field(0.0, ge=0.0, le=1e4)
    """Wire resistance per cell segment (ohm), word and bit lines alike."""
    r_access_ohm: float = Field(0.0, ge=0.0, le=1e7)
    """Access transistor on-resistance (ohm), in series with each device."""


class ConductanceMap(str, Enum):
    """How memsim's conductance window maps to an aihwkit noise model's units."""

    identity = "identity"
    linear = "linear"


class AihwkitNoiseModel(_Section):
    """Device physics from an IBM aihwkit noise model (needs the ``aihwkit`` extra).

    The object's hooks supply programming noise, drift coefficients, drift and the
    accumulated read noise; see :mod:`memsim.physics_aihwkit`.
    """

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    class_name: str = Field(alias="class", min_length=1)
    """A class in ``aihwkit.inference`` (e.g. ``ReRamCMONoiseModel``) or the dotted path
    ``package.module.Class`` of a user's own ``BaseNoiseModel`` subclass."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the class's constructor (JSON values only)."""
    conductance_map: ConductanceMap = ConductanceMap.identity
    """identity: the hooks see memsim's µS and the model's g_max (and g_min, if it has one)
    must equal the profile's; linear: [g_min_uS, g_max_uS] maps linearly onto the model's
    [g_min, g_max] before each hook and back after it."""
