"""Remapping weights onto a chip's devices: the cost of a placement, and a greedy placement.

A placement (:mod:`memsim.placement`) puts every tile's logical rows and columns onto
physical ones.  Its cost needs no data and no chip evaluation: with the defect map that
read-back estimated (stuck devices, gains; :func:`memsim.readback.estimate_defects`), the
weight each device would store is known, and the cost is the activity-weighted error

    sum over weights (o, k) of  a_k * |w_eff(o, k) - w(o, k)|

between the stored and the target weight, with ``a_k`` the mean |input| of row ``k``
(from training images; uniform without them): an error on a row that is rarely driven
costs little.  The error is that of :class:`memsim.defects.DefectMap` (quantization and
level rounding as programmed; programming noise is random and left out).

Every tile's cost depends only on its own permutations, so a :class:`TileProblem` holds
all tiles of all layers in tile coordinates ``(T, rows, cols)`` and the cost of a whole
population of placements is one gather (:func:`tile_errors`).  Tiles that pack several
groups block-diagonally are left in place (their blocks would have to be permuted
separately).

:func:`greedy_placement` is the deterministic baseline: per tile, columns by an optimal
assignment (``scipy.optimize.linear_sum_assignment``) on the cost with rows in place,
then rows one by one, most active first, each onto the free physical row that costs it
least given the columns.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from memsim import mapping
from memsim.defects import DefectMap
from memsim.placement import Placement, device_index
from memsim.tiling import TileLayout

ACTIVITY_IMAGES = 256
"""Training images whose layer inputs give the row activities."""


@dataclass(frozen=True)
class TileProblem:
    """Targets, row activities and device defects of every tile of a chip, ``(T, R, C)``."""

    pos: Tensor
    """Normalized positive part of each target (the ``G+`` level), 0 on unused cells."""
    neg: Tensor
    """Normalized negative part (the ``G-`` level)."""
    weight: Tensor
    """Activity times weight scale of each cell (0 on unused cells): the error's weight."""
    gain: Tensor
    """``(2, T, R, C)``: estimated response of the device at each physical cell."""
    offset: Tensor
    """Normalized weight a stuck-at-``g_max`` device at each physical cell adds."""
    n_rows: Tensor
    """``(T,)`` rows a tile's placement may permute (a prefix of the tile's rows)."""
    n_cols: Tensor
    """``(T,)`` columns it may permute."""
    layers: tuple[tuple[str, TileLayout, int], ...]
    """``(key, layout, first tile)`` of every layer, in tile order."""

    @property
    def n_tiles(self) -> int:
        """Tiles of all layers together."""
        return int(self.pos.shape[0])


def row_activity(baseline: nn.Module, keys: list[str], images: Tensor) -> dict[str, Tensor]:
    """Mean |input| of every row ``k`` of every crossbar layer, per output: ``(out, K)``.

    The rows of a ``Conv2d`` are its im2col rows (channel, kernel position); the mean is
    over images and positions.  A grouped layer's rows differ per group, so the activity
    is given per output row of the weight matrix.
    """
    net = copy.deepcopy(baseline).eval()
    acts: dict[str, Tensor] = {}
    hooks = []
    for key in keys:
        mod = net.get_submodule(key.removesuffix(".weight"))

        def hook(m: nn.Module, inp: tuple[Tensor, ...], _out: Tensor, key: str = key) -> None:
            x = inp[0].detach().abs()
            w = m.weight
            if isinstance(m, nn.Conv2d):
                cols = torch.nn.functional.unfold(
                    x, m.kernel_size, m.dilation, m.padding, m.stride
                )  # (N, C*kh*kw, L)
                per_row = cols.mean(dim=(0, 2)).reshape(m.groups, -1)
            else:
                per_row = x.reshape(-1, x.shape[-1]).mean(dim=0).reshape(1, -1)
            out_g = w.shape[0] // per_row.shape[0]
            acts[key] = per_row.repeat_interleave(out_g, dim=0)

        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        net(images[:ACTIVITY_IMAGES])
    for h in hooks:
        h.remove()
    return acts


