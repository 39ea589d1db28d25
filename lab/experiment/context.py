"""Where and how an experiment runs, and the seeds of its replicates.

:class:`RunContext` replaces the keyword arguments (run root, data root, progress,
echo, executor, device) that every entry point used to thread through by hand.

Seeds: every seed of an experiment config (baseline/split, method, evaluation and the
chip instances) is shifted by the seed offset, ``$MEMSIM_SEED_OFFSET`` (default 0), so
a whole run, or the whole test suite, can be repeated on other seeds without editing a
file (:func:`shift_seeds`).  Replicate ``r`` of a study adds ``r`` to the baseline,
method and evaluation seeds, and with ``vary_chips`` also ``r * CHIP_STRIDE`` to the
chip seeds (:func:`replicate_config`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.experiment.config import ExperimentConfig

SEED_OFFSET_ENV = "MEMSIM_SEED_OFFSET"
"""Environment variable holding the seed offset (a non-negative integer)."""

CHIP_STRIDE = 1000
"""Chip-seed step between replicates that draw new chip instances (``--vary-chips``)."""

STREAM_METHOD = 12
"""Stream of every method's training seed (batches, QAT noise): ``qat`` equals the old control."""

Echo = Callable[[str], None]


def seed_offset() -> int:
    """The seed offset from ``$MEMSIM_SEED_OFFSET`` (0 when unset).

    Raises:
        ValueError: The variable is not a non-negative integer (one line, names it).

    """
    text = os.environ.get(SEED_OFFSET_ENV, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValueError(
            f"{SEED_OFFSET_ENV}={text!r}: expected a non-negative integer (e.g. 1000)"
        ) from None
    if value < 0:
        raise ValueError(f"{SEED_OFFSET_ENV}={value}: expected a non-negative integer")
    return value


@dataclass
class RunContext:
    """Everything about a run that is not the experiment itself.

    Attributes:
        run_root: Root of ``baselines/`` and (by default) of the run folders.
        data_root: Dataset folder when the config names none.
        progress: Show progress bars.
        echo: Where status lines go.
        executor: Where independent jobs run (a :class:`lab.executors.ExecutorSpec`;
            None = serial): the GA's population inside one experiment, replicates and
            table rows across experiments.
        device: Where models and chips run (``cpu``, ``cuda``, ``cuda:N``).
        seed_offset: Added to every seed (default: ``$MEMSIM_SEED_OFFSET``).

    """

    run_root: str | os.PathLike[str] = "runs"
    data_root: str | None = None
    progress: bool = True
    echo: Echo = print
    executor: Any = None
    device: str = "cpu"
    seed_offset: int = field(default_factory=seed_offset)

    def __post_init__(self) -> None:
        self.run_root = Path(self.run_root)


def shift_seeds(cfg: ExperimentConfig, shift: int, chip_shift: int | None = None) -> Any:
    """``cfg`` with baseline, method and evaluation seeds + ``shift``, chips + ``chip_shift``.

    ``chip_shift`` defaults to ``shift``.  A run folder's ``config.json`` holds the config
    as given and its ``run.json`` the offset and the shifted seeds, so a resume under
    another offset is refused.
    """
    chip_shift = shift if chip_shift is None else chip_shift
    if shift == 0 and chip_shift == 0:
        return cfg
    e, g, ev, c = cfg.experiment, cfg.ga, cfg.evaluation, cfg.chip
    return cfg.model_copy(
        update={
            "experiment": e.model_copy(update={"seed": e.seed + shift}),
            "ga": g.model_copy(update={"seed": g.seed + shift}),
            "evaluation": ev.model_copy(update={"seed": ev.seed + shift}),
            "chip": c.model_copy(
                update={
                    "chip_seed": c.chip_seed + chip_shift,
                    "transfer_chip_seeds": [s + chip_shift for s in c.transfer_chip_seeds],
                }
            ),
        }
    )


def replicate_config(cfg: ExperimentConfig, replicate: int, *, vary_chips: bool) -> Any:
    """Replicate ``replicate`` of ``cfg``: its own baseline, method and evaluation seeds.

    The chips stay the same unless ``vary_chips`` (then ``replicate * CHIP_STRIDE`` is
    added to every chip seed); the name gets a ``-rNN`` suffix.
    """
    out = shift_seeds(cfg, replicate, replicate * CHIP_STRIDE if vary_chips else 0)
    name = f"{cfg.experiment.name}-r{replicate:02d}"
    return out.model_copy(update={"experiment": out.experiment.model_copy(update={"name": name})})
