"""``memsim sweep grid CONFIG --grid KEY=V1,V2,... [--seeds N]``: a grid study."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import CliError, add_run_options, positive_int, run_context, user_errors
from .executor_options import EXECUTOR_EPILOG, add_executor_options, executor_spec

EPILOG = """\
Keys of a device profile (faults.*, programming_noise.*, read_noise.*, adc.*, ...) change
the experiment's chip profile; keys of the experiment config (ga.*, chip.*, fitness.*, ...)
override the config like --set. Writes grid.json, grid.csv (one row per cell and seed,
every method's test accuracy) and grid-<key>.png into the output folder; --resume OUT
skips the runs that finished and continues the others.

Example:
  memsim sweep grid experiments/protonet_digits.toml --scale quick \\
      --grid faults.stuck_at_gmax_rate=0,0.02,0.05,0.1 --grid ga.generations=5,10 \\
      --seeds 3 --executor process --workers 2
"""


def register(sub: Any) -> None:
    """Add ``grid`` to the ``sweep`` subcommand's subparsers."""
    p = sub.add_parser(
        "grid",
        help="any experiment config over a grid of values, with seed replicates",
        description="Run an experiment config for every cell of a grid of config or "
        "device-profile values, several independent replicates per cell (each with its own "
        "baseline training seed, method seeds and test draws), as independent runs.",
        epilog=EPILOG + "\n" + EXECUTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="experiment TOML file every cell starts from")
    p.add_argument(
        "--grid",
        dest="axes",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="one swept key and its values (repeatable: the cells are the product)",
    )
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        metavar="N",
        help="independent replicates per cell, as --replicates of memsim ga: every seed "
        "(baseline, methods, test draws) + 0..N-1 (default 1)",
    )
    p.add_argument(
        "--vary-chips",
        action="store_true",
        help="replicates also draw new chip instances (chip seeds + 1000 r)",
    )
    p.add_argument(
        "--scale",
        choices=("quick", "medium", "paper"),
        default=None,
        help="apply the config's [quick] or [medium] table (quick, medium) or neither (paper)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value in every cell (repeatable)",
    )
    p.add_argument("--out", default=None, help="parent of the new grid folder")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue an earlier grid folder")
    add_run_options(p)
    add_executor_options(p)
    p.set_defaults(func=run, supports_device=True)


def run(args: argparse.Namespace) -> int:
    """Run or resume the grid; print where the CSV and the plots are."""
    from lab.studies.sweep_grid import GRID_CSV, parse_axis, run_grid

    spec = executor_spec(args)
    with user_errors():
        axes = [parse_axis(a) for a in args.axes]
        if not axes:
            raise CliError("give at least one --grid KEY=V1,V2,...")
        if not Path(args.config).is_file():
            raise CliError(f"{args.config}: config file not found")
        state, out = run_grid(
            args.config,
            axes,
            run_context(args, executor=spec),
            seeds=args.seeds,
            vary_chips=args.vary_chips,
            scale=args.scale,
            overrides=args.overrides,
            out=args.out,
            resume_dir=args.resume,
        )
    runs = state["runs"]
    failed = [r for r in runs if r["status"] != "complete"]
    print(f"{len(runs) - len(failed)} of {len(runs)} runs complete")
    print(f"  {out / GRID_CSV}")
    for png in sorted(out.glob("grid-*.png")):
        print(f"  {png}")
    print(f"grid folder: {out}  (wall time {state['wall_time_s'] / 60:.1f} min)")
    return 1 if failed else 0
