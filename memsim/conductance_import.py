"""Conductance maps read back: the ``.npz`` / ``.csv`` readers and the import into a chip.

The formats are those of :mod:`memsim.export` (which re-exports
:func:`read_conductance_map` and :func:`import_conductances`).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .export import (
    _LAYOUT_FIELDS,
    _MAX_G_FACTOR,
    CSV_COLUMNS,
    QUANTITIES,
    SCHEMA,
    SCHEMA_VERSION,
    UNITS,
    ConductanceMap,
    ConductanceMapError,
    LayerMap,
    _chip_layers,
    _flat_index,
    _from_physical,
    _scale_physical,
)
from .layers import AnalogLayer, analog_layers
from .placement import Placement, device_index, identity_placement
from .resources import IMPORT_BYTES_PER_CELL, check_map_time, check_tile_arrays

# -- reading ------------------------------------------------------------------------


def _scalar(z: Any, key: str, path: Path) -> Any:
    if key not in z.files:
        raise ConductanceMapError(f"{path}: field '{key}' is missing (schema {SCHEMA})")
    return z[key].item() if z[key].ndim == 0 else z[key]


def _read_npz(path: Path) -> ConductanceMap:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConductanceMapError(f"{path}: not a readable .npz file: {exc}") from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ConductanceMapError(f"{path}: not an .npz archive (schema {SCHEMA}) or a .csv")
    with z:
        schema = _scalar(z, "schema", path)
        if schema != SCHEMA:
            raise ConductanceMapError(f"{path}: field 'schema' is {schema!r}, expected {SCHEMA!r}")
        version = int(_scalar(z, "version", path))
        if not 1 <= version <= SCHEMA_VERSION:
            raise ConductanceMapError(
                f"{path}: field 'version' is {version}; this memsim reads versions "
                f"1..{SCHEMA_VERSION}"
            )
        units = _scalar(z, "units", path)
        if units != UNITS:
            raise ConductanceMapError(
                f"{path}: field 'units' is {units!r}; conductances must be in {UNITS!r} "
                "(micro-siemens)"
            )
        quantity = str(z["quantity"].item()) if "quantity" in z.files else "measured"
        if quantity not in QUANTITIES:
            raise ConductanceMapError(
                f"{path}: field 'quantity' is {quantity!r}; allowed: {', '.join(QUANTITIES)}"
            )
        names = [str(n) for n in np.atleast_1d(_scalar(z, "layer_names", path))]
        if len(set(names)) != len(names):
            raise ConductanceMapError(f"{path}: field 'layer_names' repeats a name: {names}")
        layers: dict[str, LayerMap] = {}
        for i, name in enumerate(names):
            prefix = f"layer{i}."
            fields = {k[len(prefix) :]: z[k] for k in z.files if k.startswith(prefix)}
            for need in ("g_plus_uS", "g_minus_uS"):
                if need not in fields:
                    raise ConductanceMapError(
                        f"{path}: layer '{name}': field '{prefix}{need}' is missing"
                    )
            layers[name] = LayerMap(
                fields.pop("g_plus_uS"), fields.pop("g_minus_uS"), fields=fields
            )
        meta = {k: z[k].item() for k in z.files if not k.startswith("layer") and z[k].ndim == 0}
        meta["quantity"] = quantity
    return ConductanceMap(path, layers, meta)


def _csv_table(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Header, layer names and numeric columns (float64) of a long-format CSV."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConductanceMapError(f"{path}: cannot read: {exc}") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise ConductanceMapError(f"{path}: empty; the header must be {','.join(CSV_COLUMNS)}")
    if '"' in text:
        # quoted layer names: the general (slower) reader
        rows = list(csv.reader(lines))
        header, body = [h.strip() for h in rows[0]], rows[1:]
        names_list = [r[0] if r else "" for r in body]
        numeric_rows = [r[1:] for r in body]
    else:
        header = [h.strip() for h in lines[0].split(",")]
        body = lines[1:]
        names_list = [ln.split(",", 1)[0] for ln in body]
        numeric_rows = None
    _check_csv_header(path, header)
    if header[0] != "layer":
        raise ConductanceMapError(f"{path}: the first column must be 'layer', got {header[0]!r}")
    width = len(header)
    cols: dict[str, np.ndarray] = {}
    try:
        if numeric_rows is None:
            arr = np.loadtxt(
                body, delimiter=",", usecols=range(1, width), dtype=np.float64, ndmin=2
            )
        else:
            bad = next((i for i, r in enumerate(numeric_rows) if len(r) != width - 1), None)
            if bad is not None:
                raise ValueError(f"line {bad + 2}: {len(numeric_rows[bad]) + 1} fields")
            arr = np.asarray(numeric_rows, dtype=np.float64).reshape(-1, width - 1)
    except ValueError as exc:
        raise ConductanceMapError(
            f"{path}: not a table of {width} columns ({', '.join(header)}) with numbers after "
            f"'layer': {exc}"
        ) from None
    for j, name in enumerate(header[1:]):
        cols[name] = arr[:, j] if len(body) else np.zeros(0)
    return header, np.asarray(names_list, dtype=str), cols


def _check_csv_header(path: Path, header: list[str]) -> None:
    for side in ("plus", "minus"):
        col = f"g_{side}_uS"
        if col not in header:
            other = [h for h in header if h.startswith(f"g_{side}")]
            if other:
                raise ConductanceMapError(
                    f"{path}: column {other[0]!r}: wrong units field; conductances must be "
                    f"in uS, in a column named {col!r}"
                )
            raise ConductanceMapError(
                f"{path}: column {col!r} is missing; the header must name {', '.join(CSV_COLUMNS)}"
            )
    missing = [c for c in CSV_COLUMNS[:4] if c not in header]
    if missing:
        raise ConductanceMapError(f"{path}: column(s) {missing} missing; expected {CSV_COLUMNS}")


def _read_csv(path: Path) -> ConductanceMap:
    _, names, cols = _csv_table(path)
    for c in ("tile", "row", "col"):
        v = cols[c]
        if not np.all(np.isfinite(v) & (v == np.round(v))):
            i = int(np.flatnonzero(~(np.isfinite(v) & (v == np.round(v))))[0])
            raise ConductanceMapError(
                f"{path}: data line {i + 1}: column {c!r} = {v[i]!r} is not an integer"
            )
    tile, row, colv = (cols[c].astype(np.int64) for c in ("tile", "row", "col"))
    gp, gm = cols["g_plus_uS"].astype(np.float32), cols["g_minus_uS"].astype(np.float32)
    layers: dict[str, LayerMap] = {}
    uniq, first, inv = np.unique(names, return_index=True, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    for k in np.argsort(first):  # layers in file order
        sel = order[bounds[k] : bounds[k + 1]]
        cells = np.stack([tile[sel], row[sel], colv[sel]], axis=1)
        layers[str(uniq[k])] = LayerMap(gp[sel], gm[sel], cells=cells)
    return ConductanceMap(path, layers, {"units": UNITS, "quantity": "measured"})


def read_conductance_map(path: str | os.PathLike[str]) -> ConductanceMap:
    """Read a conductance map (``.npz`` of schema :data:`SCHEMA`, or the long CSV).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConductanceMapError: The file is not a conductance map (the message names the
            file and the field).

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: conductance map not found")
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    return _read_npz(path)


