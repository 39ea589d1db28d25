r"""``memsim sweep grid``: any experiment config over a grid of values, with seed replicates.

::

    memsim sweep grid experiments/protonet_digits.toml \\
        --grid faults.stuck_at_gmax_rate=0,0.02,0.05,0.1 --grid ga.generations=5,10 --seeds 3

Each ``--grid KEY=V1,V2,...`` is one axis; the cells are their cartesian product (first
axis slowest) and every cell runs ``seeds`` independent replicates, exactly as
``--replicates`` does for one experiment (:func:`lab.experiment.context.replicate_config`):
replicate ``r`` has its own baseline training seed, method seeds and test draws (every
seed ``+ r``), while the chips stay the same (``--vary-chips`` draws new chip instances
too).  The variance that dominates a result is between training seeds, so the spread
over a cell's replicates includes it.  Two kinds of key:

* ``section.key`` of the **experiment config** (``ga.generations``, ``chip.chip_seed``,
  ``fitness.k_shot``, ...): applied like ``--set``.
* ``section.key`` of a **device profile** (``faults.stuck_at_gmax_rate``,
  ``programming_noise.sigma``, ``read_noise.sigma``, ``adc.bits``, ...): the experiment's
  profile (``chip.profile``, ``auto`` resolved) is extended by a profile file written in
  ``<out>/profiles/`` (``extends`` the shipped profile, or a full copy of a derived
  one), validated by memsim's profile schema, and the cell's ``chip.profile`` points to
  it.

Every (cell, seed) is a full experiment in ``<out>/runs/``.  The runs are independent,
so they go through an executor (:mod:`lab.executors`); the baseline is prepared once
before they start.  ``grid.json`` records each run's folder and status, written before a
run starts and after it ends, so that ``--resume OUT`` after a kill skips the finished
runs and continues the others from their GA checkpoints.  ``grid.csv`` is tidy: one row
per cell and seed, with every method's test accuracy; ``grid-<key>.png`` plots each
method's test accuracy (mean ± std over the seeds) against each swept value.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lab.executors import ExecutorSpec, make_executor
from lab.experiment.config import ConfigError, ExperimentConfig, load_config, parse_value
from lab.experiment.context import RunContext, replicate_config, shift_seeds
from lab.run_folder import environment, new_run_dir, read_json, write_json
from lab.studies.grid_report import energy_of, write_csv, write_plots

GRID_JSON = "grid.json"
GRID_CSV = "grid.csv"


class GridError(ConfigError):
    """A ``--grid`` axis or a ``--resume`` folder that does not fit."""


def profile_sections() -> set[str]:
    """Top-level tables of a device profile (keys under them override the chip's profile)."""
    from memsim.profiles import DeviceProfile

    return set(DeviceProfile.model_fields) - {"name", "description", "extends", "source"}


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid KEY=V1,V2,...`` axis."""

    key: str
    values: tuple[Any, ...]

    @property
    def on_profile(self) -> bool:
        """True for a device-profile key, False for an experiment-config key."""
        return self.key.split(".")[0] in profile_sections()


def parse_axis(text: str) -> GridAxis:
    """Parse ``section.key=v1,v2,...`` (values as TOML, like ``--set``).

    Raises:
        GridError: No ``=``, an empty value list, a repeated value, or a key of neither
            the experiment config nor a device profile.

    """
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise GridError(f"--grid expects section.key=v1,v2,..., got {text!r}")
    parsed = tuple(parse_value(v.strip()) for v in values.split(",") if v.strip())
    if len({json.dumps(v) for v in parsed}) != len(parsed):
        raise GridError(f"--grid {key}: repeated value in {values!r}")
    section = key.split(".")[0]
    if section not in profile_sections() and section not in ExperimentConfig.model_fields:
        raise GridError(
            f"--grid {key}: {section!r} is neither an experiment-config section "
            f"({', '.join(sorted(ExperimentConfig.model_fields))}) nor a device-profile "
            f"section ({', '.join(sorted(profile_sections()))})"
        )
    if len(key.split(".")) < 2:
        raise GridError(f"--grid {key}: expected section.key, e.g. faults.stuck_at_gmax_rate")
    axis = GridAxis(key, parsed)
    _check_key(axis)
    return axis


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Model`` or ``Model | None``), else None."""
    for cand in (annotation, *typing.get_args(annotation)):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def _check_key(axis: GridAxis) -> None:
    """Refuse a key that the experiment-config or device-profile schema does not have."""
    from memsim.profiles import DeviceProfile

    parts = axis.key.split(".")
    if not axis.on_profile:
        section = ExperimentConfig.model_fields[parts[0]].annotation
        fields = sorted(section.model_fields)  # type: ignore[union-attr]
        if len(parts) != 2 or parts[1] not in fields:
            raise GridError(
                f"--grid {axis.key}: unknown key {'.'.join(parts[1:])!r} in [{parts[0]}] of the "
                f"experiment config; known: {', '.join(fields)}"
            )
        return
    model: type[BaseModel] | None = DeviceProfile
    for i, part in enumerate(parts):
        if model is None:  # a free-form table (e.g. aihwkit_noise_model.kwargs)
            return
        names = {n: n for n in model.model_fields}
        names.update({f.alias: n for n, f in model.model_fields.items() if f.alias})
        if part not in names:
            where = ".".join(parts[:i])
            raise GridError(
                f"--grid {axis.key}: unknown key {part!r} in [{where}] of the device profile; "
                f"known: {', '.join(sorted(names))}"
            )
        annotation = model.model_fields[names[part]].annotation
        model = _model_of(annotation)
        last = i == len(parts) - 1
        if model is not None and last:
            raise GridError(
                f"--grid {axis.key}: [{axis.key}] is a table of the device profile; sweep one "
                f"of its keys: {', '.join(sorted(model.model_fields))}"
            )
        free_table = annotation is dict or typing.get_origin(annotation) is dict
        if model is None and not last and not free_table:
            raise GridError(
                f"--grid {axis.key}: {'.'.join(parts[: i + 1])} is a value of the device "
                "profile, not a table"
            )


def check_cells(
    config_path: str | os.PathLike[str],
    axes: Sequence[GridAxis],
    *,
    scale: str | None = None,
    overrides: Sequence[str] = (),
) -> None:
    """Validate every cell's config and profile in memory, before any file is written.

    Raises:
        GridError: A key of neither schema, or a value the schema refuses; one line
            naming the cell's values.
        ConfigError: The config file itself (or a ``--set``) is invalid.

    """
    import memsim
    from lab.experiment.inputs import resolve_profile
    from memsim.profiles import ProfileError
    from models.baselines import get_recipe

    for axis in axes:
        _check_key(axis)
    sets = list(overrides)
    load_config(config_path, scale=scale, overrides=sets)  # type: ignore[arg-type]
    for cell in cells(axes):
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in cell.items())
        on_config = {k: v for k, v in cell.items() if k.split(".")[0] not in profile_sections()}
        cell_sets = [*sets, *(f"{k}={json.dumps(v)}" for k, v in on_config.items())]
        try:
            base = load_config(config_path, scale=scale, overrides=cell_sets)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise GridError(f"--grid cell {label}: {_one_line(str(exc))}") from exc
        over: dict[str, Any] = {}
        for k, v in cell.items():
            if k.split(".")[0] in profile_sections():
                over = _merge(over, _nested(k, v))
        if not over:
            continue
        profile = resolve_profile(base, get_recipe(base.experiment.task, base.experiment.scale))
        data = _merge(profile.model_dump(mode="json"), over)
        try:
            memsim.validate_profile(data, origin=profile.name)
        except ProfileError as exc:
            raise GridError(f"--grid cell {label}: {_one_line(str(exc))}") from exc


