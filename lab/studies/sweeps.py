"""``memsim sweep figures``: the paper's Figures 4-7 as sweeps of GA experiments.

A sweep config (``experiments/sweeps/*.toml``) names a base experiment config, the
overrides every point shares, and the axes swept::

    [sweep]
    name = "fig6-cp-mp"
    title = "Figure 6: test accuracy vs crossover and mutation probability"
    kind = "grid"                      # "grid" (cartesian product) or "generations"
    base = "../table1/protonet_mnist.toml"
    set = ['recovery.methods=["ga"]']
    axes = [{key = "ga.crossover_probability", values = [0.6, 0.7, 0.8, 0.9]},
            {key = "ga.mutation_probability", values = [0.001, 0.005, 0.01, 0.05, 0.1]}]

    [quick]                            # replaces [sweep] keys at --scale quick
    base = "../protonet_digits.toml"

``kind = "generations"`` runs the base once and scores the best-ever solution on the
test set every ``evaluation.test_every`` generations (Figure 4).  Every point is a full
experiment in ``<out>/<figure>/``; a PNG and a CSV per figure are written next to them.
``sweep.json`` records each point's run folder and status, so a sweep resumes.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lab.experiment.config import ConfigError, format_validation_error, load_config, read_toml
from lab.experiment.context import RunContext
from lab.run_folder import REPO_ROOT, environment, new_run_dir, read_json, write_json

SWEEP_DIR = REPO_ROOT / "experiments" / "sweeps"
SWEEP_JSON = "sweep.json"


class Axis(BaseModel):
    """One swept config key and its values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^[a-z_]+\.[a-z_]+$", description="section.key of the config.")
    values: list[Any] = Field(min_length=1, description="Values, in plot order.")


class SweepSpec(BaseModel):
    """A figure: base config, shared overrides, axes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = ""
    kind: Literal["grid", "generations"] = "grid"
    base: str = Field(description="Base experiment config, relative to the sweep file.")
    set: list[str] = Field(default_factory=list, description="Overrides of every point.")
    axes: list[Axis] = Field(default_factory=list)


def load_sweep(path: str | os.PathLike[str], scale: str) -> tuple[SweepSpec, Path]:
    """Read a sweep TOML, apply its ``[quick]`` table at quick scale; return spec and base."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - {"sweep", "quick"}
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown)}; expected [sweep], [quick]")
    data = dict(raw.get("sweep", {}))
    if scale == "quick":
        data.update(raw.get("quick", {}))
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path))) from None
    if spec.kind == "grid" and not spec.axes:
        raise ConfigError(f"{path}: a grid sweep needs at least one axis")
    return spec, (path.parent / spec.base).resolve()


def _toml_value(v: Any) -> str:
    return json.dumps(v)  # numbers, booleans and strings are the same in JSON and TOML


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's points as ``{key: value}`` dicts (cartesian product, first axis slowest)."""
    if spec.kind == "generations" or not spec.axes:
        return [{}]
    keys = [a.key for a in spec.axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in spec.axes))]


def run_sweep(
    sweep_path: Path,
    scale: str,
    out: Path,
    state: dict[str, Any],
    ctx: RunContext,
    *,
    overrides: Sequence[str],
    save: Callable[[], None],
) -> dict[str, Any]:
    """Run or resume every point of one figure; write its CSV and PNG; return its record."""
    from lab.experiment.runner import Experiment, run_experiment

    spec, base = load_sweep(sweep_path, scale)
    fig_dir = out / spec.name
    fig_dir.mkdir(parents=True, exist_ok=True)
    record = state.setdefault(spec.name, {"title": spec.title, "kind": spec.kind, "points": []})
    pts = points(spec)
    if len(record["points"]) != len(pts):
        record["points"] = [{"values": p, "status": "pending"} for p in pts]
    for i, point in enumerate(record["points"]):
        if point["status"] == "complete":
            continue
        sets = [*spec.set, *(f"{k}={_toml_value(v)}" for k, v in point["values"].items())]
        sets.append(f"experiment.name={_toml_value(f'{spec.name}-p{i:02d}')}")
        cfg = load_config(base, scale=scale, overrides=[*sets, *overrides])  # type: ignore[arg-type]
        ctx.echo(f"{spec.name} point {i + 1}/{len(pts)}: {point['values'] or 'single run'}")
        if point.get("run_dir"):
            results, _ = run_experiment(cfg, ctx, resume_dir=point["run_dir"])
        else:
            exp = Experiment.create(cfg, ctx, folder=fig_dir)
            point["run_dir"] = str(exp.run_dir)
            save()
            results = exp.run()
        h = results["headline"]
        point.update(
            status="complete",
            headline=h,
            test_curve=results["test_curve"],
            best_generation=results.get("ga", {}).get("best_generation"),
        )
        save()
    _figure(spec, record, fig_dir)
    return record


