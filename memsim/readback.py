"""Read-back of a chip's devices, as a test bench with write-verify circuitry does it.

A real chip lets its user program a conductance target into every device and read each
device's conductance back (the read path that write-verify uses).  It never reveals
which devices are stuck, nor their gains.  :func:`read_back` models exactly that: it
programs one uniform target into every device of every analog layer (with the profile's
programming noise), applies the chip's fixed defects (stuck-at faults, device gains),
and returns the mean of ``reads`` noisy reads per device (each with the profile's read
noise).  :func:`estimate_defects` turns two such read-backs (all-``g_max`` and
all-``g_min``) into an estimated :class:`memsim.defects.DefectMap` per layer, which a
training method can use in place of the simulator's true one.

Read-back does not change the layer's programmed state in the simulator; on a real chip
the weights would have to be programmed again afterwards, which every method does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .defects import STUCK_AT_GMAX, STUCK_AT_GMIN, DefectMap
from .layers import analog_layers
from .seeds import device_seed

_STREAM_READBACK = 7


def _name(n: str) -> str:
    return f"{n}.weight" if n else "weight"


@torch.no_grad()
def read_back(model: nn.Module, level: float, *, reads: int, seed: int) -> dict[str, Tensor]:
    """Program every device to one target and read it back ``reads`` times.

    Args:
        model: A model from :func:`memsim.convert`.
        level: Target in normalized units: 0 = ``g_min``, 1 = ``g_max``.
        reads: Reads per device to average (each with the profile's read noise).
        seed: Seed of the programming and read noise.

    Returns:
        ``{"<layer>.weight": (2, out, K)}``: mean read conductance of each device of each
        differential pair, in normalized units ``(G - g_min) / (g_max - g_min)``.

    Raises:
        ValueError: ``level`` outside [0, 1], ``reads < 1``, or a model without analog
            layers.

    """
    if not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"read_back: level must be in [0, 1] (0 = g_min, 1 = g_max), got {level}")
    if int(reads) < 1:
        raise ValueError(f"read_back: reads must be >= 1, got {reads}")
    layers = analog_layers(model)
    if not layers:
        raise ValueError("read_back needs a model from memsim.convert (no analog layers)")
    out: dict[str, Tensor] = {}
    for name, layer in layers:
        view = layer.tiles
        phys = view.physics
        window = phys.g_max - phys.g_min
        gen = torch.Generator().manual_seed(device_seed(seed, _STREAM_READBACK, layer.layer_index))
        shape = tuple(view.g_prog.shape)
        target = torch.full(shape, phys.g_min + float(level) * window, dtype=view.g_prog.dtype)
        g = view.apply_defects(phys.program(target, gen).to(view.g_prog.device))
        sigma: Tensor | float = phys.read_sigma() * window
        if phys.read.state_dependent:
            sigma = phys.read.device_sigma(g) * window
        # the mean of `reads` independent Gaussian reads has std sigma / sqrt(reads)
        noise = torch.randn(shape, generator=gen, dtype=g.dtype).to(g.device)
        g_read = g + noise * (sigma / float(reads) ** 0.5)
        out[_name(name)] = ((g_read - phys.g_min) / window).cpu()
    return out


@dataclass(frozen=True)
class DefectEstimate:
    """Estimated defects of one layer from two read-backs."""

    fault: Tensor
    """``(2, out, K)`` int8: 0 working, :data:`STUCK_AT_GMIN` or :data:`STUCK_AT_GMAX`."""
    gain: Tensor
    """``(2, out, K)``: estimated gain of each working device (0 where stuck)."""
    defect_map: DefectMap
    """The estimate as a training weight map (see :class:`memsim.defects.DefectMap`)."""


@torch.no_grad()
def estimate_defects(
    model: nn.Module,
    *,
    reads: int = 4,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict[str, DefectEstimate]:
    """Estimate stuck devices and device gains from an all-g_max and an all-g_min read-back.

    A device that reads above ``threshold`` after being programmed to ``g_min`` is stuck
    at ``g_max``; one that reads below ``threshold`` after being programmed to ``g_max``
    is stuck at ``g_min``; every other device works, with gain = (read at ``g_max``) -
    (read at ``g_min``), since a device's gain scales its programmed excursion above
    ``g_min``.

    Args:
        model: A model from :func:`memsim.convert` (its chip is the one estimated).
        reads: Reads per device and target.
        seed: Seed of both read-backs.
        threshold: Decision level in normalized units (between the stuck levels 0 and 1).

    Returns:
        ``{"<layer>.weight": DefectEstimate}``.

    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"estimate_defects: threshold must be in (0, 1), got {threshold}")
    hi = read_back(model, 1.0, reads=reads, seed=seed)
    lo = read_back(model, 0.0, reads=reads, seed=seed + 1)
    out: dict[str, DefectEstimate] = {}
    for name, layer in analog_layers(model):
        key = _name(name)
        h, low = hi[key], lo[key]
        fault = torch.zeros(h.shape, dtype=torch.int8)
        fault[h < threshold] = STUCK_AT_GMIN
        fault[low > threshold] = STUCK_AT_GMAX
        working = fault == 0
        gain = torch.where(working, (h - low).clamp(min=0.0), torch.zeros_like(h))
        high = (fault == STUCK_AT_GMAX).to(h.dtype)
        dmap = DefectMap(
            gain=gain.to(layer.tiles.gain.dtype),
            offset=(high[0] - high[1]).to(layer.tiles.gain.dtype),
            layout=layer.layout,
            profile=layer.profile,
            weight_shape=tuple(layer.weight_shape),
        )
        out[key] = DefectEstimate(fault=fault, gain=gain, defect_map=dmap)
    return out


def estimated_weight_map(
    estimates: dict[str, DefectEstimate],
) -> Callable[[str, Tensor], Tensor]:
    """``(name, w) -> w'`` through the estimated maps (the form ``qat_finetune`` takes)."""
    return lambda name, w: estimates[name].defect_map.apply(w)