def _one_line(text: str) -> str:
    out = ""
    for line in (t.strip() for t in text.splitlines() if t.strip()):
        out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def cells(axes: Sequence[GridAxis]) -> list[dict[str, Any]]:
    """The grid's cells as ``{key: value}`` (cartesian product, first axis slowest)."""
    keys = [a.key for a in axes]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(a.values for a in axes))]


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def write_cell_profile(base: Any, overrides: dict[str, Any], path: Path, label: str) -> Path:
    """Write ``base`` with ``overrides`` (dotted profile keys) as a profile JSON; validate it.

    A shipped base is ``extends``-ed (the file holds only the overrides); a derived one
    (e.g. ``paper_2bit_3pct``) is copied whole.  Every overridden number gets a ``source``
    entry saying it is a swept value.

    Raises:
        memsim.profiles.ProfileError: A value the profile schema refuses (names the field).

    """
    import memsim
    from memsim.profiles import list_profiles

    over: dict[str, Any] = {}
    for key, value in overrides.items():
        over = _merge(over, _nested(key, value))
    source = {key: "memsim sweep grid: swept value (assumed, not measured)" for key in overrides}
    name = f"{base.name}+{label}"
    if base.name in list_profiles():
        data = {"name": name, "extends": base.name, **over, "source": source}
    else:
        dumped = base.model_dump(mode="json")
        dumped.pop("extends", None)
        data = _merge(dumped, over)
        data.update(name=name, source={**dumped.get("source", {}), **source})
    data["description"] = f"{base.name} with {', '.join(f'{k}={v}' for k, v in overrides.items())}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    memsim.load_profile(path)
    return path


