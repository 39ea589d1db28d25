"""Atomic per-generation checkpoints.

A checkpoint is one ``torch.save`` file (tensors, numbers, strings, lists and
dicts only, so it loads with ``weights_only=True``) written to a temporary
file in the run folder, flushed to disk and moved over the previous one with
``os.replace``: a ``kill -9`` at any instant leaves either the old or the new
checkpoint, never a torn one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from memsim.atomic_io import STALE_GLOB, atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointMismatchError(ValueError):
    """A checkpoint belongs to a different config or problem than the resuming run."""


class CheckpointCorruptError(ValueError):
    """A checkpoint file is truncated, garbage, or not a GA checkpoint at all."""


REQUIRED_KEYS = (
    "config_hash",
    "config_json",
    "problem",
    "generation",
    "population",
    "fitness",
    "best_fitness",
    "best_generation",
    "best_solution",
    "best_evaluated_solution",
    "history",
    "early_stop",
    "stop_reason",
    "rng",
)
"""Entries every GA checkpoint holds (see ``GATrainer._state``)."""


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` as the run's checkpoint; return its path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CHECKPOINT_NAME
    atomic_torch_save({"format": FORMAT_VERSION, **state}, path)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Load the run's checkpoint.

    Raises:
        FileNotFoundError: If the folder has no checkpoint.
        CheckpointCorruptError: If the file is unreadable or not a GA checkpoint.
        CheckpointMismatchError: If it was written by another format version.

    """
    path = Path(run_dir) / CHECKPOINT_NAME
    # temp files of writes interrupted by a kill are garbage; the checkpoint itself is whole
    for stale in Path(run_dir).glob(STALE_GLOB):
        stale.unlink(missing_ok=True)
    if not path.exists():
        raise FileNotFoundError(f"no GA checkpoint to resume at {path}")
    hint = "restore it from a backup, or start a new run"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a torn or foreign file
        raise CheckpointCorruptError(
            f"{path}: corrupt or truncated GA checkpoint ({type(exc).__name__}); {hint}"
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointCorruptError(
            f"{path}: not a GA checkpoint (holds a {type(state).__name__}, not a dict); {hint}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing and state.get("format") == FORMAT_VERSION:
        raise CheckpointCorruptError(f"{path}: GA checkpoint lacks {missing}; {hint}")
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointMismatchError(
            f"{path}: checkpoint format {state.get('format')} != supported {FORMAT_VERSION}"
        )
    return state


def check_compatible(
    state: dict[str, Any], config_hash: str, config_json: dict[str, Any], problem: str
) -> None:
    """Refuse a checkpoint written with another config or another problem.

    Args:
        state: Loaded checkpoint.
        config_hash: Hash of the resuming config's semantic fields.
        config_json: Those fields, to name what differs.
        problem: Fingerprint of the resuming genome/baseline/references.

    Raises:
        CheckpointMismatchError: Naming the differing config fields.

    """
    if state["config_hash"] != config_hash:
        from ga.config import GAConfig

        saved = json.loads(state["config_json"])
        # a field added to GAConfig after the checkpoint was written is compatible when
        # it is at its default, which keeps the behaviour the checkpoint was run with
        defaults = GAConfig.model_construct().semantic_dict()
        diff = {
            k: (saved.get(k), config_json.get(k))
            for k in sorted(set(saved) | set(config_json))
            if saved.get(k) != config_json.get(k)
            and not (k not in saved and k in defaults and config_json.get(k) == defaults[k])
        }
        if not diff:
            return _check_problem(state, problem)
        detail = ", ".join(f"{k}: checkpoint={a!r} now={b!r}" for k, (a, b) in diff.items())
        raise CheckpointMismatchError(
            f"refusing to resume: the checkpoint was written with a different GAConfig ({detail})"
        )
    _check_problem(state, problem)


def _check_problem(state: dict[str, Any], problem: str) -> None:
    if state["problem"] != problem:
        raise CheckpointMismatchError(
            "refusing to resume: the checkpoint was written for a different genome, initial "
            "solution or reference models"
        )
