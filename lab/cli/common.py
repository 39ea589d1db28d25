"""Helpers shared by the ``memsim`` subcommands: errors, global options, ``--drift``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

DEFAULT_RUN_ROOT = "runs"


class CliError(Exception):
    """A user-facing error: printed as ``memsim CMD: error: ...``, exit status 2."""


class Parser(argparse.ArgumentParser):
    """The parser class of ``memsim`` and of every subcommand: no abbreviated options.

    With argparse's default ``allow_abbrev=True``, ``memsim evaluate CKPT --data mnist``
    was read as ``--data-root mnist``; an option must be spelled out.  Subparsers made
    with ``add_subparsers().add_parser`` get this class (argparse uses the class of the
    parent parser), so one class covers every level.
    """

    def __init__(self, *args: object, allow_abbrev: bool = False, **kwargs: object) -> None:
        """``argparse.ArgumentParser`` with ``allow_abbrev`` off by default."""
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)  # type: ignore[arg-type]


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def device_name(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` (argparse type); CUDA must be available."""
    import torch

    text = text.strip().lower()
    if text == "cpu":
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text}: CUDA is not available on this machine (torch {torch.__version__}); "
                "use --device cpu"
            )
        index = int(text[5:]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
        return text
    raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N, got {text!r}")


def drift_times(text: str) -> list[float]:
    """``--drift`` values: durations (``1h``, ``1d``, ``1y``) or seconds, comma-separated too.

    The one ``--drift`` syntax of every command: ``--drift 1h 1d`` and
    ``--drift 3600,86400`` mean the same.
    """
    from lab.compare import parse_duration

    try:
        times = [parse_duration(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not times or not all(math.isfinite(t) for t in times):
        raise argparse.ArgumentTypeError(f"--drift expects times like 1h 1d or seconds: {text!r}")
    return times


def add_checkpoint_arguments(parser: argparse.ArgumentParser, *, drift_default: str) -> None:
    """``CHECKPOINT``, ``--profile`` and the one ``--drift`` option of the chip commands."""
    parser.add_argument("checkpoint", help="model checkpoint (models.checkpoint format)")
    parser.add_argument("--profile", required=True, help="shipped profile name or JSON path")
    parser.add_argument(
        "--drift",
        type=drift_times,
        nargs="+",
        default=None,
        metavar="T",
        help="times after programming: 1h 1d 1y or seconds, comma-separated too "
        f"(default: {drift_default})",
    )


def flatten_drift(values: list[list[float]] | None) -> list[float] | None:
    """Sorted, de-duplicated drift times from repeated / comma-separated ``--drift`` values."""
    if not values:
        return None
    return sorted({t for group in values for t in group})


def add_global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every subcommand accepts, before or after its name.

    ``suppress`` (for the subcommands' copies) keeps a value given before the subcommand
    from being overwritten by the subcommand's default.
    """

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("global options (any subcommand)")
    g.add_argument(
        "--threads",
        type=positive_int,
        default=default(None),
        metavar="N",
        help="torch CPU threads (default: torch's choice)",
    )
    g.add_argument(
        "--data-root",
        default=default(None),
        metavar="DIR",
        help="folder with <dataset>.npz (default: $MEMSIM_DATA, shared/data, cache)",
    )
    g.add_argument(
        "--device",
        type=device_name,
        default=default("cpu"),
        help="where the models and simulated chips run: cpu, cuda or cuda:N (default cpu)",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show the traceback of an error instead of the one-line message",
    )
    g.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=default(True),
        help="no progress bars",
    )
    # its own destination per level: a subparser fills a fresh namespace and copies it
    # over the root's, which would drop the modules given before the subcommand
    g.add_argument(
        "--import",
        dest="imports_after" if suppress else "imports",
        action="append",
        default=default([]),
        metavar="MODULE",
        help="import MODULE (a module name, found from the current folder too, or a .py "
        "file) before the command runs, e.g. one that calls models.register_architecture; "
        "repeatable",
    )


def check_data_root(data_root: str | None) -> None:
    """Refuse a ``--data-root`` that is not an existing folder (:class:`CliError`)."""
    if data_root is None:
        return
    path = Path(data_root)
    if path.is_dir():
        return
    what = "is a file" if path.exists() else "no such folder"
    raise CliError(f"--data-root {data_root}: {what}; expected a folder with <dataset>.npz files")


def import_user_modules(specs: Sequence[str]) -> None:
    """Import each ``--import`` MODULE: a module name or the path of a ``.py`` file.

    A module name is looked up from the current folder first (as ``python -m`` does),
    then on ``sys.path``.

    Raises:
        CliError: A module that is not found, or whose import raises; one line.

    """
    for spec in specs:
        if spec.endswith(".py") or os.sep in spec:
            _import_file(spec)
            continue
        cwd = os.getcwd()
        added = cwd not in sys.path and "" not in sys.path
        if added:
            sys.path.insert(0, cwd)
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (spec == exc.name or spec.startswith(exc.name + ".")):
                raise CliError(_import_failed(spec, exc)) from exc
            raise CliError(
                f"--import {spec}: no module named {exc.name!r} in the current folder or on "
                "sys.path; give an importable module name or the path of a .py file"
            ) from exc
        except Exception as exc:
            raise CliError(_import_failed(spec, exc)) from exc
        finally:
            if added:
                sys.path.remove(cwd)


def _import_file(spec: str) -> None:
    path = Path(spec)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        raise CliError(f"--import {spec}: {what}; expected a module name or a .py file")
    name = path.stem
    if not name.isidentifier():
        raise CliError(f"--import {spec}: {name!r} is not a valid module name")
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CliError(f"--import {spec}: not a Python source file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise CliError(_import_failed(spec, exc)) from exc


def _import_failed(spec: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return (
        f"--import {spec}: importing it raised {type(exc).__name__}"
        + (f": {first}" if first else "")
        + " (--debug shows the traceback)"
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--run-root``, the root of run folders and of ``baselines/``."""
    parser.add_argument(
        "--run-root",
        default=DEFAULT_RUN_ROOT,
        help="root of run folders and of baselines/ (default: %(default)s)",
    )


def add_track_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--track KIND:DIR``: report training scalars to a tracker (off by default)."""
    from lab.tracking import parse_track

    parser.add_argument(
        "--track",
        type=parse_track,
        default=None,
        metavar="KIND:DIR",
        help="report each GA generation's fitness (ga/*) and each training epoch's loss "
        "(train/*) to TensorBoard event files under DIR/run-NN (KIND: tensorboard; needs "
        "the 'tracking' extra); view with 'tensorboard --logdir DIR'. Work that an "
        "--executor runs in other processes is not tracked. Default: off, nothing written",
    )


@contextlib.contextmanager
def tracked(args: argparse.Namespace) -> Iterator[None]:
    """Make the ``--track`` tracker active for the loops run inside, then close it."""
    from lab.tracking import make_tracker
    from memsim.tracking import tracking

    try:
        tracker = make_tracker(getattr(args, "track", None))
    except ImportError as exc:
        raise CliError(str(exc)) from None
    if tracker is None:
        yield
        return
    try:
        with tracking(tracker):
            yield
    finally:
        tracker.close()
        if tracker.run_dirs:
            print(f"tracking: {', '.join(map(str, tracker.run_dirs))}", file=sys.stderr)


Command = Callable[[argparse.Namespace], int]


def as_cli_errors(func: Command) -> Command:
    """Report a subcommand's ``ValueError`` and missing files as one-line :class:`CliError`."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from exc

    run.__doc__ = func.__doc__
    return run


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the expected failures of a run into :class:`CliError` (no traceback)."""
    from ga.checkpoint import CheckpointMismatchError
    from lab.executors import ExecutorError
    from lab.experiment.baseline import BaselineMismatchError
    from lab.experiment.config import ConfigError
    from lab.experiment.runner import ExperimentError
    from memsim.profiles import ProfileError
    from models.checkpoint import CheckpointError
    from models.data import DatasetNotFoundError

    try:
        yield
    except (
        ConfigError,
        ExperimentError,
        ProfileError,
        DatasetNotFoundError,
        CheckpointError,
        CheckpointMismatchError,
        BaselineMismatchError,
        ExecutorError,
    ) as exc:
        raise CliError(str(exc)) from exc


def run_context(
    args: argparse.Namespace, *, executor: object = None, run_root: object = None
) -> object:
    """The :class:`lab.experiment.context.RunContext` of a run command's global and run options.

    Progress bars only on a terminal (logs get one line per generation instead); status
    lines on stderr.
    """
    import sys

    from lab.experiment.context import RunContext

    return RunContext(
        run_root=run_root if run_root is not None else args.run_root,
        data_root=args.data_root,
        progress=args.progress and sys.stderr.isatty(),
        echo=lambda s: print(s, file=sys.stderr, flush=True),
        executor=executor,
        device=args.device,
    )
