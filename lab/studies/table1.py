"""``memsim reproduce table1``: every Table 1 row with baseline, GA and the QAT control.

Each row is one experiment config in ``experiments/table1/`` (the paper's GA settings,
with a ``[quick]`` table for the smoke scale), run by :func:`lab.experiment.runner.run_experiment`
in ``<out>/rows/``.  The report (``table1.md``, ``table1.json``) puts the measured test
accuracies beside the paper's numbers.  A row whose data is unavailable (CIFAR-100
offline) is reported as skipped, with the reason; nothing is filled in for it.
``table1.json`` is rewritten after every row, so an interrupted reproduction resumes
where it stopped (finished rows are kept, unfinished ones continue from their GA
checkpoints).  With a ``process`` or ``ray`` executor (:mod:`lab.executors`) the rows run
concurrently, one task per row on its own run folder.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lab.executors import ExecutorKind, ExecutorSpec, make_executor
from lab.experiment.config import load_config
from lab.experiment.context import RunContext
from lab.experiment.report import format_results
from lab.experiment.runner import RESULTS_JSON, Experiment, run_experiment
from lab.run_folder import REPO_ROOT, environment, new_run_dir, read_json, write_json
from models.data import resolve_data_root

CONFIG_DIR = REPO_ROOT / "experiments" / "table1"
ROW_FILES = (
    "protonet_mnist.toml",
    "protonet_fashion_mnist.toml",
    "mobilenetv2_cifar10.toml",
    "micronet_cifar100.toml",
)
"""The paper's Table 1 rows, in its order."""

TABLE_JSON = "table1.json"
TABLE_MD = "table1.md"

_NETWORK = {"protonet": "ProtoNet", "mobilenetv2": "MobileNetV2", "micronet": "MicroNet"}
_DATASET = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "digits": "digits (8x8)",
}


def row_labels(task: str, scale: str) -> dict[str, str]:
    """Network, dataset, weight and noise labels of a task (from its recipe)."""
    from models.baselines import get_recipe

    recipe = get_recipe(task, scale)
    bits = "ternary" if recipe.bits == 0 else f"{recipe.bits}-bit"
    return {
        "network": _NETWORK.get(task.split("-")[0], task),
        "dataset": _DATASET.get(recipe.dataset, recipe.dataset),
        "weights": bits,
        "noise": f"{100 * recipe.sigma:g}%",
    }


def _row_files(config_dir: Path, rows: Sequence[str] | None) -> list[Path]:
    if rows:
        files = [config_dir / (r if r.endswith(".toml") else f"{r}.toml") for r in rows]
    else:
        files = [config_dir / f for f in ROW_FILES if (config_dir / f).exists()]
        files += sorted(p for p in config_dir.glob("*.toml") if p.name not in ROW_FILES)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"Table 1 config(s) not found: {', '.join(missing)}")
    return files


