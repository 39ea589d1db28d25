"""A complete GA experiment: baseline -> GA on a chip -> control -> test scores.

:func:`run_experiment` runs the stages of one :class:`~lab.experiment_config.ExperimentConfig`
in a run folder and can resume any of them:

1. **data**: the task's dataset; ``data.val_size`` images are carved (stratified) out
   of the training split as the GA's validation split (the fitness is measured on it,
   the fine-tunes train on the rest); the test split is held out for the final scores.
2. **baseline**: reused from ``<run_root>/baselines/`` if present, otherwise trained and
   saved there (:mod:`lab.baseline`; by default without the validation images).
3. **GA**: :class:`ga.GATrainer` with :class:`lab.task_fitness.TaskFitness` on chip
   ``chip.chip_seed`` (checkpointed every generation in ``ga/``).
4. **control**: the baseline QAT-fine-tuned, without the GA, for as many QAT steps as
   the GA spent (population x evaluated generations x ``finetune_steps``), with the same
   routine (:func:`lab.finetune.qat_tune`), data, bits, noise and learning rate.
5. **scores**: baseline, GA best-ever and control weights on the *test* split, over
   ``evaluation.draws`` fresh programming/read-noise draws of the fitness chip (paired
   across the three models) and of every ``chip.transfer_chip_seeds`` chip.

Reported numbers are test accuracies only; the GA's fitness (a noisy maximum over many
validation measurements) is kept in ``ga/`` and plotted as such, never reported as a
result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

import memsim
from ga.config import FinetuneMode, GAConfig
from ga.genome import Genome
from ga.history import GenerationRecord
from ga.trainer import GATrainer
from lab.baseline import BASELINE_DIR, load_or_train
from lab.experiment_config import ConfigError, EvaluationSection, ExperimentConfig
from lab.experiment_report import build_results, cost_block, write_plots
from lab.finetune import qat_tune
from lab.run_folder import (
    environment,
    new_run_dir,
    read_json,
    update_run_json,
    write_json,
)
from lab.scoring import Score, score_on_chip, scoring_seed
from lab.task_fitness import TaskFitness
from memsim.atomic_io import atomic_torch_save
from models.data import (
    CALIBRATION_SIZE,
    ImageDataset,
    calibration_images,
    file_sha256,
    load_dataset,
    resolve_data_root,
    stratified_subset,
    train_val_split,
)
from models.quant import WeightMap
from models.tasks import Task, baseline_state, make_task

log = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
RESULTS_JSON = "results.json"
SCORES_JSON = "scores.json"
GA_DIR = "ga"
SNAPSHOT_DIR = "snapshots"

# independent streams derived from the configured seeds
_STREAM_TEST_SUBSET, _STREAM_CONTROL, _STREAM_BASELINE_FITNESS, _STREAM_CALIBRATION = 11, 12, 13, 14

Echo = Callable[[str], None]


class ExperimentError(RuntimeError):
    """An experiment cannot run (e.g. a resume that does not match its folder)."""


# ----------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """Data, baseline, device and task of an experiment (everything before the GA)."""

    train_full: ImageDataset
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    baseline: nn.Module
    baseline_meta: dict[str, Any]
    baseline_path: Path
    profile: Any
    task: Task
    genome: Genome
    base_genes: Tensor
    qat_sigma: float

    @property
    def calibration(self) -> Tensor:
        """Training images that set a calibrated chip's converter ranges when scoring."""
        return calibration_images(self.train, seed=_STREAM_CALIBRATION)

    @property
    def support(self) -> ImageDataset | None:
        """Training split the test-time ProtoNet support sets come from."""
        return self.train_full if self.task.is_protonet else None

    def score(
        self,
        genes: Tensor,
        evaluation: EvaluationSection,
        *,
        chip_seed: int,
        profile: Any = None,
        drift_times_s: tuple[float, ...] = (),
    ) -> dict[str, Score]:
        """Test scores of ``genes`` on chip ``chip_seed`` (:func:`lab.scoring.score_on_chip`).

        ``profile`` defaults to the experiment's; the draws, support sets and seed are
        ``evaluation``'s, so scores of different weights are paired.
        """
        return score_on_chip(
            self.baseline,
            self.genome,
            genes,
            self.profile if profile is None else profile,
            chip_seed=chip_seed,
            task=self.task,
            test=self.test,
            support=self.support,
            draws=evaluation.draws,
            support_draws=evaluation.support_draws,
            seed=evaluation.seed,
            drift_times_s=drift_times_s,
            calibration=self.calibration,
        )


