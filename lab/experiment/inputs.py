"""The inputs of an experiment: data, baseline, profile, task and genome, prepared once.

:func:`prepare_inputs` loads the data and the profile first (so a missing dataset fails
early), then loads or trains the baseline (:mod:`lab.experiment.baseline`).  A baseline
with torch attention or transformer layers is rebuilt by
:func:`memsim.transformer.restructure` (same outputs), so that the genome holds the
split ``q_proj``, ``k_proj`` and ``v_proj`` weights the chip holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

import memsim
from ga.genome import Genome
from lab.experiment.baseline import load_or_train
from lab.experiment.config import ConfigError, EvaluationSection, ExperimentConfig
from lab.experiment.context import RunContext
from lab.fitness.scoring import Score, score_on_chip, scoring_seed
from memsim.transformer import restructure
from models.data import (
    ImageDataset,
    calibration_images,
    load_dataset,
    resolve_data_root,
    stratified_subset,
    train_val_split,
)
from models.tasks import Task, make_task

# independent streams derived from the configured seeds
_STREAM_TEST_SUBSET, _STREAM_CALIBRATION = 11, 14


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
        trim: Any = None,
        placement: Any = None,
        adapters: Any = None,
        committee: int | None = None,
        ensemble: Any = None,
    ) -> dict[str, Score]:
        """Test scores of ``genes`` on chip ``chip_seed`` (``lab.fitness.scoring.score_on_chip``).

        ``profile`` defaults to the experiment's; the draws, support sets and seed are
        ``evaluation``'s, so scores of different weights are paired.  ``trim`` is a
        digital output trim to deploy with the weights (e.g. ``ga_knobs``'s), ``placement``
        the weights' per-tile permutations (e.g. ``ga_mapping``'s), ``adapters`` digital
        branches beside the analog layers (``adapter_lora``'s), ``committee`` a number of
        network copies on independent arrays whose outputs are averaged (``committee``'s),
        ``ensemble`` per-layer copies mixed per column (``layer_ensemble``'s).
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
            trim=trim,
            placement=placement,
            adapters=adapters,
            committee=committee,
            ensemble=ensemble,
        )


def resolve_profile(cfg: ExperimentConfig, recipe: Any) -> Any:
    """The configured profile; ``"auto"`` = the task's ``paper_*`` profile."""
    from models.evaluate import paper_profile

    if cfg.chip.profile == "auto":
        return paper_profile(recipe.bits, recipe.sigma)
    return memsim.load_profile(cfg.chip.profile)


def prepare_inputs(cfg: ExperimentConfig, ctx: RunContext) -> Inputs:
    """Load data and profile, then load or train the baseline (data first: fail early).

    With a ``ctx.device`` other than the CPU the baseline trains there, and the returned
    baseline and datasets live there (the genes stay on the CPU).
    """
    run_root, data_root, echo, device = ctx.run_root, ctx.data_root, ctx.echo, ctx.device
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
    # attention and transformer layers rebuilt so that every projection is an nn.Linear
    # (the packed in_proj_weight split into q/k/v_proj, as memsim.convert maps it): the
    # genome, the fine-tunes and the chips then cover every weight on a tile
    baseline = restructure(baseline)
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


# ----------------------------------------------------------------------------- runs
