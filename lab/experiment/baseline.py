"""The experiment's baseline checkpoint: reused from the run root, or trained.

Two kinds, both under ``<run_root>/baselines/``:

* ``<task>-<scale>-seed<k>.pt``: the standard baseline of :mod:`models.baselines`
  (trained on the whole training split).
* ``<task>-<scale>-seed<k>-holdout<N>.pt``: the same recipe trained without the ``N``
  validation images of the experiment's split (``train_val_split(train, N / len(train),
  seed)``, the split :mod:`lab.experiment.runner` uses), so the GA's fitness is measured on
  images the baseline never trained on.  A fitness measured on training images
  favours members close to the baseline, which memorized them.

The hold-out trainer reuses the recipe, model registry and training loops of
``models``; it skips the recipe's own deployed evaluation because the experiment
scores the baseline itself, on the same chips and draws as the GA.

A checkpoint is reused by name only while the recipe stored in it equals the task's
current recipe: a file trained with an older recipe of the same scale is refused (and
kept), never reused silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lab.experiment.config import ExperimentConfig

BASELINE_DIR = "baselines"


class BaselineMismatchError(ValueError):
    """A run root's baseline checkpoint was not trained with the task's current recipe."""


def check_reusable(path: Path, meta: dict[str, Any], recipe: Any) -> None:
    """Refuse to reuse the checkpoint at ``path`` unless its stored recipe is ``recipe``.

    Raises:
        BaselineMismatchError: The checkpoint stores no recipe, or another one; the
            message names the file and every differing field with both values.

    """
    from models.baselines import recipe_differences

    remedy = (
        "it is kept; move it away, or use another --run-root, to train the current "
        f"{recipe.scale} recipe of {recipe.task}"
    )
    stored = meta.get("recipe")
    if not isinstance(stored, dict):
        raise BaselineMismatchError(
            f"{path}: the baseline checkpoint records no recipe, so it cannot be checked "
            f"against the current one; {remedy}"
        )
    differences = recipe_differences(stored, recipe)
    if differences:
        shown = "; ".join(differences[:8])
        more = f"; and {len(differences) - 8} more" if len(differences) > 8 else ""
        raise BaselineMismatchError(
            f"{path}: the baseline was trained with another {recipe.scale} recipe "
            f"({shown}{more}); {remedy}"
        )


def baseline_path(cfg: ExperimentConfig, run_root: str | os.PathLike[str]) -> Path:
    """Checkpoint path of the experiment's baseline under ``<run_root>/baselines``."""
    e = cfg.experiment
    stem = f"{e.task}-{e.scale}-seed{e.seed}"
    if cfg.data.baseline_holdout:
        stem += f"-holdout{cfg.data.val_size}"
    return Path(run_root) / BASELINE_DIR / f"{stem}.pt"


def train_holdout_baseline(
    cfg: ExperimentConfig,
    train_part: Any,
    path: Path,
    *,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the task's recipe on ``train_part`` (train minus validation) and save it.

    Args:
        cfg: The experiment (task, scale, seed, val_size).
        train_part: The training split without the validation images.
        path: Where to write the checkpoint.
        progress: Show a training progress bar (stderr).
        device: Where the network trains (the checkpoint is written from the CPU).

    Returns:
        ``(model, meta)``.

    """
    from models.baselines import fit_recipe, get_recipe
    from models.checkpoint import save_checkpoint

    e = cfg.experiment
    recipe = get_recipe(e.task, e.scale)
    model, used, losses, train_time = fit_recipe(
        recipe, train_part, e.seed, progress=progress, device=device
    )
    meta: dict[str, Any] = {
        "task": e.task,
        "scale": e.scale,
        "seed": e.seed,
        "bits": recipe.bits,
        "noise": recipe.sigma,
        "dataset": recipe.dataset,
        "dataset_sha256": train_part.sha256,
        "holdout_val_size": cfg.data.val_size,
        "holdout_split_seed": e.seed,
        "train_images": len(used),
        "final_train_loss": float(sum(losses[-50:]) / max(1, len(losses[-50:]))),
        "train_time_s": train_time,
        "recipe": recipe.as_dict(),
        "torch_version": str(torch.__version__),
    }
    save_checkpoint(path, model, meta)
    model.eval()
    return model, meta


def load_or_train(
    cfg: ExperimentConfig,
    run_root: str | os.PathLike[str],
    data_root: str | None,
    train_part: Any,
    echo: Any,
    *,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[nn.Module, dict[str, Any], Path]:
    """Reuse the run root's baseline checkpoint, or train and save it there (on ``device``).

    Raises:
        BaselineMismatchError: The run root holds a checkpoint of another recipe (see
            :func:`check_reusable`).

    """
    from models.baselines import get_recipe, train_baseline
    from models.checkpoint import load_checkpoint

    path = baseline_path(cfg, run_root)
    e = cfg.experiment
    if path.exists():
        model, meta = load_checkpoint(path)
        check_reusable(path, meta, get_recipe(e.task, e.scale))
        echo(f"baseline: reusing {path}")
        return model, meta, path
    if cfg.data.baseline_holdout:
        echo(
            f"baseline: training {e.task} ({e.scale} recipe, seed {e.seed}) without the "
            f"{cfg.data.val_size} validation images -> {path}"
        )
        train_holdout_baseline(cfg, train_part, path, progress=progress, device=device)
    else:
        echo(f"baseline: training {e.task} ({e.scale} recipe, seed {e.seed}) -> {path}")
        train_baseline(
            e.task, e.scale, e.seed, data_root, path.parent, progress=progress, device=device
        )
    model, meta = load_checkpoint(path)
    return model, meta, path
