"""Shared helpers of the hardware commands (export, inspect, fit, evaluate --conductances)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

import memsim

log = logging.getLogger("memsim")


class HardwareCliError(ValueError):
    """A user error of a hardware command (bad file, field or option); one line."""


def load_chip(
    checkpoint: str | os.PathLike[str],
    profile: str,
    *,
    seed: int = 0,
    chip_seed: int | None = None,
    root: str | None = None,
    conductances: str | os.PathLike[str] | None = None,
    calibrate: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Convert a checkpoint's model onto a chip, import measurements, calibrate.

    Calibrated converters take their ranges from the checkpoint dataset's calibration
    images (as ``memsim evaluate`` does); without a dataset they stay uncalibrated.

    Returns:
        ``(chip, meta)``.

    Raises:
        FileNotFoundError: No checkpoint or conductance file.
        HardwareCliError: An unreadable checkpoint or a map that does not fit the chip.
        memsim.ProfileError: A bad profile.

    """
    from models.checkpoint import load_checkpoint
    from models.data import calibration_images, load_dataset, resolve_data_root

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        model, meta = load_checkpoint(path)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise HardwareCliError(f"{path}: not a memsim checkpoint: {exc}") from exc
    prof = memsim.load_profile(profile)  # ProfileError (a ValueError) names file and field
    chip = memsim.convert(model, prof, seed=seed, chip_seed=chip_seed)
    if conductances is not None:
        apply_measured_conductances(chip, conductances)
    dataset = meta.get("dataset")
    if calibrate and dataset and memsim.needs_calibration(chip):
        train, _ = load_dataset(dataset, root=resolve_data_root(root))
        memsim.calibrate(chip, calibration_images(train))
    chip.eval()
    return chip, meta


def add_chip_arguments(parser: Any) -> None:
    """``CHECKPOINT``, ``--profile``, ``--seed``, ``--chip-seed`` and ``--conductances``.

    The chip that ``export`` and ``inspect`` build (:func:`load_chip`).
    """
    parser.add_argument("checkpoint", help="model checkpoint (models.checkpoint format)")
    parser.add_argument("--profile", required=True, help="shipped profile name or JSON path")
    parser.add_argument("--seed", type=int, default=0, help="programming seed (default 0)")
    parser.add_argument("--chip-seed", type=int, default=None, help="chip seed (default: --seed)")
    add_conductances_argument(parser)


def add_conductances_argument(parser: Any) -> None:
    """Add ``--conductances FILE`` (for ``memsim evaluate`` and the hardware commands)."""
    parser.add_argument(
        "--conductances",
        default=None,
        metavar="FILE",
        help="measured conductance map (.npz of schema memsim.conductance_map, or the long "
        "CSV) loaded into the chip after programming, in place of programming noise",
    )


def apply_measured_conductances(chip: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a measured map into ``chip`` right after :func:`memsim.convert` / ``program``.

    Call it before :func:`memsim.calibrate` (the import resets the converter ranges) and
    before any :func:`memsim.drift`.  A map that does not fit the chip raises
    :class:`HardwareCliError` naming layer and tile; the chip is then unchanged.
    """
    try:
        memsim.import_conductances(chip, path)
    except memsim.ConductanceMapError as exc:
        raise HardwareCliError(str(exc)) from exc
    log.info("memsim: loaded measured conductances from %s", path)
    return chip
