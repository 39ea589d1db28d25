"""``memsim evaluate CHECKPOINT --profile NAME|FILE``: accuracy on simulated chips vs drift.

For each draw ``i`` the checkpoint's model is converted onto a chip and programmed
with fresh noise (seed ``seed + i``).  Without ``--chip-seed`` every draw is a new chip
instance (chip seed ``seed + i``, as :func:`models.evaluate.evaluate_deployed`); with it,
every draw programs the same chip.  Calibrated converters are set from 256 training
images after programming.  The chip is then aged to each ``--drift`` time
(absolute seconds after programming) and scored on the test split.  ProtoNet
checkpoints use the nearest-prototype protocol with support sets from the training
split.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from .common import (
    CliError,
    add_run_options,
    drift_times,
    flatten_drift,
    positive_int,
    user_errors,
)


def register(sub: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a checkpoint on simulated chips, per drift time",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="model checkpoint (models.checkpoint format)")
    p.add_argument("--profile", required=True, help="shipped profile name or JSON path")
    p.add_argument(
        "--drift",
        type=drift_times,
        nargs="+",
        default=None,
        metavar="T",
        help="times after programming to score at: 1h 1d 1y or seconds, comma-separated too "
        "(default: right after programming)",
    )
    p.add_argument("--draws", type=positive_int, default=5, help="programming draws (default 5)")
    p.add_argument("--chip-seed", type=int, default=None, help="score one chip instance")
    p.add_argument("--seed", type=int, default=0, help="base seed of the draws (default 0)")
    p.add_argument(
        "--support-draws",
        type=positive_int,
        default=5,
        help="ProtoNet support sets per draw (default 5)",
    )
    p.add_argument(
        "--test-size", type=positive_int, default=None, help="stratified test subset (default: all)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: a new <run-root>/evaluate folder); a name ending in "
        ".json is the report file itself, with the plots beside it",
    )
    add_run_options(p)
    p.set_defaults(func=cmd_evaluate, supports_device=True)


def evaluate_checkpoint(
    checkpoint: str | Path,
    profile: Any,
    *,
    drift: list[float] | None,
    draws: int,
    chip_seed: int | None,
    seed: int,
    support_draws: int,
    test_size: int | None,
    data_root: str | None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a checkpoint; return a JSON-able dict with one entry per drift time.

    The model, data and chips live on ``device``; chips are the same as on the CPU
    (programming noise and faults are drawn on the CPU).
    """
    import torch

    import memsim
    from lab.scoring import digital_scorer, scoring_seed
    from models.checkpoint import load_checkpoint
    from models.data import calibration_images, load_dataset, resolve_data_root, stratified_subset
    from models.tasks import make_task

    model, meta = load_checkpoint(checkpoint)
    dataset = meta.get("dataset")
    if not dataset:
        raise CliError(f"{checkpoint}: the checkpoint meta names no dataset")
    prof = memsim.load_profile(profile)
    train, test = load_dataset(dataset, root=resolve_data_root(data_root))
    if test_size is not None:
        test = stratified_subset(test, test_size, seed)
    if device != "cpu":
        model, train, test = model.to(device), train.to(device), test.to(device)
    task = make_task(model)
    support = train if task.is_protonet else None
    digital = digital_scorer(task, test, support, seed=seed, support_draws=support_draws)(model)
    times: list[float | None] = [None] if not drift else list(drift)
    accs: dict[str, list[float]] = {_label(t): [] for t in times}
    for i in range(draws):
        cs = chip_seed if chip_seed is not None else seed + i
        chip = memsim.convert(model, prof, seed=seed + i, chip_seed=cs)
        if memsim.needs_calibration(chip):
            memsim.calibrate(chip, calibration_images(train))
        chip.eval()
        for t in times:
            if t is not None:
                memsim.drift(chip, t)
            gen = torch.Generator().manual_seed(scoring_seed(seed, i, 1))
            accs[_label(t)] += task.accuracies(chip, test, support, gen, support_draws)
    report = memsim.tile_report(memsim.convert(model, prof, seed=seed, chip_seed=seed))
    return {
        "checkpoint": str(checkpoint),
        "task": meta.get("task"),
        "dataset": dataset,
        "profile": prof.name,
        "profile_json": prof.model_dump(mode="json"),
        "draws": draws,
        "chip_seed": chip_seed,
        "seed": seed,
        "support_draws": support_draws if task.is_protonet else None,
        "test_images": len(test),
        "digital_pct": digital,
        "results": [
            {
                "drift_s": t,
                "mean_pct": 100 * statistics.fmean(accs[_label(t)]),
                "std_pct": 100 * _std(accs[_label(t)]),
                "accuracies": accs[_label(t)],
            }
            for t in times
        ],
        "tiles": {
            "total": report.total_tiles,
            "utilization": report.utilization,
            "layers": [
                {"name": r.name, "tiles": r.tiles, "utilization": r.utilization}
                for r in report.layers
            ],
        },
        "_report": report,
    }


def _label(t: float | None) -> str:
    return "t0" if t is None else f"{t:g}"


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score, print mean ± std per drift time, write JSON (+ drift and tile plots)."""
    from lab import plots
    from lab.run_folder import environment, new_run_dir, write_json

    with user_errors():
        out = evaluate_checkpoint(
            args.checkpoint,
            args.profile,
            drift=flatten_drift(args.drift),
            draws=args.draws,
            chip_seed=args.chip_seed,
            seed=args.seed,
            support_draws=args.support_draws,
            test_size=args.test_size,
            data_root=args.data_root,
            device=args.device,
        )
    report = out.pop("_report")
    out["environment"] = environment()
    if args.out and args.out.endswith(".json"):
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent
    elif args.out:
        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "evaluate.json"
    else:
        stem = Path(args.checkpoint).stem
        folder = new_run_dir(Path(args.run_root) / "evaluate", f"{stem}-{out['profile']}")
        path = folder / "evaluate.json"
    write_json(path, out)
    chip = "fresh chip per draw" if args.chip_seed is None else f"chip {args.chip_seed}"
    print(
        f"{out['checkpoint']} on {out['profile']} ({chip}, {args.draws} draws, "
        f"{out['test_images']} test images):"
    )
    print(f"  {'digital (no chip)':<24} {out['digital_pct']:6.2f} %")
    for r in out["results"]:
        when = "right after programming" if r["drift_s"] is None else f"t = {r['drift_s']:g} s"
        n = len(r["accuracies"])
        print(f"  {when:<24} {r['mean_pct']:6.2f} ± {r['std_pct']:.2f} %  (n={n})")
    plots.plot_tiles(report, folder / f"{path.stem}_tiles.png")
    if len(flatten_drift(args.drift) or []) > 1:
        pts = [(max(r["drift_s"], 1e-3), r["mean_pct"], r["std_pct"]) for r in out["results"]]
        plots.plot_drift({out["profile"]: pts}, folder / f"{path.stem}_drift.png")
    print(f"wrote {path}")
    return 0
