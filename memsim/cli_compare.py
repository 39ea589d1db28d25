"""``memsim compare``: memsim vs IBM aihwkit on one model (delegates to :mod:`memsim.compare`).

aihwkit is an optional dependency (``pip install 'memsim[aihwkit]'``).  The module is
imported only when the subcommand runs, and a missing aihwkit is reported as such
before any work starts.  ``memsim compare --help`` works without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from .cli_common import CliError

INSTALL_HINT = (
    "memsim compare needs IBM aihwkit, which is not installed in this environment; "
    "install it with: pip install 'memsim[aihwkit]'  (aihwkit==1.1.0)"
)


def register(sub: Any) -> None:
    """Add the ``compare`` subcommand; its own options are parsed by memsim.compare."""
    p = sub.add_parser(
        "compare",
        help="compare memsim with IBM aihwkit on a checkpoint (needs aihwkit)",
        description="Side-by-side memsim vs aihwkit: accuracy, output error and time per drift "
        "time. Options: memsim compare CHECKPOINT --profile NAME [--drift 1h 1d] [--draws N] "
        "[--data mnist] [--limit N] [--out DIR] [--no-align]. " + INSTALL_HINT.split(";")[0],
        add_help=False,
    )
    # the words after `compare` are split off by memsim.cli.main and put in args.rest
    p.set_defaults(rest=[])
    p.set_defaults(func=cmd_compare)


def aihwkit_available() -> bool:
    """Whether the ``aihwkit`` package can be imported."""
    return importlib.util.find_spec("aihwkit") is not None


def cmd_compare(args: argparse.Namespace) -> int:
    """Check for aihwkit, then hand the arguments to ``memsim.compare.main``."""
    rest = list(args.rest)
    wants_help = any(a in ("-h", "--help") for a in rest)
    if not wants_help and not aihwkit_available():
        raise CliError(INSTALL_HINT)
    try:
        from memsim import compare
    except ImportError as exc:
        raise CliError(f"memsim.compare cannot be imported: {exc}") from exc
    from memsim.profiles import ProfileError

    try:
        return int(compare.main(rest) or 0)
    except (FileNotFoundError, ProfileError) as exc:
        raise CliError(str(exc)) from exc
    except SystemExit as exc:  # argparse inside compare.main: --help (0) or usage (2)
        if exc.code is None or isinstance(exc.code, int):
            return int(exc.code or 0)
        print(exc.code, file=sys.stderr)
        return 2
