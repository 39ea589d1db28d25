"""Checks around a GA run folder: before it is made, and before it is resumed.

* :func:`preflight` validates what a start needs (the ``chip.profile``, the dataset
  file) before :func:`lab.experiment.runner.run_experiment` creates a run folder, so a bad
  start leaves nothing behind.
* A start that still fails during setup (before its first session is recorded) is
  marked ``failed`` in ``run.json`` (:func:`mark_failed`); such a folder is never picked
  by ``--resume`` and is refused when named (:func:`check_resumable`).
* A finished folder (``status: complete``) is reported as finished and not rewritten.
* :func:`folder_run_root` is the run root a folder was started with (its baselines and
  shared scores), so ``--resume RUN_DIR`` works from any current directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lab.experiment.config import ConfigError, ExperimentConfig
from lab.run_folder import RUN_JSON, read_json, update_run_json

FAILED = "failed"
COMPLETE = "complete"
GA_PARENT = "ga"


class ExperimentError(RuntimeError):
    """An experiment cannot run (e.g. a resume that does not match its folder)."""


def preflight(cfg: ExperimentConfig, data_root: str | None) -> None:
    """Refuse a start whose profile or dataset is unusable, before any folder exists.

    Raises:
        ConfigError: ``chip.profile`` names no profile or an invalid profile file.
        DatasetNotFoundError: The task's dataset is not found (and not downloadable).

    """
    from lab.experiment.inputs import resolve_profile
    from memsim.profiles import ProfileError
    from models.baselines import get_recipe
    from models.data import find_dataset_file, resolve_data_root

    recipe = get_recipe(cfg.experiment.task, cfg.experiment.scale)
    try:
        resolve_profile(cfg, recipe)
    except (ProfileError, OSError) as exc:
        raise ConfigError(f"chip.profile = {cfg.chip.profile!r}: {exc}") from None
    if recipe.dataset != "digits":  # bundled with scikit-learn, no file
        root = resolve_data_root(cfg.data.root or data_root)
        find_dataset_file(recipe.dataset, root=root, download=cfg.data.download)


def run_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``run.json`` of a folder, or ``{}`` if it has none yet."""
    path = Path(run_dir) / RUN_JSON
    return read_json(path) if path.is_file() else {}


def started(run_dir: str | os.PathLike[str]) -> bool:
    """Whether a session got past setup (recorded its start in ``run.json``)."""
    return bool(run_info(run_dir).get("sessions"))


def is_finished(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the folder's run completed (``run.json`` status ``complete``)."""
    return run_info(run_dir).get("status") == COMPLETE


def mark_failed(run_dir: str | os.PathLike[str], exc: BaseException) -> None:
    """Record a start that failed during setup, so the folder is never resumed."""
    first = (str(exc).strip().splitlines() or [""])[0]
    update_run_json(Path(run_dir), status=FAILED, error=f"{type(exc).__name__}: {first}")


def check_resumable(run_dir: str | os.PathLike[str]) -> None:
    """Refuse a folder whose start failed.

    Raises:
        ExperimentError: The folder is marked ``failed``.

    """
    info = run_info(run_dir)
    if info.get("status") == FAILED:
        raise ExperimentError(
            f"{run_dir}: its start failed ({info.get('error', 'unknown error')}), so it is "
            "never resumed; fix the cause and start a new run"
        )


def folder_run_root(run_dir: str | os.PathLike[str], default: str | os.PathLike[str]) -> Path:
    """The run root ``run_dir`` was started with (where its baseline lives).

    The root recorded in ``run.json`` if it is still a folder; else the folder's place
    ``<root>/ga/<name>-<timestamp>``; else ``default``.
    """
    run_dir = Path(run_dir)
    recorded = run_info(run_dir).get("run_root")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    if run_dir.resolve().parent.name == GA_PARENT:
        return run_dir.resolve().parent.parent
    return Path(default)


def check_ga_checkpoint(run_dir: str | os.PathLike[str]) -> None:
    """Load the folder's GA checkpoints, if any, before a resume writes anything.

    Raises:
        ga.checkpoint.CheckpointCorruptError: Truncated, garbage or not a GA checkpoint.
        ga.checkpoint.CheckpointMismatchError: Another checkpoint format.

    """
    from ga.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from lab.experiment.pipeline import RECOVERY_DIR

    # every GA-based method checkpoints in recovery/<method>/
    for path in sorted((Path(run_dir) / RECOVERY_DIR).glob(f"*/{CHECKPOINT_NAME}")):
        load_checkpoint(path.parent)