def _first_cell(mask: np.ndarray) -> tuple[int, int, int]:
    # importing into a chip: the first offending cell, for the message
    t, r, c = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return int(t), int(r), int(c)


def _check_values(origin: str, name: str, g: np.ndarray, used: np.ndarray, g_max: float) -> None:
    """Refuse NaN, negative and implausibly large conductances in used cells."""
    for label, arr in (("g_plus_uS", g[0]), ("g_minus_uS", g[1])):
        bad = used & ~np.isfinite(arr)
        if bad.any():
            t, r, c = _first_cell(bad)
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile {t}: {int(bad.sum())} non-finite value(s) in "
                f"{label} (first at row {r}, col {c})"
            )
        bad = used & (arr < 0)
        if bad.any():
            t, r, c = _first_cell(bad)
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile {t}: negative conductance "
                f"{float(arr[t, r, c]):g} uS in {label} at row {r}, col {c} "
                f"({int(bad.sum())} negative in all); conductances must be >= 0"
            )
        limit = _MAX_G_FACTOR * g_max
        bad = used & (arr > limit)
        if bad.any():
            t, r, c = _first_cell(bad)
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile {t}: {label} = {float(arr[t, r, c]):g} at "
                f"row {r}, col {c} exceeds {limit:g} uS ({_MAX_G_FACTOR:g} x g_max): "
                "the map does not look like micro-siemens"
            )


