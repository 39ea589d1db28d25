"""Conductance maps to and from real hardware.

:func:`export_chip` writes what a chip would be programmed to, at physical
(tile, row, column) coordinates, for a test bench to program; :func:`import_conductances`
loads what a test bench measured back into a chip, so that evaluation scores that exact
array.

Two formats hold the same numbers:

* ``.npz`` (schema ``memsim.conductance_map``, :data:`SCHEMA_VERSION`): every array of
  every layer, the defect map, scales, bias and converter ranges (see
  :data:`NPZ_LAYER_FIELDS` and the README section "From and to real hardware");
* long-format ``.csv`` with the columns :data:`CSV_COLUMNS`, one line per weight cell
  that holds a weight (cells outside every packed block are not listed).

Conductances are in µS.  Layers are named like ``state_dict`` keys (``"fc1.weight"``),
the same names :func:`memsim.conductances` uses.  Tile indices count the tiles of one
layer from 0 in :class:`memsim.tiling.TileLayout` order.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from .layers import AnalogLayer, analog_layers
from .placement import Placement, identity_placement
from .resources import EXPORT_BYTES_PER_CELL, check_map_time, check_tile_arrays

SCHEMA = "memsim.conductance_map"
"""Value of the ``schema`` field of every conductance-map ``.npz``."""
SCHEMA_VERSION = 1
"""Version of the ``.npz`` schema this module writes (and the newest it reads)."""
UNITS = "uS"
"""The only conductance unit a map may be in."""
QUANTITIES = ("target", "programmed", "measured")
"""What a map holds: the targets to program, the simulated programmed state, or a
measurement of a real array."""
CSV_COLUMNS = (
    "layer",
    "tile",
    "row",
    "col",
    "g_plus_uS",
    "g_minus_uS",
    "level_plus",
    "level_minus",
)
"""Columns of the long-format CSV, in order (``level_*`` is -1 for analog devices)."""
NPZ_LAYER_FIELDS = {
    "g_plus_uS": "float32 (tiles, rows, cols): G+ of each cell (g_min where unused)",
    "g_minus_uS": "float32 (tiles, rows, cols): G- of each cell (g_min where unused)",
    "level_plus": "int32 (tiles, rows, cols): level index of G+ (-1: analog device)",
    "level_minus": "int32 (tiles, rows, cols): level index of G- (-1: analog device)",
    "used": "bool (tiles, rows, cols): the cell holds a weight",
    "fault_plus": "int8 (tiles, rows, cols): 0 working, 1 stuck at g_min, 2 stuck at g_max",
    "fault_minus": "int8 (tiles, rows, cols): as fault_plus, for G-",
    "gain_plus": "float32 (tiles, rows, cols): device gain on G - g_min (d2d variation)",
    "gain_minus": "float32 (tiles, rows, cols): as gain_plus, for G-",
    "weight_scale": "float32 (tiles, cols): w = weight_scale (G+ - G-) / (g_max - g_min)",
    "bias": "float32 (out,): digital bias added after the tiles (empty: no bias)",
    "adc_range": "float32 (tiles,): ADC full scale per tile, normalized units (NaN: dynamic)",
    "dac_range": "float32 (): DAC full scale, activation units (NaN: dynamic or ideal)",
    "layout": "int64 (11,): groups, out_per_group, k, rows, cols, row_tiles, row_span, "
    "kernel_elems, col_tiles, groups_per_tile, n_tiles",
    "weight_shape": "int64 (ndim,): shape of the layer's weight",
    "pos_tile": "int32 (out, K): tile of each logical weight (out x inputs per group)",
    "pos_row": "int32 (out, K): row of each logical weight",
    "pos_col": "int32 (out, K): column of each logical weight",
    "row_perm": "int64 (tiles, rows): physical row of each logical tile row (memsim.placement)",
    "col_perm": "int64 (tiles, cols): physical column of each logical tile column",
}
"""Per-layer arrays of the ``.npz``, stored as ``layer<i>.<field>`` with ``i`` the
index in ``layer_names``."""

_LAYOUT_FIELDS = (
    "groups",
    "out_per_group",
    "k",
    "rows",
    "cols",
    "row_tiles",
    "row_span",
    "kernel_elems",
    "col_tiles",
    "groups_per_tile",
    "n_tiles",
)
_MAX_G_FACTOR = 10.0
"""A conductance above this many g_max is taken for a unit error (nS or S), not a
measurement."""


class ConductanceMapError(ValueError):
    """A conductance map cannot be read or does not fit the chip; the chip is unchanged."""


@dataclass
class LayerMap:
    """The cells of one layer in a conductance map (physical layout)."""

    g_plus: np.ndarray
    """(tiles, rows, cols) µS."""
    g_minus: np.ndarray
    """(tiles, rows, cols) µS."""
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    """The other per-layer arrays of the file (``.npz`` only)."""
    cells: np.ndarray | None = None
    """(n, 3) tile, row, col of the listed cells (CSV only; ``None``: every cell)."""


@dataclass
class ConductanceMap:
    """A conductance map read from a ``.npz`` or ``.csv`` file."""

    path: Path
    layers: dict[str, LayerMap]
    meta: dict[str, Any]
    """``schema``, ``version``, ``units``, ``quantity``, profile and chip fields (``.npz``)."""


def _layer_name(module_name: str) -> str:
    return f"{module_name}.weight" if module_name else "weight"


def _chip_layers(chip: nn.Module) -> list[tuple[str, AnalogLayer]]:
    layers = analog_layers(chip)
    if not layers:
        raise ValueError("the model has no analog layer; convert it with memsim.convert first")
    return [(_layer_name(n), m) for n, m in layers]


def _flat_index(
    layer: AnalogLayer, placement: Placement | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat physical index of each logical weight, and its (tile, row, col).

    ``placement`` (default: the layer's own, :mod:`memsim.placement`) says which cell a
    weight sits on; the identity placement gives the cell of the device that a per-device
    buffer (``fault``, ``gain``) is indexed by.
    """
    lay = layer.layout
    rows, cols = (p.cpu() for p in (placement or layer.tiles.placement))
    tile, row, col = (t.reshape(-1) for t in lay.positions("cpu"))
    row, col = rows[tile, row], cols[tile, col]
    tile, row, col = (t.reshape(lay.out, lay.k).numpy() for t in (tile, row, col))
    idx = (tile.astype(np.int64) * lay.rows + row) * lay.cols + col
    return idx.reshape(-1), tile, row, col