def resolve_profile(cfg: ExperimentConfig, recipe: Any) -> Any:
    """The configured profile; ``"auto"`` = the task's ``paper_*`` profile."""
    from models.evaluate import paper_profile

    if cfg.chip.profile == "auto":
        return paper_profile(recipe.bits, recipe.sigma)
    return memsim.load_profile(cfg.chip.profile)


def prepare_inputs(
    cfg: ExperimentConfig,
    run_root: str | os.PathLike[str],
    data_root: str | None,
    echo: Echo,
    device: str = "cpu",
) -> Inputs:
    """Load data and profile, then load or train the baseline (data first: fail early).

    With a ``device`` other than the CPU the baseline trains there, and the returned
    baseline and datasets live there (the GA's genes stay on the CPU).
    """
    from models.baselines import get_recipe

    e = cfg.experiment
    recipe = get_recipe(e.task, e.scale)
    root = resolve_data_root(cfg.data.root or data_root)
    train_full, test = load_dataset(recipe.dataset, root=root, download=cfg.data.download)
    if cfg.data.val_size >= len(train_full):
        raise ConfigError(
            f"data.val_size={cfg.data.val_size} must be below the {len(train_full)} training images"
        )
    train, val = train_val_split(train_full, cfg.data.val_size / len(train_full), e.seed)
    if cfg.data.test_size is not None:
        subset_seed = scoring_seed(e.seed, _STREAM_TEST_SUBSET)
        test = stratified_subset(test, cfg.data.test_size, subset_seed)
    profile = resolve_profile(cfg, recipe)
    baseline, meta, path = load_or_train(cfg, run_root, root, train, echo, device=device)
    f = cfg.fitness
    task = make_task(
        baseline, batch_size=f.batch_size, n_way=f.n_way, k_shot=f.k_shot, n_query=f.n_query
    )
    genome = Genome.from_model(baseline)
    base_genes = genome.from_module(baseline)
    if device != "cpu":
        baseline = baseline.to(device)
        train_full, train, val, test = (d.to(device) for d in (train_full, train, val, test))
    return Inputs(
        train_full=train_full,
        train=train,
        val=val,
        test=test,
        baseline=baseline,
        baseline_meta=meta,
        baseline_path=path,
        profile=profile,
        task=task,
        genome=genome,
        base_genes=base_genes,
        qat_sigma=cfg.chip.qat_sigma if cfg.chip.qat_sigma is not None else recipe.sigma,
    )


# ----------------------------------------------------------------------------- stages


def _save_weights(path: Path, inputs: Inputs, genes: Tensor, meta: dict[str, Any]) -> None:
    """Save ``genes`` in the baseline network as a ``models.checkpoint`` file."""
    from lab.finetune import with_genes
    from models.checkpoint import save_checkpoint

    # written from the CPU, so that a checkpoint made on a GPU loads anywhere
    save_checkpoint(path, with_genes(inputs.baseline, inputs.genome, genes).cpu(), meta)


def _load_genes(path: Path, inputs: Inputs) -> Tensor:
    from models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return inputs.genome.from_module(model)


