"""Periphery of a tile: the input DAC, the output ADC and their calibration.

:class:`DAC` and :class:`ADC` are built once from their profile sections and are the
one interpreter of them: the forward pass (:mod:`memsim.layers`), the export
(:mod:`memsim.export`), the cost model (:mod:`memsim.cost`), :func:`memsim.needs_calibration`
and the aihwkit translation (:mod:`memsim.backends.aihwkit`) all ask them.  They hold no
tensors: the calibrated ranges are buffers of the layer (they are in its state dict),
and the calibration flags are a :class:`Calibration`, both handed in.

Units: the DAC range is in activation units; the ADC range is in normalized units
relative to the DAC full scale (one device at full window driven at full scale gives 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .profile_sections import ADC as ADCSection
from .profile_sections import DAC as DACSection
from .profile_sections import RangeMode

log = logging.getLogger("memsim")

TRANSLATED, APPROXIMATED, NOT_TRANSLATED = "translated", "approximated", "not translated"


@dataclass(frozen=True)
class Knob:
    """One profile field and what became of it on the aihwkit side.

    Attributes:
        field: Dotted profile field, e.g. ``"faults.stuck_at_gmin_rate"``.
        value: The profile's value.
        status: ``"translated"`` (same model), ``"approximated"`` (a close aihwkit
            setting that differs in the stated way) or ``"not translated"`` (aihwkit
            runs without it).
        aihwkit: The aihwkit setting it became (empty when not translated).
        note: Why, and what differs.

    """

    field: str
    value: Any
    status: str
    aihwkit: str = ""
    note: str = ""
    covers: tuple[str, ...] = ()
    """Profile fields the line accounts for besides ``field`` (completeness test)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        value = (
            self.value
            if isinstance(self.value, (int, float, str, bool, type(None)))
            else str(self.value)
        )
        return {
            "field": self.field,
            "value": value,
            "status": self.status,
            "aihwkit": self.aihwkit,
            "note": self.note,
        }


@dataclass
class Calibration:
    """Where a layer's data-set converter ranges stand.

    Attributes:
        calibrated: The ranges are set (after the first batch or :func:`memsim.calibrate`).
        calibrating: Between ``calibrate_begin`` and ``calibrate_end``: ranges accumulate,
            nothing is quantized.
        batches: Batches seen since ``calibrate_begin``.
        adc_max: Running per-tile maximum of the partial sums while calibrating.

    """

    calibrated: bool = False
    calibrating: bool = False
    batches: int = 0
    adc_max: Tensor | None = None


def finite_abs_max(v: Tensor, dims: tuple[int, ...] | None, what: str, label: str) -> Tensor:
    """``max |v|`` over ``dims``, ignoring NaN and +-inf.

    One bad input value must not turn a calibrated range, and so every later batch,
    into NaN.
    """
    amax = v.abs().amax() if dims is None else v.abs().amax(dim=dims)
    if bool(torch.isfinite(amax).all()):
        return amax
    bad = ~torch.isfinite(v)
    log.warning(
        "memsim: layer %s: %d non-finite %s ignored when setting the range",
        label,
        int(bad.sum()),
        what,
    )
    masked = v.abs().masked_fill_(bad, 0.0)
    return masked.amax() if dims is None else masked.amax(dim=dims)


def _same(a: tuple[Any, ...] | None, b: tuple[Any, ...]) -> bool:
    """Cache keys equal: tensors by identity, other items by value."""
    if a is None or len(a) != len(b):
        return False
    return all(x is y if isinstance(x, Tensor) else x == y for x, y in zip(a, b))


def _bits_res(bits: int) -> float:
    # memsim's 2**b - 1 levels over [-bound, bound] are aihwkit's resolution 1 / (2**b - 2).
    return 1.0 / (2**bits - 2)


class DacOut(NamedTuple):
    """What the DAC hands the array: ``x ~ codes * u * bound``.

    ``noise_scale`` converts the bit-line noise (relative to the DAC full scale) to the
    units of ``codes * u``: the range while a calibrating DAC passes inputs through, else 1.
    """

    codes: Tensor
    bound: Tensor | float
    u: float
    noise_scale: float


