"""Reports of an experiment run: its plots, its energy block and its text summary.

Only test accuracies are reported; the results dict itself is built by
:func:`lab.experiment.pipeline.build_results`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

import memsim
from lab.experiment.config import ExperimentConfig
from lab.fitness.scoring import NO_DRIFT, drift_key
from lab.run_folder import read_json


def write_plots(
    run_dir: Path,
    cfg: ExperimentConfig,
    inputs: Any,
    results: dict[str, Any],
    *,
    baseline_fitness: float | None = None,
) -> None:
    """``tiles.png`` / ``tiles.txt``; ``ga_history.png`` when a GA ran; ``drift.png`` with drift.

    ``baseline_fitness`` (the baseline's validation accuracy on the fitness chip) is a
    reference line of the GA history plot.
    """
    from lab import plots

    methods = {r["method"]: r for r in results["methods"]}
    fitness_chip = str(cfg.chip.chip_seed)
    history_path = run_dir / "recovery" / "ga" / "history.json"
    if "ga" in methods and history_path.is_file():
        curve = [(c["generation"], c["mean_pct"], c["std_pct"]) for c in results["test_curve"]]
        plots.plot_history(
            read_json(history_path),
            run_dir / "ga_history.png",
            baseline_fitness=baseline_fitness,
            test_curve=curve,
            baseline_test=methods["baseline"]["chips"][fitness_chip]["by_time"][NO_DRIFT][
                "mean_pct"
            ],
            title=f"{cfg.experiment.name} ({inputs.profile.name})",
        )
    chip = memsim.convert(inputs.baseline, inputs.profile, seed=0, chip_seed=cfg.chip.chip_seed)
    report = memsim.tile_report(chip)
    (run_dir / "tiles.txt").write_text(str(report) + "\n", encoding="utf-8")
    plots.plot_tiles(report, run_dir / "tiles.png")
    if cfg.evaluation.drift_times_s:
        times = sorted(t for t in cfg.evaluation.drift_times_s if t > 0)
        series = {}
        for name, row in methods.items():
            by_time = row["chips"][fitness_chip]["by_time"]
            # None: right after programming, drawn in a panel of its own (no log-axis time)
            pts = [(None, by_time[NO_DRIFT]["mean_pct"], by_time[NO_DRIFT]["std_pct"])]
            pts += [
                (t, by_time[drift_key(t)]["mean_pct"], by_time[drift_key(t)]["std_pct"])
                for t in times
            ]
            series[name] = pts
        plots.plot_drift(series, run_dir / "drift.png", title=cfg.experiment.name)


def cost_block(cfg: ExperimentConfig, inputs: Any, genes: dict[str, Tensor]) -> dict[str, Any]:
    """Energy per inference and TOPS/W of each model's weights on the fitness chip."""
    from lab.fitness.scoring import cost_on_chip

    return {
        "chip": cfg.chip.chip_seed,
        "models": {
            name: cost_on_chip(
                inputs.baseline,
                inputs.genome,
                g,
                inputs.profile,
                chip_seed=cfg.chip.chip_seed,
                images=inputs.test.images,
                calibration=inputs.calibration,
                seed=cfg.evaluation.seed,
            )
            for name, g in genes.items()
        },
    }


def format_cost(cost: dict[str, Any]) -> str:
    """One line of energy per inference and TOPS/W per model (or why there is none)."""
    models = cost["models"]
    first = next(iter(models.values()))
    if not first["available"]:
        return f"  energy on chip {cost['chip']}: not modelled ({first['reason']})"
    parts = [
        f"{m} {1e9 * c['energy_J']:.3f} nJ ({c['tops_per_w']:.2f} TOPS/W)"
        for m, c in models.items()
    ]
    return (
        f"  energy per inference on chip {cost['chip']} (memsim.cost_report, "
        f"{first['images']} test images): " + ", ".join(parts)
    )


def format_results(results: dict[str, Any]) -> str:
    """Human-readable table of one run's or one study's results (test accuracies only)."""
    if "replicates" in results:
        from lab.experiment.table import format_study

        return format_study(results)
    from lab.experiment.table import format_recovery

    text = format_recovery(results)
    if "cost" in results:
        text += "\n" + format_cost(results["cost"])
    return text