def run_table1(
    scale: str,
    ctx: RunContext | None = None,
    *,
    config_dir: str | os.PathLike[str] = CONFIG_DIR,
    rows: Sequence[str] | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    jobs: int = 1,
) -> tuple[dict[str, Any], Path]:
    """Run (or resume) every row; write ``table1.json`` and ``table1.md``.

    Args:
        scale: ``"quick"`` or ``"paper"``.
        ctx: Run root (run folders and baselines), data root, device, echo, and the
            executor where the rows run: serial (default) one after the other here;
            process or ray: one row per task on the workers, each logging to its
            ``log.txt``.
        config_dir: Folder of the row configs.
        rows: Config file names (stems) to run; default: all, in the paper's order.
        resume_dir: An earlier ``table1`` folder to continue.
        overrides: ``section.key=value`` applied to every row.
        jobs: Deprecated: ``jobs > 1`` means a process executor with ``jobs`` workers.

    Returns:
        ``(table, out_dir)``.

    """
    from models.data import DatasetNotFoundError

    ctx = ctx or RunContext()
    run_root, data_root, echo, executor = ctx.run_root, ctx.data_root, ctx.echo, ctx.executor
    if executor is None and jobs > 1:  # the deprecated --jobs N
        executor = ExecutorSpec(kind=ExecutorKind.PROCESS, workers=jobs)
    files = _row_files(Path(config_dir), rows)
    if resume_dir is not None:
        out = Path(resume_dir)
        table = read_json(out / TABLE_JSON)
        if table.get("scale") != scale:
            raise ValueError(f"{out} was run at scale {table.get('scale')!r}, not {scale!r}")
    else:
        out = new_run_dir(Path(run_root) / "table1", f"table1-{scale}")
        table = {"scale": scale, "overrides": list(overrides), "rows": {}}
    table.setdefault("sessions", []).append(environment())
    table["executor"] = (executor or ExecutorSpec()).describe()
    start = time.perf_counter()
    pending: list[tuple[str, Any, dict[str, Any]]] = []
    for path in files:
        cfg = load_config(path, scale=scale, overrides=overrides)  # type: ignore[arg-type]
        key = path.stem
        row = table["rows"].setdefault(key, {})
        if row.get("status") == "complete":
            echo(f"table1 {key}: already complete")
            continue
        row.update(
            config=str(path),
            task=cfg.experiment.task,
            paper_baseline=cfg.experiment.paper_baseline,
            paper_ga=cfg.experiment.paper_ga,
            **row_labels(cfg.experiment.task, cfg.experiment.scale),
        )
        try:
            _check_data(cfg, data_root)
        except DatasetNotFoundError as exc:
            row.update(status="skipped", reason=_skip_reason(exc))
            row.pop("run_dir", None)
            echo(f"table1 {key}: skipped: {row['reason']}")
            continue
        row["status"] = "running"
        if not row.get("run_dir"):
            # the run folder is created and recorded first, so a kill can resume it
            exp = Experiment.create(
                cfg, ctx, folder=out / "rows", source_text=path.read_text("utf-8")
            )
            row["run_dir"] = str(exp.run_dir)
        pending.append((key, cfg, row))
    write_json(out / TABLE_JSON, table)

    def finished(key: str, cfg: Any, row: dict[str, Any], seconds: float, error: str) -> None:
        row["wall_time_s"] = row.get("wall_time_s", 0.0) + seconds
        if error:
            row.update(status="failed", reason=error)
            echo(f"table1 {key}: failed: {error}")
        else:
            results = read_json(Path(row["run_dir"]) / RESULTS_JSON)
            row.update(status="complete", results=_row_results(results, cfg))
            row.pop("reason", None)
            echo(format_results(results))
        write_json(out / TABLE_JSON, table)

    if executor is not None and executor.parallel:
        _run_on_executor(pending, executor, ctx, finished)
    else:
        for key, cfg, row in pending:
            t0 = time.perf_counter()
            run_experiment(cfg, ctx, resume_dir=row["run_dir"])
            finished(key, cfg, row, time.perf_counter() - t0, "")
    table["wall_time_s"] = table.get("wall_time_s", 0.0) + time.perf_counter() - start
    write_json(out / TABLE_JSON, table)
    (out / TABLE_MD).write_text(render_markdown(table), encoding="utf-8")
    return table, out


def _skip_reason(exc: Exception) -> str:
    """One line from a ``DatasetNotFoundError``: what is missing and why no download."""
    lines = str(exc).splitlines()
    head = lines[0].split(". Looked in")[0]
    why = next((line for line in lines if line.startswith("and ")), "")
    return f"{head} locally {why}".strip().rstrip(".")


def _check_data(cfg: Any, data_root: str | None) -> None:
    """Raise ``DatasetNotFoundError`` now if the row's dataset is unavailable."""
    from models.baselines import get_recipe
    from models.data import find_dataset_file

    dataset = get_recipe(cfg.experiment.task, cfg.experiment.scale).dataset
    if dataset != "digits":  # bundled with scikit-learn
        root = resolve_data_root(cfg.data.root or data_root)
        find_dataset_file(dataset, root=root, download=cfg.data.download)


def _run_on_executor(
    pending: Sequence[tuple[str, Any, dict[str, Any]]],
    spec: ExecutorSpec,
    ctx: RunContext,
    finished: Callable[[str, Any, dict[str, Any], float, str], None],
) -> None:
    """Run the rows as independent tasks on ``spec``'s workers (one row per task).

    Each row logs to ``<run_dir>/log.txt``; ``table1.json`` is updated as each finishes.
    """
    from lab.studies.replicates import ExperimentJob, run_job

    root = str(Path(ctx.run_root).resolve())
    jobs = [
        ExperimentJob(cfg, row["run_dir"], root, ctx.data_root, ctx.device, ctx.seed_offset)
        for _, cfg, row in pending
    ]
    for key, _, row in pending:
        ctx.echo(f"table1 {key}: queued on {spec.describe()}, log {row['run_dir']}/log.txt")
    t0 = time.perf_counter()

    def on_result(i: int, error: str) -> None:
        key, cfg, row = pending[i]
        finished(key, cfg, row, time.perf_counter() - t0, error)

    with make_executor(spec) as executor:
        executor.map(run_job, jobs, on_result=on_result)


