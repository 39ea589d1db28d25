"""Mapping of weights onto differential conductance pairs, and back.

A weight ``w`` in a scaling group with scale ``s = max|w|`` becomes the pair
``G+ = g_min + relu(w/s) (g_max - g_min)`` and ``G- = g_min + relu(-w/s) (g_max - g_min)``:
one device of each pair stays at ``g_min``.  With ``levels`` per device the
normalized magnitude ``|w|/s`` is rounded to ``levels`` evenly spaced values, so the
weight step is ``s / (levels - 1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .profiles import DeviceProfile, WeightQuant, WeightScaling
from .quantization import quantize_symmetric, quantize_ternary
from .tiling import TileLayout


def digital_quantize(w: Tensor, profile: DeviceProfile) -> Tensor:
    """Apply the profile's digital weight quantization (the seed paper's model)."""
    m = profile.mapping
    if m.weight_quant == WeightQuant.symmetric:
        assert m.weight_bits is not None
        return quantize_symmetric(w, m.weight_bits)
    if m.weight_quant == WeightQuant.ternary:
        return quantize_ternary(w)
    return w


def weight_scales(
    w: Tensor, layout: TileLayout, scaling: WeightScaling, tiles: Tensor | None = None
) -> Tensor:
    """Scale ``s`` of every partial-sum column, shape ``(out, row_tiles)``.

    ``s`` is the max|w| of the weights sharing one scale (the layer, a tile, or one
    column of one tile); a group of all-zero weights gets scale 1.  ``tiles`` is
    ``layout.tile_of_partial(w.device)`` where the caller keeps it (computed if ``None``).
    """
    out, k, rows, rt = layout.out, layout.k, layout.row_span, layout.row_tiles
    aw = w.detach().abs()
    if scaling == WeightScaling.per_layer:
        s = aw.amax().expand(out, rt).clone()
    else:
        pad = rt * rows - k
        col_max = torch.nn.functional.pad(aw, (0, pad)).view(out, rt, rows).amax(-1)
        if scaling == WeightScaling.per_column:
            s = col_max
        else:
            if tiles is None:
                tiles = layout.tile_of_partial(w.device)
            tmax = torch.zeros(layout.n_tiles, dtype=w.dtype, device=w.device)
            tmax = tmax.scatter_reduce(0, tiles.reshape(-1), col_max.reshape(-1), "amax")
            s = tmax[tiles]
    return torch.where(s > 0, s, torch.ones_like(s))


def expand_partial(v: Tensor, layout: TileLayout) -> Tensor:
    """Broadcast a per-partial-sum tensor ``(out, row_tiles)`` to ``(out, K)``."""
    return v.repeat_interleave(layout.row_span, dim=1)[:, : layout.k]


def to_conductances(w_norm: Tensor, profile: DeviceProfile, out: Tensor | None = None) -> Tensor:
    """Target conductances ``(2, out, K)`` (G+, G-) for normalized weights in [-1, 1].

    ``out``: a contiguous tensor of that shape to write into (a programming's scratch).
    """
    d = profile.device
    # G+ from min(w, 1) on w > 0 and G- from min(-w, 1) on w < 0: clamp(+-w, 0, 1), the
    # values of where(w > 0, min(|w|, 1), 0) without the masks (programming runs per step)
    if out is None:
        out = torch.empty((2, *w_norm.shape), dtype=w_norm.dtype, device=w_norm.device)
    torch.clamp(w_norm, 0.0, 1.0, out=out[0])
    torch.neg(w_norm, out=out[1]).clamp_(0.0, 1.0)
    if d.levels is not None:
        out = out.mul_(d.levels - 1).round_().div_(d.levels - 1)
    return out.mul_(d.g_max_uS - d.g_min_uS).add_(d.g_min_uS)


def to_normalized(g: Tensor, profile: DeviceProfile, out: Tensor | None = None) -> Tensor:
    """Normalized weights ``(G+ - G-) / (g_max - g_min)`` from conductances ``(2, ...)``.

    ``out``: a tensor of the result's shape to write into (the tiles' buffer).
    """
    return torch.sub(g[0], g[1], out=out).div_(profile.g_range_uS)
