"""Memory a chip needs, estimated before anything is allocated.

:func:`memsim.convert` calls :func:`check_memory` first, so that a request the machine
cannot hold (a 65536 x 65536 tile with IR drop on needs hundreds of GiB for its transfer
matrices) is refused at once with an estimate, instead of swapping or being killed after
minutes; :func:`memsim.export_chip` and :func:`memsim.import_conductances`, which build
dense per-tile arrays, call :func:`check_tile_arrays`.  The estimates count the large
tensors, not every temporary, so they stay below the peak (measured: about 90 % of the
peak resident memory of an exact and of a fast IR-drop chip): a refused request would
fail anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .profiles import DeviceProfile, IRDropModel, PairLayout
from .tiling import TileLayout, make_layout

GIB = 1024**3

BYTES_PER_WEIGHT = 48
"""Bytes a converted layer keeps per weight: the target, the programmed and current
conductances of both devices, their gain, fault and drift exponent, the normalized and
effective weights (float32, int8 faults)."""


class ChipMemoryError(MemoryError, ValueError):
    """A chip needs more memory than the machine has available (raised before allocating).

    A ``MemoryError`` (what it is) and a ``ValueError`` (a request to change: smaller
    tiles, a lighter IR-drop model, a smaller model).
    """


@dataclass(frozen=True)
class LayerMemory:
    """Estimated bytes of one analog layer."""

    name: str
    layout: TileLayout
    state_bytes: int
    """Kept for the chip's lifetime (:data:`BYTES_PER_WEIGHT` per weight)."""
    irdrop_bytes: int
    """Peak of one IR-drop solve (tile arrays and transfer matrices); 0 without IR drop."""


def irdrop_bytes(layout: TileLayout, profile: DeviceProfile) -> int:
    """Peak bytes of the IR-drop solve of one layer's tiles (0 with IR drop off).

    The layer's tiles as dense ``float32`` arrays (a few copies), the ``float64`` cell
    conductances and, for the ``exact`` model, the per-bit-line factors and the
    ``min(R, N) x min(R, N)`` Schur complements of every tile (``N`` bit lines: twice the
    columns for the interleaved pair layout); see :mod:`memsim.irdrop`.
    """
    ir = profile.ir_drop
    if not ir.enabled:
        return 0
    rows, cols, n_tiles = layout.rows, layout.cols, layout.n_tiles
    cells = n_tiles * rows * cols
    tile_arrays = 4 * cells * 2 * 3  # G+ and G- scattered, masked, access-resistance adjusted
    if ir.pair_layout == PairLayout.interleaved:
        batch, lines = n_tiles, 2 * cols
    else:
        batch, lines = 2 * n_tiles, cols
    if ir.r_wire_ohm == 0.0:
        return tile_arrays + 4 * batch * rows * lines
    if ir.model == IRDropModel.fast:
        return tile_arrays + 8 * batch * rows * lines * 12
    square = min(rows, lines) ** 2
    return tile_arrays + 8 * batch * (8 * rows * lines + 12 * square)


def module_layout(module: nn.Linear | nn.Conv2d, profile: DeviceProfile) -> TileLayout:
    """The tile layout :func:`memsim.convert` gives ``module`` (as the analog layers plan it)."""
    w = module.weight
    groups = module.groups if isinstance(module, nn.Conv2d) else 1
    kernel_elems = int(math.prod(w.shape[2:])) if w.dim() > 2 else 1
    return make_layout(
        w.shape[0], w[0].numel(), groups, profile.tile.rows, profile.tile.cols, kernel_elems
    )


def layer_memory(name: str, layout: TileLayout, profile: DeviceProfile) -> LayerMemory:
    """Estimated bytes of one analog layer of ``layout`` on ``profile``."""
    weights = layout.out * layout.k
    return LayerMemory(name, layout, BYTES_PER_WEIGHT * weights, irdrop_bytes(layout, profile))


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory free for new tensors on ``device``; ``None`` if it cannot be told.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux), else the physical memory
    (``os.sysconf``).  CUDA: the free memory of the device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    gib = n / GIB
    return f"{gib:,.0f}" if gib >= 10 else f"{gib:.2g}"