class Experiment:
    """One experiment in one run folder; :meth:`run` executes (or resumes) every stage."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: Path,
        *,
        run_root: str | os.PathLike[str] = "runs",
        data_root: str | None = None,
        progress: bool = True,
        echo: Echo = print,
        executor: Any = None,
        device: str = "cpu",
    ) -> None:
        """Bind a config to a run folder (see :meth:`create` and :meth:`open`).

        ``executor`` (a :class:`lab.executors.ExecutorSpec`, default serial) is where the
        GA's population is evaluated; any choice gives the same numbers.  ``device`` is
        where the baseline, fine-tunes, chips and scoring run.
        """
        self.config = config
        self.executor = executor
        self.device = device
        self.run_dir = Path(run_dir)
        self.run_root = Path(run_root)
        self.data_root = data_root
        self.progress = progress
        self.echo = echo

    @classmethod
    def create(
        cls,
        config: ExperimentConfig,
        *,
        run_root: str | os.PathLike[str] = "runs",
        folder: str | os.PathLike[str] | None = None,
        source_text: str | None = None,
        **kwargs: Any,
    ) -> Experiment:
        """Make a new run folder ``<folder or run_root/ga>/<name>-<timestamp>``."""
        parent = Path(folder) if folder is not None else Path(run_root) / "ga"
        run_dir = new_run_dir(parent, config.experiment.name)
        write_json(run_dir / CONFIG_JSON, config.resolved())
        # so that a resume from any current directory finds this run's baselines
        update_run_json(run_dir, run_root=str(Path(run_root).resolve()))
        if source_text is not None:
            (run_dir / "config.source.toml").write_text(source_text, encoding="utf-8")
        return cls(config, run_dir, run_root=run_root, **kwargs)

    @classmethod
    def open(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        expected: ExperimentConfig | None = None,
        **kwargs: Any,
    ) -> Experiment:
        """Reopen a run folder to resume it, with the config saved in it.

        Args:
            run_dir: The folder.
            expected: If given, must equal the saved config (except ``ga.progress``).
            **kwargs: Passed to the constructor.

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
        return cls(config, run_dir, **kwargs)

    # ------------------------------------------------------------------ helpers

    def _ga_config(self) -> GAConfig:
        return self.config.ga.model_copy(
            update={"checkpoint_dir": self.run_dir / GA_DIR, "progress": self.progress}
        )

    def _stage_time(self, name: str, seconds: float) -> None:
        data = read_json(self.run_dir / "run.json") if (self.run_dir / "run.json").exists() else {}
        times = data.get("wall_time_s", {})
        times[name] = times.get(name, 0.0) + seconds
        update_run_json(self.run_dir, wall_time_s=times)

    def _record_start(self, inputs: Inputs, resumed: bool) -> None:
        cfg = self.config
        path = self.run_dir / "run.json"
        previous = read_json(path) if path.exists() else {}
        sessions = previous.get("sessions", [])
        sessions.append(
            {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed": resumed, **environment()}
        )
        prof = inputs.profile
        update_run_json(
            self.run_dir,
            status="running",
            name=cfg.experiment.name,
            config=cfg.resolved(),
            sessions=sessions,
            seeds={
                "baseline": cfg.experiment.seed,
                "split": cfg.experiment.seed,
                "ga": cfg.ga.seed,
                "fitness_chip": cfg.chip.chip_seed,
                "transfer_chips": cfg.chip.transfer_chip_seeds,
                "evaluation": cfg.evaluation.seed,
                "control": scoring_seed(cfg.ga.seed, _STREAM_CONTROL),
            },
            profile=prof.model_dump(mode="json"),
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

    # ------------------------------------------------------------------ stages

    def _run_ga(self, inputs: Inputs, fitness: TaskFitness) -> tuple[Any, GATrainer]:
        cfg = self.config
        ga_cfg = self._ga_config()
        snap_dir = self.run_dir / GA_DIR / SNAPSHOT_DIR
        every = cfg.evaluation.test_every

        def on_generation(trainer: GATrainer, record: GenerationRecord) -> None:
            # best-ever weights at this generation, for the test-accuracy curve; scored
            # after the GA so the test set never influences the run
            if every and record.generation % every == 0:
                snap_dir.mkdir(parents=True, exist_ok=True)
                atomic_torch_save(
                    trainer.best_solution, snap_dir / f"gen-{record.generation:04d}.pt"
                )
            if not self.progress:  # one log line per generation instead of a bar
                self.echo(
                    f"GA generation {record.generation}/{cfg.ga.generations}: validation fitness "
                    f"best {100 * record.best:.2f}, mean {100 * record.mean:.2f}, best-ever "
                    f"{100 * record.best_ever:.2f} % ({record.wall_time_s:.1f} s)"
                )

        from lab.parallel_fitness import population_evaluator

        resume = (self.run_dir / GA_DIR / "checkpoint.pt").exists()
        if resume:
            self.echo(f"GA: resuming from {self.run_dir / GA_DIR}")
        t0 = time.perf_counter()
        with population_evaluator(fitness, self.executor) as evaluator:
            trainer = GATrainer(
                ga_cfg,
                evaluator,
                inputs.base_genes,
                genome=inputs.genome,
                on_generation=on_generation,
            )
            result = trainer.run(resume=resume)
        self._stage_time("ga", time.perf_counter() - t0)
        return result, trainer

    def _baseline_fitness(self, inputs: Inputs, fitness: TaskFitness) -> float:
        """Baseline's validation accuracy on the fitness chip (the plot's baseline line)."""
        path = self.run_dir / "baseline_fitness.json"
        if path.exists():
            return float(read_json(path)["validation_accuracy"])
        cfg = self.config
        seeds = [
            scoring_seed(cfg.ga.seed, _STREAM_BASELINE_FITNESS, i)
            for i in range(cfg.evaluation.draws)
        ]
        value = fitness.measure(inputs.base_genes, seeds)
        write_json(
            path,
            {
                "validation_accuracy": value,
                "note": "validation split, fitness chip, no fine-tune; a plot reference only",
            },
        )
        return value

    def control_steps(self, generations_evaluated: int) -> int:
        """QAT steps of the control: the GA's P x evaluated generations x fine-tune steps."""
        c, g = self.config.control, self.config.ga
        if c.steps is not None:
            return c.steps
        return g.population_size * generations_evaluated * g.finetune_steps

    def _run_control(
        self, inputs: Inputs, steps: int, weight_map: WeightMap | None = None
    ) -> Tensor:
        name = "control" if weight_map is None else "control_chip"
        path = self.run_dir / f"{name}.pt"
        if path.exists():
            return _load_genes(path, inputs)
        cfg = self.config
        bar = tqdm(total=steps, desc=f"{name} QAT", unit="step", disable=not self.progress)

        def on_step(_step: int, loss: float) -> None:
            bar.update(1)
            if _step % 20 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")

        work = _copy(inputs.baseline)
        t0 = time.perf_counter()
        try:
            genes = qat_tune(
                work,
                inputs.genome,
                inputs.base_genes,
                baseline_state(inputs.baseline),
                inputs.task.loss,
                lambda gen: inputs.task.batch(inputs.train, gen),
                steps=steps,
                bits=cfg.ga.weight_bits,
                sigma=inputs.qat_sigma,
                lr=cfg.ga.finetune_lr,
                seed=scoring_seed(cfg.ga.seed, _STREAM_CONTROL),
                on_step=on_step,
                weight_map=weight_map,
                train_mode=cfg.ga.finetune_mode is FinetuneMode.TRAIN,
            )
        finally:
            bar.close()
        self._stage_time(name, time.perf_counter() - t0)
        meta = {**inputs.baseline_meta, "weights": name, "control_qat_steps": steps}
        _save_weights(path, inputs, genes, meta)
        return genes

    def _score(
        self, inputs: Inputs, genes: dict[str, Tensor], snapshots: dict[int, Tensor]
    ) -> dict[str, Any]:
        """Test scores of every model on every chip (cached in ``scores.json``)."""
        cfg = self.config
        ev = cfg.evaluation
        path = self.run_dir / SCORES_JSON
        cache: dict[str, Any] = read_json(path) if path.exists() else {}
        chips = [cfg.chip.chip_seed, *cfg.chip.transfer_chip_seeds]
        jobs: list[tuple[str, Tensor, int, tuple[float, ...]]] = []
        for chip in chips:
            for name, g in genes.items():
                jobs.append((f"{name}@chip{chip}", g, chip, tuple(ev.drift_times_s)))
        for gen_idx, g in sorted(snapshots.items()):
            jobs.append(
                (f"ga_gen{gen_idx:04d}@chip{cfg.chip.chip_seed}", g, cfg.chip.chip_seed, ())
            )
        for key, _, chip, _ in jobs:
            # the baseline's scores do not depend on the GA: share them across runs
            if key.startswith("baseline@") and key not in cache:
                shared = self._shared_baseline_score(inputs, chip)
                if shared.exists():
                    cache[key] = read_json(shared)["scores"]
        todo = [j for j in jobs if j[0] not in cache]
        t0 = time.perf_counter()
        for key, g, chip, drifts in tqdm(todo, desc="test scoring", disable=not self.progress):
            scores = inputs.score(g, ev, chip_seed=chip, drift_times_s=drifts)
            cache[key] = {k: s.accuracies for k, s in scores.items()}
            write_json(path, cache)  # a kill while scoring loses at most one model
            if key.startswith("baseline@"):
                shared = self._shared_baseline_score(inputs, chip)
                shared.parent.mkdir(parents=True, exist_ok=True)
                write_json(
                    shared, {"key": self._baseline_score_key(inputs, chip), "scores": cache[key]}
                )
        if todo:
            self._stage_time("scoring", time.perf_counter() - t0)
        return cache

    def _baseline_score_key(self, inputs: Inputs, chip: int) -> dict[str, Any]:
        """Everything the baseline's test score depends on."""
        cfg = self.config
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

    def _shared_baseline_score(self, inputs: Inputs, chip: int) -> Path:
        blob = json.dumps(self._baseline_score_key(inputs, chip), sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:24]
        name = f"{inputs.baseline_path.stem}-{digest}.json"
        return self.run_root / BASELINE_DIR / "scores" / name

    # ------------------------------------------------------------------ run

    def run(self) -> dict[str, Any]:
        """Run or resume every stage; write ``results.json`` and plots; return the results."""
        if self.config.recovery.methods:  # the recovery stage replaces GA and control
            from lab.recovery.stage import run_recovery

            return run_recovery(self)
        t_start = time.perf_counter()
        cfg = self.config
        resumed = (
            bool(read_json(self.run_dir / "run.json").get("sessions"))
            if (self.run_dir / "run.json").exists()
            else False
        )
        t0 = time.perf_counter()
        inputs = prepare_inputs(cfg, self.run_root, self.data_root, self.echo, self.device)
        self._stage_time("setup", time.perf_counter() - t0)
        self._record_start(inputs, resumed)
        self.echo(
            f"{cfg.experiment.name}: {cfg.experiment.task} on {inputs.profile.name} "
            f"(chip {cfg.chip.chip_seed}), {len(inputs.train)} train / {len(inputs.val)} val / "
            f"{len(inputs.test)} test images, run folder {self.run_dir}"
        )
        fitness = TaskFitness(
            inputs.baseline,
            inputs.genome,
            inputs.profile,
            self._ga_config(),
            task=inputs.task,
            train=inputs.train,
            val=inputs.val,
            qat_sigma=inputs.qat_sigma,
            chip_seed=cfg.chip.chip_seed,
            support_draws=cfg.fitness.support_draws,
        )
        baseline_fitness = self._baseline_fitness(inputs, fitness)
        ga_result, trainer = self._run_ga(inputs, fitness)
        ga_path = self.run_dir / "ga_best.pt"
        if not ga_path.exists():
            meta = {
                **inputs.baseline_meta,
                "weights": "ga_best",
                "ga_best_generation": ga_result.best_generation,
            }
            _save_weights(ga_path, inputs, ga_result.best_solution, meta)

        evaluated = len(ga_result.history)
        genes = {"baseline": inputs.base_genes, "ga": ga_result.best_solution}
        steps = self.control_steps(evaluated)
        if cfg.control.enabled:
            self.echo(f"control: {steps} QAT steps (the GA's {self._qat_formula(evaluated)})")
            genes["control"] = self._run_control(inputs, steps)
            if cfg.control.chip_aware:
                self.echo(
                    f"chip-aware control: {steps} QAT steps through chip {cfg.chip.chip_seed}"
                )
                genes["control_chip"] = self._run_control(
                    inputs, steps, weight_map=memsim.defect_weight_map(fitness.chip)
                )

        snapshots = {}
        snap_dir = self.run_dir / GA_DIR / SNAPSHOT_DIR
        if cfg.evaluation.test_every and snap_dir.is_dir():
            for p in sorted(snap_dir.glob("gen-*.pt")):
                snapshots[int(p.stem.split("-")[1])] = torch.load(p, weights_only=True)
        cache = self._score(inputs, genes, snapshots)

        results = build_results(cfg, inputs, ga_result, cache, steps, evaluated, snapshots)
        results["cost"] = cost_block(cfg, inputs, genes)
        write_json(self.run_dir / RESULTS_JSON, results)
        write_plots(self.run_dir, cfg, inputs, ga_result.history, baseline_fitness, results)
        self._stage_time("total", time.perf_counter() - t_start)
        update_run_json(self.run_dir, status="complete", results_file=RESULTS_JSON)
        results["wall_time_s"] = read_json(self.run_dir / "run.json")["wall_time_s"]
        write_json(self.run_dir / RESULTS_JSON, results)
        return results

    def _qat_formula(self, evaluated: int) -> str:
        g = self.config.ga
        return f"{g.population_size} x {evaluated} generations x {g.finetune_steps} steps"


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


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
    *,
    run_root: str | os.PathLike[str] = "runs",
    folder: str | os.PathLike[str] | None = None,
    resume_dir: str | os.PathLike[str] | None = None,
    data_root: str | None = None,
    progress: bool = True,
    echo: Echo = print,
    source_text: str | None = None,
    executor: Any = None,
    device: str = "cpu",
) -> tuple[dict[str, Any], Path]:
    """Run one experiment in a new run folder, or resume ``resume_dir``.

    The profile and dataset are checked before a folder is made
    (:func:`lab.run_checks.preflight`); a new folder whose setup fails is marked
    ``failed`` and is never resumed; a finished ``resume_dir`` is returned as it is,
    with its stored results; a damaged GA checkpoint is refused before anything in the
    folder is written.

    Args:
        config: The experiment.
        run_root: Root of ``baselines/`` and (by default) of the run folders.
        folder: Parent of the new run folder (default ``<run_root>/ga``).
        resume_dir: Continue this run folder instead (its saved config must equal
            ``config``).
        data_root: Dataset folder when the config names none.
        progress: Show progress bars.
        echo: Where status lines go.
        source_text: The TOML text the config was read from (copied into the folder).
        executor: Where the GA's population is evaluated (``lab.executors.ExecutorSpec``).
        device: Where models and chips run (``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        ``(results, run_dir)``.

    """
    from lab import run_checks

    kwargs = dict(
        run_root=run_root,
        data_root=data_root,
        progress=progress,
        echo=echo,
        executor=executor,
        device=device,
    )
    # a bad profile or a missing dataset is refused before a run folder exists
    run_checks.preflight(config, data_root)
    if resume_dir is not None:
        run_checks.check_resumable(resume_dir)
        exp = Experiment.open(resume_dir, expected=config, **kwargs)
        if run_checks.is_finished(exp.run_dir) and (exp.run_dir / RESULTS_JSON).is_file():
            echo(
                f"{exp.run_dir} is finished (run.json status 'complete'); nothing was rerun "
                "or rewritten"
            )
            return read_json(exp.run_dir / RESULTS_JSON), exp.run_dir
        run_checks.check_ga_checkpoint(exp.run_dir)  # a corrupt one: refused, folder untouched
        return exp.run(), exp.run_dir
    exp = Experiment.create(config, folder=folder, source_text=source_text, **kwargs)
    try:
        return exp.run(), exp.run_dir
    except Exception as exc:
        if not run_checks.started(exp.run_dir):
            run_checks.mark_failed(exp.run_dir, exc)
        raise
