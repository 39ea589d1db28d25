"""``FitnessConfig``: the chip-in-the-loop fitness and the fine-tune every method shares.

The ``[fitness]`` table of an experiment.  It is lab-side on purpose: the GA library
(:class:`ga.GAConfig`) knows only its own loop (population, operators, Lamarckian
write-back); what a fitness evaluation does — how long the QAT fine-tune of a member
runs, at which learning rate and module mode, through which defects, on how many
programming draws — is a property of the chip-in-the-loop fitness, and the equal-budget
control (``qat``) and every recovery method fine-tune with the same settings.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class EvaluationMode(str, Enum):
    """How the fitness evaluates a population: one vmapped pass, one member at a time, or auto."""

    AUTO = "auto"
    BATCHED = "batched"
    SERIAL = "serial"


class FinetuneMode(str, Enum):
    """Module mode of the fitness's and the methods' QAT fine-tunes."""

    TRAIN = "train"
    EVAL = "eval"


class FinetuneKind(str, Enum):
    """What the fine-tunes train through: a software model of the chip, or the simulated chip."""

    SOFTWARE = "software"
    """k-bit fake-quantized weights times Gaussian noise (:func:`models.quant.qat_finetune`)."""
    CHIP = "chip"
    """The simulated chip's forward pass (:class:`memsim.HardwareAwareTrainer`)."""


MOVED_FROM_GA = {
    "finetune_steps": "finetune_steps",
    "finetune_lr": "finetune_lr",
    "finetune_mode": "finetune_mode",
    "finetune_chip_aware": "chip_aware",
    "fitness_draws": "draws",
    "evaluation": "evaluation",
}
"""Keys that ``[ga]`` held before the fitness had its own table: old name -> new name."""


class FitnessConfig(BaseModel):
    """The fitness of a member on the chip, and the fine-tune of every method."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    finetune_steps: int = Field(
        10,
        ge=0,
        description="QAT fine-tune steps per fitness evaluation (project default; the paper "
        "does not state one). The equal budget of every method is counted in these steps.",
    )
    finetune_lr: float = Field(1e-3, gt=0.0, description="Learning rate of the fine-tunes.")
    finetune_mode: FinetuneMode = Field(
        FinetuneMode.TRAIN,
        description="'train' (default): BatchNorm normalizes with each fine-tune batch's own "
        "statistics and dropout is on, while the chip keeps the baseline's running statistics. "
        "'eval': the fine-tune runs the network as deployed, with the baseline's running "
        "BatchNorm statistics and no dropout.",
    )
    finetune: FinetuneKind = Field(
        FinetuneKind.SOFTWARE,
        description="What the fine-tunes train through. 'software' (default): the weights "
        "fake-quantized to weight_bits times 1 + qat_sigma Gaussian noise (plus the defect map "
        "with chip_aware). 'chip': the simulated chip's forward pass with straight-through "
        "gradients (memsim.HardwareAwareTrainer): qat and a blind GA fitness train noise in "
        "the loop on fresh chips of the profile; defect_aware_oracle and a chip_aware GA "
        "fitness train chip in the loop on the chip instance; defect_aware_readback on its "
        "read-back twin; progressive trains the later layers through the profile on the "
        "programmed layers' measured outputs. Same step budget, counted the same way.",
    )
    chip_aware: bool = Field(
        False,
        description="Fine-tune through the fitness chip's fixed defects (its stuck-at devices "
        "and device gains, memsim.defect_maps), as a chip whose defect map was read out by a "
        "march test would allow. False (paper): the fine-tune knows only the noise model. "
        "Runs the fine-tune serially.",
    )
    draws: int = Field(
        1, ge=1, description="R: programming-noise draws averaged per fitness evaluation."
    )
    evaluation: EvaluationMode = Field(
        EvaluationMode.AUTO,
        description="All members' fine-tunes in one batched pass, one at a time, or 'auto': the "
        "fitness's per-model table of measured winners (for the shipped networks the loop is "
        "faster, so 'auto' runs them serially). The numbers do not depend on it.",
    )
    batch_size: int = Field(64, ge=1, description="Images per fine-tune step (classifiers).")
    n_way: int = Field(5, ge=2, description="Classes per fine-tune episode (ProtoNet).")
    k_shot: int = Field(5, ge=1, description="Support images per class (episodes and fitness).")
    n_query: int = Field(15, ge=1, description="Query images per class per episode (ProtoNet).")
    support_draws: int = Field(
        1, ge=1, description="ProtoNet: support sets drawn per programming draw of the fitness."
    )
