"""``memsim train-baseline TASK [--scale quick|paper]``: delegates to :mod:`models.baselines`."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .cli_common import DEFAULT_RUN_ROOT, CliError

TASK_HELP = """\
tasks: protonet-mnist (2-bit, 5 %), protonet-fashion-mnist (3-bit, 20 %),
mobilenetv2-cifar10 (2-bit, 5 %), micronet-cifar100 (ternary, 5 %), protonet-digits
(2-bit, 5 %, bundled data). The checkpoint goes to <out>/<task>-<scale>-seed<k>.pt, where
'memsim ga' experiments with data.baseline_holdout=false reuse it.
"""


def register(sub: Any) -> None:
    """Add ``train-baseline`` (the options of ``python -m models.baselines``)."""
    from models.baselines import add_arguments

    p = sub.add_parser(
        "train-baseline",
        help="train a paper baseline with noise-aware QAT and score it on simulated chips",
        description="Train one of the paper's baselines (models.baselines) and checkpoint it.",
        epilog=TASK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(out=f"{DEFAULT_RUN_ROOT}/baselines", func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, evaluate, checkpoint; print the metrics JSON."""
    from ga.experiment import resolve_data_root
    from models.baselines import run_from_args
    from models.data import DatasetNotFoundError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.data_root = resolve_data_root(args.data_root)
    try:
        return run_from_args(args)
    except DatasetNotFoundError as exc:
        raise CliError(str(exc)) from exc
