r"""Hardware-aware training through the chip: two regimes, any torch optimizer.

The analog layers of a converted model hold their digital target weights and biases as
``nn.Parameter``\\ s.  In training mode their forward pass is the chip's forward pass,
with straight-through gradients (:mod:`memsim.through_chip`), so ::

    chip = memsim.convert(model, "pcm_joshi2020", seed=0)
    opt = torch.optim.SGD(chip.parameters(), lr=0.01)
    trainer = memsim.HardwareAwareTrainer(chip, opt, "noise_in_the_loop", seed=1)
    for x, y in loader:
        trainer.step(x, y)

trains the targets through the simulated chip.  The two regimes differ in what the
forward pass reads:

* :attr:`Regime.noise_in_the_loop`: the chip stands for the profile's physics.  Before
  every step (every ``program_every`` steps) the current targets are programmed afresh
  (new programming noise and, with ``fresh_chip=True``, a new chip instance: new stuck
  devices and device-to-device gains), so the weights learn to tolerate the
  distribution of chips.
* :attr:`Regime.chip_in_the_loop`: one chip instance with fixed defects.  The step
  reads the programmed state; the optimizer updates the targets; every
  ``program_every`` steps :func:`memsim.program` writes them again (each write with its
  own programming noise, as a write-verify loop leaves it).  With
  ``defects="read_back"`` the forward pass runs on a twin of the chip whose defects are
  the ones :func:`memsim.estimate_defects` reads back (a user never sees the true ones);
  it shares the chip's parameters, so the optimizer trains the chip's targets.

The trainer never touches the optimizer's choices: any ``torch.optim`` optimizer over
``chip.parameters()`` works, with its own ``state_dict``.  The trainer's
:meth:`HardwareAwareTrainer.state_dict` holds the chip's, the optimizer's and its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .api import calibrate, program
from .layers import AnalogLayer, analog_layers
from .readback import DefectEstimate, estimate_defects
from .seeds import device_seed

_STREAM_TRAIN_PROG, _STREAM_TRAIN_CHIP = 11, 12
"""Seed streams of the trainer's programmings and fresh chip instances."""


class Regime(str, Enum):
    """What the training forward pass reads (see the module doc)."""

    noise_in_the_loop = "noise_in_the_loop"
    chip_in_the_loop = "chip_in_the_loop"


class Defects(str, Enum):
    """Which defect map the chip-in-the-loop forward pass uses."""

    chip = "chip"
    """The chip's own (the simulator's true map)."""
    read_back = "read_back"
    """The map :func:`memsim.estimate_defects` reads back, on a twin of the chip."""


def _share_parameters(twin: nn.Module, chip: nn.Module) -> None:
    """Make ``twin`` use ``chip``'s parameters (and digital buffers) as the same objects."""
    chip_modules = dict(chip.named_modules())
    for name, module in twin.named_modules():
        source = chip_modules[name]
        for key in list(module._parameters):
            module._parameters[key] = source._parameters[key]
        if not isinstance(module, AnalogLayer):
            # batch-norm statistics and other digital state: one copy, the chip's
            for key in list(module._buffers):
                module._buffers[key] = source._buffers[key]


def read_back_twin(
    chip: nn.Module,
    *,
    reads: int = 4,
    seed: int = 0,
    estimates: Mapping[str, DefectEstimate] | None = None,
) -> nn.Module:
    """A twin of ``chip`` whose defects are the ones read back from it.

    The twin shares every parameter with ``chip`` (an optimizer over
    ``chip.parameters()`` trains both); its analog layers hold the stuck-at map and gains
    of :func:`memsim.estimate_defects` instead of the true ones, programmed with the
    chip's current targets.

    Args:
        chip: A model from :func:`memsim.convert`.
        reads: Reads per device of the read-back.
        seed: Seed of the read-back.
        estimates: A read-back already made (:func:`memsim.estimate_defects` of ``chip``,
            keyed ``"<module>.weight"``); ``reads`` and ``seed`` are then not used.

    """
    if estimates is None:
        estimates = estimate_defects(chip, reads=reads, seed=seed)
    twin = copy.deepcopy(chip)
    _share_parameters(twin, chip)
    with torch.no_grad():
        for name, layer in analog_layers(twin):
            est = estimates[f"{name}.weight" if name else "weight"]
            # the estimate's gain is 0 where stuck; a stuck device ignores its gain
            layer.set_defects(est.fault, torch.where(est.fault == 0, est.gain, 1.0))
            layer.program(layer.seed)
    return twin