def _levels(w: Tensor, dmap: DefectMap) -> tuple[Tensor, Tensor, Tensor]:
    """``(pos, neg, scale)`` of ``w`` as :meth:`DefectMap.apply` programs it, ``(out, K)``."""
    lay, p = dmap.layout, dmap.profile
    q = mapping.digital_quantize(w.reshape(lay.out, lay.k).detach(), p)
    s = mapping.expand_partial(mapping.weight_scales(q, lay, p.mapping.weight_scaling), lay)
    x = q / s
    mag = x.abs().clamp(max=1.0)
    if p.device.levels is not None:
        mag = torch.round(mag * (p.device.levels - 1)) / (p.device.levels - 1)
    zero = torch.zeros_like(mag)
    return torch.where(x > 0, mag, zero), torch.where(x < 0, mag, zero), s


def tile_problem(
    weights: Mapping[str, Tensor],
    maps: Mapping[str, DefectMap],
    activity: Mapping[str, Tensor] | None = None,
) -> TileProblem:
    """The :class:`TileProblem` of target ``weights`` on devices with defect ``maps``.

    ``maps`` are taken without a placement (each device at its own cell); ``activity``
    (``(out, K)`` per layer, :func:`row_activity`) defaults to uniform.
    """
    parts: dict[str, list[Tensor]] = {k: [] for k in ("pos", "neg", "w", "g0", "g1", "off")}
    n_rows, n_cols, layers, first = [], [], [], 0
    for key, w in weights.items():
        dmap = maps[key]
        lay = dmap.layout
        pos, neg, s = _levels(w.float(), dmap)
        act = activity[key].float() if activity is not None else torch.ones_like(pos)
        for name, v in (
            ("pos", pos),
            ("neg", neg),
            ("w", act * s),
            ("g0", dmap.gain[0].float()),
            ("g1", dmap.gain[1].float()),
            ("off", dmap.offset.float()),
        ):
            parts[name].append(lay.to_tiles(v.reshape(lay.out, lay.k)))
        used = lay.to_tiles(torch.ones(lay.out, lay.k))
        if lay.groups_per_tile > 1:  # packed blocks: left in place
            n_rows.append(torch.ones(lay.n_tiles, dtype=torch.long))
            n_cols.append(torch.ones(lay.n_tiles, dtype=torch.long))
        else:  # the used cells of a tile are its first rows x its first columns
            n_rows.append(used.amax(2).sum(1).long())
            n_cols.append(used.amax(1).sum(1).long())
        layers.append((key, lay, first))
        first += lay.n_tiles
    cat = {k: torch.cat(v) for k, v in parts.items()}
    return TileProblem(
        pos=cat["pos"],
        neg=cat["neg"],
        weight=cat["w"],
        gain=torch.stack([cat["g0"], cat["g1"]]),
        offset=cat["off"],
        n_rows=torch.cat(n_rows),
        n_cols=torch.cat(n_cols),
        layers=tuple(layers),
    )


def _cell_error(prob: TileProblem, g0: Tensor, g1: Tensor, off: Tensor, sl: tuple) -> Tensor:
    """Weighted |stored - target| of the targets ``sl`` on devices ``(g0, g1, off)``."""
    pos, neg, weight = prob.pos[sl], prob.neg[sl], prob.weight[sl]
    return weight * (g0 * pos - g1 * neg + off - (pos - neg)).abs()


def tile_errors(prob: TileProblem, rows: Tensor, cols: Tensor) -> Tensor:
    """Error of every tile under a population of placements: ``(P, T)``.

    ``rows`` is ``(P, T, R)`` (physical row of each logical row), ``cols`` ``(P, T, C)``.
    """
    p = rows.shape[0]
    t, r, c = prob.pos.shape
    cell = (rows.unsqueeze(-1) * c + cols.unsqueeze(-2)).reshape(p, t, r * c)
    dev = torch.stack([prob.gain[0], prob.gain[1], prob.offset]).reshape(3, 1, t, r * c)
    g = dev.expand(3, p, t, r * c).gather(3, cell.unsqueeze(0).expand(3, -1, -1, -1))
    g0, g1, off = (v.reshape(p, t, r, c) for v in g)
    return _cell_error(prob, g0, g1, off, (slice(None),)).sum(dim=(2, 3))