def _figure(spec: SweepSpec, record: dict[str, Any], fig_dir: Path) -> None:
    from lab import plots

    pts = record["points"]
    if spec.kind == "generations":
        run_dir = Path(pts[0]["run_dir"])
        history = read_json(run_dir / "recovery" / "ga" / "history.json")
        curve = {c["generation"]: c for c in pts[0]["test_curve"]}
        with open(fig_dir / f"{spec.name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(
                [
                    "generation",
                    "fitness_best",
                    "fitness_mean",
                    "fitness_best_ever",
                    "test_best_ever_mean_pct",
                    "test_best_ever_std_pct",
                ]
            )
            for r in history:
                c = curve.get(r["generation"], {})
                w.writerow(
                    [
                        r["generation"],
                        r["best"],
                        r["mean"],
                        r["best_ever"],
                        c.get("mean_pct", ""),
                        c.get("std_pct", ""),
                    ]
                )
        fit_path = run_dir / "baseline_fitness.json"
        baseline_fit = read_json(fit_path)["validation_accuracy"] if fit_path.exists() else None
        plots.plot_history(
            history,
            fig_dir / f"{spec.name}.png",
            baseline_fitness=baseline_fit,
            test_curve=[(c["generation"], c["mean_pct"], c["std_pct"]) for c in curve.values()],
            baseline_test=pts[0]["headline"]["baseline_pct"],
            title=spec.title,
        )
        return
    keys = [a.key for a in spec.axes]
    with open(fig_dir / f"{spec.name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                *keys,
                "baseline_pct",
                "baseline_std_pct",
                "ga_pct",
                "ga_std_pct",
                "ga_minus_baseline_pp",
                "ga_best_generation",
                "run_dir",
            ]
        )
        for p in pts:
            h = p["headline"]
            w.writerow(
                [
                    *(p["values"][k] for k in keys),
                    h["baseline_pct"],
                    h["baseline_std_pct"],
                    h["ga_pct"],
                    h["ga_std_pct"],
                    h["ga_minus_baseline_pp"],
                    p.get("best_generation", ""),
                    p["run_dir"],
                ]
            )
    base = pts[0]["headline"]["baseline_pct"]
    png = fig_dir / f"{spec.name}.png"
    ga = [(p["headline"]["ga_pct"], p["headline"]["ga_std_pct"]) for p in pts]
    if len(keys) == 1:
        plots.plot_line(
            spec.axes[0].values,
            {"GA best-ever (test)": ga},
            png,
            xlabel=keys[0],
            ylabel="test accuracy % (1 GA seed; bars: std over draws)",
            title=spec.title,
            hline=("baseline (test)", base),
        )
    elif len(keys) == 2:
        nx = len(spec.axes[1].values)
        grid = [[ga[i * nx + j][0] for j in range(nx)] for i in range(len(spec.axes[0].values))]
        plots.plot_heatmap(
            spec.axes[1].values,
            spec.axes[0].values,
            grid,
            png,
            xlabel=keys[1],
            ylabel=keys[0],
            title=f"{spec.title}\n(baseline {base:.2f} %)",
            cbar="GA test accuracy %",
        )
    else:
        labels = ["/".join(str(v) for v in p["values"].values()) for p in pts]
        plots.plot_bars(
            labels,
            ga,
            png,
            ylabel="test accuracy % (1 GA seed; bars: std over draws)",
            title=f"{spec.title}\n({' / '.join(k.split('.')[1] for k in keys)})",
            hline=("baseline (test)", base),
        )


def sweep_files(sweep_dir: Path, only: Sequence[str] | None) -> list[Path]:
    """The sweep configs to run (all ``*.toml`` sorted, or those named in ``only``)."""
    files = sorted(Path(sweep_dir).glob("*.toml"))
    if only:
        wanted = set(only)
        files = [f for f in files if f.stem in wanted or f.stem.split("_")[0] in wanted]
        if not files:
            raise ConfigError(f"no sweep config in {sweep_dir} matches {sorted(wanted)}")
    return files


def run_figures(
    scale: str,
    *,
    sweep_dir: str | os.PathLike[str] = SWEEP_DIR,
    only: Sequence[str] | None = None,
    ctx: RunContext | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> tuple[dict[str, Any], Path]:
    """Run (or resume) every figure sweep; return the state and the output folder.

    ``ctx.executor`` (a :class:`lab.executors.ExecutorSpec`) evaluates each point's GA
    population; ``memsim sweep grid`` (:mod:`lab.studies.sweep_grid`) runs whole points as tasks.
    """
    ctx = ctx or RunContext()
    files = sweep_files(Path(sweep_dir), only)
    if resume_dir is not None:
        out = Path(resume_dir)
        state = read_json(out / SWEEP_JSON)
    else:
        out = new_run_dir(Path(ctx.run_root) / "sweeps", f"figures-{scale}")
        state = {"scale": scale, "overrides": list(overrides), "figures": {}}
    state["environment"] = environment()

    def save() -> None:
        write_json(out / SWEEP_JSON, state)

    start = time.perf_counter()
    for path in files:
        run_sweep(
            path,
            scale,
            out,
            state["figures"],
            ctx,
            overrides=overrides,
            save=save,
        )
    state["wall_time_s"] = state.get("wall_time_s", 0.0) + time.perf_counter() - start
    save()
    return state, out
