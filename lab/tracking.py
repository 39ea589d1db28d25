"""TensorBoard tracking of GA generations and training epochs (``--track tensorboard:DIR``).

:class:`TensorBoardTracker` implements :class:`memsim.tracking.Tracker` with
``torch.utils.tensorboard.SummaryWriter`` (the ``tracking`` extra installs tensorboard).
Open the folder with ``tensorboard --logdir DIR``.

A run may train several things one after another (a hold-out baseline, then the GA; or
one GA per replicate), each counting its steps from 0.  So that their curves do not
overwrite each other, a series whose step does not advance starts a new TensorBoard run:
``DIR/run-00``, ``DIR/run-01``, ... (TensorBoard lists them side by side).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

TRACK_KINDS = ("tensorboard",)
"""What ``--track KIND:DIR`` accepts."""


class TensorBoardTracker:
    """Scalars to TensorBoard event files under ``log_dir/run-NN``.

    Nothing is written (no folder, no file) until the first scalar arrives.
    """

    def __init__(self, log_dir: str | Path) -> None:
        """Remember the folder; the writer opens at the first scalar.

        Args:
            log_dir: Parent folder of the ``run-NN`` event folders.

        Raises:
            ImportError: tensorboard is not installed (``pip install memsim[tracking]``).

        """
        try:
            import tensorboard  # noqa: F401  (SummaryWriter needs it; fail before any work)
        except ImportError as exc:
            raise ImportError(
                "--track tensorboard needs the tensorboard package: "
                "pip install 'memsim[tracking]' (or pip install tensorboard)"
            ) from exc
        self.log_dir = Path(log_dir)
        self.run_dirs: list[Path] = []
        self._writer: Any = None
        self._last: dict[str, float] = {}

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        if self._writer is not None:
            self._writer.close()
        taken = {p.name for p in self.log_dir.glob("run-*")} if self.log_dir.is_dir() else set()
        k = 0
        while f"run-{k:02d}" in taken:  # a second command into the same DIR adds runs
            k += 1
        path = self.log_dir / f"run-{k:02d}"
        self.run_dirs.append(path)
        self._writer = SummaryWriter(log_dir=str(path))
        self._last = {}

    def log_scalar(self, name: str, value: float, step: int) -> None:
        """Write ``value`` at ``step``; a step that does not advance opens the next run."""
        if self._writer is None or step <= self._last.get(name, -math.inf):
            self._open()
        self._last[name] = step
        self._writer.add_scalar(name, float(value), int(step))

    def close(self) -> None:
        """Flush and close the event file (safe to call twice)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_track(spec: str) -> tuple[str, Path]:
    """``"tensorboard:DIR"`` -> ``("tensorboard", Path(DIR))`` (argparse type).

    Raises:
        argparse.ArgumentTypeError: Unknown kind or no folder.

    """
    kind, sep, folder = spec.partition(":")
    if not sep or kind not in TRACK_KINDS or not folder.strip():
        raise argparse.ArgumentTypeError(
            f"expected KIND:DIR with KIND one of {', '.join(TRACK_KINDS)} "
            f"(e.g. tensorboard:runs/tb), got {spec!r}"
        )
    return kind, Path(folder)


def make_tracker(spec: tuple[str, Path] | None) -> TensorBoardTracker | None:
    """The tracker a parsed ``--track`` asks for (None when the option is absent)."""
    if spec is None:
        return None
    _, folder = spec
    return TensorBoardTracker(folder)
