"""Atomic file writes: a ``kill -9`` at any instant leaves the old file or the new one.

Each write goes to a temporary file in the destination folder, is flushed to disk and is
moved over the destination with ``os.replace``; the folder is then synced so that the
rename itself survives a crash.  Temporary files are named ``.<name>.tmp.<pid>``, so a
reader can remove the leftovers of an interrupted write (:data:`STALE_GLOB`).

This is the one implementation for the whole project: run folders, GA checkpoints and
model checkpoints all write through it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

STALE_GLOB = ".*.tmp.*"
"""Glob of the temporary files an interrupted write leaves behind."""


def _fsync_dir(path: Path) -> None:
    # the rename itself must reach the disk for the new file to survive a crash
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp.{os.getpid()}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    path = Path(path)
    tmp = _tmp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_text_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 1) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    path = Path(path)
    tmp = _tmp_path(path)
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
