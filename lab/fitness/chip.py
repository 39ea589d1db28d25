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
R for the programming draws) and then evaluates the members, so a member's result
depends only on its genes and its own seeds (and, for a model with ``nn.Dropout``, on
the global torch RNG, which the fine-tune's dropout draws from, member after member).

Evaluation modes (``FitnessConfig.evaluation``):

* ``serial``: fine-tune, program and measure one member after the other.
* ``batched``: fine-tune all members at once (:class:`lab.fitness.batched.BatchedFinetuner`: one
  vmapped forward/backward and one Adam step on stacked tensors per step), then program
  and measure each member on the chip.  The chip is one stateful simulator instance and
  memsim's analog layers have no population dimension, so the chip part stays serial.
  Same seeds, same noise and data per member as ``serial``; the tuned genes agree up to
  float rounding.  A model the batched fine-tune cannot run raises
  :class:`lab.fitness.batched.UnsupportedModelError` at the first evaluation.
* ``auto``: ``batched`` where :data:`lab.fitness.batched.AUTO_EVALUATION` says it was measured
  faster on CPU for the model's class (``bench/ga_speed.py``), else ``serial``; an unsupported
  model also falls back to ``serial``.  The choice is a fixed table, not a timing
  probe, so a run and its resume always use the same path.

With ``finetune_steps == 0`` there is nothing to batch and every mode runs serially; a
chip-aware fine-tune (``FitnessConfig.chip_aware``) and a fine-tune through the chip
(``FitnessConfig.finetune = "chip"``) also run serially (``batched`` raises).

With ``finetune = "chip"`` the member's fine-tune is :func:`lab.fitness.chip_finetune.chip_tune`
on a copy of a converted fine-tune chip: a blind one (another instance of the profile;
noise in the loop with a fresh chip every step) or, with ``chip_aware``, a copy of the
fitness chip itself (chip in the loop through its true defects).

BatchNorm during the fine-tune (both modes): train mode, i.e. every member's layers
normalize with that member's batch statistics.  Running statistics are never used: the
serial path updates them on its scratch copy and resets them to the baseline before the
next member, the batched path does not track them; the chip keeps the baseline's.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import memsim
from ga.genome import Genome
from lab.fitness.batched import BatchedFinetuner, UnsupportedModelError, auto_evaluation
from lab.fitness.chip_finetune import chip_tune
from lab.fitness.config import EvaluationMode, FinetuneKind, FinetuneMode, FitnessConfig
from lab.fitness.finetune import qat_tune
from models.data import ImageDataset, calibration_images
from models.evaluate import classifier_accuracy, evaluate_deployed
from models.quant import LossFn, WeightMap
from models.train import cross_entropy_loss

BLIND_SALT = 0x0B11_D0C5
"""Mixed into the fitness chip's seed for the blind fine-tune's (replaced every step) chip."""


class ChipFitness:
    """``FitnessFn``: QAT fine-tune, program the simulated chip, validation accuracy.

    The fine-tune runs per member or batched over the population (see the module
    docstring for ``config.evaluation``); programming and measuring the chip always run
    per member, since the chip is one stateful instance.

    Attributes:
        finetune_s: Seconds spent fine-tuning, summed over all evaluations.
        chip_s: Seconds spent programming and measuring the chip, likewise.

    """

    def __init__(
        self,
        model: nn.Module,
        genome: Genome,
        profile: Any,
        config: FitnessConfig,
        *,
        weight_bits: int,
        train: ImageDataset,
        val: ImageDataset,
        qat_sigma: float = 0.05,
        chip_seed: int = 0,
        loss_fn: LossFn = cross_entropy_loss,
        accuracy_fn: Callable[[nn.Module, ImageDataset], float] = classifier_accuracy,
    ) -> None:
        """Convert the chip once and keep a digital working copy of ``model``.

        Args:
            model: Baseline digital model (not modified).
            genome: Gene layout of ``model`` (``Genome.from_model(model)``).
            profile: memsim ``DeviceProfile`` or profile name.
            config: The fitness: fine-tune steps, learning rate, mode and batch size,
                chip awareness, programming draws and evaluation mode.
            weight_bits: Bit width of the deployed weights (``GAConfig.weight_bits``),
                the quantizer of the QAT fine-tune.
            train: Fine-tune data (batches drawn with the member's seed).
            val: Validation split that the fitness accuracy is measured on.
            qat_sigma: Relative weight noise of the QAT fine-tune.
            chip_seed: Chip instance (faults, device variation) of the whole run.
            loss_fn: ``loss_fn(forward, (x, y)) -> loss`` for the fine-tune.
            accuracy_fn: ``accuracy_fn(chip, val) -> accuracy``.

        """
        self.genome = genome
        self.config = config
        self.weight_bits = weight_bits
        self.train = train
        self.val = val
        self.qat_sigma = qat_sigma
        self.batch_size = config.batch_size
        self.loss_fn = loss_fn
        self.accuracy_fn = accuracy_fn
        self.work = copy.deepcopy(model)
        # every member starts from the baseline biases / BN statistics, which are
        # digital and shared with the chip
        self._base_state = {k: v.detach().clone() for k, v in self.work.state_dict().items()}
        self.chip = memsim.convert(model, profile, seed=chip_seed, chip_seed=chip_seed)
        self.chip.eval()
        # calibrated converters take their ranges from training images, never from the
        # validation images the fitness is measured on
        self.calibration: Tensor | None = None
        if memsim.needs_calibration(self.chip):
            self.calibration = calibration_images(train, seed=chip_seed)
        self.weight_map: WeightMap | None = None
        self._tune_chip: nn.Module | None = None
        if config.finetune is FinetuneKind.CHIP:
            # the blind fine-tune trains on the profile's chips, never on this one (its
            # trainer draws a fresh instance every step); chip_aware trains on this one
            self._tune_chip = (
                copy.deepcopy(self.chip)
                if config.chip_aware
                else memsim.convert(
                    model, profile, seed=chip_seed, chip_seed=chip_seed ^ BLIND_SALT
                )
            )
        elif config.chip_aware:
            self.weight_map = memsim.defect_weight_map(self.chip)
        self.finetune_s = 0.0
        self.chip_s = 0.0
        # resolved at the first evaluation: the probe draws batches through
        # _draw_batch, which a subclass may only be ready to serve after its __init__
        self._mode: EvaluationMode | None = None
        self._batched: BatchedFinetuner | None = None

    @property
    def evaluation(self) -> EvaluationMode:
        """The mode actually used, ``BATCHED`` or ``SERIAL`` (resolves ``AUTO`` once).

        Raises:
            lab.fitness.batched.UnsupportedModelError: ``evaluation="batched"`` was requested for a
                model or loss the batched fine-tune cannot run.

        """
        if self._mode is None:
            self._mode = self._resolve_evaluation()
        return self._mode

    def _resolve_evaluation(self) -> EvaluationMode:
        requested = self.config.evaluation
        if requested is EvaluationMode.BATCHED and self.weight_map is not None:
            raise UnsupportedModelError("fitness.chip_aware = true runs the fine-tune serially")
        if requested is EvaluationMode.BATCHED and self._tune_chip is not None:
            raise UnsupportedModelError("fitness.finetune = 'chip' runs the fine-tune serially")
        if (
            requested is EvaluationMode.SERIAL
            or self.config.finetune_steps == 0
            or self.weight_map is not None
            or self._tune_chip is not None
        ):
            return EvaluationMode.SERIAL
        if requested is EvaluationMode.AUTO and auto_evaluation(self.work) is EvaluationMode.SERIAL:
            return EvaluationMode.SERIAL
        net = copy.deepcopy(self.work)
        net.load_state_dict(self._base_state)  # self.work may hold a member's weights
        try:
            self._batched = BatchedFinetuner(
                net,
                self.genome,
                self.loss_fn,
                self._draw_batch,
                bits=self.weight_bits,
                sigma=self.qat_sigma,
                train_mode=self.config.finetune_mode is FinetuneMode.TRAIN,
            )
        except UnsupportedModelError:
            if requested is EvaluationMode.BATCHED:
                raise
            return EvaluationMode.SERIAL
        return EvaluationMode.BATCHED

    def _draw_batch(self, gen: torch.Generator) -> Any:
        """One fine-tune batch from a member's generator (the only draw per step besides noise)."""
        idx = torch.randint(0, len(self.train), (self.batch_size,), generator=gen)
        return self.train.images[idx], self.train.labels[idx]

    def _finetune(self, genes: Tensor, seed: int) -> Tensor:
        cfg = self.config
        if self._tune_chip is not None:
            return chip_tune(
                copy.deepcopy(self._tune_chip),
                self.genome,
                genes,
                self.loss_fn,
                self._draw_batch,
                steps=cfg.finetune_steps,
                lr=cfg.finetune_lr,
                seed=seed,
                regime="chip_in_the_loop" if cfg.chip_aware else "noise_in_the_loop",
                fresh_chip=not cfg.chip_aware,
                calibration=self.calibration,
                train_mode=cfg.finetune_mode is FinetuneMode.TRAIN,
            )
        return qat_tune(
            self.work,
            self.genome,
            genes,
            self._base_state,
            self.loss_fn,
            self._draw_batch,
            steps=cfg.finetune_steps,
            bits=self.weight_bits,
            sigma=self.qat_sigma,
            lr=cfg.finetune_lr,
            seed=seed,
            weight_map=self.weight_map,
            train_mode=cfg.finetune_mode is FinetuneMode.TRAIN,
        )

    def program(self, weights: dict[str, Tensor], seed: int) -> None:
        """Program ``weights`` into the chip with ``seed``, then calibrate its converters."""
        memsim.program(self.chip, weights, seed=seed)
        if self.calibration is not None:
            memsim.calibrate(self.chip, self.calibration)
        self.chip.eval()

    def measure(self, genes: Tensor, seeds: Sequence[int]) -> float:
        """Validation accuracy of ``genes`` as they are (no fine-tune), one draw per seed."""
        weights = self.genome.unflatten(genes)
        accs = []
        for s in seeds:
            self.program(weights, int(s))
            accs.append(float(self.accuracy_fn(self.chip, self.val)))
        return statistics.fmean(accs)

    def evaluate_member(self, genes: Tensor, seeds: Sequence[int]) -> tuple[float, Tensor]:
        """Fine-tune ``genes`` with ``seeds[0]``, then measure on the chip per ``seeds[1:]``."""
        t0 = time.perf_counter()
        tuned = self._finetune(genes, int(seeds[0]))
        t1 = time.perf_counter()
        fit = self.measure(tuned, seeds[1:])
        self.finetune_s += t1 - t0
        self.chip_s += time.perf_counter() - t1
        return fit, tuned

    def evaluate_population(
        self, population: Tensor, generation: int, rng: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """Return the mean validation accuracy of every member and its tuned genes."""
        p, r = population.shape[0], self.config.draws
        seeds = torch.randint(0, 2**62, (p, 1 + r), generator=rng).tolist()
        fitness = torch.empty(p, dtype=torch.float64)
        tuned = torch.empty_like(population)
        if self.evaluation is EvaluationMode.BATCHED:
            assert self._batched is not None
            t0 = time.perf_counter()
            tuned[:] = self._batched.finetune(
                population,
                [s[0] for s in seeds],
                steps=self.config.finetune_steps,
                lr=self.config.finetune_lr,
            )
            t1 = time.perf_counter()
            for i in range(p):
                fitness[i] = self.measure(tuned[i], seeds[i][1:])
            self.finetune_s += t1 - t0
            self.chip_s += time.perf_counter() - t1
        else:
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
