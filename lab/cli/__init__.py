"""The ``memsim`` command line: one argparse front end for every subcommand.

Subcommands (``memsim <command> --help`` for each)::

    memsim profiles list | show NAME | validate FILE...
    memsim train-baseline TASK [--scale quick|paper]
    memsim evaluate CHECKPOINT --profile NAME|FILE [--drift 1h 1d] [--draws N]
    memsim compare CHECKPOINT --profile NAME [--drift 1h 1d] [--draws N]   (needs aihwkit)
    memsim cost CHECKPOINT --profile NAME [--data NAME]       energy, latency and area
    memsim export CHECKPOINT --profile NAME --out DIR        conductance maps to program
    memsim inspect CHECKPOINT --profile NAME                 device-level plots
    memsim profiles fit MEASUREMENTS.csv --base NAME --out FILE.json
    memsim ga CONFIG.toml [--scale quick|paper] [--set section.key=value ...] [--resume [DIR]]
    memsim reproduce table1 [--scale quick|paper]
    memsim sweep figures [--scale quick|paper]
    memsim sweep grid CONFIG.toml --grid KEY=V1,V2,... [--seeds N]
    memsim demo
    memsim --version

``--threads``, ``--data-root``, ``--device``, ``--no-progress``, ``--debug`` and
``--import MODULE`` are global: they work on every subcommand, before or after its name.
Options are never abbreviated (``--data`` is not ``--data-root``).  Wrong input and file errors
print one line ``memsim <command>: error: ...`` and exit 2 (:mod:`lab.cli.errors`);
``--debug`` shows the traceback instead.  The GA and sweep commands also take
``--executor serial|process|ray``, ``--workers``, ``--address`` and ``--gpus-per-worker``
(:mod:`lab.cli.executor_options`).  Each subcommand lives in its own module of
this package and imports the heavy packages only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import compare as cli_compare
from . import cost as cli_cost
from . import evaluate as cli_evaluate
from . import export as cli_export
from . import ga as cli_ga
from . import inspect as cli_inspect
from . import profiles as cli_profiles
from . import reproduce as cli_reproduce
from . import train as cli_train
from .common import Parser, add_global_options, check_data_root, import_user_modules
from .errors import command_name, error_line, user_error_types

EPILOG = """\
Data: datasets are read from --data-root, $MEMSIM_DATA, shared/data next to the checkout,
or the download cache (~/.cache/memsim); 'digits' is bundled with scikit-learn.
Runs are written under --run-root (default runs/); an existing run folder is never
overwritten. --out is always the folder a command writes into.
"""


def version() -> str:
    """The installed memsim version, or the one in ``pyproject.toml`` of a plain checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("memsim")
    except PackageNotFoundError:
        import re
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            text = pyproject.read_text(encoding="utf-8")
        except OSError:
            return "unknown"
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
        return match.group(1) if match else "unknown"


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` that has no subcommands of its own."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    leaves: list[argparse.ArgumentParser] = []
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            leaves += _leaf_parsers(child)
    return leaves


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command ``args`` ran: ``memsim evaluate``, ``memsim sweep grid``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _command_parser(action.choices[chosen], args)
    return parser


def _unrecognized(
    parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]
) -> str:
    """One error line for arguments no parser took, with the option an abbreviation meant."""
    line = f"memsim {command_name(args)}: error: unrecognized arguments: {' '.join(extra)}"
    known = sorted({o for a in _command_parser(parser, args)._actions for o in a.option_strings})
    for word in extra:
        name = word.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        meant = [o for o in known if o.startswith(name)]
        if meant:
            return f"{line}; options are never abbreviated: did you mean {' or '.join(meant)}?"
    return line


def build_parser() -> argparse.ArgumentParser:
    """Return the ``memsim`` argument parser with every subcommand."""
    parser = Parser(
        prog="memsim",
        description="Memristor crossbar simulator and GA-based hardware-aware training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"memsim {version()}", help="print the version"
    )
    add_global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cli_profiles.register(sub)
    cli_train.register(sub)
    cli_evaluate.register(sub)
    cli_compare.register(sub)
    cli_cost.register(sub)
    cli_export.register(sub)
    cli_inspect.register(sub)
    cli_ga.register_ga(sub)
    cli_reproduce.register_reproduce(sub)
    cli_reproduce.register_sweep(sub)
    cli_ga.register_demo(sub)
    for leaf in _leaf_parsers(parser):
        if leaf is not parser:
            add_global_options(leaf, suppress=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed check, 2 error)."""
    parser = build_parser()
    command_line = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    args, extra = parser.parse_known_args(command_line)
    if extra:
        print(_unrecognized(parser, args, extra), file=sys.stderr)
        return 2
    args.command_line = command_line  # what a results file records as its command
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.device != "cpu" and not getattr(args, "supports_device", False):
        print(
            f"memsim {args.command}: error: --device {args.device} is not supported by this "
            "command; use --device cpu",
            file=sys.stderr,
        )
        return 2
    try:
        check_data_root(args.data_root)
        import_user_modules([*args.imports, *getattr(args, "imports_after", [])])
        return int(args.func(args) or 0)
    except BrokenPipeError:  # an OSError: handled before the error boundary below
        # output piped into e.g. `head`: stop quietly, like other Unix tools
        sys.stderr.close()
        return 0
    except user_error_types() as exc:
        if getattr(args, "debug", False):
            raise
        print(error_line(command_name(args), exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memsim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