def _identity(layer: AnalogLayer) -> Placement:
    return identity_placement(layer.layout)


def _to_physical(
    layer: AnalogLayer, logical: np.ndarray, fill: Any, placement: Placement | None = None
) -> np.ndarray:
    lay = layer.layout
    idx, _, _, _ = _flat_index(layer, placement)
    out = np.full(lay.n_tiles * lay.rows * lay.cols, fill, dtype=logical.dtype)
    out[idx] = logical.reshape(-1)
    return out.reshape(lay.n_tiles, lay.rows, lay.cols)


def _from_physical(
    layer: AnalogLayer, physical: np.ndarray, placement: Placement | None = None
) -> np.ndarray:
    lay = layer.layout
    idx, _, _, _ = _flat_index(layer, placement)
    return physical.reshape(-1)[idx].reshape(lay.out, lay.k)


def _levels(layer: AnalogLayer, g: np.ndarray) -> np.ndarray:
    d = layer.profile.device
    if d.levels is None:
        return np.full(g.shape, -1, dtype=np.int32)
    x = (g.astype(np.float64) - d.g_min_uS) / (d.g_max_uS - d.g_min_uS) * (d.levels - 1)
    return np.clip(np.rint(x), 0, d.levels - 1).astype(np.int32)


def _scale_physical(layer: AnalogLayer, placement: Placement | None = None) -> np.ndarray:
    """Per-(tile, column) weight scale ``(tiles, cols)`` (0 for columns without weights)."""
    lay = layer.layout
    _, _, _, col = _flat_index(layer, placement)
    starts = np.arange(lay.row_tiles) * lay.row_span
    tiles = layer.tiles.tile_of_partial.cpu().numpy()
    cols = col[:, starts]
    out = np.zeros((lay.n_tiles, lay.cols), dtype=np.float32)
    out[tiles, cols] = layer.tiles.scale.cpu().numpy()
    return out


