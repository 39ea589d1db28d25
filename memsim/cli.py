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

Each subcommand lives in its own ``memsim/cli_*.py`` module and imports ``ga`` and
``models`` only when it runs.
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


def _compare_split(argv: list[str]) -> int | None:
    """Index of a ``compare`` command word, or None.

    ``memsim compare``'s own options (``--help`` included) belong to ``memsim.compare``'s
    parser; argparse cannot pass options through a subparser untouched, so the words
    after ``compare`` are split off before parsing.
    """
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--threads":
            i += 2
        elif word.startswith("--threads="):
            i += 1
        elif word.startswith("-"):
            return None
        else:
            return i if word == "compare" else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed check, 2 error)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    split = _compare_split(words)
    if split is None:
        args = parser.parse_args(words)
    else:
        args = parser.parse_args(words[: split + 1])
        args.rest = words[split + 1 :]
    if args.global_threads:
        import torch

        torch.set_num_threads(args.global_threads)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"memsim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # output piped into e.g. `head`: stop quietly, like other Unix tools
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"memsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