def _row_results(results: dict[str, Any], cfg: Any) -> dict[str, Any]:
    main = {r["method"]: r["chips"][str(results["fitness_chip"])] for r in results["methods"]}
    h = results["headline"]
    g = cfg.ga

    def sem(name: str, key: str) -> float | None:
        entry = main.get(name, {}).get(key)
        return entry["sem_pp"] if entry else None

    return {
        **h,
        "test_images": results["data"]["test_images"],
        "val_images": results["data"]["val_images"],
        "profile": results["profile"],
        "draws": cfg.evaluation.draws,
        "population_size": g.population_size,
        "generations": g.generations,
        "finetune_steps": cfg.fitness.finetune_steps,
        "qat_steps": results["budget"]["steps"],
        "baseline_scale": cfg.experiment.scale,
        "ga_minus_baseline_sem_pp": sem("ga", "paired_vs_baseline"),
        "ga_minus_qat_sem_pp": sem("ga", "paired_vs_reference"),
    }


def _pm(mean: float | None, std: float | None) -> str:
    return "–" if mean is None else f"{mean:.2f} ± {std:.2f}"


def _delta(mean: float | None, sem: float | None) -> str:
    return "–" if mean is None else f"{mean:+.2f} ± {sem:.2f}"


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _row_commits(table: dict[str, Any]) -> list[str]:
    """Git commits (and a ``+dirty`` mark) of the sessions that computed the rows."""
    commits = []
    for row in table["rows"].values():
        path = Path(row.get("run_dir", "")) / "run.json"
        if row.get("status") != "complete" or not path.is_file():
            continue
        for s in read_json(path).get("sessions", []):
            if s.get("git_commit"):
                commits.append(s["git_commit"][:12] + ("+dirty" if s.get("git_dirty") else ""))
    return commits


def read_table(out: Path) -> tuple[dict[str, Any], Path]:
    """The ``table1.json`` of a finished ``reproduce table1`` folder, and its path."""
    path = Path(out) / TABLE_JSON
    return read_json(path), path


def render_markdown(table: dict[str, Any]) -> str:
    """The Table 1 report as Markdown."""
    sessions = table.get("sessions") or [table.get("environment", {})]
    env = sessions[-1]
    commits = _row_commits(table) or [s.get("git_commit") or "unknown" for s in sessions[:1]]
    commit = ", ".join(c[:12] for c in dict.fromkeys(commits))
    head = (
        f"# Table 1 reproduction (scale: {table['scale']})\n\n"
        f"Machine: {platform.node() or 'unknown'}, {env.get('platform', '')}, "
        f"{env.get('cpu_count')} CPUs, torch threads {env.get('torch_threads')}; "
        f"commit `{commit}`; total wall time {table.get('wall_time_s', 0.0) / 60:.1f} min "
        "(baseline training included only where a row trained its baseline).\n\n"
        "Accuracies are **test** accuracies (%) on the simulated chip the GA was trained on, "
        "mean ± std over fresh programming-noise draws (ProtoNet: x support sets drawn from "
        "the training split, never the fitness's); the same draws for baseline, GA and QAT. "
        "GA = best-ever GA solution re-scored on the test set; QAT = the baseline "
        "QAT-fine-tuned for as many steps as the GA spends, without the GA. Deltas are paired "
        "means ± standard error in percentage points. The paper's columns are its Table 1.\n\n"
    )
    cols = (
        "| Network | Dataset | Weights | Noise | Paper baseline | Paper GA | Baseline | GA "
        "| QAT control (same budget) | GA − baseline (pp) | GA − QAT (pp) | Settings "
        "| Wall time |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in table["rows"].values():
        lead = (
            f"| {row.get('network', '?')} | {row.get('dataset', '?')} | {row.get('weights', '?')} "
            f"| {row.get('noise', '?')} | {_num(row.get('paper_baseline'))} "
            f"| {_num(row.get('paper_ga'))} "
        )
        wall = f"{row.get('wall_time_s', 0.0) / 60:.1f} min"
        if row.get("status") == "complete":
            r = row["results"]
            settings = (
                f"{r['baseline_scale']} baseline recipe; P={r['population_size']}, "
                f"G={r['generations']}, {r['finetune_steps']} QAT steps/eval; "
                f"{r['val_images']} val / {r['test_images']} test images; {r['draws']} draws; "
                f"{r['profile']}"
            )
            lines.append(
                lead + f"| {_pm(r['baseline_pct'], r['baseline_std_pct'])} "
                f"| {_pm(r['ga_pct'], r['ga_std_pct'])} "
                f"| {_pm(r.get('qat_pct'), r.get('qat_std_pct'))} "
                f"| {_delta(r['ga_minus_baseline_pp'], r['ga_minus_baseline_sem_pp'])} "
                f"| {_delta(r.get('ga_minus_qat_pp'), r.get('ga_minus_qat_sem_pp'))} "
                f"| {settings} | {wall} |"
            )
        elif row.get("status") in ("skipped", "failed"):
            lines.append(lead + f"| {row['status']}: {row['reason']} | | | | | | {wall} |")
        else:
            lines.append(lead + "| not run / unfinished | | | | | | |")
    return head + cols + "\n".join(lines) + "\n"
