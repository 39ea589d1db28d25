"""The one experiment pipeline: every method of ``[recovery]``, one baseline, one budget.

:func:`run_methods` is what :meth:`lab.experiment.runner.Experiment.run` runs, for the paper's
GA and its control (``methods = ["qat", "ga"]``, the default) as for any recovery study:

1. data, baseline and profile (:func:`lab.experiment.inputs.prepare_inputs`);
2. the budget: ``recovery.steps`` training steps (default: the GA's population x
   (generations + 1) x fitness.finetune_steps) and ``recovery.chip_evaluations`` chip-accuracy
   measurements (default: population x (generations + 1) x fitness.draws);
3. each method in turn, on its own instance of chip ``chip.chip_seed`` (same faults and
   gains), through a :class:`~lab.methods.chip.Chip` that offers only what the method
   declares and counts what it spends; the counters must equal the budget
   (:class:`~lab.methods.training.BudgetError` otherwise).  Every finished method is saved
   in ``recovery/<method>.pt``; a GA-based method also checkpoints every generation, so a
   killed run resumes where it stopped and ends in the same result;
4. test scores of the baseline and of every method on the fitness chip and every transfer
   chip, paired (same programming draws and support sets for every model,
   :func:`lab.fitness.scoring.score_on_chip`), right after programming and at every
   ``evaluation.drift_times_s``; the table is at the last drift time, and each method is
   compared with ``recovery.reference`` (default ``qat``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lab.experiment.context import STREAM_METHOD
from lab.fitness.config import EvaluationMode, FinetuneKind, FinetuneMode, FitnessConfig
from lab.fitness.scoring import NO_DRIFT, Score, drift_key, paired_delta, scoring_seed
from lab.methods import get_method, split_entry
from lab.methods.base import Budget, Counters, RecoveryData, Solution, describe_needs
from lab.methods.chip import Chip, CountingFitness
from lab.methods.training import BudgetError
from lab.run_folder import read_json, update_run_json, write_json
from memsim.atomic_io import atomic_torch_save
from models.data import CALIBRATION_SIZE, file_sha256
from models.tasks import baseline_state

if TYPE_CHECKING:  # the runner calls this module: no import back at run time
    from lab.experiment.inputs import Inputs
    from lab.experiment.runner import Experiment

RECOVERY_DIR = "recovery"
SCORES_JSON = "scores.json"
RESULTS_JSON = "results.json"
BASELINE_SCORES_DIR = "scores"
"""Under ``<run_root>/baselines/``: the baseline's scores, shared by every run that needs them."""
_STREAM_BASELINE_FITNESS = 13

FAULT_NAMES = ("working", "stuck_gmin", "stuck_gmax")


