"""``memsim cost CHECKPOINT --profile P``: energy, latency and area next to the model.

The checkpoint's model is converted onto a chip of the profile (seed ``--seed``), its
calibrated converters are set from 256 training images, and one forward pass of
``--images`` test images is measured by :func:`memsim.cost_report`.  The per-layer
table is printed; ``cost.csv``, ``cost.json`` and ``cost_energy.png`` (a stacked bar
of each layer's energy terms) are written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lab.cli.common import as_cli_errors


class CostCommandError(ValueError):
    """A user error of ``memsim cost`` (bad argument, profile or data)."""


def register(sub: Any) -> None:
    """Add the ``cost`` subcommand to an argparse subparsers object."""
    p = sub.add_parser(
        "cost",
        help="energy, latency and area per layer of a checkpoint on a profile's tiles",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="model checkpoint (models.checkpoint format)")
    p.add_argument("--profile", required=True, help="shipped profile name or JSON path")
    p.add_argument(
        "--data", default=None, help="dataset name (default: the one in the checkpoint meta)"
    )
    p.add_argument(
        "--images", type=int, default=64, help="test images measured (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="programming seed (default 0)")
    p.add_argument("--out", default=None, help="output folder (default: runs/cost/<name>)")
    p.set_defaults(func=as_cli_errors(run))


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit status (0)."""
    import memsim
    from lab.plots.cost import plot_energy_breakdown
    from models.checkpoint import load_checkpoint
    from models.data import DatasetNotFoundError, calibration_images, load_dataset

    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt}: checkpoint file not found")
    if args.images < 1:
        raise CostCommandError(f"--images must be >= 1, got {args.images}")
    model, meta = load_checkpoint(ckpt)
    dataset = args.data or meta.get("dataset")
    if not dataset:
        raise CostCommandError(f"{ckpt}: the checkpoint meta names no dataset; pass --data")
    try:
        prof = memsim.load_profile(args.profile)
        train, test = load_dataset(dataset, root=args.data_root)
    except (memsim.ProfileError, DatasetNotFoundError) as exc:
        raise CostCommandError(str(exc)) from exc
    chip = memsim.convert(model, prof, seed=args.seed)
    if memsim.needs_calibration(chip):
        memsim.calibrate(chip, calibration_images(train))
    chip.eval()
    x = test.images[: args.images]
    try:
        report = memsim.cost_report(chip, x)
    except memsim.CostModelError as exc:
        raise CostCommandError(str(exc)) from exc
    out = Path(args.out) if args.out else Path("runs") / "cost" / f"{ckpt.stem}_{prof.name}"
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "checkpoint": str(ckpt),
        "dataset": dataset,
        "seed": args.seed,
        "profile_json": prof.model_dump(mode="json"),
        **report.to_dict(),
    }
    (out / "cost.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out / "cost.csv").write_text(report.to_csv(), encoding="utf-8")
    plot_energy_breakdown(report, out / "cost_energy.png")
    print(report)
    print(f"wrote {out / 'cost.csv'}, {out / 'cost.json'}, {out / 'cost_energy.png'}")
    return 0
