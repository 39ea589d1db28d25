"""Acceptance 8: tiling round trips (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.tiling import make_layout


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    groups=st.integers(1, 6),
    out_g=st.integers(1, 20),
    channels=st.integers(1, 12),
    kernel=st.sampled_from([1, 4, 9, 25]),
    rows=st.integers(1, 70),
    cols=st.integers(1, 40),
)
def test_map_unmap_round_trip(groups, out_g, channels, kernel, rows, cols):
    k = channels * kernel
    lay = make_layout(groups * out_g, k, groups, rows, cols, kernel)
    gen = torch.Generator().manual_seed(groups * 1000 + out_g)
    w = torch.randn(lay.out, k, generator=gen)
    tiles = lay.to_tiles(w)
    assert tiles.shape == (lay.n_tiles, rows, cols)
    assert torch.equal(lay.from_tiles(tiles), w)
    tile, row, col = lay.positions()
    flat = (tile * rows + row) * cols + col
    assert flat.unique().numel() == w.numel()  # no two weights share a cell
    assert int(row.max()) < rows and int(col.max()) < cols and int(tile.max()) < lay.n_tiles
    assert 0 < lay.utilization <= 1
    # every cell outside a block stays zero
    assert int((tiles != 0).sum()) == int((w != 0).sum())
    # a tile never mixes groups on shared rows or columns (block diagonal)
    g = torch.arange(lay.out).unsqueeze(1).expand(-1, k) // out_g
    key_row = tile * rows + row
    key_col = tile * cols + col
    for key in (key_row, key_col):
        owners = torch.full((int(key.max()) + 1,), -1)
        owners[key.reshape(-1)] = g.reshape(-1)
        assert torch.equal(owners[key.reshape(-1)], g.reshape(-1))


def test_row_tiles_keep_kernels_whole():
    lay = make_layout(out=32, k=64 * 9, groups=1, rows=128, cols=64, kernel_elems=9)
    # 64 channels, at most 14 per 128-row tile: 5 tiles of 13 channels (117 rows)
    assert lay.row_span == 117 and lay.channels_per_row_tile == 13
    assert lay.row_tiles == 5 and lay.aligned
    lin = make_layout(out=10, k=784, groups=1, rows=128, cols=64)
    assert lin.row_tiles == 7 and lin.row_span == 112
