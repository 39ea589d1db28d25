"""First-order energy, latency and area of a converted model's tiles.

:func:`cost_report` runs one forward pass of a chip and, for every analog layer,
counts from the tile layout, the programmed conductances and the DAC codes actually
applied (numbers from the profile's ``periphery`` section, :mod:`memsim.profile_periphery`):

* **Array**: ``V_read**2 * t_read * sum_MVM sum_rows a(code_r) * sum_cells_on_row G``
  over both devices of every cell.  ``a`` is the number of one bits of ``|code|``
  (bit-serial input) or ``(|code| / code_max)**2`` (one analog level).  Cells of an
  allocated tile that hold no weight count at ``g_min`` on every driven row, or not
  at all (``unused_cells``).
* **DAC**: ``E_dac`` per driven row per input bit (bit-serial) or per MVM (analog).
* **ADC**: ``E_adc(bits)`` per conversion; one conversion per used column (one per
  output per row tile) per input bit or per MVM (``adc_conversion``).
  ``E_adc(b) = E_ref * 2**(b - b_ref)`` (or ``E_ref * b / b_ref``, ``adc_scaling``).
* **Digital**: one shift-add per ADC result, one accumulate per partial sum, one
  scaling and (with a bias) one bias addition per output.
* **Latency** per MVM of one tile: ``cycles * (t_read + t_adc * cols_per_adc)``, or
  ``cycles * t_read + t_adc * cols_per_adc`` when each column is converted once;
  a layer runs ``ceil(tiles / parallel_tiles)`` rounds of its MVMs; layers run one
  after the other.
* **Digital attention** (one row per :class:`memsim.attention.AnalogMultiheadAttention`,
  kind ``attn``): the products of activations ``Q K^T`` and ``softmax(.) V``, one MAC
  per head, query, key and head channel each, at ``scale_energy_pJ +
  accumulate_energy_pJ`` per MAC (a multiply on the digital multiplier that rescales
  outputs, an addition on the partial-sum adder) of the profile of the attention's
  first analog projection.  Its latency and area (and the softmax) are not modelled.
* **Area**: every allocated tile: ``2 * rows * cols`` devices, ``rows`` DACs,
  ``ceil(cols / cols_per_adc)`` ADCs and its digital logic.

Each layer hands its DAC codes to a probe (``AnalogLayer.cost_probe``) during the
forward pass; the array term is reduced over the batch before the row sums are
applied (the sum is linear in the activity), so the probe costs a few elementwise
passes over each layer's input.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AnalogMultiheadAttention
from .layers import AnalogConv2d, AnalogLayer, analog_layers
from .periphery import ADC, DAC
from .profile_periphery import AdcConversion, AdcScaling, InputEncoding, UnusedCells
from .profiles import DeviceProfile


class CostModelError(ValueError):
    """The profile lacks a number the cost model needs (the message names the field)."""


def _dac_bits(profile: DeviceProfile) -> int:
    bits = DAC(profile.dac).cost_bits()
    if bits is None:
        raise CostModelError(
            f"profile {profile.name!r}: field 'dac.bits': the cost model needs a DAC "
            "resolution (1..16); this profile has an ideal DAC (null)"
        )
    return bits


def _adc_bits(profile: DeviceProfile) -> int:
    bits = ADC(profile.adc).cost_bits()
    if bits is None:
        raise CostModelError(
            f"profile {profile.name!r}: field 'adc.bits': the cost model needs an ADC "
            "resolution (1..16); this profile has an ideal ADC (null)"
        )
    return bits


def input_cycles(profile: DeviceProfile) -> int:
    """Read cycles per MVM: ``dac.bits - 1`` magnitude bits (at least 1), or 1 if analog."""
    bits = _dac_bits(profile)
    if profile.periphery.input_encoding == InputEncoding.analog:
        return 1
    return max(1, bits - 1)


def adc_energy_J(profile: DeviceProfile, bits: int | None = None) -> float:
    """Energy of one conversion (J) at ``bits`` (default: the profile's ``adc.bits``)."""
    p = profile.periphery
    b = _adc_bits(profile) if bits is None else bits
    if p.adc_scaling == AdcScaling.exponential:
        e = p.adc_energy_pJ * 2.0 ** (b - p.adc_reference_bits)
    else:
        e = p.adc_energy_pJ * b / p.adc_reference_bits
    return e * 1e-12


def cols_per_adc(profile: DeviceProfile) -> int:
    """Columns sharing one ADC, capped at the tile's columns."""
    return min(profile.periphery.cols_per_adc, profile.tile.cols)


def mvm_latency_s(profile: DeviceProfile) -> float:
    """Latency of one MVM of one tile (s)."""
    p = profile.periphery
    cycles = input_cycles(profile)
    t_adc = cols_per_adc(profile) / p.adc_sample_rate_Hz
    if p.adc_conversion == AdcConversion.per_input_bit:
        return cycles * (p.read_pulse_s + t_adc)
    return cycles * p.read_pulse_s + t_adc


def tile_area_um2(profile: DeviceProfile) -> float:
    """Area of one allocated tile: devices, row DACs, ADCs and digital logic (µm²)."""
    p, t = profile.periphery, profile.tile
    n_adc = math.ceil(t.cols / cols_per_adc(profile))
    return (
        2 * t.rows * t.cols * p.cell_area_um2
        + t.rows * p.dac_area_um2
        + n_adc * p.adc_area_um2
        + p.digital_area_um2_per_tile
    )


@functools.lru_cache(maxsize=32)
def _popcount_table(code_max: int, device: str) -> Tensor:
    # float32 holds these small integers exactly; one gather beats a pass per bit
    table = [bin(i).count("1") for i in range(code_max + 1)]
    return torch.tensor(table, dtype=torch.float32, device=device)


def input_activity(codes: Tensor, profile: DeviceProfile) -> Tensor:
    """Per-row array activity ``a(code)`` of integer DAC codes (same shape).

    The result is float32 for bit-serial input (exact small integers) and float64 for
    analog levels; reduce it in float64.

    Bit-serial: the number of one bits of ``|code|`` (each one bit is a pulse at
    ``read_voltage_V``).  Analog: ``(|code| / code_max)**2`` (energy of one level).
    """
    bits = _dac_bits(profile)
    code_max = 1 if bits == 1 else 2 ** (bits - 1) - 1
    mag = codes.abs()
    if profile.periphery.input_encoding == InputEncoding.analog:
        return (mag.double() / code_max).square()
    table = _popcount_table(code_max, str(codes.device))
    # DAC codes are clamped to +-code_max already; a larger one fails the gather
    return table.index_select(0, mag.to(torch.int32).view(-1)).view(codes.shape)


def row_conductance_uS(layer: AnalogLayer) -> Tensor:
    """Summed conductance (µS) of every cell an input row drives, ``(groups, K)``.

    Both devices of every weight, over every column tile of the row; plus the empty
    cells of those tile rows at ``g_min`` when ``unused_cells`` is ``g_min``.
    """
    g = layer.tiles.g_now
    # cached on the layer until its conductances change (programming, drift, .to())
    key = (g._version, g.data_ptr(), str(g.device))
    cached = layer.__dict__.get("_cost_row_conductance")
    if cached is not None and cached[0] == key:
        return cached[1]
    lay, prof = layer.layout, layer.profile
    s = g.double().sum(0).view(lay.groups, lay.out_per_group, lay.k).sum(1)
    if prof.periphery.unused_cells == UnusedCells.g_min:
        empty = lay.col_tiles * lay.cols - lay.out_per_group
        s = s + 2.0 * prof.device.g_min_uS * empty
    layer.__dict__["_cost_row_conductance"] = (key, s)
    return s


@dataclass(frozen=True)
class LayerCost:
    """Cost of one analog layer, per inference (one sample of the batch)."""

    name: str
    kind: str
    tiles: int
    mvms: float
    """MVMs of each tile per inference (output positions of a conv)."""
    macs: float
    """Multiply-accumulates of the layer per inference (weights x MVMs)."""
    array_J: float
    dac_J: float
    adc_J: float
    digital_J: float
    latency_s: float
    area_mm2: float

    @property
    def energy_J(self) -> float:
        """Total energy per inference (J)."""
        return self.array_J + self.dac_J + self.adc_J + self.digital_J

    @property
    def tops_per_w(self) -> float:
        """``2 * MACs / energy`` in TOPS/W."""
        return 2.0 * self.macs / self.energy_J / 1e12 if self.energy_J > 0 else math.inf


_TERMS = ("array_J", "dac_J", "adc_J", "digital_J")


@dataclass(frozen=True)
class CostReport:
    """Per-layer energy, latency and area of one forward pass, per inference."""

    layers: list[LayerCost]
    inferences: int
    """Samples in the batch the report was measured on."""
    profile: str

    @property
    def energy_J(self) -> float:
        """Energy per inference, all layers (J)."""
        return sum(r.energy_J for r in self.layers)

    @property
    def latency_s(self) -> float:
        """Latency per inference with layer-by-layer execution (s)."""
        return sum(r.latency_s for r in self.layers)

    @property
    def area_mm2(self) -> float:
        """Area of all allocated tiles (mm²)."""
        return sum(r.area_mm2 for r in self.layers)

    @property
    def macs(self) -> float:
        """Multiply-accumulates per inference."""
        return sum(r.macs for r in self.layers)

    @property
    def tops_per_w(self) -> float:
        """``2 * MACs / energy`` (TOPS/W)."""
        return 2.0 * self.macs / self.energy_J / 1e12 if self.energy_J > 0 else math.inf

    @property
    def tops_per_mm2(self) -> float:
        """``2 * MACs / latency / area`` (TOPS/mm²)."""
        return 2.0 * self.macs / self.latency_s / self.area_mm2 / 1e12

    def term(self, name: str) -> float:
        """Sum of one energy term (``"array_J"``, ``"dac_J"``, ``"adc_J"``, ``"digital_J"``)."""
        return sum(getattr(r, name) for r in self.layers)

    def totals(self) -> dict[str, float]:
        """Headline figures, per inference."""
        out = {t: self.term(t) for t in _TERMS}
        out.update(
            energy_J=self.energy_J,
            latency_s=self.latency_s,
            area_mm2=self.area_mm2,
            macs=self.macs,
            tops_per_w=self.tops_per_w,
            tops_per_mm2=self.tops_per_mm2,
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: profile, batch size, per-layer rows and totals."""
        rows = []
        for r in self.layers:
            row = asdict(r)
            row.update(energy_J=r.energy_J, tops_per_w=r.tops_per_w)
            rows.append(row)
        return {
            "profile": self.profile,
            "inferences": self.inferences,
            "per": "inference",
            "layers": rows,
            "totals": self.totals(),
        }

    def to_csv(self) -> str:
        """One row per layer and a ``total`` row; energies in J, latency in s."""
        cols = ["name", "kind", "tiles", "mvms", "macs", *_TERMS, "energy_J", "latency_s"]
        cols += ["area_mm2", "tops_per_w"]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in self.to_dict()["layers"]:
            w.writerow([r[c] for c in cols])
        t = self.totals()
        tiles = sum(r.tiles for r in self.layers)
        w.writerow(
            ["total", "", tiles, "", t["macs"], *(t[c] for c in _TERMS), t["energy_J"]]
            + [t["latency_s"], t["area_mm2"], t["tops_per_w"]]
        )
        return buf.getvalue()

    def __str__(self) -> str:
        """Fixed-width table in nJ, µs and mm², per inference."""
        head = (
            f"{'layer':<24} {'kind':<6} {'tiles':>5} {'MACs':>10} {'array nJ':>10} "
            f"{'DAC nJ':>10} {'ADC nJ':>10} {'digit nJ':>10} {'total nJ':>10} "
            f"{'lat us':>9} {'area mm2':>9} {'TOPS/W':>8}"
        )
        lines = [
            f"cost on profile {self.profile}, per inference (mean of {self.inferences})",
            head,
        ]

        def fmt(
            name: str,
            kind: str,
            tiles: Any,
            macs: float,
            terms: list[float],
            lat: float,
            area: float,
            topsw: float,
        ) -> str:
            e = "".join(f" {v * 1e9:>10.4g}" for v in terms)
            return (
                f"{name:<24} {kind:<6} {tiles:>5} {macs:>10.4g}{e} {sum(terms) * 1e9:>10.4g} "
                f"{lat * 1e6:>9.4g} {area:>9.4g} {topsw:>8.4g}"
            )

        for r in self.layers:
            terms = [getattr(r, t) for t in _TERMS]
            lines.append(
                fmt(
                    r.name[:24],
                    r.kind,
                    r.tiles,
                    r.macs,
                    terms,
                    r.latency_s,
                    r.area_mm2,
                    r.tops_per_w,
                )
            )
        t = self.totals()
        lines.append(
            fmt(
                "total",
                "",
                sum(r.tiles for r in self.layers),
                t["macs"],
                [t[c] for c in _TERMS],
                t["latency_s"],
                t["area_mm2"],
                t["tops_per_w"],
            )
        )
        lines.append(
            f"energy/inference {self.energy_J * 1e9:.4g} nJ, TOPS/W {self.tops_per_w:.4g}, "
            f"TOPS/mm2 {self.tops_per_mm2:.4g}, latency {self.latency_s * 1e6:.4g} us, "
            f"area {self.area_mm2:.4g} mm2"
        )
        return "\n".join(lines)


def _batch_sum(a: Tensor, keepdim: bool = False) -> Tensor:
    """Sum over the batch in float64; float32 sums of small integers are exact below 2**24."""
    if a.dtype == torch.float32 and a.shape[0] * 16 < 2**24:
        return a.sum(0, keepdim=keepdim).double()
    return a.sum(0, keepdim=keepdim, dtype=torch.float64)


class _Meter:
    """Accumulates one layer's input-dependent counts over forward calls."""

    def __init__(self) -> None:
        self.activity_uS = 0.0  # sum over MVMs and rows of a(code) * row conductance
        self.mvms = 0

    def __call__(self, layer: AnalogLayer, codes: Tensor) -> None:
        s = row_conductance_uS(layer)
        # the sum over MVMs is linear in the activity: reduce the batch first
        if isinstance(layer, AnalogConv2d):
            a = _batch_sum(input_activity(codes, layer.profile), keepdim=True)
            lay = layer.layout
            w = s.view(lay.groups, -1, *layer.kernel_size)
            per_loc = F.conv2d(a, w, None, layer.stride, layer.padding, layer.dilation, lay.groups)
            self.activity_uS += float(per_loc.sum())
            self.mvms += codes.shape[0] * per_loc.shape[-2] * per_loc.shape[-1]
        else:
            a = _batch_sum(input_activity(codes, layer.profile))
            self.activity_uS += float(a @ s[0])
            self.mvms += codes.shape[0]


def _layer_cost(name: str, layer: AnalogLayer, meter: _Meter, n: int) -> LayerCost:
    prof, lay = layer.profile, layer.layout
    p = prof.periphery
    cycles = input_cycles(prof)
    mvms = meter.mvms / n
    array = p.read_voltage_V**2 * p.read_pulse_s * meter.activity_uS * 1e-6 / n
    dac_steps = cycles if p.input_encoding == InputEncoding.bit_serial else 1
    dac = mvms * lay.groups * lay.k * lay.col_tiles * dac_steps * p.dac_energy_pJ * 1e-12
    partials = mvms * lay.out * lay.row_tiles
    conv_per = cycles if p.adc_conversion == AdcConversion.per_input_bit else 1
    conversions = partials * conv_per
    adc = conversions * adc_energy_J(prof)
    outputs = mvms * lay.out
    per_out = p.scale_energy_pJ + (p.bias_energy_pJ if layer.bias is not None else 0.0)
    digital = (
        conversions * p.shift_add_energy_pJ + partials * p.accumulate_energy_pJ + outputs * per_out
    ) * 1e-12
    parallel = lay.n_tiles if p.parallel_tiles is None else p.parallel_tiles
    rounds = math.ceil(lay.n_tiles / parallel)
    return LayerCost(
        name=name,
        kind="conv2d" if isinstance(layer, AnalogConv2d) else "linear",
        tiles=lay.n_tiles,
        mvms=mvms,
        macs=mvms * lay.out * lay.k,
        array_J=array,
        dac_J=dac,
        adc_J=adc,
        digital_J=digital,
        latency_s=mvms * rounds * mvm_latency_s(prof),
        area_mm2=lay.n_tiles * tile_area_um2(prof) * 1e-6,
    )


def digital_mac_energy_J(profile: DeviceProfile) -> float:
    """Energy of one digital multiply-accumulate of activations (J), e.g. of ``Q K^T``."""
    p = profile.periphery
    return (p.scale_energy_pJ + p.accumulate_energy_pJ) * 1e-12


class _AttentionMeter:
    """Accumulates the digital MACs of one attention over forward calls."""

    def __init__(self) -> None:
        self.macs = 0.0

    def __call__(self, attention: AnalogMultiheadAttention, macs: float) -> None:
        self.macs += macs


def _attention_cost(
    name: str,
    module: AnalogMultiheadAttention,
    meter: _AttentionMeter,
    fallback: DeviceProfile,
    n: int,
) -> LayerCost:
    own = analog_layers(module)
    prof = own[0][1].profile if own else fallback
    macs = meter.macs / n
    # digital work only: no tiles, converters or array energy
    zero = dict.fromkeys(("mvms", "array_J", "dac_J", "adc_J", "latency_s", "area_mm2"), 0.0)
    digital_J = macs * digital_mac_energy_J(prof)
    return LayerCost(name=name, kind="attn", tiles=0, macs=macs, digital_J=digital_J, **zero)


@torch.no_grad()
def cost_report(chip: nn.Module, x: Tensor, batch_dim: int = 0) -> CostReport:
    """Energy, latency and area of ``chip(x)``, per inference, layer by layer.

    Runs one forward pass of ``x`` (dimension ``batch_dim`` is the batch of inferences:
    1 for a sequence-first input, ``(S, B, E)`` of a ``batch_first=False`` transformer)
    and measures the DAC codes each analog layer applies and the digital MACs of each
    converted attention (a row of kind ``attn``).  Calibrate the chip first
    if its converters are ``calibrated`` (see :func:`memsim.calibrate`).

    Raises:
        CostModelError: A layer's profile has an ideal DAC or ADC (``bits`` null).
        ValueError: ``chip`` has no analog layer, or ``batch_dim`` is not a dimension of
            ``x``.

    """
    if not -x.dim() <= batch_dim < x.dim():
        raise ValueError(f"batch_dim={batch_dim} is not a dimension of x of shape {tuple(x.shape)}")
    layers = analog_layers(chip)
    if not layers:
        raise ValueError("the model has no analog layer; convert it with memsim.convert first")
    for _, layer in layers:
        input_cycles(layer.profile)
        _adc_bits(layer.profile)
    meters = [_Meter() for _ in layers]
    attentions = [
        (name, m) for name, m in chip.named_modules() if isinstance(m, AnalogMultiheadAttention)
    ]
    attention_meters = [_AttentionMeter() for _ in attentions]
    for (_, layer), meter in zip(layers, meters):
        layer.cost_probe = meter
    for (_, attention), a_meter in zip(attentions, attention_meters):
        attention.cost_probe = a_meter
    try:
        chip(x)
    finally:
        for _, layer in layers:
            del layer.cost_probe  # back to the class default (None)
        for _, attention in attentions:
            del attention.cost_probe
    n = int(x.shape[batch_dim])
    costs = {name: _layer_cost(name, layer, m, n) for (name, layer), m in zip(layers, meters)}
    fallback = layers[0][1].profile
    for (name, attention), a_meter in zip(attentions, attention_meters):
        costs[name] = _attention_cost(name, attention, a_meter, fallback, n)
    # rows in module order: an attention's row comes before those of its projections
    rows = [costs[name] for name, _ in chip.named_modules() if name in costs]
    return CostReport(rows, n, layers[0][1].profile.name)