def identity_rows_cols(prob: TileProblem, members: int = 1) -> tuple[Tensor, Tensor]:
    """``members`` copies of the identity placement, ``(P, T, R)`` and ``(P, T, C)``."""
    t, r, c = prob.pos.shape
    rows = torch.arange(r).expand(members, t, r).clone()
    return rows, torch.arange(c).expand(members, t, c).clone()


def greedy_placement(prob: TileProblem) -> tuple[Tensor, Tensor]:
    """The deterministic baseline placement ``(rows (T, R), cols (T, C))`` (module docstring)."""
    from scipy.optimize import linear_sum_assignment

    t, r, c = prob.pos.shape
    # column j (logical) on column c (physical), rows in place: (T, R, C_logical, C_phys)
    sl = (slice(None), slice(None), slice(None), None)
    col_cost = _cell_error(
        prob, prob.gain[0][:, :, None], prob.gain[1][:, :, None], prob.offset[:, :, None], sl
    ).sum(1)
    cols = torch.arange(c).expand(t, c).clone()
    for i in range(t):  # scipy's assignment solves one matrix at a time
        n = int(prob.n_cols[i])
        _, phys = linear_sum_assignment(col_cost[i, :n, :n].numpy())
        cols[i, :n] = torch.from_numpy(phys)
    # row i (logical) on row r' (physical) with the columns placed: (T, R_log, R_phys, C)
    dev = torch.stack([prob.gain[0], prob.gain[1], prob.offset])  # (3, T, R, C)
    dev = dev.gather(3, cols[None, :, None, :].expand(3, t, r, c))
    sl = (slice(None), slice(None), None, slice(None))
    row_cost = _cell_error(prob, dev[0][:, None], dev[1][:, None], dev[2][:, None], sl).sum(3)
    importance = prob.weight.mul(prob.pos + prob.neg).sum(2)
    active = torch.arange(r).expand(t, r) < prob.n_rows.unsqueeze(1)
    order = torch.where(active, importance, -1.0).argsort(dim=1, descending=True, stable=True)
    rows = torch.arange(r).expand(t, r).clone()
    free = active.clone()
    tiles = torch.arange(t)
    for step in range(r):  # one row of every tile per step: the greedy order is sequential
        logical = order[:, step]
        todo = step < prob.n_rows
        cost = torch.where(free, row_cost[tiles, logical], torch.inf)
        phys = cost.argmin(dim=1)
        rows[tiles[todo], logical[todo]] = phys[todo]
        free[tiles[todo], phys[todo]] = False
    return rows, cols


def to_placements(prob: TileProblem, rows: Tensor, cols: Tensor) -> dict[str, Placement]:
    """Split one placement ``(T, R)``, ``(T, C)`` of the problem into per-layer placements."""
    return {
        key: (rows[first : first + lay.n_tiles].clone(), cols[first : first + lay.n_tiles].clone())
        for key, lay, first in prob.layers
    }


def placed_map(dmap: DefectMap, placement: Placement) -> DefectMap:
    """``dmap`` as the weights see it under ``placement`` (each weight's placed device)."""
    idx = device_index(dmap.layout, placement)
    lay = dmap.layout
    return DefectMap(
        gain=dmap.gain.reshape(2, -1)[:, idx].reshape(2, lay.out, lay.k),
        offset=dmap.offset.reshape(-1)[idx].reshape(lay.out, lay.k),
        layout=lay,
        profile=dmap.profile,
        weight_shape=dmap.weight_shape,
    )


def placement_error(prob: TileProblem, rows: Tensor, cols: Tensor) -> float:
    """Total error of one placement ``(T, R)``, ``(T, C)``."""
    return float(tile_errors(prob, rows.unsqueeze(0), cols.unsqueeze(0)).sum())


__all__ = [
    "TileProblem",
    "greedy_placement",
    "identity_rows_cols",
    "placed_map",
    "placement_error",
    "row_activity",
    "tile_errors",
    "tile_problem",
    "to_placements",
]