def cell_config(
    config_path: Path,
    scale: str | None,
    overrides: Sequence[str],
    cell: dict[str, Any],
    cell_index: int,
    replicate: int,
    out: Path,
    vary_chips: bool = False,
) -> ExperimentConfig:
    """The experiment of one (cell, replicate)."""
    from lab.experiment.inputs import resolve_profile
    from models.baselines import get_recipe

    config_sets = [
        f"{k}={json.dumps(v)}" for k, v in cell.items() if k.split(".")[0] not in profile_sections()
    ]
    base = load_config(config_path, scale=scale, overrides=[*overrides, *config_sets])  # type: ignore[arg-type]
    profile_over = {k: v for k, v in cell.items() if k.split(".")[0] in profile_sections()}
    sets = list(config_sets)
    if profile_over:
        recipe = get_recipe(base.experiment.task, base.experiment.scale)
        profile = resolve_profile(base, recipe)
        path = write_cell_profile(
            profile,
            profile_over,
            out / "profiles" / f"cell{cell_index:03d}.json",
            f"cell{cell_index:03d}",
        )
        sets.append(f"chip.profile={json.dumps(str(path))}")
    name = f"{base.experiment.name}-c{cell_index:03d}-s{replicate}"
    cfg = load_config(config_path, scale=scale, overrides=[*overrides, *sets])  # type: ignore[arg-type]
    cfg = replicate_config(cfg, replicate, vary_chips=vary_chips)
    return cfg.model_copy(update={"experiment": cfg.experiment.model_copy(update={"name": name})})