def check_memory(
    layers: Sequence[LayerMemory],
    device: torch.device | str = "cpu",
    *,
    what: str = "memsim.convert",
    available: int | None = None,
) -> None:
    """Refuse a chip whose estimated peak memory exceeds what ``device`` has free.

    The peak is the state of all layers plus the largest single IR-drop solve (the
    layers are solved one after another).

    Args:
        layers: The estimates of every layer (:func:`layer_memory`).
        device: Where the chip's tensors will live.
        what: The operation, for the message.
        available: Free bytes (default: :func:`available_bytes` of ``device``).

    Raises:
        ChipMemoryError: The estimate exceeds the available memory; one line with both.

    """
    if not layers:
        return
    free = available_bytes(device) if available is None else available
    if free is None:
        return
    state = sum(m.state_bytes for m in layers)
    solve = max(layers, key=lambda m: m.irdrop_bytes)
    need = state + solve.irdrop_bytes
    if need <= free:
        return
    where = "this machine has" if torch.device(device).type == "cpu" else f"{device} has"
    have = f"{where} {_gib(free)} GiB available"
    if solve.irdrop_bytes >= state:
        lay = solve.layout
        raise ChipMemoryError(
            f"{what}: IR drop on {lay.rows}x{lay.cols} tiles needs ~{_gib(need)} GiB for the "
            f"transfer matrices (layer {solve.name or '(root)'!r}: {lay.n_tiles} tile(s)); "
            f"{have}; use smaller tiles (tile.rows, tile.cols), ir_drop.model 'fast' or "
            "ir_drop.enabled false"
        )
    weights = sum(m.layout.out * m.layout.k for m in layers)
    raise ChipMemoryError(
        f"{what}: the chip needs ~{_gib(need)} GiB for {weights:,} weights on "
        f"{len(layers)} analog layer(s); {have}; keep large layers digital or use a "
        "smaller model"
    )


EXPORT_BYTES_PER_CELL = 24
"""Bytes :func:`memsim.export_chip` holds per tile cell (conductances, levels, faults,
gains and the used mask of every layer at once; measured: 28)."""

IMPORT_BYTES_PER_CELL = 24
"""Bytes :func:`memsim.import_conductances` holds per tile cell of one layer."""


def check_tile_arrays(
    layouts: Sequence[tuple[str, TileLayout]],
    bytes_per_cell: int,
    *,
    what: str,
    at_once: bool,
    available: int | None = None,
) -> None:
    """Refuse dense per-tile arrays (every cell of every tile) beyond the free memory.

    Args:
        layouts: ``(layer name, layout)`` of the chip's analog layers.
        bytes_per_cell: Bytes held per tile cell.
        what: The operation, for the message.
        at_once: All layers' arrays are held together (else one layer at a time).
        available: Free bytes (default: :func:`available_bytes` of the CPU).

    Raises:
        ChipMemoryError: The estimate exceeds the available memory; one line.

    """
    if not layouts:
        return
    free = available_bytes("cpu") if available is None else available
    if free is None:
        return
    sizes = [(name, lay, lay.n_tiles * lay.rows * lay.cols) for name, lay in layouts]
    cells = sum(c for *_, c in sizes) if at_once else max(c for *_, c in sizes)
    need = bytes_per_cell * cells
    if need <= free:
        return
    name, lay, _ = max(sizes, key=lambda t: t[2])
    raise ChipMemoryError(
        f"{what}: the per-tile arrays of {lay.rows}x{lay.cols} tiles need ~{_gib(need)} GiB "
        f"({cells:,} cells; largest: layer {name!r}, {lay.n_tiles} tile(s)); this machine has "
        f"{_gib(free)} GiB available; use smaller tiles (tile.rows, tile.cols)"
    )
