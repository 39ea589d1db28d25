"""Results of an experiment run: the results dict, its text summary and its plots.

Only test accuracies are reported.  ``results.json`` holds, per chip (the fitness chip
and every transfer chip) and per drift time, the accuracies of the baseline, the GA's
best-ever weights and the control over the same paired draws, with the paired
differences; ``headline`` is the fitness chip right after programming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor

import memsim
from ga.history import GenerationRecord
from lab.experiment_config import ExperimentConfig
from lab.scoring import NO_DRIFT, Score, drift_key, paired_delta

MODELS = ("baseline", "ga", "control", "control_chip")
"""The models an experiment scores (the controls only when enabled)."""


def build_results(
    cfg: ExperimentConfig,
    inputs: Any,
    ga_result: Any,
    cache: dict[str, Any],
    steps: int,
    evaluated: int,
    snapshots: dict[int, Tensor],
) -> dict[str, Any]:
    """The results dict of a finished run (test accuracies only; see the module doc)."""
    enabled = {
        "control": cfg.control.enabled,
        "control_chip": cfg.control.enabled and cfg.control.chip_aware,
    }
    models = [m for m in MODELS if enabled.get(m, True)]
    chips: dict[str, Any] = {}
    for chip in [cfg.chip.chip_seed, *cfg.chip.transfer_chip_seeds]:
        entry: dict[str, Any] = {
            "role": "fitness chip" if chip == cfg.chip.chip_seed else "transfer chip"
        }
        times = [None, *sorted(cfg.evaluation.drift_times_s)]
        for t in times:
            key = drift_key(t)
            acc = {m: cache[f"{m}@chip{chip}"][key] for m in models}
            block: dict[str, Any] = {m: Score(acc[m]).as_dict() for m in models}
            block["ga_minus_baseline"] = paired_delta(acc["ga"], acc["baseline"])
            if "control" in acc:
                block["ga_minus_control"] = paired_delta(acc["ga"], acc["control"])
                block["control_minus_baseline"] = paired_delta(acc["control"], acc["baseline"])
            if "control_chip" in acc:
                block["ga_minus_control_chip"] = paired_delta(acc["ga"], acc["control_chip"])
                block["control_chip_minus_control"] = paired_delta(
                    acc["control_chip"], acc["control"]
                )
            entry[key] = block
        chips[str(chip)] = entry
    main = chips[str(cfg.chip.chip_seed)][NO_DRIFT]
    headline = {
        "baseline_pct": main["baseline"]["mean_pct"],
        "baseline_std_pct": main["baseline"]["std_pct"],
        "ga_pct": main["ga"]["mean_pct"],
        "ga_std_pct": main["ga"]["std_pct"],
        "ga_minus_baseline_pp": main["ga_minus_baseline"]["mean_pp"],
    }
    if cfg.control.enabled:
        headline.update(
            control_pct=main["control"]["mean_pct"],
            control_std_pct=main["control"]["std_pct"],
            ga_minus_control_pp=main["ga_minus_control"]["mean_pp"],
        )
    if "control_chip" in main:
        headline.update(
            control_chip_pct=main["control_chip"]["mean_pct"],
            control_chip_std_pct=main["control_chip"]["std_pct"],
            ga_minus_control_chip_pp=main["ga_minus_control_chip"]["mean_pp"],
        )
    curve = []
    for gen_idx in sorted(snapshots):
        s = Score(cache[f"ga_gen{gen_idx:04d}@chip{cfg.chip.chip_seed}"][NO_DRIFT])
        curve.append({"generation": gen_idx, "mean_pct": 100 * s.mean, "std_pct": 100 * s.std})
    g = cfg.ga
    return {
        "name": cfg.experiment.name,
        "task": cfg.experiment.task,
        "scale": cfg.experiment.scale,
        "profile": inputs.profile.name,
        "weight_bits": g.weight_bits,
        "qat_sigma": inputs.qat_sigma,
        "paper": {"baseline": cfg.experiment.paper_baseline, "ga": cfg.experiment.paper_ga},
        "data": {
            "dataset": inputs.train_full.name,
            "sha256": inputs.train_full.sha256,
            "train_images": len(inputs.train),
            "val_images": len(inputs.val),
            "test_images": len(inputs.test),
        },
        "protocol": (
            f"test split, {cfg.evaluation.draws} programming/read-noise draws per chip"
            + (
                f" x {cfg.evaluation.support_draws} support sets of {inputs.task.k_shot}"
                "/class from the training split (a stream the fitness never uses)"
                if inputs.task.is_protonet
                else ""
            )
            + "; draws paired across models; mean ± sample std in %; deltas are mean ± "
            "standard error of the paired differences in percentage points"
        ),
        "fitness_chip": cfg.chip.chip_seed,
        "headline": headline,
        "chips": chips,
        "ga": {
            "generations_completed": ga_result.generations_completed,
            "generations_evaluated": evaluated,
            "stop_reason": ga_result.stop_reason,
            "best_generation": ga_result.best_generation,
            "population_size": g.population_size,
            "evaluations": g.population_size * evaluated,
            "qat_steps": g.population_size * evaluated * g.finetune_steps,
        },
        "control": {
            "enabled": cfg.control.enabled,
            "chip_aware": enabled["control_chip"],
            "qat_steps": steps,
        },
        "test_curve": curve,
        "baseline_checkpoint": str(inputs.baseline_path),
    }


def write_plots(
    run_dir: Path,
    cfg: ExperimentConfig,
    inputs: Any,
    history: Sequence[GenerationRecord],
    baseline_fitness: float,
    results: dict[str, Any],
) -> None:
    """``ga_history.png``, ``tiles.png`` / ``tiles.txt`` and, with drift times, ``drift.png``."""
    from lab import plots

    head = results["headline"]
    curve = [(c["generation"], c["mean_pct"], c["std_pct"]) for c in results["test_curve"]]
    plots.plot_history(
        [asdict(r) for r in history],
        run_dir / "ga_history.png",
        baseline_fitness=baseline_fitness,
        test_curve=curve,
        baseline_test=head["baseline_pct"],
        title=f"{cfg.experiment.name} ({inputs.profile.name})",
    )
    chip = memsim.convert(inputs.baseline, inputs.profile, seed=0, chip_seed=cfg.chip.chip_seed)
    report = memsim.tile_report(chip)
    (run_dir / "tiles.txt").write_text(str(report) + "\n", encoding="utf-8")
    plots.plot_tiles(report, run_dir / "tiles.png")
    if cfg.evaluation.drift_times_s:
        main = results["chips"][str(cfg.chip.chip_seed)]
        times = sorted(cfg.evaluation.drift_times_s)
        # t0 is drawn at the profile's first-read time so it fits on the log axis
        t_first = float(inputs.profile.drift.t0_s)
        series = {}
        for m in MODELS:
            if m not in main[NO_DRIFT]:
                continue
            pts = [(t_first, main[NO_DRIFT][m]["mean_pct"], main[NO_DRIFT][m]["std_pct"])]
            pts += [
                (t, main[drift_key(t)][m]["mean_pct"], main[drift_key(t)][m]["std_pct"])
                for t in times
                if t > 0
            ]
            series[m] = pts
        plots.plot_drift(series, run_dir / "drift.png", title=cfg.experiment.name)


def cost_block(cfg: ExperimentConfig, inputs: Any, genes: dict[str, Tensor]) -> dict[str, Any]:
    """Energy per inference and TOPS/W of each model's weights on the fitness chip."""
    from lab.scoring import cost_on_chip

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
    """Human-readable summary of a results dict (test accuracies only)."""
    if "recovery" in results:
        from lab.recovery.report import format_recovery

        return format_recovery(results)
    lines = [
        f"{results['name']}: {results['task']} on {results['profile']} "
        f"({results['data']['test_images']} test images)",
        f"  protocol: {results['protocol']}",
    ]
    for chip, entry in results["chips"].items():
        for key, block in entry.items():
            if key == "role":
                continue
            when = "" if key == NO_DRIFT else f", after {key} drift"
            lines.append(f"  chip {chip} ({entry['role']}{when}):")
            for m in MODELS:
                if m in block:
                    b = block[m]
                    lines.append(f"    {m:<12} {b['mean_pct']:6.2f} ± {b['std_pct']:.2f} %")
            for d in ("ga_minus_baseline", "ga_minus_control", "ga_minus_control_chip"):
                if d in block:
                    v = block[d]
                    label = d.replace("_minus_", " - ")
                    lines.append(f"    {label:<22} {v['mean_pp']:+6.2f} ± {v['sem_pp']:.2f} pp")
    if "cost" in results:
        lines.append(format_cost(results["cost"]))
    g = results["ga"]
    lines.append(
        f"  GA: {g['generations_evaluated']} generations x P={g['population_size']} "
        f"({g['qat_steps']} QAT steps), best-ever from generation {g['best_generation']}; "
        f"control: {results['control']['qat_steps']} QAT steps"
        + ("" if results["control"]["enabled"] else " (disabled)")
    )
    return "\n".join(lines)
