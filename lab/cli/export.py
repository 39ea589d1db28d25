"""``memsim export CHECKPOINT --profile P --out DIR``: the conductance map to program.

Converts the checkpoint's model onto a chip of profile P (seeds as ``memsim evaluate``),
calibrates its converters on the checkpoint dataset's calibration images, and writes
``DIR/chip.npz`` (schema ``memsim.conductance_map``) and ``DIR/chip.csv`` (one line per
weight cell: layer, tile, row, col, g_plus_uS, g_minus_uS, level_plus, level_minus).
``--quantity programmed`` writes the simulated state after programming instead of the
targets (a stand-in for a measurement).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lab.cli.common import as_cli_errors
from lab.hardware import HardwareCliError, add_chip_arguments, load_chip


def register(sub: Any) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="write a chip's target conductances per tile (.npz + CSV) for a test bench",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_chip_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write chip.npz/.csv")
    p.add_argument(
        "--quantity",
        choices=("target", "programmed"),
        default="target",
        help="targets to program (default) or the simulated programmed state",
    )
    p.add_argument("--no-csv", dest="csv", action="store_false", help="write only the .npz")
    p.add_argument("--force", action="store_true", help="overwrite an existing chip.npz/.csv")
    p.set_defaults(func=as_cli_errors(run))


def run(args: argparse.Namespace) -> int:
    """Export; print one line per layer and the files written."""
    import memsim

    out = Path(args.out)
    npz, csv = out / "chip.npz", out / "chip.csv"
    if not args.force:
        for f in (npz, csv) if args.csv else (npz,):
            if f.exists():
                raise HardwareCliError(f"{f} exists; pass --force to overwrite it")
    if args.quantity == "target" and args.conductances:
        raise HardwareCliError("--conductances only makes sense with --quantity programmed")
    chip, _ = load_chip(
        args.checkpoint,
        args.profile,
        seed=args.seed,
        chip_seed=args.chip_seed,
        root=args.data_root,
        conductances=args.conductances,
    )
    memsim.export_chip(chip, npz, quantity=args.quantity, csv_path=csv if args.csv else None)
    report = memsim.tile_report(chip)
    prof = chip.memsim_profile
    print(f"{args.checkpoint} on {prof.name} ({report.rows}x{report.cols} tiles):")
    for r in report.layers:
        layer = f"{r.name}.weight" if r.name else "weight"  # as in the map files
        print(f"  {layer:<28} {r.tiles:>5} tiles  {r.devices:>9} devices")
    print(f"  total {report.total_tiles} tiles, utilization {report.utilization:.1%}")
    print(f"wrote {npz}" + (f" and {csv}" if args.csv else ""))
    return 0
