"""The ``memsim`` command line.

Subcommands (``memsim <command> --help`` for each)::

    memsim profiles list | show NAME | validate FILE...
    memsim train-baseline TASK [--scale quick|paper]
    memsim evaluate CHECKPOINT --profile NAME|FILE [--drift 1,3600,86400] [--draws N]
    memsim ga CONFIG.toml [--scale quick|paper] [--set section.key=value ...] [--resume [DIR]]
    memsim reproduce table1 [--scale quick|paper]
    memsim sweep figures [--scale quick|paper]
    memsim compare CHECKPOINT --profile NAME ...      (needs aihwkit)
    memsim demo

Each subcommand lives in its own ``memsim/cli_*.py`` module and imports the heavy
packages (torch, models, ga) only when it runs, so ``memsim --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import cli_compare, cli_evaluate, cli_ga, cli_profiles, cli_reproduce, cli_train
from .cli_common import CliError

EPILOG = """\
Data: datasets are read from --data-root, $MEMSIM_DATA, shared/data next to the checkout,
or the download cache (~/.cache/memsim); 'digits' is bundled with scikit-learn.
Runs are written under --run-root (default runs/); an existing run folder is never
overwritten.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the ``memsim`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="memsim",
        description="Memristor crossbar simulator and GA-based hardware-aware training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--threads",
        dest="global_threads",
        type=int,
        default=None,
        metavar="N",
        help="torch CPU threads (default: torch's choice)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_profiles.register(sub)
    cli_train.register(sub)
    cli_evaluate.register(sub)
    cli_ga.register_ga(sub)
    cli_reproduce.register_reproduce(sub)
    cli_reproduce.register_sweep(sub)
    cli_compare.register(sub)
    cli_ga.register_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed check, 2 error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.global_threads:
        import torch

        torch.set_num_threads(args.global_threads)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"memsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
