"""``memsim inspect CHECKPOINT --profile P``: device-level figures of one chip.

Writes to ``--out`` (default ``runs/inspect/<checkpoint>-<profile>``): a conductance
histogram per layer (targets against programmed), a fault map per tile of each layer,
G(t) drift curves of sample devices at the ``--drift`` times (``--times`` is the same
option), and the tile utilization.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lab.cli.common import as_cli_errors, drift_times, flatten_drift
from lab.hardware import HardwareCliError, add_chip_arguments, load_chip

DEFAULT_TIMES = [1.0, 60.0, 3600.0, 86400.0, 2592000.0]
"""Drift times of the G(t) curves without ``--drift``: 1 s, 1 min, 1 h, 1 d, 30 d."""


def register(sub: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p = sub.add_parser(
        "inspect",
        help="device-level figures: conductances, faults per tile, drift, tile use",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_chip_arguments(p)
    p.add_argument("--out", default=None, metavar="DIR", help="folder for the PNG files")
    p.add_argument(
        "--drift",
        "--times",
        dest="drift",
        type=drift_times,
        nargs="+",
        default=None,
        metavar="T",
        help="drift times of the G(t) curves: 1h 1d 1y or seconds, comma-separated too "
        "(default: 1s 1min 1h 1d 30d); --times is the same option",
    )
    p.add_argument(
        "--max-tiles", type=int, default=16, help="tiles per layer in the fault maps (default 16)"
    )
    p.add_argument("--run-root", default="runs", help="root of the default --out")
    p.set_defaults(func=as_cli_errors(run))


def run(args: argparse.Namespace) -> int:
    """Build the chip and write the figures."""
    from lab.plots.inspect import inspect_chip

    times = flatten_drift(args.drift) or list(DEFAULT_TIMES)
    if args.max_tiles < 1:
        raise HardwareCliError(f"--max-tiles must be >= 1, got {args.max_tiles}")
    chip, _ = load_chip(
        args.checkpoint,
        args.profile,
        seed=args.seed,
        chip_seed=args.chip_seed,
        root=args.data_root,
        conductances=args.conductances,
        calibrate=False,
    )
    prof = chip.memsim_profile
    out = (
        Path(args.out)
        if args.out
        else (Path(args.run_root) / "inspect" / f"{Path(args.checkpoint).stem}-{prof.name}")
    )
    for path in inspect_chip(chip, out, times=times, max_tiles=args.max_tiles):
        print(f"wrote {path}")
    return 0
