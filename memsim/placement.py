"""Placement of a layer's weights on its tiles: a row and a column permutation per tile.

A chip's stuck devices sit at fixed physical cells.  Which logical weight lands on which
cell is free within a tile: permuting a tile's rows (the inputs it reads) and columns
(the partial sums it drives) moves every weight to another device while the tile still
computes the same partial sums, once the inputs are routed to the permuted rows and the
column outputs are routed back.  A remapping method chooses these permutations so that
stuck devices fall under weights they harm least.

``row_perm[t, r]`` is the physical row of the tile's logical row ``r`` (the row
:meth:`memsim.tiling.TileLayout.positions` gives), ``col_perm[t, c]`` the physical column
of its logical column ``c``; the identity is no remapping.  A placement must keep every
weight on a cell that holds a weight (the used block of a tile), which for a tile with
block-packed groups means staying inside the group's block.

The simulator keeps the logical layout ``(2, out, K)`` for the conductances and applies
a placement where the chip's defects meet the weights: the device under logical weight
``(o, k)`` is the one at its placed cell, so its stuck state and gain are gathered
through :func:`device_index` (where the tile state applies its defects).  Everything
after that (scales, converters, forward pass) is unchanged: routing inputs to permuted
rows and outputs back from permuted columns is exact.  With IR drop on, the line
resistances are still taken at the logical cell of each weight (an approximation).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from .tiling import TileLayout

Placement = tuple[Tensor, Tensor]
"""``(row_perm (n_tiles, rows), col_perm (n_tiles, cols))`` of one layer, int64."""


def identity_placement(layout: TileLayout, device: torch.device | str = "cpu") -> Placement:
    """The placement that leaves every weight at its logical cell."""
    rows = torch.arange(layout.rows, device=device).expand(layout.n_tiles, -1).clone()
    cols = torch.arange(layout.cols, device=device).expand(layout.n_tiles, -1).clone()
    return rows, cols


def is_identity(placement: Placement) -> bool:
    """Whether ``placement`` moves no weight."""
    rows, cols = placement
    r = torch.arange(rows.shape[-1], device=rows.device)
    c = torch.arange(cols.shape[-1], device=cols.device)
    return bool((rows == r).all()) and bool((cols == c).all())


def _logical_cells(layout: TileLayout, device: torch.device | str) -> tuple[Tensor, ...]:
    tile, row, col = layout.positions(device)
    return tile.reshape(-1), row.reshape(-1), col.reshape(-1)


def physical_cells(layout: TileLayout, placement: Placement) -> Tensor:
    """Flat cell index ``(tile * rows + row) * cols + col`` of every weight, ``(out * K,)``."""
    rows, cols = placement
    tile, row, col = _logical_cells(layout, rows.device)
    prow, pcol = rows[tile, row], cols[tile, col]
    return (tile * layout.rows + prow) * layout.cols + pcol


def device_index(layout: TileLayout, placement: Placement) -> Tensor:
    """Logical index (into ``(out * K)``) of the device each weight is placed on.

    The defect buffers of a layer are indexed by the weight that sits on a device
    without remapping; ``defect.reshape(2, -1)[:, device_index(...)]`` is the defect
    under each weight with ``placement``.

    Raises:
        ValueError: ``placement`` is not a permutation per tile, has the wrong shape, or
            moves a weight onto a cell that holds none.

    """
    check_placement(layout, placement)
    rows = placement[0]
    n_cells = layout.n_tiles * layout.rows * layout.cols
    owner = torch.full((n_cells,), -1, dtype=torch.long, device=rows.device)
    owner[physical_cells(layout, identity_placement(layout, rows.device))] = torch.arange(
        layout.out * layout.k, device=rows.device
    )
    idx = owner[physical_cells(layout, placement)]
    if bool((idx < 0).any()):
        raise ValueError(
            "placement moves a weight onto a cell outside its tile's used block (a cell that "
            "holds no weight); permute rows and columns within the block only"
        )
    return idx


def check_placement(layout: TileLayout, placement: Placement) -> None:
    """Raise ``ValueError`` unless ``placement`` is one row and one column permutation per tile."""
    rows, cols = placement
    for what, perm, size in (("row_perm", rows, layout.rows), ("col_perm", cols, layout.cols)):
        if tuple(perm.shape) != (layout.n_tiles, size):
            raise ValueError(
                f"{what} must have shape ({layout.n_tiles}, {size}), got {tuple(perm.shape)}"
            )
        ref = torch.arange(size, device=perm.device).expand_as(perm)
        if not bool((perm.sort(dim=1).values == ref).all()):
            raise ValueError(f"{what}: every tile's entry must be a permutation of 0..{size - 1}")


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    from .layers import analog_layers

    layers = analog_layers(model)
    if not layers:
        raise ValueError("placement needs a model from memsim.convert (no analog layers)")
    return {(f"{n}.weight" if n else "weight"): m for n, m in layers}


def set_placement(model: nn.Module, placements: Mapping[str, Placement]) -> None:
    """Place the weights of the named layers (``{"<layer>.weight": (row_perm, col_perm)}``).

    A layer whose placement changes is programmed again with its last programming seed,
    so the chip holds the same draw of programming noise with the weights on their new
    devices (as if it had been placed before programming); later programmings keep the
    placement.  Layers not named keep theirs.

    Raises:
        ValueError: An unknown layer or an invalid placement (nothing is changed).

    """
    layers = _layers(model)
    for name, placement in placements.items():
        if name not in layers:
            raise ValueError(f"set_placement: no analog layer {name!r}; have {sorted(layers)}")
        device_index(layers[name].layout, tuple(p.cpu() for p in placement))  # type: ignore[arg-type]
    for name, placement in placements.items():
        layer = layers[name]
        if layer.set_placement(*placement):
            layer.program(layer.seed)


def placements(model: nn.Module) -> dict[str, Placement]:
    """The placement of every analog layer (identity where none was set)."""
    out = {}
    for name, m in _layers(model).items():
        rows, cols = m.tiles.placement
        out[name] = (rows.clone(), cols.clone())
    return out


def clear_placement(model: nn.Module) -> None:
    """Put every weight back on its logical cell (programs the changed layers again)."""
    layers = _layers(model)
    set_placement(model, {n: identity_placement(m.layout) for n, m in layers.items()})


__all__ = [
    "Placement",
    "check_placement",
    "clear_placement",
    "device_index",
    "identity_placement",
    "is_identity",
    "physical_cells",
    "placements",
    "set_placement",
]
