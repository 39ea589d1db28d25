"""Replicates: one experiment run N times on independent seeds, compared with intervals.

A result is a claim about a distribution: the variance that dominates is between
training seeds (and, for one seed, between machines), not between programming draws
of one trained model.  :func:`run_study` runs replicate ``r = 0 .. N-1`` of a config
(:func:`lab.experiment.context.replicate_config`: its own baseline, method and evaluation
seeds; the same chips unless ``experiment.vary_chips``), each in its own folder
``rep-NN/`` of the study folder, through the executor (serial, process or Ray), and
resumes any replicate that did not finish.  Each replicate is scored with the paired
protocol of :mod:`lab.experiment.pipeline`; :func:`aggregate` then reports per method and
chip the mean over replicates and a 95 % t-interval of the paired difference to the
reference method over replicates (``vs_reference``), significant only when the
interval excludes 0.
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.experiment.config import ExperimentConfig
from lab.experiment.context import RunContext, replicate_config, shift_seeds
from lab.experiment.price import mean_price
from lab.experiment.runner import (
    RESULTS_JSON,
    ExperimentError,
    prepare_run_dir,
    run_experiment,
)
from lab.experiment.table import chip_columns, confusion_lines
from lab.run_folder import environment, new_run_dir, read_json, update_run_json, write_json

STUDY_JSON = "study.json"
GAIN_PNG = "gain.png"
PRICE_PNG = "price.png"
"""Gain over the reference against energy per inference (:func:`lab.plots.plot_price`)."""


# ----------------------------------------------------------------------------- statistics


def t_interval(values: list[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and two-sided t-interval of ``values`` (one per replicate).

    Returns ``mean_pp``, ``ci95_low_pp``, ``ci95_high_pp`` (None for one value),
    ``n_replicates`` and ``significant`` (the interval excludes 0).
    """
    from scipy.stats import t

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {
            "mean_pp": mean,
            "ci95_low_pp": None,
            "ci95_high_pp": None,
            "n_replicates": n,
            "significant": False,
        }
    half = float(t.ppf(0.5 + level / 2, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    low, high = mean - half, mean + half
    return {
        "mean_pp": mean,
        "ci95_low_pp": low,
        "ci95_high_pp": high,
        "n_replicates": n,
        "significant": low > 0 or high < 0,
    }


def aggregate(runs: list[dict[str, Any]], study: dict[str, Any]) -> dict[str, Any]:
    """The study's results: per method and chip, replicate means and ``vs_reference``.

    ``runs`` are the replicates' ``results.json`` dicts, in replicate order; chips are
    matched by position (fitness chip first), so replicates on other chip instances
    (``vary_chips``) are aggregated by role.
    """
    first = runs[0]
    ref = first["reference"]
    columns = chip_columns(first)
    rows = []
    for i, row in enumerate(first["methods"]):
        name = row["method"]
        per_run = [r["methods"][i] for r in runs]
        if any(p["method"] != name for p in per_run):
            raise ExperimentError("the replicates of a study ran different methods")
        chips: dict[str, Any] = {}
        for k, col in enumerate(columns):
            entries = [p["chips"][chip_columns(r)[k]] for p, r in zip(per_run, runs)]
            entry: dict[str, Any] = {
                "mean_pct": statistics.fmean(e["mean_pct"] for e in entries),
                "replicate_means_pct": [e["mean_pct"] for e in entries],
                "within_std_pct": statistics.fmean(e["std_pct"] for e in entries),
            }
            if name != ref:
                diffs = [e["paired_vs_reference"]["mean_pp"] for e in entries]
                entry["vs_reference"] = {**t_interval(diffs), "replicate_pp": diffs}
                entry["within_sem_pp"] = statistics.fmean(
                    e["paired_vs_reference"]["sem_pp"] for e in entries
                )
            chips[col] = entry
        rows.append(
            {
                "method": name,
                "needs": row["needs"],
                "label": row["label"],
                "wall_time_s": statistics.fmean(p["wall_time_s"] for p in per_run),
                "info": row["info"] if len(runs) == 1 else {},
                "price": mean_price([p.get("price") for p in per_run]),
                "chips": chips,
            }
        )
    fit = columns[0]
    kinds = kind_pairs(rows, columns)
    verdict = {
        "above": [r["method"] for r in rows if _sig(r, fit, +1)],
        "below": [r["method"] for r in rows if _sig(r, fit, -1)],
    }
    return {
        "name": study["name"],
        "task": first["task"],
        "scale": first["scale"],
        "profile": first["profile"],
        "reference": ref,
        "replicates": len(runs),
        "vary_chips": study["vary_chips"],
        "seed_offset": study["seed_offset"],
        "fitness_chip": first["fitness_chip"],
        "transfer_chips": first["transfer_chips"],
        "budget": first["budget"],
        "protocol": first["protocol"],
        "drift_time": first["drift_time"],
        "methods": rows,
        "significant_on_fitness_chip": verdict,
        "replicate_dirs": study["replicate_dirs"],
        "confusion": [line for r in runs for line in confusion_lines(r["methods"])],
        **({"chip_vs_software": kinds} if kinds else {}),
    }


def kind_pairs(rows: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Per method run with both fine-tune kinds: chip minus software, paired over replicates.

    A method ``X`` that ran as ``X:chip`` and as ``X:software`` (or plain ``X``, the
    software kind) gets, per chip, the replicates' differences of mean accuracy (the
    draws are paired within a replicate, so that is the mean paired difference) and
    their 95 % t-interval.  The plain ``X`` is taken as software only when ``X:software``
    did not run: a run whose ``fitness.finetune`` is "chip" names its software rows.
    """
    by_name = {r["method"]: r for r in rows}
    out = []
    for name, row in by_name.items():
        base, _, kind = name.partition(":")
        soft = by_name.get(f"{base}:software") or by_name.get(base)
        if kind != "chip" or soft is None:
            continue
        chips = {}
        for col in columns:
            a = row["chips"][col]["replicate_means_pct"]
            b = soft["chips"][col]["replicate_means_pct"]
            diffs = [x - y for x, y in zip(a, b, strict=True)]
            chips[col] = {**t_interval(diffs), "replicate_pp": diffs}
        out.append({"method": base, "software": soft["method"], "chips": chips})
    return out


def _sig(row: dict[str, Any], chip: str, sign: int) -> bool:
    v = row["chips"][chip].get("vs_reference")
    return bool(v and v["significant"] and sign * v["mean_pp"] > 0)


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class ExperimentJob:
    """One experiment (a replicate, a table row) to run in a worker, in its run folder."""

    config: Any
    run_dir: str
    run_root: str
    data_root: str | None
    device: str = "cpu"
    seed_offset: int = 0


def run_job(job: ExperimentJob) -> str:
    """Resume ``job``'s experiment in this process, logging to ``<run_dir>/log.txt``.

    The executor's task function: returns ``""`` on success or a one-line error (the
    numbers are then read from the folder's ``results.json``).
    """
    with open(Path(job.run_dir) / "log.txt", "a", encoding="utf-8") as log:

        def echo(text: str) -> None:
            print(text, file=log, flush=True)

        ctx = RunContext(
            run_root=job.run_root,
            data_root=job.data_root,
            progress=False,
            echo=echo,
            device=job.device,
            seed_offset=job.seed_offset,
        )
        try:
            run_experiment(job.config, ctx, resume_dir=job.run_dir)
        except Exception as exc:  # noqa: BLE001 - reported by the caller, not fatal to others
            traceback.print_exc(file=log)
            return f"{type(exc).__name__}: {exc} (see log.txt)".splitlines()[0]
    return ""


def run_study(
    config: ExperimentConfig,
    ctx: RunContext | None = None,
    *,
    folder: str | Path | None = None,
    resume_dir: str | Path | None = None,
    source_text: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run (or resume) ``config.experiment.replicates`` replicates; aggregate; plot.

    Replicates run on ``ctx.executor`` (each replicate is one task); with one replicate
    this is :func:`lab.experiment.runner.run_experiment`.

    Returns:
        ``(results, study_dir)``; ``results`` is also written to ``results.json``.

    Raises:
        ExperimentError: A replicate failed (the others are kept), or a resume folder
            that is not this study's.

    """
    from lab.executors import make_executor
    from lab.experiment import checks as run_checks

    ctx = ctx or RunContext()
    n = config.experiment.replicates
    if n == 1 and (resume_dir is None or not (Path(resume_dir) / STUDY_JSON).is_file()):
        return run_experiment(
            config, ctx, folder=folder, resume_dir=resume_dir, source_text=source_text
        )
    run_checks.preflight(shift_seeds(config, ctx.seed_offset), ctx.data_root)
    if resume_dir is not None:
        study_dir = Path(resume_dir)
        study = _open_study(study_dir, config, ctx)
    else:
        parent = Path(folder) if folder is not None else Path(ctx.run_root) / "ga"
        study_dir = new_run_dir(parent, config.experiment.name)
        study = {
            "name": config.experiment.name,
            "config": config.resolved(),
            "replicates": n,
            "vary_chips": config.experiment.vary_chips,
            "seed_offset": ctx.seed_offset,
            "replicate_dirs": [f"rep-{r:02d}" for r in range(n)],
            "environment": environment(),
        }
        if source_text is not None:
            (study_dir / "config.source.toml").write_text(source_text, encoding="utf-8")
        # the study folder is itself resumable from its config alone
        prepare_run_dir(config, ctx, study_dir)
        for r, name in enumerate(study["replicate_dirs"]):
            prepare_run_dir(_replicate(config, r), ctx, study_dir / name)
        write_json(study_dir / STUDY_JSON, study)
    t0 = time.perf_counter()
    jobs = [
        ExperimentJob(
            _replicate(config, r),
            str(study_dir / name),
            str(Path(ctx.run_root).resolve()),
            ctx.data_root,
            ctx.device,
            ctx.seed_offset,
        )
        for r, name in enumerate(study["replicate_dirs"])
    ]
    errors: dict[int, str] = {}

    def on_result(i: int, error: str) -> None:
        if error:
            errors[i] = error
        ctx.echo(f"replicate {i + 1}/{n} " + (f"failed: {error}" if error else "finished"))

    spec = ctx.executor
    if spec is None or not spec.parallel:
        # in this process: the run's own progress lines, prefixed by the replicate
        for r, job in enumerate(jobs):
            sub = RunContext(
                run_root=ctx.run_root,
                data_root=ctx.data_root,
                progress=ctx.progress,
                echo=lambda text, r=r: ctx.echo(f"[replicate {r + 1}/{n}] {text}"),
                device=ctx.device,
                seed_offset=ctx.seed_offset,
            )
            run_experiment(job.config, sub, resume_dir=job.run_dir)
    else:
        ctx.echo(f"{n} replicates on {spec.describe()}, logs in {study_dir}/rep-*/log.txt")
        with make_executor(spec) as executor:
            executor.map(run_job, jobs, on_result=on_result)
    if errors:
        first = min(errors)
        raise ExperimentError(
            f"{len(errors)} of {n} replicates failed (replicate {first + 1}: {errors[first]}); "
            f"resume with --resume {study_dir}"
        )
    runs = [read_json(Path(j.run_dir) / RESULTS_JSON) for j in jobs]
    results = aggregate(runs, study)
    results["wall_time_s"] = time.perf_counter() - t0
    write_json(study_dir / RESULTS_JSON, results)
    from lab.plots import plot_gains, plot_price

    plot_gains(results, study_dir / GAIN_PNG)
    plot_price(results, study_dir / PRICE_PNG)  # methods with a price only
    update_run_json(study_dir, status="complete", results_file=RESULTS_JSON)
    return results, study_dir


def _replicate(config: ExperimentConfig, r: int) -> ExperimentConfig:
    out = replicate_config(config, r, vary_chips=config.experiment.vary_chips)
    return out.model_copy(
        update={"experiment": out.experiment.model_copy(update={"replicates": 1})}
    )


def _open_study(study_dir: Path, config: ExperimentConfig, ctx: RunContext) -> dict[str, Any]:
    path = study_dir / STUDY_JSON
    if not path.is_file():
        raise ExperimentError(f"{study_dir} is not a study folder (no {STUDY_JSON})")
    study = read_json(path)
    if study["config"] != config.resolved():
        raise ExperimentError(f"refusing to resume {study_dir}: its config differs")
    if study["seed_offset"] != ctx.seed_offset:
        raise ExperimentError(
            f"refusing to resume {study_dir}: it ran with seed offset {study['seed_offset']}, "
            f"now {ctx.seed_offset} (MEMSIM_SEED_OFFSET)"
        )
    return study