def _check_shape(origin: str, name: str, layer: AnalogLayer, arr: np.ndarray, label: str) -> None:
    lay = layer.layout
    want = (lay.n_tiles, lay.rows, lay.cols)
    if arr.ndim != 3:
        raise ConductanceMapError(
            f"{origin}: layer '{name}': {label} has shape {arr.shape}; expected "
            f"(tiles, rows, cols) = {want}"
        )
    if arr.shape[0] != lay.n_tiles:
        tile = min(arr.shape[0], lay.n_tiles)
        what = "is missing from the map" if arr.shape[0] < lay.n_tiles else "is not on the chip"
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile {tile} {what}: {label} holds {arr.shape[0]} "
            f"tile(s), the chip layer has {lay.n_tiles}"
        )
    if arr.shape[1:] != want[1:]:
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile 0: {label} tiles are {arr.shape[1]} x "
            f"{arr.shape[2]} cells, the chip's are {lay.rows} x {lay.cols}"
        )


def _physical_from_cells(
    origin: str, name: str, layer: AnalogLayer, lm: LayerMap
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter CSV cells into (tiles, rows, cols) arrays; every weight cell exactly once."""
    lay = layer.layout
    assert lm.cells is not None
    t, r, c = lm.cells.T
    out_of = (t < 0) | (t >= lay.n_tiles) | (r < 0) | (r >= lay.rows) | (c < 0) | (c >= lay.cols)
    if out_of.any():
        i = int(np.flatnonzero(out_of)[0])
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile {int(t[i])}: cell (row {int(r[i])}, col {int(c[i])}) "
            f"is outside the layer's {lay.n_tiles} tile(s) of {lay.rows} x {lay.cols}"
        )
    flat = (t * lay.rows + r) * lay.cols + c
    idx, _, _, _ = _flat_index(layer)
    used = np.zeros(lay.n_tiles * lay.rows * lay.cols, dtype=bool)
    used[idx] = True
    stray = ~used[flat]
    if stray.any():
        i = int(np.flatnonzero(stray)[0])
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile {int(t[i])}: cell (row {int(r[i])}, col "
            f"{int(c[i])}) holds no weight on this chip ({int(stray.sum())} such line(s))"
        )
    uniq, counts = np.unique(flat, return_counts=True)
    if (counts > 1).any():
        f0 = int(uniq[counts > 1][0])
        tt, rem = divmod(f0, lay.rows * lay.cols)
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile {tt}: cell (row {rem // lay.cols}, col "
            f"{rem % lay.cols}) is listed more than once"
        )
    seen = np.zeros_like(used)
    seen[flat] = True
    lack = used & ~seen
    if lack.any():
        f0 = int(np.flatnonzero(lack)[0])
        tt, rem = divmod(f0, lay.rows * lay.cols)
        raise ConductanceMapError(
            f"{origin}: layer '{name}', tile {tt}: {int(lack.sum())} weight cell(s) missing "
            f"from the map (first at row {rem // lay.cols}, col {rem % lay.cols}); the "
            f"layer has {lay.out * lay.k} weight cells"
        )
    g_min = np.float32(layer.profile.device.g_min_uS)
    shape = (lay.n_tiles, lay.rows, lay.cols)
    gp = np.full(used.shape, g_min, dtype=np.float32)
    gm = gp.copy()
    gp[flat], gm[flat] = lm.g_plus, lm.g_minus
    return gp.reshape(shape), gm.reshape(shape)


def _file_placement(
    origin: str, name: str, layer: AnalogLayer, fields: dict[str, np.ndarray]
) -> Placement:
    """The map's placement of a layer (the chip's own when the map has none)."""
    if "row_perm" not in fields or "col_perm" not in fields:
        return tuple(p.cpu() for p in layer.tiles.placement)  # type: ignore[return-value]
    rows, cols = (torch.from_numpy(fields[k].astype(np.int64)) for k in ("row_perm", "col_perm"))
    try:
        device_index(layer.layout, (rows, cols))
    except ValueError as err:
        raise ConductanceMapError(f"{origin}: layer '{name}': row_perm/col_perm: {err}") from err
    return rows, cols


def _check_fields(
    origin: str, name: str, layer: AnalogLayer, fields: dict[str, np.ndarray], placement: Placement
) -> None:
    lay = layer.layout
    if "layout" in fields:
        want = np.array([getattr(lay, f) for f in _LAYOUT_FIELDS])
        got = fields["layout"].reshape(-1)
        if got.shape != want.shape or (got != want).any():
            diff = [
                f"{f} {int(g)} != {int(w)}" for f, g, w in zip(_LAYOUT_FIELDS, got, want) if g != w
            ]
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile 0: field 'layout' differs from the chip's "
                f"tiling ({', '.join(diff) or 'length'}); export and import with the same "
                "profile tile size"
            )
    if "weight_scale" in fields:
        ws = fields["weight_scale"]
        want_ws = _scale_physical(layer, placement)
        if ws.shape != want_ws.shape:
            raise ConductanceMapError(
                f"{origin}: layer '{name}': field 'weight_scale' has shape {ws.shape}, the "
                f"chip's is {want_ws.shape}"
            )
        off = ~np.isclose(ws, want_ws, rtol=1e-6, atol=0.0)
        if off.any():
            t, c = (int(v) for v in np.argwhere(off)[0])
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile {t}: field 'weight_scale' at col {c} is "
                f"{float(ws[t, c]):g}, the chip's is {float(want_ws[t, c]):g}: the map was "
                "made for other target weights"
            )
    shape = (lay.n_tiles, lay.rows, lay.cols)
    for key in ("fault_plus", "fault_minus", "gain_plus", "gain_minus"):
        if key in fields:
            _check_shape(origin, name, layer, fields[key], key)
    for key in ("fault_plus", "fault_minus"):
        if key in fields and not np.isin(fields[key], (0, 1, 2)).all():
            bad = ~np.isin(fields[key], (0, 1, 2))
            t, r, c = _first_cell(bad.reshape(shape))
            raise ConductanceMapError(
                f"{origin}: layer '{name}', tile {t}: field '{key}' at row {r}, col {c} is "
                f"{int(fields[key][t, r, c])}; allowed codes 0 (working), 1 (stuck at g_min), "
                "2 (stuck at g_max)"
            )
    for key in ("gain_plus", "gain_minus"):
        if key in fields:
            g = fields[key]
            bad = ~np.isfinite(g) | (g < 0)
            if bad.any():
                t, r, c = _first_cell(bad)
                raise ConductanceMapError(
                    f"{origin}: layer '{name}', tile {t}: field '{key}' at row {r}, col {c} is "
                    f"{float(g[t, r, c]):g}; a gain must be finite and >= 0"
                )


def _device_map(
    layer: AnalogLayer, fields: dict[str, Any], ident: Placement, kind: str, dtype: type
) -> torch.Tensor | None:
    """``(2, out, K)`` of the file's ``<kind>_plus`` / ``<kind>_minus`` maps, if it has both."""
    keys = (f"{kind}_plus", f"{kind}_minus")
    if not all(k in fields for k in keys):
        return None
    return torch.from_numpy(
        np.stack([_from_physical(layer, fields[k], ident) for k in keys]).astype(dtype)
    )


