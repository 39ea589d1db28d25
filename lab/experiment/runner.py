"""One experiment: baseline, then every method on a chip, then paired test scores.

:func:`run_experiment` runs one :class:`~lab.experiment.config.ExperimentConfig` in a
run folder and can resume it.  The stages (:mod:`lab.experiment.pipeline`):

1. **data**: the task's dataset; ``data.val_size`` images are carved (stratified) out
   of the training split as the validation split (the GA's fitness and the search
   methods measure on it, the fine-tunes train on the rest); the test split is held out
   for the final scores.
2. **baseline**: reused from ``<run_root>/baselines/`` if present, otherwise trained and
   saved there (:mod:`lab.experiment.baseline`; by default without the validation images).
3. **methods**: every ``recovery.methods`` entry (default the paper's GA and ``qat``, its
   equal-budget control) on its own instance of chip ``chip.chip_seed``, each with the
   same budget of training steps (and chip evaluations for the search methods).
4. **scores**: the baseline and every method on the *test* split, over
   ``evaluation.draws`` fresh programming/read-noise draws of the fitness chip (paired
   across models) and of every ``chip.transfer_chip_seeds`` chip.

Reported numbers are test accuracies only; the GA's fitness (a noisy maximum over many
validation measurements) is kept in ``recovery/ga/`` and plotted as such, never
reported as a result.  Replicates of an experiment are :mod:`lab.studies.replicates`'s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from lab.experiment import checks as run_checks
from lab.experiment.checks import ExperimentError
from lab.experiment.config import ExperimentConfig
from lab.experiment.context import SEED_OFFSET_ENV, STREAM_METHOD, RunContext, shift_seeds
from lab.experiment.inputs import Inputs
from lab.experiment.pipeline import run_methods
from lab.fitness.scoring import scoring_seed
from lab.run_folder import environment, new_run_dir, read_json, update_run_json, write_json

CONFIG_JSON = "config.json"
RESULTS_JSON = "results.json"


# ----------------------------------------------------------------------------- inputs


def prepare_run_dir(config: ExperimentConfig, ctx: RunContext, run_dir: Path) -> None:
    """Make ``run_dir`` an experiment folder of ``config`` under ``ctx``, not yet run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_JSON, config.resolved())
    # so that a resume from any current directory finds this run's baselines; the
    # offset, so that a resume under another one is refused
    update_run_json(
        run_dir, run_root=str(Path(ctx.run_root).resolve()), seed_offset=ctx.seed_offset
    )


