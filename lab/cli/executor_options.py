"""``--executor``, ``--workers``, ``--address``, ``--gpus-per-worker`` of the GA/sweep commands."""

from __future__ import annotations

import argparse
import math
from typing import Any

from .common import CliError, positive_int

EXECUTOR_EPILOG = """\
Executors: --executor serial (default) runs everything in this process; process runs
--workers local processes; ray runs Ray workers on a local instance or, with --address
(default $RAY_ADDRESS; 'auto' = the cluster this node joined), on a cluster. Results are
the same under every executor and worker count.
"""


def non_negative_float(text: str) -> float:
    """A finite float >= 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Add the executor options to a subcommand that runs GA or sweep work."""
    g = parser.add_argument_group("executor (where GA members and independent runs execute)")
    g.add_argument(
        "--executor",
        choices=("serial", "process", "ray"),
        default="serial",
        help="serial: this process (default); process: local worker processes; ray: Ray",
    )
    g.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes / Ray workers (>= 1; default 2, serial: 1)",
    )
    g.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default $RAY_ADDRESS; "
        "without one a local Ray instance is started)",
    )
    g.add_argument(
        "--gpus-per-worker",
        type=non_negative_float,
        default=0.0,
        metavar="F",
        help="GPUs each Ray worker reserves, fractions allowed (default 0)",
    )


def executor_spec(args: argparse.Namespace) -> Any:
    """The :class:`lab.executors.ExecutorSpec` of parsed options.

    Workers run one torch thread each, or ``--threads`` when given.  With ``ray``, Ray is
    joined (or started) here, so that a bad ``--address`` fails within seconds.

    Raises:
        CliError: An option that does not fit the executor (e.g. ``--address`` with
            ``--executor process``).

    """
    from lab.executors import ExecutorError, ExecutorKind, ExecutorSpec, init_ray

    kind = getattr(args, "executor", "serial")
    workers = getattr(args, "workers", None)
    address = getattr(args, "address", None)
    gpus = getattr(args, "gpus_per_worker", 0.0)
    if kind == "serial" and workers not in (None, 1):
        raise CliError(f"--workers {workers} needs --executor process or ray")
    if kind != "ray" and address:
        raise CliError("--address is a Ray cluster address: use it with --executor ray")
    if kind != "ray" and gpus:
        raise CliError("--gpus-per-worker is a Ray resource request: use it with --executor ray")
    try:
        spec = ExecutorSpec(
            kind=kind,
            workers=workers or (1 if kind == "serial" else 2),
            address=address,
            gpus_per_worker=gpus,
            threads_per_worker=getattr(args, "threads", None) or 1,
        )
        if spec.kind is ExecutorKind.RAY:
            init_ray(spec)  # join or start Ray now: a bad address fails before any work
    except ExecutorError as exc:
        raise CliError(str(exc)) from exc
    return spec