class _Converter:
    """What a DAC and an ADC share: resolution, range mode and bound."""

    def __init__(self, spec: DACSection | ADCSection) -> None:
        """Interpret ``spec``."""
        self.spec = spec
        self.bits, self.mode, self.bound = spec.bits, spec.mode, spec.bound

    @property
    def needs_calibration(self) -> bool:
        """Whether the range is set from data (quantizing, in ``calibrated`` mode)."""
        return self.bits is not None and self.mode == RangeMode.calibrated

    def cost_bits(self) -> int | None:
        """The resolution the cost model charges (``None``: an ideal converter)."""
        return self.bits

    def _bits_knob(self, setting: str, one_bit: str) -> Knob:
        """The report line of the resolution (``one_bit``: how 1 bit differs)."""
        exact = self.bits is not None and self.bits > 1
        field = "dac.bits" if isinstance(self, DAC) else "adc.bits"
        note = "" if exact else f"memsim 1 bit = {one_bit}"
        return Knob(field, self.bits, TRANSLATED if exact else APPROXIMATED, setting, note)


class DAC(_Converter):
    """The input DAC of a profile's ``dac`` section."""

    def __init__(self, spec: DACSection) -> None:
        """Interpret ``spec``."""
        super().__init__(spec)
        self._scale: Tensor | float = 1.0
        self._scale_key: tuple[Any, ...] | None = None

    @torch.no_grad()
    def convert(
        self,
        x: Tensor,
        sample_dims: tuple[int, ...],
        cal: Calibration,
        dac_range: Tensor,
        label: str,
        out: Tensor | None = None,
    ) -> DacOut:
        """Quantize ``x``; update the calibrated range ``dac_range`` in place when due.

        ``codes`` are the integer DAC codes (or ``x`` itself for an ideal DAC, with
        ``bound = u = 1``); ``bound`` is a float, a 0-dim or a per-sample tensor.
        ``out`` (``x``'s shape): where to write the codes (saves an allocation).
        """
        if self.bits is None:
            return DacOut(x, 1.0, 1.0, 1.0)
        if self.mode == RangeMode.fixed:
            bound: Tensor | float = self.bound
        elif self.mode == RangeMode.dynamic:
            bound = x.abs().amax(dim=sample_dims, keepdim=True).clamp_(min=1e-12)
        else:
            if cal.calibrating or not cal.calibrated:
                cur = finite_abs_max(x, None, "inputs (DAC range)", label).clamp(min=1e-12)
                accumulate = cal.calibrating and cal.batches > 0
                dac_range.copy_(torch.maximum(dac_range, cur) if accumulate else cur)
            if cal.calibrating:
                # The range is not final until the last batch: pass the inputs through
                # unquantized so that no statistic depends on a provisional range.
                return DacOut(x, 1.0, 1.0, float(dac_range))
            bound = dac_range
        if self.bits == 1:
            return DacOut(torch.where(x >= 0, 1.0, -1.0).to(x.dtype), bound, 1.0, 1.0)
        m = float(2 ** (self.bits - 1) - 1)
        if isinstance(bound, Tensor) and bound.dim() == 0:
            # a calibrated range: its scale is the same until the range changes
            # the key holds the tensor itself: an id alone could be reused by a new one
            key = (bound, bound._version)
            if not _same(self._scale_key, key):
                self._scale, self._scale_key = m / bound, key
            scale: Tensor | float = self._scale
        else:
            scale = m / bound
        codes = x * scale if out is None else torch.mul(x, scale, out=out)
        codes.round_().clamp_(-m, m)
        return DacOut(codes, bound, 1.0 / m, 1.0)

    def export_range(self, dac_range: Tensor, calibrated: bool) -> np.ndarray:
        """The full scale to export (NaN: dynamic, ideal or not calibrated yet)."""
        if self.bits is None or self.mode == RangeMode.dynamic:
            value = np.float32(np.nan)
        elif self.mode == RangeMode.fixed:
            value = np.float32(self.bound)
        else:
            value = np.float32(dac_range.item() if calibrated else np.nan)
        return np.asarray(value, dtype=np.float32)

    def aihwkit(self, f: Any, dac_range: float | None) -> list[Knob]:
        """Set the input side of aihwkit's forward parameters ``f``; return the report."""
        from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

        if self.bits is None:
            f.inp_res = -1.0
            f.noise_management = NM.ABS_MAX
            return [
                Knob(
                    "dac.bits",
                    None,
                    TRANSLATED,
                    "inp_res=-1, ABS_MAX (no clipping)",
                    covers=("dac.bits", "dac.mode", "dac.bound"),
                )
            ]
        f.inp_res = _bits_res(self.bits) if self.bits > 1 else 1.0
        out = [
            self._bits_knob(f"inp_res={f.inp_res:.6g}", "sign(x); aihwkit has 3 levels -1, 0, 1")
        ]
        mode = ("dac.mode", "dac.bound")
        if self.mode == RangeMode.fixed and self.bound == 1.0:
            f.noise_management = NM.NONE
            out.append(
                Knob(
                    "dac.mode",
                    "fixed bound=1",
                    TRANSLATED,
                    "noise_management=NONE, inp_bound=1",
                    covers=mode,
                )
            )
        elif self.mode == RangeMode.fixed:
            f.noise_management = NM.CONSTANT
            f.nm_thres = self.bound
            out.append(
                Knob(
                    "dac.mode",
                    f"fixed bound={self.bound:g}",
                    TRANSLATED,
                    f"noise_management=CONSTANT, nm_thres={self.bound:g}, inp_bound=1",
                    covers=mode,
                )
            )
        elif self.mode == RangeMode.dynamic:
            f.noise_management = NM.ABS_MAX
            out.append(
                Knob(
                    "dac.mode",
                    "dynamic",
                    APPROXIMATED,
                    "noise_management=ABS_MAX",
                    "both scale each input vector by its max|x|; aihwkit per tile input slice "
                    "and per conv patch, memsim per whole input vector (all row tiles) and per "
                    "image for convs; identical for a Linear layer on one row of tiles",
                    covers=mode,
                )
            )
        elif dac_range is not None:
            f.noise_management = NM.CONSTANT
            f.nm_thres = float(dac_range)
            out.append(
                Knob(
                    "dac.mode",
                    "calibrated",
                    TRANSLATED,
                    f"noise_management=CONSTANT, nm_thres={dac_range:.4g} (memsim's calibrated "
                    "range of this layer)",
                    covers=mode,
                )
            )
        else:
            f.noise_management = NM.ABS_MAX
            out.append(
                Knob(
                    "dac.mode",
                    "calibrated",
                    APPROXIMATED,
                    "noise_management=ABS_MAX",
                    "no calibrated range given: per-vector max|x| instead of a per-layer range",
                    covers=mode,
                )
            )
        return out