class Experiment:
    """One experiment in one run folder; :meth:`run` executes (or resumes) every stage."""

    def __init__(self, config: ExperimentConfig, run_dir: Path, ctx: RunContext) -> None:
        """Bind a config to a run folder (see :meth:`create` and :meth:`open`).

        ``config`` is the experiment as given (``config.json``); the run uses it with its
        seeds shifted by ``ctx.seed_offset`` (``self.config``, recorded in ``run.json``).
        ``ctx.executor`` (default serial) is where the GA's population is evaluated; any
        choice gives the same numbers.  ``ctx.device`` is where the baseline, fine-tunes,
        chips and scoring run.
        """
        self.given = config
        self.config = shift_seeds(config, ctx.seed_offset)
        self.run_dir = Path(run_dir)
        self.ctx = ctx

    @property
    def run_root(self) -> Path:
        """Root of ``baselines/``."""
        return Path(self.ctx.run_root)

    def echo(self, text: str) -> None:
        """One status line."""
        self.ctx.echo(text)

    @classmethod
    def create(
        cls,
        config: ExperimentConfig,
        ctx: RunContext,
        *,
        folder: str | os.PathLike[str] | None = None,
        source_text: str | None = None,
    ) -> Experiment:
        """Make a new run folder ``<folder or run_root/ga>/<name>-<timestamp>``."""
        parent = Path(folder) if folder is not None else Path(ctx.run_root) / "ga"
        run_dir = new_run_dir(parent, config.experiment.name)
        prepare_run_dir(config, ctx, run_dir)
        if source_text is not None:
            (run_dir / "config.source.toml").write_text(source_text, encoding="utf-8")
        return cls(config, run_dir, ctx)

    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        ctx: RunContext,
        *,
        expected: ExperimentConfig | None = None,
    ) -> Experiment:
        """Reopen a run folder to resume it, with the config saved in it.

        Args:
            run_dir: The folder.
            ctx: Where and how it runs.
            expected: If given, must equal the saved config (except ``ga.progress``).

        Raises:
            ExperimentError: No config in the folder, or a different ``expected`` one.

        """
        run_dir = Path(run_dir)
        path = run_dir / CONFIG_JSON
        if not path.exists():
            raise ExperimentError(f"{run_dir} is not an experiment run folder (no {CONFIG_JSON})")
        config = ExperimentConfig.model_validate(read_json(path))
        if expected is not None:
            diff = _config_diff(config.resolved(), expected.resolved())
            if diff:
                raise ExperimentError(
                    f"refusing to resume {run_dir}: its config differs in " + ", ".join(diff)
                )
        run = run_dir / "run.json"
        offset = read_json(run).get("seed_offset", 0) if run.exists() else 0
        if offset != ctx.seed_offset:
            raise ExperimentError(
                f"refusing to resume {run_dir}: it ran with seed offset {offset}, now "
                f"{ctx.seed_offset} ({SEED_OFFSET_ENV}); set the same offset to resume it"
            )
        return cls(config, run_dir, ctx)

    # ------------------------------------------------------------------ run.json

    def run_json(self) -> dict[str, Any]:
        """The folder's ``run.json`` (empty before the first stage)."""
        path = self.run_dir / "run.json"
        return read_json(path) if path.exists() else {}

    def stage_time(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to stage ``name``'s wall time in ``run.json``."""
        times = self.run_json().get("wall_time_s", {})
        times[name] = times.get(name, 0.0) + seconds
        update_run_json(self.run_dir, wall_time_s=times)

    def record_start(self, inputs: Inputs, resumed: bool) -> None:
        """Record a session (machine, commit, threads), the seeds, profile and data."""
        cfg = self.config
        sessions = self.run_json().get("sessions", [])
        sessions.append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed": resumed, **environment()}
        )
        update_run_json(
            self.run_dir,
            status="running",
            name=cfg.experiment.name,
            config=cfg.resolved(),
            sessions=sessions,
            seeds={
                "baseline": cfg.experiment.seed,
                "split": cfg.experiment.seed,
                "method": cfg.ga.seed,
                "fitness_chip": cfg.chip.chip_seed,
                "transfer_chips": cfg.chip.transfer_chip_seeds,
                "evaluation": cfg.evaluation.seed,
                "method_stream": scoring_seed(cfg.ga.seed, STREAM_METHOD),
                "seed_offset": self.ctx.seed_offset,
            },
            profile=inputs.profile.model_dump(mode="json"),
            dataset={
                "name": inputs.train_full.name,
                "sha256": inputs.train_full.sha256,
                "source": inputs.train_full.source,
                "train_images": len(inputs.train),
                "val_images": len(inputs.val),
                "test_images": len(inputs.test),
            },
            baseline={
                "checkpoint": str(inputs.baseline_path),
                "meta_accuracy": inputs.baseline_meta.get("accuracy"),
                "meta_profile": inputs.baseline_meta.get("metrics", {}).get("profile"),
                "dataset_sha256": inputs.baseline_meta.get("dataset_sha256"),
            },
            qat_sigma=inputs.qat_sigma,
        )

    def run(self) -> dict[str, Any]:
        """Run or resume every stage; write ``results.json`` and plots; return the results."""
        return run_methods(self)


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (``ga.progress`` ignored: display only)."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if name == "ga.progress":
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{name}.")
        elif va != vb:
            out.append(f"{name} (run folder: {va!r}, now: {vb!r})")
    return out


def run_experiment(
    config: ExperimentConfig,
    ctx: RunContext | None = None,
    *,
    folder: str | os.PathLike[str] | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
    source_text: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Run one experiment in a new run folder, or resume ``resume_dir``.

    The run uses ``config`` with its seeds shifted by ``ctx.seed_offset``
    (:func:`lab.experiment.context.shift_seeds`); ``config.json`` holds the config as given,
    ``run.json`` the offset and the shifted seeds.
    The profile and dataset are checked before a folder is made
    (:func:`lab.experiment.checks.preflight`); a new folder whose setup fails is marked
    ``failed`` and is never resumed; a finished ``resume_dir`` is returned as it is,
    with its stored results; a damaged GA checkpoint is refused before anything in the
    folder is written.

    Args:
        config: The experiment (one replicate; :func:`lab.studies.replicates.run_study` runs many).
        ctx: Where and how it runs (default :class:`RunContext`).
        folder: Parent of the new run folder (default ``<run_root>/ga``).
        resume_dir: Continue this run folder instead (its saved config must equal
            ``config``).
        source_text: The TOML text the config was read from (copied into the folder).

    Returns:
        ``(results, run_dir)``.

    """
    ctx = ctx or RunContext()
    # a bad profile or a missing dataset is refused before a run folder exists
    run_checks.preflight(config, ctx.data_root)
    if resume_dir is not None:
        run_checks.check_resumable(resume_dir)
        exp = Experiment.open(resume_dir, ctx, expected=config)
        if run_checks.is_finished(exp.run_dir) and (exp.run_dir / RESULTS_JSON).is_file():
            ctx.echo(
                f"{exp.run_dir} is finished (run.json status 'complete'); nothing was rerun "
                "or rewritten"
            )
            return read_json(exp.run_dir / RESULTS_JSON), exp.run_dir
        run_checks.check_ga_checkpoint(exp.run_dir)  # a corrupt one: refused, folder untouched
        return exp.run(), exp.run_dir
    exp = Experiment.create(config, ctx, folder=folder, source_text=source_text)
    try:
        return exp.run(), exp.run_dir
    except Exception as exc:
        if not run_checks.started(exp.run_dir):
            run_checks.mark_failed(exp.run_dir, exc)
        raise
