"""Memory and time a chip needs, estimated before anything is allocated.

:func:`memsim.convert` calls :func:`check_memory` first, so that a request the machine
cannot hold (a 65536 x 65536 tile with IR drop on needs hundreds of GiB for its transfer
matrices) is refused at once with an estimate, instead of swapping or being killed after
minutes; :func:`memsim.export_chip` and :func:`memsim.import_conductances`, which build
dense per-tile arrays, call :func:`check_tile_arrays`.  The estimates count the large
tensors, not every temporary, so they stay below the peak (measured: about 90 % of the
peak resident memory of an exact and of a fast IR-drop chip): a refused request would
fail anyway.

Then :func:`check_setup_time` refuses a chip whose IR-drop solves (the only up-front work
that grows faster than the number of cells; :func:`check_map_time` covers the conductance
maps, whose time grows with the cells) would run beyond a limit
(:data:`SETUP_SECONDS_ENV`, default :data:`DEFAULT_MAX_SETUP_SECONDS`): a 4096 x 4096
tile with the exact model fits in 4 GiB but needs ~1.7e15 flops.  That estimate too is
a lower bound: the operation count of :mod:`memsim.irdrop` at a float64 rate above any
current processor's peak.
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


def _solve_batch(layout: TileLayout, profile: DeviceProfile) -> tuple[int, int]:
    """``(arrays, bit lines per array)`` the IR-drop solve of a layer works on.

    The interleaved pair layout puts G+ and G- on adjacent bit lines of one array per
    tile; the separate layout solves the G+ and the G- arrays of each tile apart.
    """
    if profile.ir_drop.pair_layout == PairLayout.interleaved:
        return layout.n_tiles, 2 * layout.cols
    return 2 * layout.n_tiles, layout.cols


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
    batch, lines = _solve_batch(layout, profile)
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


class ChipTimeError(ValueError):
    """A chip's up-front work would run beyond the time limit (raised before allocating).

    Also raised when the limit itself (:data:`SETUP_SECONDS_ENV`) is not a number > 0.
    A ``ValueError``: the request is to change (smaller tiles, a lighter IR-drop model)
    or the limit is to be raised on purpose.
    """


SETUP_SECONDS_ENV = "MEMSIM_MAX_SETUP_SECONDS"
"""Environment variable with the time limit in seconds (``inf``: no limit)."""

DEFAULT_MAX_SETUP_SECONDS = 600.0
"""The limit when :data:`SETUP_SECONDS_ENV` is unset: ten minutes, far beyond any shipped
profile (a 256 x 256 exact tile is solved in ~2 s on one core)."""

FLOP_RATE_PER_CPU_THREAD = 1e11
"""float64 flop/s assumed per CPU thread: the peak of a 3 GHz core with two AVX-512 FMA
units (measured for the exact solve: 1.4e10 on one thread of an AMD EPYC), so that the
estimate stays below the real time on any CPU."""

FLOP_RATE_ACCELERATOR = 2e14
"""float64 flop/s assumed on a GPU or other accelerator, above the peak of current ones
(H100: 6.7e13 with tensor cores)."""

SECONDS_PER_BLOCK_STEP = 2e-5
"""Floor of one block-elimination step of the exact solve: about 15 tensor operations,
each a dispatch of microseconds however small (measured: 9e-5 s for 8-row tiles)."""

SECONDS_PER_CHAIN_STEP = 2e-6
"""Floor of one step of a line recurrence: about 3 tensor operations (measured: 6e-6 s)."""


@dataclass(frozen=True)
class IRDropCost:
    """Operation count of one layer's IR-drop solve (all its tiles at once)."""

    flops: float
    """Floating-point operations (float64)."""
    chain_steps: int
    """Sequential steps of the line recurrences (each a few tensor operations)."""
    block_steps: int
    """Sequential steps of the exact model's block elimination."""

    def seconds(self, flop_rate: float) -> float:
        """A lower bound of the solve's time at ``flop_rate`` float64 flop/s."""
        return (
            self.flops / flop_rate
            + self.chain_steps * SECONDS_PER_CHAIN_STEP
            + self.block_steps * SECONDS_PER_BLOCK_STEP
        )


def irdrop_cost(layout: TileLayout, profile: DeviceProfile) -> IRDropCost:
    """Operation count of the IR-drop solve of one layer's tiles (zero with IR drop off).

    Exact model, per array with ``R`` the shorter and ``N`` the longer side (rows or bit
    lines; :mod:`memsim.irdrop` solves a tall array transposed): ``N`` Cholesky
    inverses of ``R x R`` and the updates of the solution, ``N (R^3 + R^2 N)`` flops, in
    ``N - 1`` sequential block steps after the ``2 R`` steps of the bit-line recurrences.
    Fast model: about 40 flops per cell, in ``2 (R + N)`` recurrence steps.  Ideal wires
    (``r_wire_ohm`` 0) cost nothing: the conductances are the transfer matrices.
    """
    ir = profile.ir_drop
    if not ir.enabled or ir.r_wire_ohm == 0.0:
        return IRDropCost(0.0, 0, 0)
    batch, lines = _solve_batch(layout, profile)
    short, long = sorted((layout.rows, lines))
    if ir.model == IRDropModel.fast:
        return IRDropCost(40.0 * batch * short * long, 2 * (short + long), 0)
    flops = float(batch) * long * (float(short) ** 3 + float(short) ** 2 * long)
    return IRDropCost(flops, 2 * short, long - 1)


