"""The one error boundary of the ``memsim`` command line.

Every subcommand runs inside :func:`lab.cli.main`, which turns the project's own errors
and the usual file-system errors into one line on stderr::

    memsim <command>: error: <what, which file or option, what is allowed>

and exit status 2.  ``--debug`` re-raises instead, so the traceback is shown.  Anything
else (a bug) keeps its traceback: hiding it would hide the bug.
"""

from __future__ import annotations

import errno
import os
from typing import Any


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception classes that mean "the input is wrong", not "the code is wrong"."""
    from ga.checkpoint import CheckpointCorruptError, CheckpointMismatchError
    from lab.experiment.config import ConfigError
    from lab.experiment.runner import ExperimentError
    from lab.hardware import HardwareCliError
    from memsim.profiles import ProfileError
    from memsim.resources import ChipMemoryError, ChipTimeError
    from models.baselines import RecipeError
    from models.checkpoint import CheckpointError
    from models.data import DatasetFileError, DatasetNotFoundError

    from .common import CliError

    return (
        CliError,
        ConfigError,
        ExperimentError,
        ProfileError,
        ChipMemoryError,
        ChipTimeError,
        HardwareCliError,
        RecipeError,
        DatasetNotFoundError,
        DatasetFileError,
        CheckpointError,
        CheckpointCorruptError,
        CheckpointMismatchError,
        OSError,
        UnicodeDecodeError,
    )


_OS_HINTS = {
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, expected a file",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EACCES: "permission denied (read-only or not yours)",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EEXIST: "already exists",
    errno.ENOSPC: "no space left on the device",
}


def _os_message(exc: OSError) -> str:
    # project code raises OSError subclasses with a whole sentence as the only argument
    if exc.errno is None or len(exc.args) < 2:
        return str(exc)
    what = _OS_HINTS.get(exc.errno, exc.strerror or str(exc))
    names = [n for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(os.fsdecode(n) for n in names)
    return f"{where}: {what}" if where else what


def format_user_error(exc: BaseException) -> str:
    """The message part of the one error line for ``exc``."""
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError):
        return _os_message(exc)
    return str(exc)


def error_line(command: str, exc: BaseException) -> str:
    """``memsim <command>: error: <message>``."""
    text = format_user_error(exc).strip() or type(exc).__name__
    return f"memsim {command}: error: {text}"


def command_name(args: Any) -> str:
    """``ga`` or, for the two-level commands, ``reproduce table1``."""
    name = str(getattr(args, "command", "") or "")
    what = getattr(args, "what", None)
    return f"{name} {what}" if what else name


def check_output_folder(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written.

    Walks up to the first part of ``path`` that exists: it must be a folder, and
    writable.  Raises :class:`~lab.cli.common.CliError` naming ``option``.
    """
    from pathlib import Path

    from .common import CliError

    target = Path(path)
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "is a file" if probe == target else f"cannot be created: {probe} is a file"
        raise CliError(f"{option} {path}: {what}; expected a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise CliError(f"{option} {path}: {probe} is not writable (read-only or not yours)")