class ADC(_Converter):
    """The per-tile output ADC of a profile's ``adc`` section."""

    def __init__(self, spec: ADCSection) -> None:
        """Interpret ``spec``."""
        super().__init__(spec)
        self.margin, self.offset = spec.margin, spec.offset
        self._steps: tuple[Tensor, Tensor] | None = None
        self._steps_key: tuple[Any, ...] | None = None

    @property
    def range_from_data(self) -> bool:
        """Whether a quantizing ADC sets its ranges from data (calibrated or dynamic)."""
        return self.bits is not None and self.mode != RangeMode.fixed

    @torch.no_grad()
    def digitize(
        self,
        pc: Tensor,
        u: float,
        factor: Tensor,
        p_tile: Tensor,
        cal: Calibration,
        adc_range: Tensor,
        label: str,
    ) -> Tensor:
        """Digitize the partial sums ``pc`` (code units, ``p = pc * u``) in place.

        Returns ``factor`` times what turns the result back into normalized units
        (``u`` when nothing is digitized, the step of each tile's ADC otherwise).
        """
        if self.bits is not None and cal.calibrating:
            # record the ranges, digitize nothing: later layers see batch-independent inputs
            self.ranges(pc, u, p_tile, cal, adc_range, label)
            return factor * u
        if self.bits is None:
            return factor * u
        key = None
        if self.mode == RangeMode.fixed or (self.mode == RangeMode.calibrated and cal.calibrated):
            # ranges that stay until recalibrated: the steps are computed once for them
            key = (adc_range, adc_range._version, p_tile, factor, u)
        if key is None or not _same(self._steps_key, key):
            rng = self.ranges(pc, u, p_tile, cal, adc_range, label)
            self._steps, self._steps_key = self._step_factors(rng, u, factor, p_tile), key
        to_codes, out = self._steps  # type: ignore[misc]
        if self.offset:
            pc.add_(self.offset / u)  # the converter's input-referred offset
        if self.bits == 1:
            pc.copy_(torch.where(pc >= 0, 1.0, -1.0))
            return out
        m = float(2 ** (self.bits - 1) - 1)
        pc.mul_(to_codes).round_().clamp_(-m, m)
        return out

    def _step_factors(
        self, rng: Tensor, u: float, factor: Tensor, p_tile: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(u / step, factor * step)`` of each partial sum's ADC for tile ranges ``rng``."""
        step = rng.clamp(min=1e-12)[p_tile]  # (G*T, O, 1), normalized units
        if self.bits == 1:
            return step, factor * step
        step = step / float(2 ** (self.bits - 1) - 1)  # type: ignore[operator]
        return u / step, factor * step

    def ranges(
        self,
        pc: Tensor,
        u: float,
        p_tile: Tensor,
        cal: Calibration,
        adc_range: Tensor,
        label: str,
    ) -> Tensor:
        """Per-tile ADC range in normalized units; (re)calibrates ``adc_range`` when due."""
        if self.mode == RangeMode.fixed:
            return torch.full_like(adc_range, self.bound)
        if self.mode == RangeMode.calibrated and cal.calibrated and not cal.calibrating:
            return adc_range
        col_max = finite_abs_max(pc, (0, 3), "partial sums (ADC range)", label).reshape(-1) * u
        rng = (
            torch.zeros_like(adc_range).scatter_reduce(0, p_tile.reshape(-1), col_max, "amax")
            * self.margin
        )
        if self.mode == RangeMode.calibrated:
            if cal.calibrating:
                # running max of the partial sums in the units of this batch's DAC scale
                # (input units while a calibrated DAC passes inputs through); converted to
                # the final DAC full scale by Calibration's end
                if cal.batches > 0:
                    rng = torch.maximum(rng, cal.adc_max)
                cal.adc_max = rng
                return rng
            adc_range.copy_(rng)
            log.info("memsim: layer %s ADC ranges calibrated on its first batch", label)
        return rng

    def export_ranges(self, adc_range: Tensor, calibrated: bool) -> np.ndarray:
        """Per-tile full scales to export (NaN: dynamic, ideal or not calibrated yet)."""
        n = adc_range.numel()
        if self.bits is None or self.mode == RangeMode.dynamic:
            return np.full(n, np.nan, dtype=np.float32)
        if self.mode == RangeMode.fixed:
            return np.full(n, self.bound, dtype=np.float32)
        if not calibrated:
            return np.full(n, np.nan, dtype=np.float32)
        return adc_range.cpu().numpy().astype(np.float32)

    def aihwkit(self, f: Any) -> list[Knob]:
        """Set the output side of aihwkit's forward parameters ``f``; return the report."""
        out: list[Knob] = []
        if self.bits is None:
            f.out_res = -1.0
            f.out_bound = 0.0  # <= 0: no clipping
            out.append(
                Knob(
                    "adc.bits",
                    None,
                    TRANSLATED,
                    "out_res=-1, out_bound=0 (no clip)",
                    covers=("adc.bits", "adc.mode", "adc.bound", "adc.margin"),
                )
            )
        else:
            f.out_res = _bits_res(self.bits) if self.bits > 1 else 1.0
            f.out_bound = self.bound
            out.append(self._bits_knob(f"out_res={f.out_res:.6g}", "sign; aihwkit has 3 levels"))
            if self.mode == RangeMode.fixed:
                out.append(
                    Knob(
                        "adc.bound",
                        self.bound,
                        TRANSLATED,
                        f"out_bound={self.bound:g}",
                        covers=("adc.bound", "adc.mode", "adc.margin"),
                    )
                )
            else:
                out.append(
                    Knob(
                        "adc.mode",
                        f"{self.mode.value} margin={self.margin:g}",
                        NOT_TRANSLATED,
                        f"out_bound={self.bound:g} (fixed)",
                        "aihwkit has one fixed out_bound; memsim sets each tile's ADC range "
                        "from data (per-tile calibration)",
                        covers=("adc.mode", "adc.margin", "adc.bound"),
                    )
                )
        if self.offset and self.bits is not None:
            out.append(
                Knob(
                    "adc.offset",
                    self.offset,
                    NOT_TRANSLATED,
                    "",
                    "aihwkit's forward parameters have no ADC offset",
                )
            )
        else:
            out.append(Knob("adc.offset", self.offset, TRANSLATED, "(none)"))
        return out
