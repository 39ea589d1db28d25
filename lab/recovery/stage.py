"""The ``[recovery]`` stage of an experiment: every method, one baseline, one budget.

:func:`run_recovery` replaces the GA/control stages of :class:`lab.experiment.Experiment`
when ``recovery.methods`` is not empty:

1. data, baseline and profile as in every experiment (:func:`lab.experiment.prepare_inputs`);
2. the budget: ``recovery.steps`` training steps (default: the GA's population x
   (generations + 1) x finetune_steps) and ``recovery.chip_evaluations`` chip-accuracy
   measurements (default: population x (generations + 1) x fitness_draws);
3. each method in turn, on its own instance of chip ``chip.chip_seed`` (same faults and
   gains), through a :class:`~lab.recovery.chip.Chip` that offers only what the method
   declares and counts what it spends; the counters must equal the budget
   (:class:`~lab.recovery.common.BudgetError` otherwise).  Every finished method is saved
   in ``recovery/<method>.pt``; a GA-based method also checkpoints every generation, so a
   killed stage resumes where it stopped and ends in the same result;
4. test scores of the baseline and of every method on the fitness chip and every transfer
   chip, paired (same programming draws and support sets for every model, as in
   :func:`lab.scoring.score_on_chip`), right after programming and at every
   ``evaluation.drift_times_s``; the table is at the last drift time.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from ga.config import EvaluationMode
from lab.recovery import get_method
from lab.recovery.base import Budget, Counters, RecoveryData, Solution, describe_needs
from lab.recovery.chip import Chip, CountingFitness
from lab.recovery.common import BudgetError
from lab.run_folder import read_json, update_run_json, write_json
from lab.scoring import NO_DRIFT, drift_key, paired_delta, score_on_chip, scoring_seed
from memsim.atomic_io import atomic_torch_save
from models.tasks import baseline_state

if TYPE_CHECKING:
    from lab.experiment import Experiment, Inputs

RECOVERY_DIR = "recovery"
SCORES_JSON = "recovery_scores.json"
_STREAM_CONTROL = 12
"""The extra-QAT control's stream of :mod:`lab.experiment`: ``qat`` equals its control."""

FAULT_NAMES = ("working", "stuck_gmin", "stuck_gmax")


def budget_of(exp: Experiment) -> Budget:
    """The stage's budget (see the module docstring)."""
    cfg = exp.config
    g, r = cfg.ga, cfg.recovery
    evals = g.population_size * (g.generations + 1)
    return Budget(
        steps=r.steps if r.steps is not None else evals * g.finetune_steps,
        chip_evaluations=(
            r.chip_evaluations if r.chip_evaluations is not None else evals * g.fitness_draws
        ),
    )


def check_budget(method: Any, counters: Counters, budget: Budget) -> None:
    """Every method spends exactly the step budget; search methods the evaluation budget.

    Raises:
        BudgetError: A counter differs.

    """
    want_evals = budget.chip_evaluations if method.uses_chip_evaluations else 0
    if counters.steps != budget.steps or counters.chip_evaluations != want_evals:
        raise BudgetError(
            f"recovery method {method.name!r} spent {counters.steps} steps and "
            f"{counters.chip_evaluations} chip evaluations; the budget is {budget.steps} steps "
            f"and {want_evals} chip evaluations"
        )


def _fitness(exp: Experiment, inputs: Inputs, counters: Counters) -> CountingFitness:
    cfg = exp.config
    return CountingFitness(
        inputs.baseline,
        inputs.genome,
        inputs.profile,
        cfg.ga.model_copy(update={"evaluation": EvaluationMode.SERIAL, "progress": False}),
        task=inputs.task,
        train=inputs.train,
        val=inputs.val,
        qat_sigma=inputs.qat_sigma,
        chip_seed=cfg.chip.chip_seed,
        support_draws=cfg.fitness.support_draws,
        counters=counters,
    )


