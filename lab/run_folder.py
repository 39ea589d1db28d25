"""Self-describing run folders that are never overwritten.

A run folder is ``<root>/<name>-<YYYYmmdd-HHMMSS>[-<n>]``, created with an exclusive
``mkdir``, so two runs (even started in the same second) never share one.  Its
``run.json`` records what is needed to know what ran: resolved config, package
versions, git commit, seeds, device profile, dataset digests, wall times, status.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from memsim.atomic_io import atomic_text_json
from models.data import REPO_ROOT

RUN_JSON = "run.json"
PACKAGES = (
    "memsim",
    "torch",
    "numpy",
    "scipy",
    "pygad",
    "pydantic",
    "scikit-learn",
    "matplotlib",
    "tqdm",
)


def new_run_dir(root: str | os.PathLike[str], name: str) -> Path:
    """Create and return a fresh ``<root>/<name>-<timestamp>[-n]`` folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        path = root / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a new run folder under {root}")


def _git(*args: str, repo: Path = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(repo: Path = REPO_ROOT) -> str | None:
    """``git rev-parse HEAD`` of the source checkout, or None outside a git checkout."""
    out = _git("rev-parse", "HEAD", repo=repo)
    return out.strip() or None if out is not None else None


def git_dirty(repo: Path = REPO_ROOT) -> bool | None:
    """Whether the checkout differs from its commit (changed or new files); None if unknown."""
    out = _git("status", "--porcelain", repo=repo)
    return bool(out.strip()) if out is not None else None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages results depend on (None if absent)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment() -> dict[str, Any]:
    """Python, platform, CPU count, torch threads, package versions and git state."""
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "argv": sys.argv,
    }


def read_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_text_json(Path(path), obj)


def update_run_json(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``run_dir/run.json`` (created if missing); return it."""
    path = Path(run_dir) / RUN_JSON
    data = read_json(path) if path.exists() else {}
    data.update(fields)
    write_json(path, data)
    return data