def run_grid(
    config_path: str | os.PathLike[str],
    axes: Sequence[GridAxis],
    ctx: RunContext | None = None,
    *,
    seeds: int = 1,
    vary_chips: bool = False,
    scale: str | None = None,
    overrides: Sequence[str] = (),
    out: str | os.PathLike[str] | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run (or resume) a grid sweep; write ``grid.json``, ``grid.csv`` and the plots.

    Args:
        config_path: The experiment TOML every cell starts from.
        axes: The swept keys (:func:`parse_axis`); at least one.
        seeds: Independent replicates per cell (every seed ``+ 0 .. seeds-1``).
        vary_chips: Replicates also draw new chip instances (as ``--vary-chips``).
        scale: ``quick``/``paper`` as for ``memsim ga`` (None: the config's own).
        overrides: ``--set`` values applied to every cell (before the grid's).
        ctx: Run root (baselines, default output folder), data root, executor (where
            the runs go; default serial, in this process), device, progress, echo.
        out: Output folder (default ``<run_root>/sweeps/grid-<name>-<timestamp>``).
        resume_dir: An earlier grid folder to continue (same config, axes, seeds).

    Returns:
        ``(state, out_dir)``; ``state["runs"]`` lists every (cell, seed).

    Raises:
        GridError: No axis, ``seeds < 1``, a key or value the schemas refuse (before
            anything is written, :func:`check_cells`), or a resume folder of another grid.

    """
    from lab.experiment.inputs import prepare_inputs
    from lab.experiment.runner import RESULTS_JSON, Experiment, run_experiment
    from lab.studies.replicates import ExperimentJob, run_job

    ctx = ctx or RunContext()
    run_root, echo = ctx.run_root, ctx.echo

    if not axes:
        raise GridError("sweep grid needs at least one --grid KEY=V1,V2,...")
    if seeds < 1:
        raise GridError(f"--seeds must be >= 1, got {seeds}")
    # every key and value is checked before a folder or a cell file is created
    check_cells(config_path, axes, scale=scale, overrides=overrides)
    config_path = Path(config_path)
    spec = {
        "config": str(config_path.resolve()),
        "scale": scale,
        "overrides": list(overrides),
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes],
        "seeds": seeds,
        "vary_chips": vary_chips,
    }
    if resume_dir is not None:
        folder = Path(resume_dir)
        if not (folder / GRID_JSON).is_file():
            raise GridError(f"{folder} is not a grid sweep folder (no {GRID_JSON})")
        state = read_json(folder / GRID_JSON)
        saved = {k: state.get(k) for k in spec}
        if saved != json.loads(json.dumps(spec)):
            diff = [k for k in spec if json.dumps(saved[k]) != json.dumps(spec[k])]
            raise GridError(f"refusing to resume {folder}: its grid differs in {', '.join(diff)}")
    else:
        first = load_config(config_path, scale=scale, overrides=overrides)  # type: ignore[arg-type]
        parent = Path(out) if out is not None else Path(run_root) / "sweeps"
        folder = new_run_dir(parent, f"grid-{first.experiment.name}")
        state = {**spec, "runs": []}
    state.setdefault("sessions", []).append(environment())
    executor = ctx.executor or ExecutorSpec()
    state["executor"] = executor.describe()

    def save() -> None:
        write_json(folder / GRID_JSON, state)

    grid = cells(axes)
    if not state["runs"]:
        state["runs"] = [
            {"cell": c, "seed_index": r, "values": v, "status": "pending"}
            for c, v in enumerate(grid)
            for r in range(seeds)
        ]
    configs: dict[int, ExperimentConfig] = {}
    for i, run in enumerate(state["runs"]):
        cfg = cell_config(
            config_path,
            scale,
            overrides,
            run["values"],
            run["cell"],
            run["seed_index"],
            folder,
            vary_chips,
        )
        configs[i] = cfg
        run["ga_seed"] = cfg.ga.seed
        run["baseline_seed"] = cfg.experiment.seed
        if run["status"] != "complete" and not run.get("run_dir"):
            exp = Experiment.create(cfg, ctx, folder=folder / "runs")
            run["run_dir"] = str(exp.run_dir)
    save()
    todo = [i for i, run in enumerate(state["runs"]) if run["status"] != "complete"]
    done = len(state["runs"]) - len(todo)
    if done:
        echo(f"sweep grid: {done} of {len(state['runs'])} runs already complete, skipped")
    start = time.perf_counter()
    # baselines are trained once here, not by several workers at the same time
    baselines = {
        (configs[i].experiment.task, configs[i].experiment.scale, configs[i].experiment.seed): i
        for i in todo
    }
    for i in baselines.values():
        prepare_inputs(shift_seeds(configs[i], ctx.seed_offset), ctx)

    def finished(i: int, error: str) -> None:
        run = state["runs"][i]
        if error:
            run.update(status="failed", reason=error)
            echo(f"sweep grid run {i + 1}/{len(state['runs'])} {run['values']}: failed: {error}")
        else:
            results = read_json(Path(run["run_dir"]) / RESULTS_JSON)
            run.update(status="complete", headline=results["headline"])
            run["energy"] = energy_of(results)
            run.pop("reason", None)
            echo(
                f"sweep grid run {i + 1}/{len(state['runs'])} {run['values']} seed "
                f"{run['ga_seed']}: "
                + ", ".join(f"{k} {v:.2f}" for k, v in results["headline"].items())
            )
        save()

    if executor.parallel:
        jobs = [
            ExperimentJob(
                configs[i],
                state["runs"][i]["run_dir"],
                str(run_root),
                ctx.data_root,
                ctx.device,
                ctx.seed_offset,
            )
            for i in todo
        ]
        with make_executor(executor) as ex:
            ex.map(run_job, jobs, on_result=lambda k, err: finished(todo[k], err))
    else:
        for i in todo:
            run = state["runs"][i]
            echo(
                f"sweep grid run {i + 1}/{len(state['runs'])}: {run['values']} "
                f"seed {run['ga_seed']}"
            )
            run_experiment(configs[i], ctx, resume_dir=run["run_dir"])
            finished(i, "")
    state["wall_time_s"] = state.get("wall_time_s", 0.0) + time.perf_counter() - start
    save()
    write_csv(state, folder / GRID_CSV)
    write_plots(state, folder)
    return state, folder
