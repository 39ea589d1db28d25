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

from lab.hardware import add_conductances_argument

from .common import (
    CliError,
    add_checkpoint_arguments,
    add_run_options,
    flatten_drift,
    positive_int,
    user_errors,
)
from .errors import check_output_folder


def register(sub: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    p = sub.add_parser(
        "evaluate",
        help="test accuracy of a checkpoint on simulated chips, per drift time",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint_arguments(p, drift_default="right after programming")
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
        "--allow-data-mismatch",
        action="store_true",
        help="score even if the dataset file differs from the one the checkpoint was trained "
        "on (its sha256 in the checkpoint); default: refuse",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: a new <run-root>/evaluate folder); a name ending in "
        ".json is the report file itself, with the plots beside it",
    )
    add_conductances_argument(p)
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
    conductances: str | None = None,
    allow_data_mismatch: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score a checkpoint; return a JSON-able dict with one entry per drift time.

    The model, data and chips live on ``device``; chips are the same as on the CPU
    (programming noise and faults are drawn on the CPU).

    With ``conductances`` (a measured map, :func:`memsim.import_conductances`) every draw
    scores that one measured array; the draws then differ only by read noise.

    Raises:
        CliError: The checkpoint names no dataset, the dataset differs from the one it
            was trained on (unless ``allow_data_mismatch``), or ``test_size`` would give
            fewer images than asked or fewer than the number of classes.

    """
    import memsim
    from lab.fitness.scoring import digital_scorer, support_generator
    from lab.hardware import apply_measured_conductances
    from models.checkpoint import load_checkpoint
    from models.data import calibration_images, load_dataset, resolve_data_root
    from models.evaluate import draw_accuracies
    from models.tasks import make_task

    model, meta = load_checkpoint(checkpoint)
    dataset = meta.get("dataset")
    if not dataset:
        raise CliError(f"{checkpoint}: the checkpoint meta names no dataset")
    prof = memsim.load_profile(profile)
    train, test = load_dataset(dataset, root=resolve_data_root(data_root))
    recorded = meta.get("dataset_sha256")
    if recorded and recorded != train.sha256 and not allow_data_mismatch:
        raise CliError(
            f"{checkpoint} was trained on {dataset} data with sha256 {str(recorded)[:12]}..., "
            f"but the {dataset} data loaded now ({train.source}) has sha256 "
            f"{train.sha256[:12]}...; pass --allow-data-mismatch to score it anyway"
        )
    if test_size is not None:
        test = _test_subset(test, test_size, seed, dataset)
    if device != "cpu":
        model, train, test = model.to(device), train.to(device), test.to(device)
    task = make_task(model)
    support = train if task.is_protonet else None
    digital = digital_scorer(task, test, support, seed=seed, support_draws=support_draws)(model)
    times: list[float | None] = [None] if not drift else list(drift)
    per_time = draw_accuracies(
        model,
        prof,
        lambda chip, gen: task.accuracies(chip, test, support, gen, support_draws),
        draws=draws,
        program_seed=lambda i: seed + i,
        chip_seed=lambda i: chip_seed if chip_seed is not None else seed + i,
        generator=lambda i, _t: support_generator(seed, i),
        times=times,
        calibration=calibration_images(train),
        after_program=(
            None
            if conductances is None
            else lambda chip: apply_measured_conductances(chip, conductances)
        ),
    )
    accs = {_label(t): v for t, v in per_time.items()}
    cost_chip = memsim.convert(
        model, prof, seed=seed, chip_seed=seed if chip_seed is None else chip_seed
    )
    report = memsim.tile_report(cost_chip)
    cost = _cost(cost_chip, test, train)
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
        "conductances": conductances,
        "digital_pct": digital,
        "cost": cost,
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


COST_IMAGES = 64
"""Test images whose inferences the cost model measures (energy is per inference)."""


def _cost(chip: Any, test: Any, train: Any) -> dict[str, Any]:
    """Energy per inference and TOPS/W of ``chip`` on test images (:func:`memsim.cost_report`).

    Profiles with ideal converters have no converter energy to model; they get the reason.
    """
    import memsim
    from models.data import calibration_images

    if memsim.needs_calibration(chip):
        memsim.calibrate(chip, calibration_images(train))
    try:
        rep = memsim.cost_report(chip.eval(), test.images[:COST_IMAGES])
    except memsim.CostModelError as exc:
        return {"available": False, "reason": str(exc)}
    totals = rep.totals()
    return {"available": True, "images": min(COST_IMAGES, len(test)), **totals}


def _test_subset(test: Any, size: int, seed: int, dataset: str) -> Any:
    """The stratified ``--test-size`` subset, refusing one smaller than asked."""
    from models.data import stratified_subset

    classes = int(test.labels.unique().numel())
    if size < classes:
        raise CliError(
            f"--test-size {size}: the stratified subset needs at least one image per class; "
            f"{dataset} has {classes} classes, so use --test-size >= {classes} "
            f"(at most {len(test)})"
        )
    if size > len(test):
        raise CliError(
            f"--test-size {size}: the {dataset} test split has only {len(test)} images; "
            f"use --test-size {classes}..{len(test)}, or omit it for all"
        )
    subset = stratified_subset(test, size, seed)
    if len(subset) < size:
        raise CliError(
            f"--test-size {size}: a class-balanced subset of {dataset} gives only "
            f"{len(subset)} images; use a multiple of the {classes} classes or omit it"
        )
    return subset


def _label(t: float | None) -> str:
    return "t0" if t is None else f"{t:g}"


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score, print mean ± std per drift time, write JSON (+ drift and tile plots)."""
    from lab import plots
    from lab.run_folder import environment, new_run_dir, write_json

    if args.out and args.out.endswith(".json"):
        check_output_folder(Path(args.out).parent, "--out")
    elif args.out:
        check_output_folder(args.out, "--out")
    else:
        check_output_folder(Path(args.run_root) / "evaluate", "--run-root")
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
            conductances=args.conductances,
            allow_data_mismatch=args.allow_data_mismatch,
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
    cost = out["cost"]
    if cost["available"]:
        print(
            f"  energy per inference {1e9 * cost['energy_J']:.3f} nJ, "
            f"{cost['tops_per_w']:.2f} TOPS/W, latency {1e6 * cost['latency_s']:.2f} us "
            f"(memsim.cost_report on {cost['images']} test images)"
        )
    else:
        print(f"  energy: not modelled ({cost['reason']})")
    for r in out["results"]:
        when = "right after programming" if r["drift_s"] is None else f"t = {r['drift_s']:g} s"
        n = len(r["accuracies"])
        print(f"  {when:<24} {r['mean_pct']:6.2f} ± {r['std_pct']:.2f} %  (n={n})")
    plots.plot_tiles(report, folder / f"{path.stem}_tiles.png")
    if len(flatten_drift(args.drift) or []) > 1:
        # t = 0 (or none) is the programming time: plot_drift draws it apart from the log axis
        pts = [(r["drift_s"], r["mean_pct"], r["std_pct"]) for r in out["results"]]
        plots.plot_drift(
            {out["profile"]: pts},
            folder / f"{path.stem}_drift.png",
            digital=out["digital_pct"],
            title=f"{Path(args.checkpoint).stem} on {out['profile']}: accuracy vs drift time",
        )
    print(f"wrote {path}")
    return 0