def budget_of(cfg: Any) -> Budget:
    """The budget of every method of ``cfg`` (see the module docstring)."""
    g, f, r = cfg.ga, cfg.fitness, cfg.recovery
    evals = g.population_size * (g.generations + 1)
    return Budget(
        steps=r.steps if r.steps is not None else evals * f.finetune_steps,
        chip_evaluations=(
            r.chip_evaluations if r.chip_evaluations is not None else evals * f.draws
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


def _fitness(
    exp: Experiment, inputs: Inputs, counters: Counters, fitness: FitnessConfig | None = None
) -> CountingFitness:
    cfg = exp.config
    return CountingFitness(
        inputs.baseline,
        inputs.genome,
        inputs.profile,
        # the methods' fine-tunes run member by member: their step counters see every one
        (fitness or cfg.fitness).model_copy(update={"evaluation": EvaluationMode.SERIAL}),
        weight_bits=cfg.ga.weight_bits,
        task=inputs.task,
        train=inputs.train,
        val=inputs.val,
        qat_sigma=inputs.qat_sigma,
        chip_seed=cfg.chip.chip_seed,
        counters=counters,
    )


def method_data(exp: Experiment, inputs: Inputs) -> RecoveryData:
    """The fine-tune spec and data every method of ``exp`` trains with, built once."""
    cfg = exp.config
    return RecoveryData(
        genome=inputs.genome,
        base_genes=inputs.base_genes,
        base_state=baseline_state(inputs.baseline),
        task=inputs.task,
        train=inputs.train,
        val=inputs.val,
        qat_sigma=inputs.qat_sigma,
        bits=cfg.ga.weight_bits,
        lr=cfg.recovery.lr if cfg.recovery.lr is not None else cfg.fitness.finetune_lr,
        seed=scoring_seed(cfg.ga.seed, STREAM_METHOD),
        ga=cfg.ga,
        fitness=cfg.fitness,
        settings=cfg.recovery,
        work_dir=exp.run_dir / RECOVERY_DIR,
        train_mode=cfg.fitness.finetune_mode is FinetuneMode.TRAIN,
        snapshot_every=cfg.evaluation.test_every,
        executor=exp.ctx.executor,
        progress=exp.ctx.progress,
        echo=exp.ctx.echo,
    )


def confusion(estimated: dict[str, torch.Tensor], chip: torch.nn.Module) -> dict[str, Any]:
    """Confusion matrix (rows: true class, columns: estimated) of a fault estimate."""
    import memsim

    counts = torch.zeros(3, 3, dtype=torch.int64)
    for name, layer in memsim.analog_layers(chip):
        key = f"{name}.weight" if name else "weight"
        truth, est = layer.tiles.fault.reshape(-1).long(), estimated[key].reshape(-1).long()
        counts += torch.bincount(truth * 3 + est.cpu(), minlength=9).reshape(3, 3)
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
    base, kind = split_entry(name)
    method = get_method(base)(exp.config.recovery)
    if kind is not None:  # "qat:chip": this method with its own fitness.finetune kind
        tuned = data.fitness.model_copy(update={"finetune": FinetuneKind(kind)})
        data = dataclasses.replace(data, fitness=tuned, work_dir=data.work_dir / kind)
    counters = Counters()
    fitness = _fitness(exp, inputs, counters, data.fitness)
    chip = Chip(fitness, method.needs)
    exp.echo(f"{name} (needs {describe_needs(method.needs)})")
    t0 = time.perf_counter()
    sol: Solution = method.run(inputs.baseline, chip, data, budget)
    wall = time.perf_counter() - t0
    check_budget(method, counters, budget)
    record: dict[str, Any] = {
        "genes": sol.genes.cpu(),
        "trim": sol.trim,
        "placement": sol.placement,
        "adapters": sol.adapters,
        "committee": sol.committee,
        "ensemble": sol.ensemble,
        "info": {k: v for k, v in sol.info.items() if k != "estimated_faults"},
        "counters": counters.as_dict(),
        "wall_time_s": wall,
        "needs": describe_needs(method.needs),
        "label": method.label,
    }
    if "estimated_faults" in sol.info:
        record["info"]["confusion"] = confusion(sol.info["estimated_faults"], fitness.chip)
    atomic_torch_save(record, path)
    exp.stage_time(name, wall)
    return record


def deploy_of(record: dict[str, Any]) -> dict[str, Any]:
    """What a method deploys beside its weights (the keyword arguments of ``Inputs.score``)."""
    keys = ("trim", "placement", "adapters", "committee", "ensemble")
    return {k: record.get(k) for k in keys if record.get(k)}


def _save_weights(exp: Experiment, inputs: Inputs, records: dict[str, dict[str, Any]]) -> None:
    """``weights/<method>.pt``: each method's network as a ``memsim evaluate`` checkpoint.

    A digital output trim (``ga_knobs``) or a placement (``ga_mapping``) is not part of a
    network checkpoint: its file holds the weights only, and says so in its metadata.
    """
    from lab.fitness.finetune import with_genes
    from memsim.transformer import needs_restructure, source_state_dict
    from models.checkpoint import load_checkpoint, save_checkpoint

    folder = exp.run_dir / "weights"
    folder.mkdir(exist_ok=True)
    source, _ = load_checkpoint(inputs.baseline_path)  # the architecture as trained
    for name, rec in records.items():
        path = folder / f"{name}.pt"
        if path.exists():
            continue
        meta = {
            **inputs.baseline_meta,
            "weights": name,
            "trim_not_included": bool(rec["trim"]),
            "placement_not_included": bool(rec.get("placement")),
            "adapters_not_included": bool(rec.get("adapters")),
            "committee_not_included": bool(rec.get("committee") or rec.get("ensemble")),
        }
        # written from the CPU, so that a checkpoint made on a GPU loads anywhere
        net = with_genes(inputs.baseline, inputs.genome, rec["genes"]).cpu()
        if needs_restructure(source):
            # the lab split the attention's packed in_proj_weight into q/k/v_proj (see
            # lab.experiment.inputs): pack it back, so the file loads as its architecture
            source.load_state_dict(source_state_dict(net))
            net = source
        save_checkpoint(path, net, meta)


# ----------------------------------------------------------------------------- scoring


def _baseline_score_key(exp: Experiment, inputs: Inputs, chip: int) -> dict[str, Any]:
    """Everything the baseline's test score depends on."""
    cfg = exp.config
    return {
        "checkpoint_sha256": file_sha256(inputs.baseline_path),
        "profile": inputs.profile.model_dump(mode="json"),
        "chip_seed": chip,
        "evaluation": cfg.evaluation.model_dump(
            mode="json", include={"draws", "support_draws", "k_shot", "seed", "drift_times_s"}
        ),
        "test": [inputs.test.sha256, len(inputs.test), cfg.data.test_size, cfg.experiment.seed],
        "task": repr(inputs.task),
        "calibration": f"train{CALIBRATION_SIZE}",
    }


def _shared_baseline_score(exp: Experiment, inputs: Inputs, chip: int) -> Any:
    from lab.experiment.baseline import BASELINE_DIR

    blob = json.dumps(_baseline_score_key(exp, inputs, chip), sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
    name = f"{inputs.baseline_path.stem}-{digest}.json"
    return exp.run_root / BASELINE_DIR / BASELINE_SCORES_DIR / name


def score_models(
    exp: Experiment,
    inputs: Inputs,
    models: dict[str, tuple[Tensor, dict[str, Any]]],
    snapshots: dict[int, Tensor],
) -> dict[str, Any]:
    """Paired test scores of every model on every chip (cached in ``scores.json``).

    ``models`` maps a name to ``(genes, deploy)``, ``deploy`` being the keyword arguments
    of :meth:`Inputs.score` that deploy it with the weights (trim, placement, adapters);
    ``snapshots`` are GA best-ever weights by generation, scored on the fitness chip right
    after programming.  The baseline's
    scores do not depend on the methods: they are shared across runs under
    ``<run_root>/baselines/scores/``.
    """
    from tqdm.auto import tqdm

    cfg = exp.config
    ev = cfg.evaluation
    path = exp.run_dir / SCORES_JSON
    cache: dict[str, Any] = read_json(path) if path.exists() else {}
    chips = [cfg.chip.chip_seed, *cfg.chip.transfer_chip_seeds]
    drifts = tuple(ev.drift_times_s)
    jobs = [
        (f"{name}@chip{chip}", genes, deploy, chip, drifts)
        for chip in chips
        for name, (genes, deploy) in models.items()
    ]
    jobs += [
        (f"ga_gen{g:04d}@chip{cfg.chip.chip_seed}", genes, {}, cfg.chip.chip_seed, ())
        for g, genes in sorted(snapshots.items())
    ]
    for key, *_, chip, _ in jobs:
        if key.startswith("baseline@") and key not in cache:
            shared = _shared_baseline_score(exp, inputs, chip)
            if shared.exists():
                cache[key] = read_json(shared)["scores"]
    todo = [j for j in jobs if j[0] not in cache]
    t0 = time.perf_counter()
    for key, genes, deploy, chip, times in tqdm(
        todo, desc="test scoring", disable=not exp.ctx.progress
    ):
        scores = inputs.score(genes, ev, chip_seed=chip, drift_times_s=times, **deploy)
        cache[key] = {t: s.accuracies for t, s in scores.items()}
        write_json(path, cache)  # a kill while scoring loses at most one model
        if key.startswith("baseline@"):
            shared = _shared_baseline_score(exp, inputs, chip)
            shared.parent.mkdir(parents=True, exist_ok=True)
            write_json(
                shared, {"key": _baseline_score_key(exp, inputs, chip), "scores": cache[key]}
            )
    if todo:
        exp.stage_time("scoring", time.perf_counter() - t0)
    return cache


def _baseline_fitness(exp: Experiment, inputs: Inputs) -> float:
    """Baseline's validation accuracy on the fitness chip (a plot reference only)."""
    path = exp.run_dir / "baseline_fitness.json"
    if path.exists():
        return float(read_json(path)["validation_accuracy"])
    cfg = exp.config
    seeds = [
        scoring_seed(cfg.ga.seed, _STREAM_BASELINE_FITNESS, i) for i in range(cfg.evaluation.draws)
    ]
    value = _fitness(exp, inputs, Counters()).measure(inputs.base_genes, seeds)
    write_json(
        path,
        {
            "validation_accuracy": value,
            "note": "validation split, fitness chip, no fine-tune; a plot reference only",
        },
    )
    return value


# ----------------------------------------------------------------------------- results


def _chip_entry(
    cache: dict[str, Any], name: str, reference: str, chip: int, times: list[str], at: str
) -> dict[str, Any]:
    acc = cache[f"{name}@chip{chip}"]
    ref = cache[f"{reference}@chip{chip}"]
    base = cache[f"baseline@chip{chip}"]
    entry: dict[str, Any] = {**Score(acc[at]).as_dict(), "accuracies": acc[at]}
    if name != reference:
        entry["paired_vs_reference"] = paired_delta(acc[at], ref[at])
    if name != "baseline":
        entry["paired_vs_baseline"] = paired_delta(acc[at], base[at])
    entry["by_time"] = {
        t: {
            **Score(acc[t]).as_dict(),
            **({"paired_vs_reference": paired_delta(acc[t], ref[t])} if name != reference else {}),
        }
        for t in times
    }
    return entry


def build_results(
    exp: Experiment,
    inputs: Inputs,
    records: dict[str, dict[str, Any]],
    cache: dict[str, Any],
    budget: Budget,
) -> dict[str, Any]:
    """The results dict of one finished run (test accuracies only)."""
    cfg = exp.config
    ev = cfg.evaluation
    chips = [cfg.chip.chip_seed, *cfg.chip.transfer_chip_seeds]
    times = [NO_DRIFT, *(drift_key(t) for t in sorted(ev.drift_times_s))]
    at = times[-1]  # the table is at the last drift time
    reference = cfg.recovery.reference_method
    rows = []
    for name in ["baseline", *records]:
        rec = records.get(name)
        rows.append(
            {
                "method": name,
                "needs": rec["needs"] if rec else "-",
                "label": rec["label"] if rec else "no recovery",
                "counters": rec["counters"] if rec else None,
                "wall_time_s": rec["wall_time_s"] if rec else 0.0,
                "info": rec["info"] if rec else {},
                "chips": {str(c): _chip_entry(cache, name, reference, c, times, at) for c in chips},
            }
        )
    main = {r["method"]: r["chips"][str(cfg.chip.chip_seed)] for r in rows}
    headline: dict[str, float] = {}
    for name, entry in main.items():
        headline[f"{name}_pct"] = entry["mean_pct"]
        headline[f"{name}_std_pct"] = entry["std_pct"]
    for name, entry in main.items():
        if name != "baseline":
            headline[f"{name}_minus_baseline_pp"] = entry["paired_vs_baseline"]["mean_pp"]
        if "paired_vs_reference" in entry and reference != "baseline":
            headline[f"{name}_minus_{reference}_pp"] = entry["paired_vs_reference"]["mean_pp"]
    curve = [
        {"generation": int(k.split("@")[0][6:]), **Score(v[NO_DRIFT]).as_dict()}
        for k, v in sorted(cache.items())
        if k.startswith("ga_gen")
    ]
    protocol = (
        f"test split, {ev.draws} programming draws"
        + (f" x {ev.support_draws} support sets" if inputs.task.is_protonet else "")
        + " per chip, paired across models"
        + (f", {at} after programming" if at != NO_DRIFT else "")
    )
    results: dict[str, Any] = {
        "name": cfg.experiment.name,
        "task": cfg.experiment.task,
        "scale": cfg.experiment.scale,
        "profile": inputs.profile.name,
        "weight_bits": cfg.ga.weight_bits,
        "qat_sigma": inputs.qat_sigma,
        "paper": {"baseline": cfg.experiment.paper_baseline, "ga": cfg.experiment.paper_ga},
        "seeds": {
            "baseline": cfg.experiment.seed,
            "method": cfg.ga.seed,
            "evaluation": ev.seed,
            "seed_offset": exp.ctx.seed_offset,
        },
        "fitness_chip": cfg.chip.chip_seed,
        "transfer_chips": list(cfg.chip.transfer_chip_seeds),
        "reference": reference,
        "budget": {"steps": budget.steps, "chip_evaluations": budget.chip_evaluations},
        "data": {
            "dataset": inputs.train_full.name,
            "sha256": inputs.train_full.sha256,
            "train_images": len(inputs.train),
            "val_images": len(inputs.val),
            "test_images": len(inputs.test),
        },
        "protocol": protocol,
        "drift_time": at,
        "methods": rows,
        "headline": headline,
        "test_curve": curve,
        "baseline_checkpoint": str(inputs.baseline_path),
    }
    if "ga" in records:
        g = cfg.ga
        results["ga"] = {
            "population_size": g.population_size,
            "generations": g.generations,
            "best_generation": records["ga"]["info"].get("best_generation"),
        }
    return results


def run_methods(exp: Experiment) -> dict[str, Any]:
    """Run or resume every stage of ``exp``; write ``results.json`` and plots; return it."""
    from lab.experiment.inputs import prepare_inputs
    from lab.experiment.price import add_prices
    from lab.experiment.report import cost_block, write_plots

    t_start = time.perf_counter()
    cfg = exp.config
    resumed = bool(exp.run_json().get("sessions"))
    t0 = time.perf_counter()
    inputs = prepare_inputs(cfg, exp.ctx)
    exp.stage_time("setup", time.perf_counter() - t0)
    exp.record_start(inputs, resumed)
    budget = budget_of(cfg)
    exp.echo(
        f"{cfg.experiment.name}: {', '.join(cfg.recovery.methods)} for {cfg.experiment.task} on "
        f"{inputs.profile.name} chip {cfg.chip.chip_seed}; budget {budget.steps} steps, "
        f"{budget.chip_evaluations} chip evaluations; {len(inputs.train)} train / "
        f"{len(inputs.val)} val / {len(inputs.test)} test images; run folder {exp.run_dir}"
    )
    (exp.run_dir / RECOVERY_DIR).mkdir(parents=True, exist_ok=True)
    data = method_data(exp, inputs)
    records = {name: _run_method(exp, inputs, data, name, budget) for name in cfg.recovery.methods}
    _save_weights(exp, inputs, records)

    snapshots: dict[int, Tensor] = {}
    snap_dir = exp.run_dir / RECOVERY_DIR / "ga" / "snapshots"
    if cfg.evaluation.test_every and snap_dir.is_dir():
        for p in sorted(snap_dir.glob("gen-*.pt")):
            snapshots[int(p.stem.split("-")[1])] = torch.load(p, weights_only=True)
    models: dict[str, tuple[Tensor, dict[str, Any]]] = {"baseline": (inputs.base_genes, {})}
    models.update({n: (r["genes"], deploy_of(r)) for n, r in records.items()})
    cache = score_models(exp, inputs, models, snapshots)

    results = build_results(exp, inputs, records, cache, budget)
    results["cost"] = cost_block(cfg, inputs, {n: g for n, (g, *_) in models.items()})
    add_prices(results, inputs.profile.periphery.scale_energy_pJ)
    fitness_line = _baseline_fitness(exp, inputs) if snapshots else None
    write_plots(exp.run_dir, cfg, inputs, results, baseline_fitness=fitness_line)
    exp.stage_time("total", time.perf_counter() - t_start)
    update_run_json(exp.run_dir, status="complete", results_file=RESULTS_JSON)
    results["wall_time_s"] = exp.run_json()["wall_time_s"]
    write_json(exp.run_dir / RESULTS_JSON, results)
    return results


__all__ = ["BudgetError", "budget_of", "check_budget", "run_methods", "score_models"]
