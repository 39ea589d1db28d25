"""``TaskFitness``: :class:`lab.fitness.chip.ChipFitness` for any :class:`models.tasks.Task`.

``ChipFitness`` fine-tunes on random classification batches and scores with a fixed
``accuracy_fn(chip, val)``.  Two things differ for the experiments:

* the fine-tune uses the task's batches and loss (a ProtoNet is fine-tuned on
  episodes with the prototypical loss), through :func:`lab.fitness.finetune.qat_tune`, the same
  routine the extra-QAT control uses;
* a ProtoNet's fitness needs support sets.  They are drawn from the GA's training
  split with a generator seeded from the member's programming seed, so the score
  depends only on the member's genes and seeds (deterministic, resumable) and every
  evaluation sees new support images.  Test-time support sets come from another
  stream (:mod:`lab.fitness.scoring`), so the test never reuses the fitness's draws.

Everything else (one chip converted once with ``chip_seed``, fresh programming noise
per draw, serial or batched evaluation, Lamarckian write-back) is ``ChipFitness``'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ga.genome import Genome
from lab.fitness.chip import ChipFitness
from lab.fitness.config import FitnessConfig
from models.data import ImageDataset
from models.tasks import Task

SUPPORT_SALT = 0x5EED_50FF
"""Mixed into a programming seed to seed the support draws that go with it."""


class TaskFitness(ChipFitness):
    """Chip-in-the-loop validation accuracy after a task-specific QAT fine-tune."""

    def __init__(
        self,
        model: nn.Module,
        genome: Genome,
        profile: Any,
        config: FitnessConfig,
        *,
        weight_bits: int,
        task: Task,
        train: ImageDataset,
        val: ImageDataset,
        qat_sigma: float,
        chip_seed: int,
    ) -> None:
        """Convert the chip once; see :class:`lab.fitness.chip.ChipFitness`.

        Args:
            model: Baseline digital model (not modified).
            genome: Gene layout of ``model``.
            profile: Device profile (object, name or path).
            config: The fitness (fine-tune, programming draws, evaluation mode).
            weight_bits: Bit width of the deployed weights (the fine-tune's quantizer).
            task: Fine-tune batches/loss and accuracy of the network.
            train: Fine-tune data, and the support pool of a ProtoNet.
            val: Validation split the fitness is measured on.
            qat_sigma: Relative weight noise of the fine-tune.
            chip_seed: The chip instance of the whole run.

        """
        super().__init__(
            model,
            genome,
            profile,
            config,
            weight_bits=weight_bits,
            train=train,
            val=val,
            qat_sigma=qat_sigma,
            chip_seed=chip_seed,
            loss_fn=task.loss,
        )
        self.task = task

    def _draw_batch(self, gen: torch.Generator) -> Any:
        """One fine-tune batch of the task (the control's fine-tune draws the same ones)."""
        return self.task.batch(self.train, gen)

    def measure(self, genes: Tensor, seeds: Sequence[int]) -> float:
        """Validation accuracy of ``genes`` as they are (no fine-tune), one draw per seed."""
        weights = self.genome.unflatten(genes)
        accs: list[float] = []
        for s in seeds:
            self.program(weights, int(s))
            gen = torch.Generator().manual_seed(int(s) ^ SUPPORT_SALT)
            accs += self.task.accuracies(
                self.chip, self.val, self.train, gen, self.config.support_draws
            )
        return statistics.fmean(accs)
