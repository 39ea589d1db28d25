"""The paper's chip-in-the-loop fitness.

For every member of the population::

    load the genes into a digital copy of the model (biases/BN stay baseline)
    -> short QAT fine-tune of the gene weights (models.quant.qat_finetune)
    -> memsim.program(chip, tuned genes, seed=s_r)   for r = 1..R
    -> validation accuracy on the chip, averaged over the R programming draws

The chip is converted once (``memsim.convert`` with a fixed ``chip_seed``), so
every member is measured on the same chip instance (same faults and
device-to-device variation) with fresh programming noise per draw.  The
tuned genes are returned for Lamarckian write-back.

Seeds: per generation the trainer hands a generator; this fitness first draws
``(P, 1 + R)`` seeds from it (one for the member's fine-tune batches and noise,
R for the programming draws) and then evaluates members one by one, so a
member's result depends only on its genes and its own seeds.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import memsim
from ga.config import EvaluationMode, GAConfig
from ga.genome import Genome
from models.data import ImageDataset
from models.evaluate import classifier_accuracy, evaluate_deployed
from models.quant import LossFn, qat_finetune
from models.train import cross_entropy_loss


class ChipFitness:
    """``FitnessFn``: QAT fine-tune, program the simulated chip, validation accuracy.

    Members are evaluated serially: each needs its own fine-tune and the chip is
    one stateful instance.  ``evaluation="batched"`` is refused rather than
    silently ignored; ``"auto"`` and ``"serial"`` run serially.
    """

    def __init__(
        self,
        model: nn.Module,
        genome: Genome,
        profile: Any,
        config: GAConfig,
        *,
        train: ImageDataset,
        val: ImageDataset,
        qat_sigma: float = 0.05,
        chip_seed: int = 0,
        finetune_batch_size: int = 64,
        loss_fn: LossFn = cross_entropy_loss,
        accuracy_fn: Callable[[nn.Module, ImageDataset], float] = classifier_accuracy,
    ) -> None:
        """Convert the chip once and keep a digital working copy of ``model``.

        Args:
            model: Baseline digital model (not modified).
            genome: Gene layout of ``model`` (``Genome.from_model(model)``).
            profile: memsim ``DeviceProfile`` or profile name.
            config: GA config: ``weight_bits``, ``finetune_steps``, ``finetune_lr``,
                ``fitness_draws`` and ``evaluation`` are read.
            train: Fine-tune data (batches drawn with the member's seed).
            val: Validation split that the fitness accuracy is measured on.
            qat_sigma: Relative weight noise of the QAT fine-tune.
            chip_seed: Chip instance (faults, device variation) of the whole run.
            finetune_batch_size: Images per fine-tune step.
            loss_fn: ``loss_fn(forward, (x, y)) -> loss`` for the fine-tune.
            accuracy_fn: ``accuracy_fn(chip, val) -> accuracy``.

        """
        if config.evaluation is EvaluationMode.BATCHED:
            raise NotImplementedError(
                "ChipFitness evaluates members serially (one fine-tune and one chip "
                "programming per member); use evaluation='auto' or 'serial'"
            )
        self.genome = genome
        self.config = config
        self.train = train
        self.val = val
        self.qat_sigma = qat_sigma
        self.batch_size = finetune_batch_size
        self.loss_fn = loss_fn
        self.accuracy_fn = accuracy_fn
        self.work = copy.deepcopy(model)
        # every member starts from the baseline biases / BN statistics, which are
        # digital and shared with the chip
        self._base_state = {k: v.detach().clone() for k, v in self.work.state_dict().items()}
        self.chip = memsim.convert(model, profile, seed=chip_seed, chip_seed=chip_seed)
        self.chip.eval()

    def _finetune(self, genes: Tensor, seed: int) -> Tensor:
        cfg = self.config
        self.work.load_state_dict(self._base_state)
        self.genome.load_into(self.work, genes)
        if cfg.finetune_steps == 0:
            return genes.clone()
        gen = torch.Generator().manual_seed(seed)
        params = dict(self.work.named_parameters())
        # only the genes are trained: biases/BN are not genes and the chip keeps baseline ones
        opt = torch.optim.Adam([params[k] for k in self.genome.keys], lr=cfg.finetune_lr)
        n = len(self.train)

        def batch_at(_step: int) -> tuple[Tensor, Tensor]:
            idx = torch.randint(0, n, (self.batch_size,), generator=gen)
            return self.train.images[idx], self.train.labels[idx]

        qat_finetune(
            self.work,
            self.loss_fn,
            batch_at,
            steps=cfg.finetune_steps,
            bits=cfg.weight_bits,
            sigma=self.qat_sigma,
            generator=gen,
            optimizer=opt,
        )
        return self.genome.from_module(self.work).to(genes.dtype)

    def evaluate_member(self, genes: Tensor, seeds: Sequence[int]) -> tuple[float, Tensor]:
        """Fine-tune ``genes`` with ``seeds[0]``, then measure on the chip per ``seeds[1:]``."""
        tuned = self._finetune(genes, int(seeds[0]))
        weights = self.genome.unflatten(tuned)
        accs = []
        for s in seeds[1:]:
            memsim.program(self.chip, weights, seed=int(s))
            self.chip.eval()
            accs.append(float(self.accuracy_fn(self.chip, self.val)))
        return statistics.fmean(accs), tuned

    def evaluate_population(
        self, population: Tensor, generation: int, rng: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """Return the mean validation accuracy of every member and its tuned genes."""
        p, r = population.shape[0], self.config.fitness_draws
        seeds = torch.randint(0, 2**62, (p, 1 + r), generator=rng).tolist()
        fitness = torch.empty(p, dtype=torch.float64)
        tuned = torch.empty_like(population)
        for i in range(p):
            fitness[i], tuned[i] = self.evaluate_member(population[i], seeds[i])
        return fitness, (tuned if self.config.finetune_steps > 0 else None)


def deployed_test_fn(
    model: nn.Module,
    genome: Genome,
    test: ImageDataset,
    profile: Any,
    *,
    draws: int = 5,
    seed: int = 0,
) -> Callable[[Tensor], list[float]]:
    """Return a ``test_fn`` for ``GATrainer``: test accuracy of a solution on fresh chips.

    The solution is loaded into a copy of ``model`` and evaluated with
    ``models.evaluate.evaluate_deployed`` over ``draws`` chips.
    """

    def test_fn(solution: Tensor) -> list[float]:
        net = copy.deepcopy(model)
        genome.load_into(net, solution)
        return evaluate_deployed(net, test, profile, draws=draws, seed=seed).accuracies

    return test_fn
