"""The pure operations on a layer's tile state (:mod:`memsim.tiles` holds the state).

The functions map tensors to new tensors (or into the ``out`` tensors they are given):
the target conductances and scales of target weights, a chip's drawn defects and their
effect on conductances, the normalized weights the tiles compute with (IR-drop transfer
included), the per-tile mean ``|w|`` that drift compensation reads, and programming in
cache-sized pieces (:func:`program_in_pieces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from . import irdrop, mapping
from .profiles import DeviceProfile
from .tiling import TileLayout

if TYPE_CHECKING:
    from .physics import DeviceModel

PIECE = 65536
"""Devices per piece of :func:`program_in_pieces`: a multiple of 64, and small enough that
a piece's temporaries stay in the cache (a whole layer's do not: measured on the MLP's
784-input layer, the same arithmetic took 4.8 ms in pieces against 8.3 ms whole)."""


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


# -- pure operations -----------------------------------------------------------------------
def target_conductances(
    target: Tensor,
    layout: TileLayout,
    profile: DeviceProfile,
    tiles: Tensor | None = None,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Target conductances ``(2, out, K)`` (µS) of ``target`` weights and their scales.

    ``tiles``: ``layout.tile_of_partial`` where the caller keeps it (computed if ``None``).
    ``out``: a contiguous ``(2, out, K)`` tensor to write the conductances into.

    Returns:
        ``(g_target, scale)`` with ``scale`` per (output, row tile).

    """
    w = mapping.digital_quantize(target, profile)
    scale = mapping.weight_scales(w, layout, profile.mapping.weight_scaling, tiles)
    w_norm = w / mapping.expand_partial(scale, layout)
    return mapping.to_conductances(w_norm, profile, out), scale


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


def piece_bounds(n: int, piece: int = PIECE) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive pieces of ``n`` devices.

    Each piece is ``piece`` long except the last, which is at least 16 long (or all ``n``
    when ``n < 16``).
    """
    bounds = [*range(0, n, piece), n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 16:
        del bounds[-2]  # torch draws a tensor of under 16 normals one by one: other values
    return list(zip(bounds[:-1], bounds[1:]))


def program_in_pieces(
    g_target: Tensor,
    physics: DeviceModel,
    gen: torch.Generator,
    read_gen: torch.Generator | None,
    defects: tuple[Tensor, Tensor] | None,
    g_prog: Tensor,
    g_now: Tensor | None,
    piece: int = PIECE,
) -> None:
    """Program ``g_target`` into ``g_prog`` (and read it at t = 0 into ``g_now``) piece by piece.

    The values are those of the whole-layer steps (``physics.program``, the defects, then
    ``physics.drift`` at ``t = 0``): the laws are ``elementwise`` and each generator draws
    the pieces in order.  Only the programming noise is drawn from ``gen``.

    Args:
        g_target: Target conductances ``(2, out, K)`` (µS), contiguous, on the CPU.
        physics: A device model whose :attr:`~memsim.physics.DeviceModel.programs_in_pieces`.
        gen: The programming generator.
        read_gen: The generator of the read at ``t = 0`` (``None``: no read here).
        defects: The chip's ``(fault, gain)`` per device, flat in the order of
            ``g_target``, or ``None`` when applying them would change nothing.
        g_prog: Output: the programmed conductances, contiguous, like ``g_target``.
        g_now: Output: the conductances read at ``t = 0`` (with ``read_gen``).
        piece: Devices per piece, a multiple of 64: torch draws normals in blocks of 16
            and its vectorized kernels (``pow`` among them) treat 32 floats at a time and
            the rest one by one, with other roundings; pieces on those boundaries split
            the work where the whole-tensor kernels do.  (With several torch threads a
            kernel is also split between the threads at ``n / threads``; where that split
            is off a 32-float boundary the values depend on the thread count, for the
            whole layer as for a piece, so the two may differ by a rounding.)

    """
    if piece % 64:
        raise ValueError(f"piece must be a multiple of 64, got {piece}")
    target, prog = g_target.reshape(-1), g_prog.view(-1)
    now = g_now.view(-1) if g_now is not None else None
    g_min, g_max = physics.g_min, physics.g_max

    def stuck(g: Tensor, lo: int, hi: int, with_gain: bool) -> Tensor:
        if defects is None:
            return g
        return apply_defects(g, defects[0][lo:hi], defects[1][lo:hi], g_min, g_max, with_gain)

    for lo, hi in piece_bounds(target.numel(), piece):
        g = stuck(physics.program(target[lo:hi], gen), lo, hi, True)
        prog[lo:hi] = g
        if now is not None and read_gen is not None:
            # a deferrable drift law reads no exponent at t = 0; stuck devices do not drift
            now[lo:hi] = stuck(physics.drift(g, None, 0.0, read_gen), lo, hi, False)
