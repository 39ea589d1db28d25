"""Analog ``Linear`` and ``Conv2d`` layers computed on simulated crossbar tiles.

The layers are thin: the tile state and its programming and drift are
:class:`memsim.tiles.TileArray`'s, the DAC, ADC and calibration :mod:`memsim.periphery`'s,
the device laws :mod:`memsim.physics`'s; here they are wired to the partial-sum ops.

Forward pass of one layer, in the normalized units of the array (a device at the
full window driven by a full-scale input contributes 1.0):

1. DAC: ``x_hat = quantize(clip(x / B))`` with the range ``B`` set by the DAC mode.
2. Each tile column sums ``x_hat * (G+ - G-) / (g_max - g_min)`` over the tile's rows,
   plus read noise and bit-line noise.  With IR drop on, the tile's differential
   transfer matrix (:mod:`memsim.irdrop`, computed at programming and drift time)
   takes the place of ``G+ - G-``.
3. Each partial sum is digitized by its tile's ADC.
4. Digital: partial sums are scaled (weight scale, drift-compensation gain) and
   accumulated over row tiles, multiplied by ``B`` and the bias is added.

Read noise is per MVM.  For a state-independent Gaussian read noise of std
``sigma`` per device, ``sum_i x_i (w_i + sigma_w eps_i)`` has *exactly* the
distribution of ``sum_i x_i w_i + sigma_w sqrt(sum_i x_i**2) xi``, so one reduction of
``x**2`` and one draw per output replace a draw per device per input vector
(``sigma_w = sqrt(2) sigma`` for the two devices of a pair).  The cells of a tile
outside every packed block are not simulated (see :mod:`memsim.tiling`).

The partial sums of all tiles of a layer come from one tensor op: a grouped
``F.conv2d`` whose groups are (layer group, row tile) pairs, or one ``bmm`` for
``Linear``.  Everything after it (noise, ADC, digital scaling and accumulation)
runs in place on the partial sums.  There is no Python loop over tiles or devices.
In eval mode (and under ``torch.no_grad``) the forward pass runs without autograd.  In
training mode with gradients enabled it is the same forward pass, wrapped in
:class:`memsim.through_chip.ThroughChip`: the output is bit for bit the chip's, and the
backward pass reaches the target weights, the bias and the input through
straight-through estimators (see :mod:`memsim.train` for the training regimes).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .periphery import ADC, DAC, Calibration, DacOut
from .profiles import DeviceProfile
from .sampling import NoiseSampler, standard_normal
from .seeds import device_seed
from .through_chip import ThroughChip
from .tiles import STREAM_READ, TileArray, generator

log = logging.getLogger("memsim")

_STREAM_READ = STREAM_READ
_generator = generator  # module level, so that tests can record the generators drawn


class AnalogLayer(TileArray):
    """Periphery and forward-pass mechanics of the analog layers (not used directly).

    The tile state and its operations (programming, drift, read-only view ``tiles``) are
    :class:`memsim.tiles.TileArray`'s; the DAC, ADC and calibration are
    :mod:`memsim.periphery`'s.  This class wires them to the partial-sum ops of
    :class:`AnalogLinear` and :class:`AnalogConv2d`.
    """

    cost_probe: Callable[[AnalogLayer, Tensor], None] | None = None
    """Called with the DAC codes of every forward pass while set (``memsim.cost``)."""

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None,
        profile: DeviceProfile,
        groups: int,
        layer_index: int,
    ) -> None:
        """Set up devices for ``weight`` (any shape with outputs first)."""
        super().__init__(weight, profile, groups, layer_index)
        self.qualified_name = ""
        """Module name in the converted model (set by :func:`memsim.convert`), for messages."""
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        # caches derived from the tile state, laid out for the forward pass
        self.register_buffer("_w_part", None, persistent=False)
        self.register_buffer("_v_part", None, persistent=False)
        self.register_buffer("_p_scale", None, persistent=False)
        self.register_buffer("_p_tile", None, persistent=False)
        self.dac, self.adc = DAC(profile.dac), ADC(profile.adc)
        self.cal = Calibration()
        self.noise_sampler = NoiseSampler.exact
        self._read_gens: dict[str, torch.Generator] = {}
        # scratch tensors of the forward pass, reused across calls: a fresh large tensor
        # costs its page faults on every call (never returned to the caller)
        self._scratch: dict[str, Tensor] = {}
        self._scratch_views: dict[tuple[str, tuple[int, ...]], Tensor] = {}
        self.trim: tuple[Tensor, Tensor] | None = None
        """Digital per-output ``(gain, offset)`` after the ADC (:mod:`memsim.trim`)."""

    def _generator(self, seed: int, device: torch.device | str = "cpu") -> torch.Generator:
        return _generator(seed, device)

    def _buf(self, key: str, shape: tuple[int, ...] | torch.Size, like: Tensor) -> Tensor:
        """A scratch tensor of ``shape`` (``like``'s dtype and device), reused across calls."""
        # the view itself is cached: slicing and viewing a tensor on every call costs more
        # than the elementwise work of a small layer
        view = self._scratch_views.get((key, shape))
        if view is not None and view.dtype == like.dtype and view.device == like.device:
            return view
        n = math.prod(shape)
        buf = self._scratch.get(key)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(n, dtype=like.dtype, device=like.device)
            self._scratch[key] = buf
            # views of the old tensor keep it alive: drop them with it
            for k in [k for k in self._scratch_views if k[0] == key]:
                del self._scratch_views[k]
        view = buf[:n].view(shape)
        self._scratch_views[(key, tuple(shape))] = view
        return view

    def _codes(self, x: Tensor, sample_dims: tuple[int, ...]) -> DacOut:
        """The DAC's output for ``x``, its codes in a scratch tensor."""
        out = self._buf("codes", x.shape, x) if self.dac.bits is not None else None
        return self.dac.convert(x, sample_dims, self.cal, self.dac_range, self._label(), out)

    def _programmed(self) -> None:
        # a new programmed state: fresh read-noise streams, converter ranges to set again
        self._read_gens.clear()
        self.calibrated = False

    def _state_changed(self) -> None:
        self._refresh_partial_cache()

    # -- state dict ------------------------------------------------------------------
    def _profile_digest(self) -> str:
        return self.profile_digest()

    def get_extra_state(self) -> dict[str, Any]:
        """State outside the buffers: seeds, age, calibration and read-noise stream."""
        return {
            "version": 1,
            "profile": self.profile.name,
            "profile_digest": self._profile_digest(),
            "seed": self.seed,
            "t_s": self.t_s,
            "calibrated": self.calibrated,
            "has_drift": self._has_drift,
            "read_rng": {k: g.get_state() for k, g in self._read_gens.items()},
        }

    @torch.no_grad()
    def set_extra_state(self, state: Any) -> None:
        """Restore :meth:`get_extra_state` and rebuild the caches derived from the buffers.

        ``nn.Module`` loads the buffers before the extra state, so the caches the forward
        pass uses are rebuilt from the loaded buffers here.
        """
        label = self._label()
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ValueError(f"memsim layer {label}: not a memsim chip state (extra state)")
        if state["profile_digest"] != self._profile_digest():
            raise ValueError(
                f"memsim layer {label}: the state was saved from a chip with profile "
                f"{state['profile']!r} (digest {state['profile_digest']}), this chip has "
                f"{self.profile.name!r} (digest {self._profile_digest()}); convert with the "
                "same profile before loading"
            )
        self.seed = int(state["seed"])
        self.calibrated = bool(state["calibrated"])
        self._has_drift = bool(state["has_drift"])
        self._read_gens.clear()
        for key, rng_state in state["read_rng"].items():
            if key != "cpu" and not torch.cuda.is_available():
                continue  # saved on a device this machine lacks: the stream restarts from seed
            gen = torch.Generator(device=key)
            gen.set_state(rng_state.cpu())
            self._read_gens[key] = gen
        self._restore_now(float(state["t_s"]))

    # -- partial-sum bookkeeping ------------------------------------------------------
    def _to_partial_order(self, v: Tensor) -> Tensor:
        """Reorder a per-(output, row tile) tensor to partial-sum order ``(G*T, O, 1)``."""
        lay = self.layout
        g, og, rt = lay.groups, lay.out_per_group, lay.row_tiles
        return v.reshape(g, og, rt).transpose(1, 2).reshape(g * rt, og, 1).contiguous()

    def _refresh_partial_cache(self) -> None:
        self._p_scale = self._to_partial_order(self.scale * self.comp_gain)
        if self._p_tile is None or self._p_tile.device != self.tile_of_partial.device:
            self._p_tile = self._to_partial_order(self.tile_of_partial)  # fixed by the layout
        self._w_part = self._partial_weights(self.w_norm)
        self._v_part = None
        read = self.physics.read
        if read.state_dependent:
            # per-device read variance (both devices of a pair), in window units squared,
            # laid out like the weights: sum_i x_i**2 v_i is the exact output variance
            v = read.device_sigma(self.g_now).square().sum(0)
            self._v_part = self._partial_weights(v)

    def _partial_weights(self, w: Tensor) -> Tensor:
        """``(out, K)`` per-weight values (normalized weights) arranged for the partial-sum op."""
        raise NotImplementedError

    # -- periphery -------------------------------------------------------------------
    def _read_gen(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._read_gens:
            seed = device_seed(self.seed, _STREAM_READ, self.layer_index)
            self._read_gens[key] = _generator(seed, device)
        return self._read_gens[key]

    def _dac(self, x: Tensor, sample_dims: tuple[int, ...]) -> tuple[Tensor, Tensor | float, float]:
        """Return ``(codes, bound, u)`` with ``x ~ codes * u * bound`` (see :class:`DAC`)."""
        out = self.dac.convert(x, sample_dims, self.cal, self.dac_range, self._label())
        return out.codes, out.bound, out.u

    @property
    def calibrated(self) -> bool:
        """Whether the data-set converter ranges are set."""
        return self.cal.calibrated

    @calibrated.setter
    def calibrated(self, value: bool) -> None:
        self.cal.calibrated = bool(value)

    @property
    def calibrating(self) -> bool:
        """Between :meth:`calibrate_begin` and :meth:`calibrate_end`."""
        return self.cal.calibrating

    def _epilogue(
        self, pc: Tensor, sx2: Tensor | None, u: float, bound: Tensor | float, noise_scale: float
    ) -> Tensor:
        """Noise, ADC and digital accumulation on partial sums, in place.

        Args:
            pc: Partial sums ``(B, G*T, O, L)`` in DAC-code units (``p = pc * u``).
            sx2: Sum of squared DAC codes per MVM ``(B, G*T, 1 or O, L)``, or ``None``.
            u: Code-to-normalized-input factor.
            bound: DAC range (float or tensor broadcastable to ``(B, 1, 1, 1)``).
            noise_scale: Bit-line noise scale of a calibrating pass-through DAC (else 1).

        Returns:
            Outputs ``(B, G*O, L)`` in weight units, without bias.

        """
        read, s_out = self.physics.read, self.profile.output_noise.sigma
        # sx2 already holds the read variances of a state-dependent law; otherwise it is
        # sum x**2 and the variance of a pair is 2 sigma**2
        k_read = 1.0 if read.state_dependent else 2.0 * read.sigma() ** 2
        # bit-line noise is relative to the DAC full scale (input units in a pass-through)
        s_out *= noise_scale
        if sx2 is not None and (k_read > 0 or s_out > 0):
            std = sx2.mul_(k_read).add_(s_out**2 / u**2).sqrt_()
            noise = standard_normal(
                pc.shape,
                self._read_gen(pc.device),
                self.noise_sampler,
                pc.device,
                pc.dtype,
                self._buf("noise", pc.shape, pc),
            )
            pc.addcmul_(noise, std)
        factor = self.adc.digitize(
            pc, u, self._p_scale, self._p_tile, self.cal, self.adc_range, self._label()
        )
        b, gt, o, n = pc.shape
        rt = self.layout.row_tiles
        if rt == 1:
            y = pc.mul_(factor)
        elif gt == rt and pc.transpose(0, 1).is_contiguous():
            # one group, row tiles outermost in memory (the linear layer's (T, B, out)
            # scratch): the sum over row tiles runs over contiguous rows, the same additions
            # in the same order as the sum over the middle axis below, several times faster
            pt = pc.transpose(0, 1).mul_(factor.view(rt, 1, o, 1))
            y = pt.reshape(rt, -1).sum(0).view(b, o, n)
        else:
            # in place: pc is this call's own tensor
            y = pc.reshape(b, gt // rt, rt, o, n).mul_(factor.view(gt // rt, rt, o, 1)).sum(2)
        y = y.reshape(b, -1, n)
        if isinstance(bound, Tensor) and bound.dim() > 0:
            y.mul_(bound.reshape(b, 1, 1))
        elif isinstance(bound, Tensor) or bound != 1.0:
            y.mul_(bound)
        if self.trim is not None:
            y.mul_(self.trim[0].view(1, -1, 1)).add_(self.trim[1].view(1, -1, 1))
        return y

    def _label(self) -> str:
        return f"{self.qualified_name or '(root)'!r} ({type(self).__name__})"

    def _as_input(self, x: Any, expected: str) -> Tensor:
        """``x`` as a tensor of the layer's dtype (other float dtypes are cast)."""
        if not isinstance(x, Tensor):
            raise TypeError(
                f"memsim layer {self._label()}: expected a torch.Tensor of shape {expected}, "
                f"got {type(x).__name__}"
            )
        if x.dtype != self.w_norm.dtype:
            if not x.is_floating_point():
                raise TypeError(
                    f"memsim layer {self._label()}: expected a floating-point input of shape "
                    f"{expected} ({self.w_norm.dtype}; other float dtypes are cast), "
                    f"got {x.dtype}"
                )
            x = x.to(self.w_norm.dtype)
        return x

    def _end_forward(self) -> None:
        if self.cal.calibrating:
            self.cal.batches += 1
        else:
            self.cal.calibrated = True

    def calibrate_begin(self) -> None:
        """Start accumulating DAC/ADC ranges over calibration batches.

        Until :meth:`calibrate_end`, a calibrated DAC passes its inputs through and the
        ADCs do not digitize, so every layer sees inputs that do not depend on which
        batches came before; the ranges are running maxima, so the result does not
        depend on the order or the sizes of the batches (for noise-free tiles; with read
        noise the maxima are over the noise draws of the calibration pass).
        """
        self.cal.calibrating = True
        self.cal.batches = 0
        self.cal.adc_max = None

    def calibration_state(self) -> tuple[bool, Tensor, Tensor]:
        """``(calibrated, DAC range, ADC ranges)``, copied, for :meth:`restore_calibration`."""
        return self.calibrated, self.dac_range.clone(), self.adc_range.clone()

    @torch.no_grad()
    def restore_calibration(self, state: tuple[bool, Tensor, Tensor]) -> None:
        """Put back the converter ranges of :meth:`calibration_state`."""
        calibrated, dac, adc = state
        self.calibrated = calibrated
        self.dac_range.copy_(dac)
        self.adc_range.copy_(adc)

    def calibrate_end(self) -> None:
        """Freeze the ranges accumulated since :meth:`calibrate_begin`."""
        self.cal.calibrating = False
        self.cal.calibrated = True
        rng = self.cal.adc_max
        if rng is not None:
            if self.dac.needs_calibration:
                rng = rng / self.dac_range  # relative to the DAC full scale
            self.adc_range.copy_(rng)
            self.cal.adc_max = None

    def _needs_sx2(self) -> bool:
        return self.physics.read.active() or self.profile.output_noise.sigma > 0.0

    # -- training through the chip ---------------------------------------------------
    def _through_chip(self) -> bool:
        """Whether this forward pass records straight-through gradients.

        Only in training mode with autograd on, and never while calibrating (the
        converters pass their inputs through then: that is not the chip's output).
        """
        return self.training and torch.is_grad_enabled() and not self.cal.calibrating

    def _forward(self, x: Tensor) -> Tensor:
        """The chip's forward pass, through :class:`ThroughChip` when training."""
        if self._through_chip():
            return ThroughChip.apply(x, self.target, self.bias, self)
        return self._chip_forward(x)

    def _chip_forward(self, x: Tensor) -> Tensor:
        """The chip's forward pass on a validated input, without autograd."""
        raise NotImplementedError

    def _out_dim(self, ndim: int) -> int:
        """The output-feature dimension of an output with ``ndim`` dimensions."""
        raise NotImplementedError

    def _out_view(self, ndim: int) -> tuple[int, ...]:
        """Shape that broadcasts a per-output vector over an output of ``ndim`` dims."""
        shape = [1] * ndim
        shape[self._out_dim(ndim)] = -1
        return tuple(shape)

    def _linear_grads(
        self, x: Tensor, w_eff: Tensor, grad: Tensor, need_x: bool, need_w: bool
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(dL/dx, dL/dW)`` of ``y = W_eff x`` for ``grad = dL/dy`` (``dW`` as ``(out, K)``)."""
        raise NotImplementedError


def analog_layers(model: nn.Module) -> list[tuple[str, AnalogLayer]]:
    """All analog layers of ``model`` with their qualified names, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AnalogLayer)]


# the two layers live in their own modules; imported here so that memsim.layers offers both
from .conv_layer import AnalogConv2d as AnalogConv2d  # noqa: E402
from .linear_layer import AnalogLinear as AnalogLinear  # noqa: E402
