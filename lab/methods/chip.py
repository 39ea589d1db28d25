"""The fitness chip as a recovery method sees it: only what the method declared.

:class:`Chip` wraps the one converted chip instance of a method (chip ``chip_seed`` of
the experiment's profile) and offers the accesses a test bench has, each behind the
:class:`~lab.methods.base.Access` it needs and each counted in the method's
:class:`~lab.methods.base.Counters`:

* :meth:`Chip.accuracy` / :meth:`Chip.ga_fitness`: validation accuracy of programmed
  weights (``accuracy``);
* :meth:`Chip.program_layers` and :meth:`Chip.hybrid`: program one layer and run
  training batches through the programmed layers (``layer_outputs``);
* :meth:`Chip.estimate_defects`: read-back of every device (``readback``);
* :meth:`Chip.true_defect_map` and :meth:`Chip.true_instance`: the simulator's truth
  (``true_defects``).

:meth:`Chip.profile_instance` (a converted copy of a network on another chip of the same
profile) and :attr:`Chip.calibration` need no access: a datasheet gives the profile, and
the calibration images are training images.

A method that calls an access it did not declare gets :class:`AccessError`, so the
``needs`` printed next to its score is what it used.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import memsim
from lab.fitness.digital import corrected, layer_io
from lab.fitness.task import TaskFitness
from lab.methods.base import Access, Counters
from memsim.readback import DefectEstimate, estimate_defects
from memsim.trim import clear_output_trim, set_output_trim
from models.quant import WeightMap


class AccessError(RuntimeError):
    """A method used an access to the chip that its ``needs`` does not declare."""


class CountingFitness(TaskFitness):
    """:class:`lab.fitness.task.TaskFitness` that counts its fine-tune steps and measurements.

    ``finetune_fn(genes, seed) -> genes`` replaces the QAT fine-tune (the Lamarckian step);
    it then counts its own steps.
    """

    def __init__(self, *args: Any, counters: Counters, **kwargs: Any) -> None:
        """See :class:`lab.fitness.task.TaskFitness`; ``counters`` receives the counts."""
        super().__init__(*args, **kwargs)
        self.counters = counters
        self.finetune_fn: Callable[[Tensor, int], Tensor] | None = None

    def _finetune(self, genes: Tensor, seed: int) -> Tensor:
        if self.finetune_fn is not None:
            return self.finetune_fn(genes, seed)
        self.counters.steps += self.config.finetune_steps
        return super()._finetune(genes, seed)

    def measure(self, genes: Tensor, seeds: Sequence[int]) -> float:
        """Validation accuracy (see :class:`TaskFitness`), counted per programming draw."""
        self.counters.chip_evaluations += len(seeds)
        return super().measure(genes, seeds)


class _Measured(nn.Module):
    """A programmed chip layer inside a training network; counts the batches it measures."""

    def __init__(self, layer: nn.Module, counters: Counters) -> None:
        super().__init__()
        self.layer = layer
        self.counters = counters

    def forward(self, x: Tensor) -> Tensor:
        self.counters.chip_batches += 1
        return self.layer(x)


class _Front(nn.Module):
    """A programmed chip layer in front of a model trained through the chip (a measurement).

    The layer is held outside the module tree (not a submodule), so a trainer of the
    model neither programs, draws chips into, nor trains it; it runs in eval mode
    without autograd, as a measurement of the chip does.
    """

    def __init__(self, layer: nn.Module, counters: Counters | None) -> None:
        super().__init__()
        self.__dict__["_layer"] = layer
        self.counters = counters

    def forward(self, x: Tensor) -> Tensor:
        layer = self.__dict__["_layer"]
        if self.counters is not None:
            self.counters.chip_batches += 1
        layer.eval()
        with torch.no_grad():
            return layer(x)


class Chip:
    """One chip instance, with the accesses of ``needs`` only (see the module docstring)."""

    def __init__(self, fitness: CountingFitness, needs: frozenset[Access]) -> None:
        """Wrap ``fitness`` (its chip, calibration images and counters)."""
        self._fitness = fitness
        self.needs = needs
        self.counters = fitness.counters

    def _require(self, access: Access) -> None:
        if access not in self.needs:
            raise AccessError(
                f"this method uses '{access.value}' of the chip but does not declare it in needs"
            )

    @property
    def calibration(self) -> Tensor | None:
        """Training images the chip's converters are calibrated with (``None``: not needed)."""
        return self._fitness.calibration

    def profile_instance(self, net: nn.Module, seed: int) -> nn.Module:
        """``net`` converted on this chip's profile, on another chip instance (``seed``).

        Knows nothing of this chip: a model of the profile for training through the chip
        blind (:func:`lab.fitness.chip_finetune.chip_tune`).
        """
        profile = self._fitness.chip.memsim_profile
        return memsim.convert(net, profile, seed=int(seed), chip_seed=int(seed))

    # ---------------------------------------------------------------- accuracy
    def ga_fitness(self) -> CountingFitness:
        """The GA's fitness on this chip (``accuracy``)."""
        self._require(Access.accuracy)
        return self._fitness

    def accuracy(
        self,
        genes: Tensor,
        seeds: Sequence[int],
        trim: dict[str, tuple[Tensor, Tensor]] | None = None,
    ) -> float:
        """Validation accuracy of ``genes`` (with a digital output trim), one draw per seed."""
        self._require(Access.accuracy)
        chip = self._fitness.chip
        if trim is not None:
            set_output_trim(chip, trim)
        try:
            return self._fitness.measure(genes, seeds)
        finally:
            clear_output_trim(chip)

    # ---------------------------------------------------------------- layer outputs
    @torch.no_grad()
    def program_layers(self, weights: dict[str, Tensor], seed: int) -> None:
        """Program some layers (``{"<module>.weight": w}``), then recalibrate the converters.

        The other layers keep what they hold.
        """
        self._require(Access.layer_outputs)
        chip = self._fitness.chip
        for i, (name, weight) in enumerate(weights.items()):
            layer = chip.get_submodule(name.removesuffix(".weight"))
            layer.set_targets(weight)
            layer.program(int(seed) + i)
        if self._fitness.calibration is not None:
            memsim.calibrate(chip, self._fitness.calibration)
        chip.eval()

    def hybrid(self, work: nn.Module, programmed: Sequence[str]) -> nn.Module:
        """A copy of the digital ``work`` whose ``programmed`` layers run on this chip.

        The chip layers compute without autograd, so training the copy trains only the
        digital layers after them, on the chip's measured outputs.
        """
        self._require(Access.layer_outputs)
        net = copy.deepcopy(work)
        chip = self._fitness.chip
        for i, name in enumerate(programmed):
            mod = name.removesuffix(".weight")
            layer = chip.get_submodule(mod)
            # a batch is measured once, where it enters the chip
            net.set_submodule(mod, _Measured(layer, self.counters) if i == 0 else layer)
        return net

    def put_in_front(self, net: nn.Module, programmed: Sequence[str]) -> nn.Module:
        """Replace the ``programmed`` layers of ``net`` (in place) by this chip's layers.

        Like :meth:`hybrid`, but for a converted ``net`` trained through the chip
        (:func:`lab.methods.chip_training.progressive_chip_tune`): the chip's layers are
        measurements in front of it, which no trainer of ``net`` programs or trains.
        """
        self._require(Access.layer_outputs)
        chip = self._fitness.chip
        for i, name in enumerate(programmed):
            mod = name.removesuffix(".weight")
            layer = chip.get_submodule(mod)
            net.set_submodule(mod, _Front(layer, self.counters if i == 0 else None))
        return net

    # ---------------------------------------------------------------- read-back
    def estimate_defects(
        self, *, reads: int, seed: int, threshold: float
    ) -> dict[str, DefectEstimate]:
        """Stuck devices and gains estimated from an all-g_max and an all-g_min read-back."""
        self._require(Access.readback)
        est = estimate_defects(self._fitness.chip, reads=reads, seed=seed, threshold=threshold)
        devices = sum(int(e.fault.numel()) for e in est.values())
        self.counters.device_reads += 2 * reads * devices
        return est

    def estimate_defects_of(
        self, net: nn.Module, *, reads: int, seed: int, threshold: float
    ) -> dict[str, DefectEstimate]:
        """Read-back (as :meth:`estimate_defects`) of ``net`` placed on arrays of this chip.

        For a deployment that takes more arrays than the digital network has layers (a
        :func:`lab.fitness.digital.ensemble_network`): ``net`` is converted on this chip's
        profile and chip instance, and every one of its devices is read back.
        """
        self._require(Access.readback)
        chip = self._fitness.chip
        placed = memsim.convert(
            net, chip.memsim_profile, seed=int(seed), chip_seed=chip.memsim_chip_seed
        )
        est = estimate_defects(placed, reads=reads, seed=seed, threshold=threshold)
        devices = sum(int(e.fault.numel()) for e in est.values())
        self.counters.device_reads += 2 * reads * devices
        return est

    # ---------------------------------------------------------------- truth
    def true_defect_map(self) -> WeightMap:
        """The simulator's true defect map (``true_defects``: an upper reference only)."""
        self._require(Access.true_defects)
        return memsim.defect_weight_map(self._fitness.chip)

    def true_instance(self) -> nn.Module:
        """A copy of this chip instance, its true defects included (``true_defects``).

        For training chip in the loop through the chip's own defects (an upper reference).
        """
        self._require(Access.true_defects)
        return copy.deepcopy(self._fitness.chip)

    # ---------------------------------------------------------------- corrected outputs
    def layer_io(
        self,
        x: Tensor,
        keys: Sequence[str],
        *,
        trim: dict[str, tuple[Tensor, Tensor]] | None = None,
        adapters: dict[str, nn.Module] | None = None,
    ) -> dict[str, tuple[Tensor, Tensor]]:
        """Input and output of the ``keys`` layers of the programmed chip for a batch ``x``.

        ``trim`` / ``adapters`` are digital corrections applied on their layers while the
        batch runs (:mod:`lab.fitness.digital`); the analog state is not changed.
        """
        self._require(Access.layer_outputs)
        self.counters.chip_batches += 1
        chip = self._fitness.chip
        with corrected(chip, trim, adapters):
            return layer_io(chip, list(keys), x)