def flop_rate(device: torch.device | str = "cpu") -> float:
    """The float64 rate assumed on ``device``: per CPU thread times torch's threads."""
    if torch.device(device).type == "cpu":
        return FLOP_RATE_PER_CPU_THREAD * max(1, torch.get_num_threads())
    return FLOP_RATE_ACCELERATOR


def max_setup_seconds() -> float:
    """The time limit: :data:`SETUP_SECONDS_ENV` if set, else the default.

    Raises:
        ChipTimeError: The variable is not a number > 0 (``inf`` is allowed).

    """
    text = os.environ.get(SETUP_SECONDS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_SETUP_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:  # also catches NaN
        raise ChipTimeError(
            f"{SETUP_SECONDS_ENV}={text!r}: expected a number of seconds > 0 (inf: no limit)"
        )
    return value


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


def check_setup_time(
    layers: Sequence[tuple[str, TileLayout, DeviceProfile]],
    device: torch.device | str = "cpu",
    *,
    what: str = "memsim.convert",
    limit_s: float | None = None,
    rate: float | None = None,
) -> None:
    """Refuse a chip whose IR-drop solves would run beyond the time limit.

    The layers are solved one after another when the chip is programmed, so their
    times add up.

    Args:
        layers: ``(layer name, layout, profile)`` of the chip's analog layers.
        device: Where the solves run (sets the assumed rate, :func:`flop_rate`).
        what: The operation, for the message.
        limit_s: The limit in seconds (default: :func:`max_setup_seconds`).
        rate: float64 flop/s (default: :func:`flop_rate` of ``device``).

    Raises:
        ChipTimeError: The estimate exceeds the limit; one line naming the profile
            fields to change, the operation count and the estimate.

    """
    if not layers:
        return
    limit = max_setup_seconds() if limit_s is None else limit_s
    flops_per_s = flop_rate(device) if rate is None else rate
    costs = [(name, lay, prof, irdrop_cost(lay, prof)) for name, lay, prof in layers]
    total = sum(c.seconds(flops_per_s) for *_, c in costs)
    if total <= limit:
        return
    name, lay, prof, cost = max(costs, key=lambda t: t[3].seconds(flops_per_s))
    ir = prof.ir_drop
    others = f"; all {len(costs)} layers: ~{_duration(total)}" if len(costs) > 1 else ""
    lighter = (
        "ir_drop.model 'fast' or ir_drop.enabled false"
        if ir.model == IRDropModel.exact
        else "ir_drop.enabled false"
    )
    raise ChipTimeError(
        f"{what}: the {ir.model.value} IR-drop solve of {lay.rows}x{lay.cols} tiles takes "
        f"~{cost.flops:.2g} flops, at least ~{_duration(cost.seconds(flops_per_s))} at "
        f"{flops_per_s:.2g} flop/s (layer {name or '(root)'!r}: {lay.n_tiles} tile(s)"
        f"{others}); the limit is {_duration(limit)} ({SETUP_SECONDS_ENV}); use smaller "
        f"tiles (tile.rows, tile.cols), {lighter}"
    )


SECONDS_PER_CSV_LINE = 1e-6
"""Floor of writing or reading one line of the long conductance CSV: Python formats or
parses every line (measured: 4.8e-6 s to write)."""

SECONDS_PER_NPZ_CELL = 5e-8
"""Floor of one tile cell of a conductance-map ``.npz``: about 20 bytes through zlib and
a few array passes (measured: 2.4e-6 s per cell to write, 3.5e-7 s to import)."""


def check_map_time(
    layouts: Sequence[tuple[str, TileLayout]],
    *,
    npz: bool,
    csv: bool,
    what: str,
    limit_s: float | None = None,
) -> None:
    """Refuse writing or reading a conductance map that would run beyond the time limit.

    The work grows with the cells, so the memory check bounds it on most machines; on
    one with a lot of memory a chip of billions of cells still fits, and its map would
    take hours (the CSV: one Python-formatted line per weight).

    Args:
        layouts: ``(layer name, layout)`` of the chip's analog layers.
        npz: The ``.npz`` map is written or read (every tile cell).
        csv: The long CSV is written or read (one line per weight cell).
        what: The operation, for the message.
        limit_s: The limit in seconds (default: :func:`max_setup_seconds`).

    Raises:
        ChipTimeError: The estimate exceeds the limit; one line.

    """
    if not layouts:
        return
    limit = max_setup_seconds() if limit_s is None else limit_s
    cells = sum(lay.n_tiles * lay.rows * lay.cols for _, lay in layouts) if npz else 0
    lines = sum(lay.out * lay.k for _, lay in layouts) if csv else 0
    seconds = cells * SECONDS_PER_NPZ_CELL + lines * SECONDS_PER_CSV_LINE
    if seconds <= limit:
        return
    parts = [f"{cells:,} tile cells as .npz"] if npz else []
    parts += [f"{lines:,} CSV lines"] if csv else []
    advice = "smaller tiles (tile.rows, tile.cols)"
    if csv:
        advice = "the .npz alone (no CSV; memsim export --no-csv) or " + advice
    raise ChipTimeError(
        f"{what}: {' and '.join(parts)} take at least ~{_duration(seconds)} "
        f"(>= {SECONDS_PER_NPZ_CELL * 1e6:g} us a cell, {SECONDS_PER_CSV_LINE * 1e6:g} us a "
        f"line); the limit is {_duration(limit)} ({SETUP_SECONDS_ENV}); use {advice}"
    )
