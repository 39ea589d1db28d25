"""The fine-tune of gene weights through the simulated chip (``fitness.finetune = "chip"``).

:func:`chip_tune` is the counterpart of :func:`lab.fitness.finetune.qat_tune`: the same
genes in, the same number of Adam steps on the same task batches and loss, tuned genes
out.  Instead of the software model of the chip (fake-quantized weights times Gaussian
noise), every step runs the converted model's own forward pass (DAC, tiles with their
programmed conductances and defects, read noise, ADC) with the straight-through
gradients of :mod:`memsim.through_chip`, through :class:`memsim.HardwareAwareTrainer`:

* ``noise_in_the_loop`` with ``fresh_chip``: every step programs the current targets on
  a new chip instance of the profile, so the weights learn to tolerate the profile's
  chips without knowing one (the blind fine-tune);
* ``chip_in_the_loop``: one chip instance (its true defects, or with ``defects =
  "read_back"`` the twin of a read-back estimate); the updated targets are written
  again every step, with fresh programming noise.

The trained quantities are the analog layers' targets of the genome's keys (the genes);
biases, batch-norm and every other digital parameter keep the baseline's, as in the
software fine-tune.  Functions to move genes into and out of a converted model's targets
live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import memsim
from ga.genome import Genome
from memsim.readback import DefectEstimate
from memsim.train import Defects, HardwareAwareTrainer, Regime
from models.quant import LossFn


def analog_targets(model: nn.Module, keys: Sequence[str]) -> dict[str, nn.Parameter]:
    """``{"<module>.weight": target parameter}`` of the analog layers of ``keys`` in ``model``.

    Raises:
        KeyError: A key that is not an analog layer of ``model``.

    """
    layers = {f"{n}.weight" if n else "weight": m for n, m in memsim.analog_layers(model)}
    missing = [k for k in keys if k not in layers]
    if missing:
        raise KeyError(f"no analog layer for gene keys {missing}; analog: {sorted(layers)}")
    return {k: layers[k].target for k in keys}


@torch.no_grad()
def load_targets(model: nn.Module, genome: Genome, genes: Tensor, keys: Sequence[str]) -> None:
    """Set the targets of the ``keys`` layers of ``model`` to the weights ``genes`` hold."""
    weights = genome.unflatten(genes)
    for key, target in analog_targets(model, keys).items():
        target.copy_(weights[key].reshape(target.shape).to(target.dtype))


def genes_with_targets(
    model: nn.Module, genome: Genome, genes: Tensor, keys: Sequence[str]
) -> Tensor:
    """``genes`` with the weights of the ``keys`` layers replaced by ``model``'s targets."""
    weights = dict(genome.unflatten(genes))
    for key, target in analog_targets(model, keys).items():
        weights[key] = target.detach().reshape(weights[key].shape).to(genes.dtype)
    return genome.flatten(weights).to(genes.dtype)


def chip_tune(
    model: nn.Module,
    genome: Genome,
    genes: Tensor,
    loss: LossFn,
    draw_batch: Callable[[torch.Generator], Any],
    *,
    steps: int,
    lr: float,
    seed: int,
    regime: Regime | str,
    fresh_chip: bool = False,
    defects: Defects | str = Defects.chip,
    estimates: Mapping[str, DefectEstimate] | None = None,
    calibration: Tensor | None = None,
    train_mode: bool = True,
    keys: Sequence[str] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> Tensor:
    """Fine-tune the gene weights through the chip ``model``; return the tuned genes.

    Args:
        model: A converted model (:func:`memsim.convert`) holding the baseline's digital
            parameters; it is modified (targets, programmed state): pass a copy.
        genome: Gene layout of the digital network.
        genes: Weights to start from.
        loss: ``loss(forward, batch) -> scalar`` of the task.
        draw_batch: ``draw_batch(generator) -> batch`` (seeded with ``seed``).
        steps: Optimizer steps.
        lr: Adam learning rate.
        seed: Seed of the batches and of the trainer's programmings and chip draws.
        regime: :class:`memsim.train.Regime` of the trainer.
        fresh_chip: Noise in the loop: a new chip instance every step.
        defects: Chip in the loop: the chip's own defects or its read-back twin's.
        estimates: The read-back of ``defects="read_back"``.
        calibration: Images the converters are calibrated with after every programming.
        train_mode: ``False``: batch norm and dropout run as deployed (eval mode).
        keys: Gene keys to train (default: all); the others keep ``genes``' values.
        on_step: ``on_step(step, loss)`` after every step (the step counter).

    """
    keys = list(genome.keys if keys is None else keys)
    if steps == 0:
        return genes.clone()
    load_targets(model, genome, genes, keys)
    regime = Regime(regime)
    seed = int(seed)
    if regime is Regime.chip_in_the_loop and Defects(defects) is Defects.chip:
        # the trainer's first step reads the chip as handed in: write the genes first
        memsim.program(model, seed=seed)
        if calibration is not None:
            memsim.calibrate(model, calibration)
    targets = list(analog_targets(model, keys).values())
    trainer = HardwareAwareTrainer(
        model,
        torch.optim.Adam(targets, lr=lr),
        regime,
        seed=seed,
        fresh_chip=fresh_chip,
        defects=defects,
        estimates=estimates,
        calibration=calibration,
        digital_eval=not train_mode,
    )
    if trainer.model is not model and calibration is not None:
        memsim.calibrate(trainer.model, calibration)  # the read-back twin, as programmed
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = draw_batch(gen)
        value = trainer.step_fn(lambda m, batch=batch: loss(m, batch))
        if on_step is not None:
            on_step(step, float(value))
    model.eval()
    return genes_with_targets(model, genome, genes, keys)
