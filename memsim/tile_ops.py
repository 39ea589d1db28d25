"""The pure operations on a layer's tile state (:mod:`memsim.tiles` holds the state).

Each function maps tensors to new tensors: the target conductances and scales of target
weights, a chip's drawn defects and their effect on conductances, the normalized weights
the tiles compute with (IR-drop transfer included), and the per-tile mean ``|w|`` that
drift compensation reads.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import irdrop, mapping
from .profiles import DeviceProfile
from .tiling import TileLayout


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


# -- pure operations -----------------------------------------------------------------------
def target_conductances(
    target: Tensor, layout: TileLayout, profile: DeviceProfile, tiles: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Target conductances ``(2, out, K)`` (µS) of ``target`` weights and their scales.

    ``tiles``: ``layout.tile_of_partial`` where the caller keeps it (computed if ``None``).

    Returns:
        ``(g_target, scale)`` with ``scale`` per (output, row tile).

    """
    w = mapping.digital_quantize(target, profile)
    scale = mapping.weight_scales(w, layout, profile.mapping.weight_scaling, tiles)
    w_norm = w / mapping.expand_partial(scale, layout)
    return mapping.to_conductances(w_norm, profile), scale


def draw_defects(
    shape: tuple[int, ...], profile: DeviceProfile, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Stuck-at faults (0 ok, 1 at g_min, 2 at g_max) and per-device gains of a chip."""
    f = profile.faults
    u = torch.rand(shape, generator=gen)
    fault = torch.zeros(shape, dtype=torch.int8)
    fault[u < f.stuck_at_gmin_rate] = 1
    fault[(u >= f.stuck_at_gmin_rate) & (u < f.stuck_at_gmin_rate + f.stuck_at_gmax_rate)] = 2
    gain = 1.0 + f.d2d_sigma * torch.randn(shape, generator=gen)
    return fault, gain.clamp(min=0.0)


def apply_defects(
    g: Tensor, fault: Tensor, gain: Tensor, g_min: float, g_max: float, with_gain: bool
) -> Tensor:
    """``g`` with the per-device gains (if ``with_gain``) and the stuck devices applied."""
    if with_gain:
        g = g_min + (g - g_min) * gain
    if not bool(fault.any()):
        return g  # no stuck device (a profile without faults): nothing to write
    # the values of torch.where(fault == code, full_like(g, level), g), without the full
    g = g.masked_fill(fault == 1, g_min)
    return g.masked_fill(fault == 2, g_max)


def normalized_weights(
    g: Tensor, layout: TileLayout, profile: DeviceProfile, out: Tensor | None = None
) -> Tensor:
    """Normalized weights ``(out, K)`` the tiles compute with at conductances ``g``.

    ``out``: a tensor of that shape to write into (the tiles' buffer).
    """
    if profile.ir_drop.enabled:
        # one transfer matrix per tile, solved for all tiles of the layer at once
        w = irdrop.normalized_weights(g, layout, profile)
        return w if out is None else out.copy_(w)
    return mapping.to_normalized(g, profile, out)


def tile_index(layout: TileLayout, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The tile of every weight, flat ``(out * K,)``, and the weights per tile ``(n_tiles,)``."""
    tile = layout.positions(device)[0].reshape(-1)
    return tile, torch.bincount(tile, minlength=layout.n_tiles)


def tile_mean_abs(
    w_norm: Tensor, layout: TileLayout, index: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Mean ``|w|`` of each tile's weights (the drift-compensation reference read).

    ``index``: :func:`tile_index` of ``layout`` where the caller keeps it.
    """
    tile, count = index if index is not None else tile_index(layout, w_norm.device)
    total = torch.zeros(layout.n_tiles, dtype=w_norm.dtype, device=w_norm.device)
    total.index_add_(0, tile, w_norm.abs().reshape(-1))
    return total / count.to(total.dtype).clamp(min=1)
