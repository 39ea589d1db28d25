"""The measurement CSV: its columns and kinds, reading, writing, checks."""

from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("kind", "device", "target_uS", "t_s", "g_uS")
"""Columns of a measurement CSV."""
KINDS = ("program", "drift", "read", "stuck")
"""Allowed values of the ``kind`` column."""
MIN_POINTS = {"program": 200, "drift": 20, "read": 10, "stuck": 20}
"""Fewest points (program rows; devices for the others) a fit accepts."""


class MeasurementError(ValueError):
    """A measurement file or its data cannot be fitted (names file, line and field)."""


# -- reading ------------------------------------------------------------------------


@dataclass
class Measurements:
    """The rows of a measurement CSV, split by kind (numpy arrays, NaN for empty cells)."""

    path: Path | None
    sha256: str
    kind: np.ndarray
    device: np.ndarray
    """Device ids as strings ('' where empty)."""
    target_uS: np.ndarray
    t_s: np.ndarray
    g_uS: np.ndarray

    def select(self, kind: str) -> dict[str, np.ndarray]:
        """The rows of one ``kind`` as a dict of column arrays."""
        m = self.kind == kind
        return {
            "device": self.device[m],
            "target_uS": self.target_uS[m],
            "t_s": self.t_s[m],
            "g_uS": self.g_uS[m],
        }

    def count(self, kind: str) -> int:
        """Rows of ``kind``."""
        return int((self.kind == kind).sum())


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _float_column(path: Path, name: str, values: list[str], lines: list[int]) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        v = v.strip()
        if v:
            try:
                out[i] = float(v)
            except ValueError:
                raise MeasurementError(
                    f"{path}: line {lines[i]}: field '{name}' = {v!r} is not a number"
                ) from None
    return out


def read_measurements(path: str | os.PathLike[str]) -> Measurements:
    """Read a measurement CSV (format in the module docstring).

    Raises:
        FileNotFoundError: No such file.
        MeasurementError: A missing column, an unknown kind, a non-number, a negative
            conductance or time; the message names the file, line and field.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: measurement file not found")
    with path.open(encoding="utf-8", newline="") as f:
        numbered = [(i + 1, line) for i, line in enumerate(f) if not line.startswith("#")]
    reader = csv.reader(line for _, line in numbered)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise MeasurementError(f"{path}: empty file; the header must be {','.join(COLUMNS)}")
    for col in ("kind", "g_uS"):
        if col not in header:
            wrong = [h for h in header if h.startswith("g_")] if col == "g_uS" else []
            hint = f" (found {wrong[0]!r}: conductances must be in uS)" if wrong else ""
            raise MeasurementError(f"{path}: column {col!r} is missing{hint}; columns: {COLUMNS}")
    at = {h: i for i, h in enumerate(header)}
    rows, lines = [], []
    for (lineno, _), row in zip(numbered[1:], reader):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise MeasurementError(
                f"{path}: line {lineno}: {len(row)} fields, the header has {len(header)}"
            )
        rows.append(row)
        lines.append(lineno)

    def col(name: str) -> list[str]:
        return [r[at[name]] for r in rows] if name in at else [""] * len(rows)

    kind = np.array([k.strip() for k in col("kind")], dtype=object)
    bad = [i for i, k in enumerate(kind) if k not in KINDS]
    if bad:
        raise MeasurementError(
            f"{path}: line {lines[bad[0]]}: field 'kind' = {kind[bad[0]]!r}; allowed: "
            f"{', '.join(KINDS)}"
        )
    device = np.array([d.strip() for d in col("device")], dtype=object)
    target = _float_column(path, "target_uS", col("target_uS"), lines)
    t = _float_column(path, "t_s", col("t_s"), lines)
    g = _float_column(path, "g_uS", col("g_uS"), lines)
    checks = (
        ("g_uS", g, np.isnan(g), "every row needs a conductance"),
        ("g_uS", g, g < 0, "conductances must be >= 0 uS"),
        ("target_uS", target, target < 0, "targets must be >= 0 uS"),
        ("t_s", t, t < 0, "times must be >= 0 s"),
        (
            "target_uS",
            target,
            np.isin(kind, ("program", "stuck")) & np.isnan(target),
            "program and stuck rows need a target",
        ),
        ("t_s", t, (kind == "drift") & np.isnan(t), "drift rows need a time"),
        (
            "device",
            device,
            np.isin(kind, ("drift", "read", "stuck")) & (device == ""),
            "drift, read and stuck rows need a device id",
        ),
    )
    for name, values, mask, why in checks:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise MeasurementError(
                f"{path}: line {lines[i]}: field '{name}' = {values[i]!r}: {why}"
            )
    return Measurements(path, file_sha256(path), kind, device.astype(str), target, t, g)


def write_measurements(path: str | os.PathLike[str], tables: dict[str, dict[str, Any]]) -> Path:
    """Write ``{kind: {column: array}}`` as one measurement CSV (format above)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def cell(v: Any, fmt: str) -> str:
        if isinstance(v, str):
            return v
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt % v

    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for kind, table in tables.items():
            n = len(table["g_uS"])
            cols = [
                table.get("device", [""] * n),
                table.get("target_uS", [None] * n),
                table.get("t_s", [None] * n),
                table["g_uS"],
            ]
            fmts = ("%s", "%.6g", "%.6g", "%.6g")
            for i in range(n):
                w.writerow([kind, *(cell(_py(c[i]), fm) for c, fm in zip(cols, fmts))])
    return path


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
