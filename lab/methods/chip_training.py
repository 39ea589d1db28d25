"""The methods' fine-tunes through the simulated chip (``fitness.finetune = "chip"``).

The counterparts of :func:`lab.methods.training.counted_qat` and
:func:`lab.methods.training.progressive_tune`: same genes in and out, same step budget
counted in ``chip.counters.steps`` one optimizer step at a time, but every step runs the
chip's forward pass (:func:`lab.fitness.chip_finetune.chip_tune`,
:class:`memsim.HardwareAwareTrainer`) instead of the software model of the chip.  What
each method trains on is what it may see of the chip:

* ``qat`` (blind): noise in the loop on a model of the profile, a fresh chip instance
  every step (:meth:`Chip.profile_instance`);
* ``defect_aware_oracle``: chip in the loop on a copy of the chip instance, true
  defects (:meth:`Chip.true_instance`);
* ``defect_aware_readback``: chip in the loop on the twin of the read-back estimate
  (``defects="read_back"``), the read-back counted as :meth:`Chip.estimate_defects` counts it;
* ``progressive``: layers ``k+1 ..`` trained noise in the loop on a model of the profile,
  fed with the measured outputs of the chip's programmed layers ``1 .. k``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from lab.fitness.chip_finetune import chip_tune, genes_with_targets
from lab.methods.base import RecoveryData
from lab.methods.chip import Chip
from memsim.readback import DefectEstimate

_SEED_SALT = 0x00C4_1F00
"""Mixed into a method's seed for the model of the profile it converts."""


def _counter(chip: Chip) -> Callable[[int, float], None]:
    """The ``on_step`` of :func:`chip_tune` that counts the steps in ``chip.counters``."""

    def on_step(_step: int, _loss: float) -> None:
        chip.counters.steps += 1

    return on_step


def _baseline_net(baseline: nn.Module, data: RecoveryData, genes: Tensor) -> nn.Module:
    net = copy.deepcopy(baseline)
    net.load_state_dict(data.base_state)
    data.genome.load_into(net, genes)
    return net


def counted_chip_qat(
    baseline: nn.Module,
    chip: Chip,
    data: RecoveryData,
    genes: Tensor,
    steps: int,
    *,
    defects: str = "none",
    estimates: Mapping[str, DefectEstimate] | None = None,
) -> Tensor:
    """Fine-tune ``genes`` through the chip for ``steps`` counted steps.

    Args:
        baseline: The digital baseline (biases and batch norm stay its own).
        chip: The method's view of the chip.
        data: The shared fine-tune settings (batches, loss, lr, seed, module mode).
        genes: Weights to start from.
        steps: Optimizer steps (each counted in ``chip.counters.steps``).
        defects: ``"none"`` (blind: noise in the loop, fresh chips of the profile),
            ``"true"`` (chip in the loop on the chip instance) or ``"read_back"`` (chip
            in the loop on the twin of ``estimates``).
        estimates: The read-back of ``defects="read_back"``.

    """
    if defects == "true":
        model = chip.true_instance()
    elif defects in ("none", "read_back"):
        # a model of the profile; the read-back twin replaces its defects by the estimate
        model = chip.profile_instance(_baseline_net(baseline, data, genes), data.seed ^ _SEED_SALT)
    else:
        raise ValueError(f"defects must be 'none', 'true' or 'read_back', got {defects!r}")
    blind = defects == "none"
    return chip_tune(
        model,
        data.genome,
        genes,
        data.task.loss,
        lambda gen: data.task.batch(data.train, gen),
        steps=steps,
        lr=data.lr,
        seed=data.seed,
        regime="noise_in_the_loop" if blind else "chip_in_the_loop",
        fresh_chip=blind,
        defects="read_back" if defects == "read_back" else "chip",
        estimates=estimates,
        calibration=chip.calibration,
        train_mode=data.train_mode,
        on_step=_counter(chip),
    )


def progressive_chip_tune(
    baseline: nn.Module, chip: Chip, data: RecoveryData, genes: Tensor, *, steps: int, seed: int
) -> Tensor:
    """:func:`lab.methods.training.progressive_tune` with the later layers trained through the chip.

    For ``k = 1 .. N-1``: program layer ``k`` on the chip (with the weights trained so far),
    then train layers ``k+1 .. N`` of a model of the profile (noise in the loop, a fresh
    chip instance every step, batch norm as deployed) on the chip's measured outputs of
    its programmed layers ``1 .. k``.  ``steps`` is split over the stages as there.
    """
    from lab.methods.training import split_steps

    keys = list(data.genome.keys)
    if len(keys) < 2:
        raise ValueError("progressive fine-tuning needs a network of at least two layers")
    genes = genes.clone()
    gen = torch.Generator().manual_seed(int(seed))
    every = data.settings.progressive_reprogram_every
    for k, n_steps in enumerate(split_steps(steps, len(keys) - 1), start=1):
        weights = data.genome.unflatten(genes)
        program_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        chip.program_layers({keys[k - 1]: weights[keys[k - 1]]}, program_seed)
        if n_steps == 0:
            continue
        net = chip.profile_instance(_baseline_net(baseline, data, genes), seed ^ _SEED_SALT ^ k)
        chip.put_in_front(net, keys[:k])
        chunks = split_steps(n_steps, -(-n_steps // every)) if every else [n_steps]
        for i, chunk in enumerate(chunks):
            if i:  # fresh programming noise on the same defects: learn the defects only
                program_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
                chip.program_layers({key: weights[key] for key in keys[:k]}, program_seed)
            chunk_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
            genes = chip_tune(
                net,
                data.genome,
                genes,
                data.task.loss,
                lambda g: data.task.batch(data.train, g),
                steps=chunk,
                lr=data.lr,
                seed=chunk_seed,
                regime="noise_in_the_loop",
                fresh_chip=True,
                calibration=chip.calibration,
                train_mode=False,
                keys=keys[k:],
                on_step=_counter(chip),
            )
        genes = genes_with_targets(net, data.genome, genes, keys[k:])
    return genes