def _ranges(layer: AnalogLayer) -> tuple[np.ndarray, np.ndarray]:
    view = layer.tiles
    adc = layer.adc.export_ranges(view.adc_range, layer.calibrated)
    return adc, layer.dac.export_range(view.dac_range, layer.calibrated)


def layer_arrays(layer: AnalogLayer, quantity: str = "target") -> dict[str, np.ndarray]:
    """Every ``.npz`` field (:data:`NPZ_LAYER_FIELDS`) of one analog layer.

    Args:
        layer: An analog layer of a converted model.
        quantity: ``"target"`` (what to program) or ``"programmed"`` (the simulated
            state after programming: noise, faults and gains included, no drift).

    """
    if quantity == "target":
        g = layer.tiles.target_conductances()
    elif quantity == "programmed":
        g = layer.tiles.g_prog
    else:
        raise ValueError(f"quantity must be 'target' or 'programmed', got {quantity!r}")
    g = g.detach().cpu().float().numpy()
    g_min = np.float32(layer.profile.device.g_min_uS)
    lay = layer.layout
    _, tile, row, col = _flat_index(layer)
    fault = layer.tiles.fault.cpu().numpy().astype(np.int8)
    gain = layer.tiles.gain.cpu().float().numpy()
    # the defects are per device: written at the device's own cell, not the placed weight's
    ident = _identity(layer)
    used = _to_physical(layer, np.ones((lay.out, lay.k), dtype=bool), False, ident)
    gp, gm = _to_physical(layer, g[0], g_min), _to_physical(layer, g[1], g_min)
    adc, dac = _ranges(layer)
    bias = layer.bias
    return {
        "g_plus_uS": gp,
        "g_minus_uS": gm,
        "level_plus": np.where(used, _levels(layer, gp), _levels(layer, np.full_like(gp, g_min))),
        "level_minus": np.where(used, _levels(layer, gm), _levels(layer, np.full_like(gm, g_min))),
        "used": used,
        "fault_plus": _to_physical(layer, fault[0], np.int8(0), ident),
        "fault_minus": _to_physical(layer, fault[1], np.int8(0), ident),
        "gain_plus": _to_physical(layer, gain[0], np.float32(1.0), ident),
        "gain_minus": _to_physical(layer, gain[1], np.float32(1.0), ident),
        "weight_scale": _scale_physical(layer),
        "bias": (
            np.zeros(0, dtype=np.float32) if bias is None else bias.detach().cpu().float().numpy()
        ),
        "adc_range": adc,
        "dac_range": dac,
        "layout": np.array([getattr(lay, f) for f in _LAYOUT_FIELDS], dtype=np.int64),
        "weight_shape": np.array(layer.weight_shape, dtype=np.int64),
        "pos_tile": tile.astype(np.int32),
        "pos_row": row.astype(np.int32),
        "pos_col": col.astype(np.int32),
        "row_perm": layer.tiles.placement[0].cpu().numpy().astype(np.int64),
        "col_perm": layer.tiles.placement[1].cpu().numpy().astype(np.int64),
    }


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(path: Path, per_layer: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for name, arr in per_layer:
            t, r, c = np.nonzero(arr["used"])
            cols = [
                t,
                r,
                c,
                arr["g_plus_uS"][t, r, c].astype(np.float64),
                arr["g_minus_uS"][t, r, c].astype(np.float64),
                arr["level_plus"][t, r, c],
                arr["level_minus"][t, r, c],
            ]
            # %.9g round-trips every float32 exactly
            fmt = _csv_field(name).replace("%", "%%") + ",%d,%d,%d,%.9g,%.9g,%d,%d"
            buf = io.StringIO()
            np.savetxt(buf, np.column_stack(cols).astype(object), fmt=fmt)
            f.write(buf.getvalue())


def export_chip(
    chip: nn.Module,
    path: str | os.PathLike[str],
    *,
    quantity: str = "target",
    csv_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a chip's conductance map: one ``.npz`` (and, optionally, the long CSV).

    Args:
        chip: A model returned by :func:`memsim.convert` (calibrate it first if its
            converters are calibrated, or the ranges are written as NaN).
        path: The ``.npz`` file to write (``.npz`` is appended when missing); a path
            ending in ``.csv`` writes only the CSV.
        quantity: ``"target"``: the conductances to program (the defect map is written
            alongside, not applied); ``"programmed"``: the simulated state after
            programming (noise, stuck devices and gains applied), a stand-in for a
            measurement.
        csv_path: Also write the long-format CSV there.

    Returns:
        The path of the main file written.

    Raises:
        memsim.ChipMemoryError: The dense per-tile arrays would not fit in memory
            (checked first, :mod:`memsim.resources`).
        memsim.ChipTimeError: Writing the map would take longer than the time limit
            (``MEMSIM_MAX_SETUP_SECONDS``; checked next).

    """
    layers = _chip_layers(chip)
    check_tile_arrays(
        [(n, m.layout) for n, m in layers],
        EXPORT_BYTES_PER_CELL,
        what="memsim.export_chip",
        at_once=True,
    )
    path = Path(path)
    check_map_time(
        [(n, m.layout) for n, m in layers],
        npz=path.suffix.lower() != ".csv",
        csv=path.suffix.lower() == ".csv" or csv_path is not None,
        what="memsim.export_chip",
    )
    per_layer = [(name, layer_arrays(layer, quantity)) for name, layer in layers]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        _write_csv(path, per_layer)
        return path
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + ".npz")
    prof = layers[0][1].profile
    d = prof.device
    arrays: dict[str, np.ndarray] = {
        "schema": np.array(SCHEMA),
        "version": np.array(SCHEMA_VERSION, dtype=np.int64),
        "units": np.array(UNITS),
        "quantity": np.array(quantity),
        "layer_names": np.array([n for n, _ in per_layer]),
        "profile_name": np.array(prof.name),
        "profile_json": np.array(json.dumps(prof.model_dump(mode="json"))),
        "chip_seed": np.array(int(getattr(chip, "memsim_chip_seed", -1)), dtype=np.int64),
        "program_seed": np.array(int(layers[0][1].seed), dtype=np.int64),
        "g_min_uS": np.array(d.g_min_uS, dtype=np.float64),
        "g_max_uS": np.array(d.g_max_uS, dtype=np.float64),
        "levels": np.array(-1 if d.levels is None else d.levels, dtype=np.int64),
        "t_s": np.array(float(layers[0][1].t_s), dtype=np.float64),
    }
    for i, (_, arr) in enumerate(per_layer):
        for key, val in arr.items():
            arrays[f"layer{i}.{key}"] = val
    if any(layer.profile != prof for _, layer in layers):
        # per-layer profiles (convert's layer_profiles): each layer records its own
        for i, (_, layer) in enumerate(layers):
            arrays[f"layer{i}.profile_json"] = np.array(
                json.dumps(layer.profile.model_dump(mode="json"))
            )
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    if csv_path is not None:
        cp = Path(csv_path)
        cp.parent.mkdir(parents=True, exist_ok=True)
        _write_csv(cp, per_layer)
    return path


# reading and importing live in their own module (they use the definitions above)
from .conductance_import import (  # noqa: E402
    import_conductances as import_conductances,
)
from .conductance_import import (  # noqa: E402
    read_conductance_map as read_conductance_map,
)
