"""Placement of a layer's weight matrix onto fixed-size crossbar tiles.

A layer is ``G`` groups, each a matrix of ``out_g`` outputs (tile columns) by ``K``
inputs (tile rows).  ``nn.Linear`` is one group; a ``Conv2d`` is its im2col matrix
with ``K = in_channels / groups * kh * kw`` per group.  Weights are kept in the
*logical* layout ``(out, K)`` (``out = G * out_g``); a :class:`TileLayout` says where
each logical element sits physically (tile, row, column).

Packing:

* A group that fits in one tile (``K <= rows`` and ``out_g <= cols``) is packed
  block-diagonally with other groups: ``min(rows // K, cols // out_g)`` groups share a
  tile, each on its own rows and columns.  This is how depthwise and grouped convs
  reach useful utilization.
* A larger group gets its own grid of row tiles x ``ceil(out_g / cols)`` column tiles.
  Row tiles keep convolution kernels whole and share the input channels equally: each
  holds at most ``rows // (kh * kw)`` channels (``row_span`` rows), so that the partial
  sums of all row tiles are one grouped convolution.  Only a kernel larger than a tile
  is split at ``rows``.

Cells of a tile outside every block are left in the zero state (both devices at
g_min) and are not simulated: their read noise and faults do not reach the outputs
(an approximation; on a real array their leakage would).  With IR drop on, they do
load the word and bit lines (as g_min devices or as empty cells, see
:mod:`memsim.irdrop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TileLayout:
    """Where each weight of a ``(out, K)`` logical matrix sits on the tiles."""

    groups: int
    out_per_group: int
    k: int
    rows: int
    cols: int
    row_tiles: int
    """Row tiles per group: partial sums per output."""
    row_span: int
    """Rows used per row tile (``rows`` rounded down to whole kernels)."""
    kernel_elems: int
    """Rows taken by one input channel (``kh * kw``; 1 for Linear)."""
    col_tiles: int
    """Column tiles per group."""
    groups_per_tile: int
    """Groups packed block-diagonally into one tile (1 when a group spans tiles)."""
    n_tiles: int

    @property
    def out(self) -> int:
        """Number of outputs (all groups)."""
        return self.groups * self.out_per_group

    @property
    def aligned(self) -> bool:
        """Row tiles hold whole input channels (partial sums are a grouped conv)."""
        return self.row_span % self.kernel_elems == 0

    @property
    def channels_per_row_tile(self) -> int:
        """Input channels per row tile (for aligned layouts)."""
        return self.row_span // self.kernel_elems

    @property
    def utilization(self) -> float:
        """Fraction of the allocated cells that hold a weight."""
        return self.out * self.k / (self.n_tiles * self.rows * self.cols)

    @property
    def grid(self) -> tuple[int, int]:
        """Tile grid (row tiles, column tiles) of the layer.

        For packed groups it is ``(1, n_tiles)``: the packed tiles sit side by side.
        """
        if self.groups_per_tile > 1 or (self.row_tiles == 1 and self.col_tiles == 1):
            return (1, self.n_tiles)
        return (self.groups * self.row_tiles, self.col_tiles)

    def positions(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
        """Return (tile, row, col) index tensors of shape ``(out, K)``."""
        o = torch.arange(self.out, device=device).unsqueeze(1)
        k = torch.arange(self.k, device=device).unsqueeze(0)
        g, j = o // self.out_per_group, o % self.out_per_group
        if self.groups_per_tile > 1 or (self.row_tiles == 1 and self.col_tiles == 1):
            p = self.groups_per_tile
            slot = g % p
            tile = (g // p).expand(-1, self.k)
            row = slot * self.k + k
            col = (slot * self.out_per_group + j).expand(-1, self.k)
        else:
            rt, ct = k // self.row_span, j // self.cols
            tile = (g * self.row_tiles + rt) * self.col_tiles + ct
            row = (k % self.row_span).expand(self.out, -1)
            col = (j % self.cols).expand(-1, self.k)
        return tile.contiguous(), row.contiguous(), col.contiguous()

    def tile_of_partial(self, device: torch.device | str = "cpu") -> Tensor:
        """Tile index of each partial sum, shape ``(out, row_tiles)``."""
        tile, _, _ = self.positions(device)
        starts = torch.arange(self.row_tiles, device=device) * self.row_span
        return tile[:, starts]

    def to_tiles(self, w: Tensor) -> Tensor:
        """Scatter a logical ``(out, K)`` matrix into ``(n_tiles, rows, cols)`` arrays."""
        tile, row, col = self.positions(w.device)
        flat = torch.zeros(self.n_tiles * self.rows * self.cols, dtype=w.dtype, device=w.device)
        idx = (tile * self.rows + row) * self.cols + col
        flat[idx.reshape(-1)] = w.reshape(-1)
        return flat.view(self.n_tiles, self.rows, self.cols)

    def from_tiles(self, tiles: Tensor) -> Tensor:
        """Gather the logical ``(out, K)`` matrix back from the tile arrays."""
        tile, row, col = self.positions(tiles.device)
        idx = (tile * self.rows + row) * self.cols + col
        return tiles.reshape(-1)[idx.reshape(-1)].view(self.out, self.k)


def make_layout(
    out: int, k: int, groups: int, rows: int, cols: int, kernel_elems: int = 1
) -> TileLayout:
    """Plan the tiles of a layer with ``out`` outputs, ``K`` inputs per group and ``groups``.

    Args:
        out: Total outputs (divisible by ``groups``).
        k: Inputs per group (rows needed by one group).
        groups: Number of independent groups.
        rows: Tile rows.
        cols: Tile columns.
        kernel_elems: Rows per input channel (``kh * kw``), kept together in a tile.

    """
    if out % groups:
        raise ValueError(f"out ({out}) must be divisible by groups ({groups})")
    if k % kernel_elems:
        raise ValueError(f"k ({k}) must be a multiple of kernel_elems ({kernel_elems})")
    out_g = out // groups
    if k <= rows:
        span = k
    elif kernel_elems <= rows:
        # balance whole channels over the fewest row tiles (as aihwkit splits equally):
        # the same tile count as filling tiles, and rarely a ragged last tile to pad
        channels, per_tile = k // kernel_elems, rows // kernel_elems
        span = math.ceil(channels / math.ceil(channels / per_tile)) * kernel_elems
    else:
        span = rows
    row_tiles, col_tiles = math.ceil(k / span), math.ceil(out_g / cols)
    if row_tiles == 1 and col_tiles == 1:
        per_tile = max(1, min(rows // k, cols // out_g, groups))
        n_tiles = math.ceil(groups / per_tile)
    else:
        per_tile = 1
        n_tiles = groups * row_tiles * col_tiles
    return TileLayout(
        groups, out_g, k, rows, cols, row_tiles, span, kernel_elems, col_tiles, per_tile, n_tiles
    )
