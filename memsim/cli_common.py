"""Helpers shared by the ``memsim`` subcommands."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

DEFAULT_RUN_ROOT = "runs"


class CliError(Exception):
    """A user-facing error: printed as ``memsim CMD: error: ...``, exit status 2."""


def add_run_options(parser: argparse.ArgumentParser, *, progress: bool = True) -> None:
    """Add ``--run-root``, ``--data-root`` and (optionally) ``--no-progress``."""
    parser.add_argument(
        "--run-root",
        default=DEFAULT_RUN_ROOT,
        help="root of run folders and of baselines/ (default: %(default)s)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder with <dataset>.npz (default: $MEMSIM_DATA, shared/data, cache)",
    )
    if progress:
        parser.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            help="no progress bars",
        )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the expected failures of a run into :class:`CliError` (no traceback)."""
    from ga.experiment import ExperimentError
    from ga.experiment_config import ConfigError
    from memsim.profiles import ProfileError
    from models.data import DatasetNotFoundError

    try:
        yield
    except (ConfigError, ExperimentError, ProfileError, DatasetNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        # refusing a resume is a user error, whatever module raised it
        from ga.checkpoint import CheckpointMismatchError

        if isinstance(exc, CheckpointMismatchError):
            raise CliError(str(exc)) from exc
        raise