def confusion(estimated: dict[str, torch.Tensor], chip: torch.nn.Module) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: estimated) of a fault estimate."""
    import memsim

    counts = torch.zeros(3, 3, dtype=torch.int64)
    for name, layer in memsim.analog_layers(chip):
        key = f"{name}.weight" if name else "weight"
        truth, est = layer.tiles.fault.reshape(-1).long(), estimated[key].reshape(-1).long()
        counts += torch.bincount(truth * 3 + est, minlength=9).reshape(3, 3)
    stuck_true = int(counts[1:, :].sum())
    found = int(counts[1, 1] + counts[2, 2])
    working = int(counts[0].sum())
    return {
        "classes": list(FAULT_NAMES),
        "matrix": counts.tolist(),
        "stuck_recall": found / stuck_true if stuck_true else None,
        "false_positive_rate": int(counts[0, 1:].sum()) / max(working, 1),
    }


def _run_method(
    exp: Experiment, inputs: Inputs, data: RecoveryData, name: str, budget: Budget
) -> dict[str, Any]:
    path = exp.run_dir / RECOVERY_DIR / f"{name}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    method = get_method(name)(exp.config.recovery)
    counters = Counters()
    fitness = _fitness(exp, inputs, counters)
    chip = Chip(fitness, method.needs)
    exp.echo(f"recovery: {name} (needs {describe_needs(method.needs)})")
    t0 = time.perf_counter()
    sol: Solution = method.run(inputs.baseline, chip, data, budget)
    wall = time.perf_counter() - t0
    check_budget(method, counters, budget)
    record: dict[str, Any] = {
        "genes": sol.genes,
        "trim": sol.trim,
        "info": {k: v for k, v in sol.info.items() if k != "estimated_faults"},
        "counters": counters.as_dict(),
        "wall_time_s": wall,
        "needs": describe_needs(method.needs),
        "label": method.label,
    }
    if "estimated_faults" in sol.info:
        record["info"]["confusion"] = confusion(sol.info["estimated_faults"], fitness.chip)
    atomic_torch_save(record, path)
    return record


def run_recovery(exp: Experiment) -> dict[str, Any]:
    """Run or resume the recovery stage of ``exp``; write ``results.json``; return it."""
    from lab.experiment import RESULTS_JSON, prepare_inputs

    t_start = time.perf_counter()
    cfg = exp.config
    resumed = (exp.run_dir / "run.json").exists()
    inputs = prepare_inputs(cfg, exp.run_root, exp.data_root, exp.echo)
    exp._record_start(inputs, resumed)
    budget = budget_of(exp)
    exp.echo(
        f"{cfg.experiment.name}: recovery of {cfg.experiment.task} on {inputs.profile.name} "
        f"chip {cfg.chip.chip_seed}; budget {budget.steps} steps, {budget.chip_evaluations} "
        f"chip evaluations; run folder {exp.run_dir}"
    )
    (exp.run_dir / RECOVERY_DIR).mkdir(parents=True, exist_ok=True)
    data = RecoveryData(
        genome=inputs.genome,
        base_genes=inputs.base_genes,
        base_state=baseline_state(inputs.baseline),
        task=inputs.task,
        train=inputs.train,
        val=inputs.val,
        qat_sigma=inputs.qat_sigma,
        bits=cfg.ga.weight_bits,
        lr=cfg.recovery.lr if cfg.recovery.lr is not None else cfg.ga.finetune_lr,
        seed=scoring_seed(cfg.ga.seed, _STREAM_CONTROL),
        ga=cfg.ga,
        settings=cfg.recovery,
        work_dir=exp.run_dir / RECOVERY_DIR,
        progress=exp.progress,
        echo=exp.echo,
    )
    records = {name: _run_method(exp, inputs, data, name, budget) for name in cfg.recovery.methods}

    # paired test scores: every model on the same draws of every chip
    ev = cfg.evaluation
    chips = [cfg.chip.chip_seed, *cfg.chip.transfer_chip_seeds]
    path = exp.run_dir / SCORES_JSON
    cache: dict[str, Any] = read_json(path) if path.exists() else {}
    models = {"baseline": (inputs.base_genes, None)}
    models.update({n: (r["genes"], r["trim"]) for n, r in records.items()})
    t0 = time.perf_counter()
    for chip_seed in chips:
        for name, (genes, trim) in models.items():
            key = f"{name}@chip{chip_seed}"
            if key in cache:
                continue
            scores = score_on_chip(
                inputs.baseline,
                inputs.genome,
                genes,
                inputs.profile,
                chip_seed=chip_seed,
                task=inputs.task,
                test=inputs.test,
                support=inputs.support,
                draws=ev.draws,
                support_draws=ev.support_draws,
                seed=ev.seed,
                calibration=inputs.calibration,
                trim=trim,
                drift_times_s=tuple(ev.drift_times_s),
            )
            cache[key] = {t: sc.accuracies for t, sc in scores.items()}
            write_json(path, cache)  # a kill while scoring loses at most one model
    scoring_s = time.perf_counter() - t0

    # the table is at the last drift time (right after programming without drift times)
    at = drift_key(max(ev.drift_times_s)) if ev.drift_times_s else NO_DRIFT

    def accuracies(key: str) -> list[float]:
        value = cache[key]
        return value if isinstance(value, list) else value[at]  # a list: t0 only (older runs)

    rows = []
    for name in models:
        rec = records.get(name)
        row: dict[str, Any] = {
            "method": name,
            "needs": rec["needs"] if rec else "-",
            "label": rec["label"] if rec else "no recovery",
            "counters": rec["counters"] if rec else None,
            "wall_time_s": rec["wall_time_s"] if rec else 0.0,
            "info": rec["info"] if rec else {},
            "chips": {},
        }
        for chip_seed in chips:
            acc = accuracies(f"{name}@chip{chip_seed}")
            entry: dict[str, Any] = {
                "mean_pct": 100 * sum(acc) / len(acc),
                "std_pct": 100 * float(torch.tensor(acc, dtype=torch.float64).std()),
                "n": len(acc),
                "accuracies": acc,
            }
            if "qat" in models:
                entry["vs_qat"] = paired_delta(acc, accuracies(f"qat@chip{chip_seed}"))
            row["chips"][str(chip_seed)] = entry
        rows.append(row)
    results = {
        "name": cfg.experiment.name,
        "task": cfg.experiment.task,
        "scale": cfg.experiment.scale,
        "profile": inputs.profile.name,
        "fitness_chip": cfg.chip.chip_seed,
        "transfer_chips": list(cfg.chip.transfer_chip_seeds),
        "budget": {"steps": budget.steps, "chip_evaluations": budget.chip_evaluations},
        "data": {"train": len(inputs.train), "val": len(inputs.val), "test": len(inputs.test)},
        "protocol": f"test split, {ev.draws} programming draws x {ev.support_draws} support "
        "sets per chip, paired across models"
        + (f", {at} after programming" if at != NO_DRIFT else ""),
        "drift_time": at,
        "recovery": rows,
        "scoring_s": scoring_s,
    }
    write_json(exp.run_dir / RESULTS_JSON, results)
    exp._stage_time("total", time.perf_counter() - t_start)
    update_run_json(exp.run_dir, status="complete", results_file=RESULTS_JSON)
    return results


