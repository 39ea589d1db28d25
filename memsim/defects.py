"""A chip instance's fixed defects as a differentiable map of the weights.

Stuck-at faults and device-to-device gain variation belong to one chip (``chip_seed``)
and do not change between programmings.  A device researcher can measure them (a march
test reads out which cells are stuck; a verify pass estimates each cell's gain), so a
training method may use them.  For one weight with pair conductances ``G+`` and ``G-``
the chip stores, in normalized units ``(G - g_min) / (g_max - g_min)``,

* a working device: ``gain * m`` for its programmed magnitude ``m`` (0 for the idle
  device of the pair);
* a device stuck at ``g_min``: 0; stuck at ``g_max``: 1.

So the stored weight is the affine map ``s * (a+ relu(w/s) - a- relu(-w/s) + b)`` of
the level-rounded target, with ``a = gain * working`` per device, ``b = stuck_max(G+) -
stuck_max(G-)`` and ``s`` the scale of the weight's scaling group (see
:mod:`memsim.mapping`).  :meth:`DefectMap.apply` evaluates it with straight-through
rounding, so a training loss can be taken through this chip's defects.  Programming
noise, read noise, drift and the converters are random or per-call and are left to the
noise model of the training (or to the simulator itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import mapping
from .layers import AnalogLayer, analog_layers
from .profiles import DeviceProfile
from .tiling import TileLayout

STUCK_AT_GMIN, STUCK_AT_GMAX = 1, 2
"""Codes of the ``fault`` buffer of an analog layer."""


def _ste(value: Tensor, x: Tensor) -> Tensor:
    """``value`` in the forward pass, the gradient of ``x`` in the backward pass."""
    return value.detach() + (x - x.detach())


@dataclass(frozen=True)
class DefectMap:
    """Fixed defects of one analog layer, applied to weights of that layer's shape."""

    gain: Tensor
    """``(2, out, K)``: normalized response of each device (its gain; 0 if stuck)."""
    offset: Tensor
    """``(out, K)``: normalized weight added by stuck-at-``g_max`` devices."""
    layout: TileLayout
    profile: DeviceProfile
    weight_shape: tuple[int, ...]

    @classmethod
    def of(cls, layer: AnalogLayer) -> DefectMap:
        """Read the defects of ``layer`` (its ``fault`` and ``gain`` buffers, placed)."""
        view = layer.tiles
        # the defects under each weight: a placement moves weights onto other devices
        fault, gain = view.placed(view.fault), view.placed(view.gain).float()
        working = (fault == 0).to(gain.dtype)
        high = (fault == STUCK_AT_GMAX).to(gain.dtype)
        return cls(
            gain=(gain * working).clone(),
            offset=(high[0] - high[1]).clone(),
            layout=layer.layout,
            profile=layer.profile,
            weight_shape=tuple(layer.weight_shape),
        )

    def apply(self, w: Tensor) -> Tensor:
        """The weights this chip stores for targets ``w`` (before programming noise).

        Differentiable in ``w``: quantization and level rounding pass the gradient
        straight through; the scale of each scaling group is treated as a constant.
        """
        if tuple(w.shape) != self.weight_shape:
            raise ValueError(f"weight shape {tuple(w.shape)} != layer {self.weight_shape}")
        lay, p = self.layout, self.profile
        w2 = w.reshape(lay.out, lay.k)
        q = mapping.digital_quantize(w2.detach(), p)
        w2 = _ste(q, w2)
        scale = mapping.weight_scales(q, lay, p.mapping.weight_scaling)
        s = mapping.expand_partial(scale, lay).to(w.dtype)
        x = w2 / s
        mag = x.abs().clamp(max=1.0)
        levels = p.device.levels
        if levels is not None:
            mag = _ste(torch.round(mag * (levels - 1)) / (levels - 1), mag)
        zero = torch.zeros_like(mag)
        pos = torch.where(x > 0, mag, zero)
        neg = torch.where(x < 0, mag, zero)
        gain, offset = self.gain.to(w), self.offset.to(w)
        y = gain[0] * pos - gain[1] * neg + offset
        return (y * s).reshape(self.weight_shape)


def defect_maps(model: nn.Module) -> dict[str, DefectMap]:
    """The :class:`DefectMap` of every analog layer of ``model``, keyed like ``state_dict``."""
    layers = analog_layers(model)
    if not layers:
        raise ValueError("defect_maps needs a model from memsim.convert (no analog layers)")
    return {(f"{n}.weight" if n else "weight"): DefectMap.of(layer) for n, layer in layers}


def defect_weight_map(model: nn.Module) -> Callable[[str, Tensor], Tensor]:
    """``(name, w) -> w'``: every layer's :meth:`DefectMap.apply`, for a training forward.

    The form ``models.quant.qat_finetune(..., weight_map=...)`` takes, to train through
    the defects of the chip ``model``.
    """
    maps = defect_maps(model)
    return lambda name, w: maps[name].apply(w)