@dataclass
class _Staged:
    layer: AnalogLayer
    g: torch.Tensor
    fault: torch.Tensor | None
    gain: torch.Tensor | None
    placement: Placement


def import_conductances(
    chip: nn.Module,
    source: str | os.PathLike[str] | ConductanceMap,
    *,
    defects: str = "file",
) -> nn.Module:
    """Load measured G+ / G- into ``chip``, replacing its programmed state.

    Every layer of the map is checked against the chip before anything is written:
    the layer names must be the chip's, the tiles must have the chip's number and size,
    every weight cell must be given once, conductances must be finite, >= 0 and in µS.
    A refused map leaves the chip untouched.

    After the import the chip holds the measurement as its state right after
    programming (``t = 0``): evaluation reads exactly these conductances (plus per-MVM
    read noise, if the profile has it).  :func:`memsim.drift` ages them from there with
    the chip's drift exponents; the converters recalibrate on the next
    :func:`memsim.calibrate` or first batch; :func:`memsim.program` discards the import.

    Args:
        chip: A model returned by :func:`memsim.convert`.
        source: A ``.npz`` / ``.csv`` path or a :class:`ConductanceMap`.
        defects: ``"file"``: take the stuck-at and gain maps from the file when it has
            them (an exported ``.npz`` does), else keep the chip's; ``"keep"``: keep the
            chip's.  Defects only matter once the chip drifts (stuck devices hold).

    Returns:
        ``chip`` (modified in place).

    Raises:
        ConductanceMapError: The map does not fit the chip (names layer and tile).
        FileNotFoundError: No such file.
        memsim.ChipMemoryError: The chip's dense per-tile arrays would not fit in memory
            (checked first, :mod:`memsim.resources`).
        memsim.ChipTimeError: Reading the file would take longer than the time limit
            (``MEMSIM_MAX_SETUP_SECONDS``; checked next).

    """
    if defects not in ("file", "keep"):
        raise ValueError(f"defects must be 'file' or 'keep', got {defects!r}")
    check_tile_arrays(
        [(n, m.layout) for n, m in analog_layers(chip)],
        IMPORT_BYTES_PER_CELL,
        what="memsim.import_conductances",
        at_once=False,
    )
    if not isinstance(source, ConductanceMap):  # a map already read costs no more reading
        suffix = Path(source).suffix.lower()
        check_map_time(
            [(n, m.layout) for n, m in analog_layers(chip)],
            npz=suffix != ".csv",
            csv=suffix == ".csv",
            what="memsim.import_conductances",
        )
    cmap = source if isinstance(source, ConductanceMap) else read_conductance_map(source)
    origin = str(cmap.path)
    layers = _chip_layers(chip)
    chip_names = [n for n, _ in layers]
    missing = [n for n in chip_names if n not in cmap.layers]
    if missing:
        name = missing[0]
        n_t = dict(layers)[name].layout.n_tiles
        raise ConductanceMapError(
            f"{origin}: layer '{name}' (tiles 0..{n_t - 1}) is missing from the map; the map "
            f"has {sorted(cmap.layers)}, the chip {chip_names}"
        )
    extra = [n for n in cmap.layers if n not in chip_names]
    if extra:
        raise ConductanceMapError(
            f"{origin}: layer '{extra[0]}' of the map is not an analog layer of the chip "
            f"(chip layers: {chip_names})"
        )
    staged: list[_Staged] = []
    for name, layer in layers:
        lm = cmap.layers[name]
        lay = layer.layout
        if lm.cells is not None:
            gp, gm = _physical_from_cells(origin, name, layer, lm)
        else:
            gp, gm = np.asarray(lm.g_plus), np.asarray(lm.g_minus)
            _check_shape(origin, name, layer, gp, "g_plus_uS")
            _check_shape(origin, name, layer, gm, "g_minus_uS")
        placed = _file_placement(origin, name, layer, lm.fields)
        ident = identity_placement(lay)
        _check_fields(origin, name, layer, lm.fields, placed)
        used = np.zeros(lay.n_tiles * lay.rows * lay.cols, dtype=bool)
        used[_flat_index(layer)[0]] = True
        used = used.reshape(gp.shape)
        g = np.stack([gp, gm]).astype(np.float32)
        _check_values(origin, name, g, used, layer.profile.device.g_max_uS)
        # conductances are read at each weight's placed cell, defects at each device's own
        logical = np.stack([_from_physical(layer, g[i], placed) for i in (0, 1)])
        fault = gain = None
        if defects == "file":  # defects sit at each device's own cell (no placement)
            fault = _device_map(layer, lm.fields, ident, "fault", np.int8)
            gain = _device_map(layer, lm.fields, ident, "gain", np.float32)
        staged.append(_Staged(layer, torch.from_numpy(logical), fault, gain, placed))
    for s in staged:
        s.layer.set_placement(*s.placement)
        s.layer.load_measured(s.g, fault=s.fault, gain=s.gain)
    return chip