class HardwareAwareTrainer:
    """Training steps through a converted chip in one of two regimes.

    Args:
        chip: A model from :func:`memsim.convert`; its targets and biases are trained.
        optimizer: Any optimizer over (some of) ``chip.parameters()``.
        regime: :class:`Regime` or its name.
        seed: Seed of the programmings (and fresh chip instances) the trainer draws.
        loss_fn: ``loss_fn(output, y)``; cross entropy by default.
        fresh_chip: Noise in the loop: draw a new chip instance (faults, device gains)
            for every step, not only new programming noise.
        program_every: Program the targets every this many steps (1: every step).  Noise
            in the loop draws a fresh programming (and chip) at steps 0, n, 2n, ...; chip
            in the loop writes the updated targets at steps n, 2n, ...  Between two
            programmings the gradients are those of the last programmed weights, not of
            the current targets (a delay): a larger n saves programming time but can cost
            accuracy (``bench/hwa_vs_aihwkit.py --program-every 1 2``: on its MLP, 6400
            images, SGD with momentum 0.9, n = 2 ended at 81 % against 88 % for n = 1).
        defects: Chip in the loop: ``"chip"`` (the chip's own defects) or
            ``"read_back"`` (train on :func:`read_back_twin`; program the chip itself
            with :meth:`deploy`).
        estimates: With ``defects="read_back"``: a read-back already made (see
            :func:`read_back_twin`); ``None`` reads the chip back with ``seed``.
        calibration: Images to :func:`memsim.calibrate` the converters with after every
            programming the trainer makes (``None``: a calibrated converter sets its
            range from the first batch after programming, as without the trainer).
        digital_eval: Run the digital modules (batch norm, dropout) in eval mode during
            the steps, as the chip deploys them; the analog layers still train.

    """

    def __init__(
        self,
        chip: nn.Module,
        optimizer: torch.optim.Optimizer,
        regime: Regime | str = Regime.chip_in_the_loop,
        *,
        seed: int = 0,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
        fresh_chip: bool = False,
        program_every: int = 1,
        defects: Defects | str = Defects.chip,
        estimates: Mapping[str, DefectEstimate] | None = None,
        calibration: Tensor | None = None,
        digital_eval: bool = False,
    ) -> None:
        """Bind the chip, optimizer and regime; nothing is programmed yet."""
        self.regime = Regime(regime)
        self.defects = Defects(defects)
        if program_every < 1:
            raise ValueError(f"program_every must be >= 1, got {program_every}")
        if self.regime == Regime.noise_in_the_loop and self.defects != Defects.chip:
            raise ValueError("defects='read_back' is a chip-in-the-loop option")
        if self.regime == Regime.chip_in_the_loop and fresh_chip:
            raise ValueError("fresh_chip is a noise-in-the-loop option (one chip in the loop)")
        if not analog_layers(chip):
            raise ValueError("the model has no analog layer; convert it with memsim.convert")
        self.chip = chip
        self.optimizer = optimizer
        self.seed = int(seed)
        self.loss_fn = loss_fn
        self.fresh_chip = fresh_chip
        self.program_every = int(program_every)
        self.calibration = calibration
        self.digital_eval = digital_eval
        self.steps = 0
        self.model = (
            chip
            if self.defects == Defects.chip
            else read_back_twin(chip, seed=seed, estimates=estimates)
        )
        """The module the forward pass runs on (the chip, or its read-back twin)."""
        # fresh chips are drawn into the chip's own layers: keep its defects to put back
        self._own_defects = (
            [(layer.tiles.fault.clone(), layer.tiles.gain.clone()) for _, layer in
             analog_layers(chip)]
            if fresh_chip
            else []
        )  # fmt: skip

    def _draw_seed(self, stream: int) -> int:
        return device_seed(self.seed, stream, self.steps)

    def _prepare(self) -> None:
        """Put the state the next forward pass reads on the chip (regime-dependent)."""
        if self.steps % self.program_every:
            return
        if self.regime == Regime.noise_in_the_loop:
            if self.fresh_chip:
                chip_seed = self._draw_seed(_STREAM_TRAIN_CHIP)
                for _, layer in analog_layers(self.model):
                    layer.make_chip(chip_seed)
            self._program()
        elif self.steps > 0:
            # chip in the loop: step 0 reads the chip as it was handed in
            self._program()

    def _program(self) -> None:
        program(self.model, seed=self._draw_seed(_STREAM_TRAIN_PROG))
        if self.calibration is not None:
            calibrate(self.model, self.calibration)

    def _train_mode(self) -> None:
        self.model.train()
        if self.digital_eval:
            for module in self.model.modules():
                if not isinstance(module, AnalogLayer):
                    module.training = False  # this module only: its analog children train

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step on the batch ``(x, y)`` through the chip; the loss (detached)."""
        return self.step_fn(lambda model: self.loss_fn(model(x), y))

    def step_fn(self, loss_of: Callable[[nn.Module], Tensor]) -> Tensor:
        """One optimizer step on the loss ``loss_of(model)``; the loss (detached).

        For a loss that is not ``loss_fn(model(x), y)`` (an episode of a ProtoNet, for
        example): ``loss_of`` gets the module the forward pass runs on (:attr:`model`).
        """
        self._prepare()
        self._train_mode()
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_of(self.model)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return loss.detach()

    def deploy(self, seed: int) -> nn.Module:
        """Program the chip itself with the current targets (seed ``seed``); the chip, in eval.

        After this the chip holds what was trained: evaluate, drift or calibrate it as
        any converted model.  With ``fresh_chip`` the chip gets its own defects back
        first (training drew other chip instances into its layers).
        """
        for (_, layer), (fault, gain) in zip(analog_layers(self.chip), self._own_defects):
            layer.set_defects(fault, gain)
        program(self.chip, seed=seed)
        return self.chip.eval()

    def to(self, *args: Any, **kwargs: Any) -> HardwareAwareTrainer:
        """Move the chip (and its twin) like ``nn.Module.to``; build the optimizer after."""
        self.chip.to(*args, **kwargs)
        if self.model is not self.chip:
            self.model.to(*args, **kwargs)
            _share_parameters(self.model, self.chip)
        return self

    def state_dict(self) -> dict[str, Any]:
        """The chip's, the optimizer's and the trainer's state."""
        return {
            "version": 1,
            "regime": self.regime.value,
            "defects": self.defects.value,
            "seed": self.seed,
            "steps": self.steps,
            "fresh_chip": self.fresh_chip,
            "program_every": self.program_every,
            "chip": self.chip.state_dict(),
            "twin": None if self.model is self.chip else self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (same chip architecture, profile and optimizer)."""
        if state.get("version") != 1:
            raise ValueError("not a HardwareAwareTrainer state (version)")
        if state["regime"] != self.regime.value or state["defects"] != self.defects.value:
            raise ValueError(
                f"the state is of a {state['regime']} / defects={state['defects']} trainer, "
                f"this one is {self.regime.value} / defects={self.defects.value}"
            )
        self.chip.load_state_dict(state["chip"])
        if state["twin"] is not None:
            self.model.load_state_dict(state["twin"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.seed, self.steps = int(state["seed"]), int(state["steps"])
        self.fresh_chip, self.program_every = bool(state["fresh_chip"]), int(state["program_every"])
