"""The interface of a recovery method: budget, step counters, data, result, chip access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ga.config import GAConfig
from ga.genome import Genome
from lab.fitness.config import FitnessConfig
from lab.methods.config import RecoverySection
from models.data import ImageDataset
from models.tasks import Task

if TYPE_CHECKING:
    from lab.methods.chip import Chip


class Access(str, Enum):
    """What a method may see of the chip (the ``needs`` of a method)."""

    accuracy = "chip accuracy"
    """Validation accuracy of programmed weights (a chip-in-the-loop measurement)."""
    layer_outputs = "measured layer outputs"
    """Outputs of programmed layers for training inputs."""
    readback = "device read-back"
    """Conductance reads of every device after programming known targets."""
    true_defects = "true defect map"
    """The simulator's own stuck-at/gain map: no real chip reveals it (upper reference)."""


def describe_needs(needs: frozenset[Access]) -> str:
    """Human-readable ``needs`` (``"nothing"`` for a blind method)."""
    return " + ".join(a.value for a in Access if a in needs) or "nothing"


@dataclass(frozen=True)
class Budget:
    """What every method may spend: the same for all methods of one stage."""

    steps: int
    """Training (optimizer) steps."""
    chip_evaluations: int
    """Chip-accuracy measurements of the search methods."""


@dataclass
class Counters:
    """What a method actually spent (counted where it is spent, not computed)."""

    steps: int = 0
    """Optimizer steps taken."""
    chip_evaluations: int = 0
    """Validation-accuracy measurements on the chip (one programming draw each)."""
    chip_batches: int = 0
    """Training batches passed through programmed layers (layer-output measurements)."""
    device_reads: int = 0
    """Single-device conductance reads of read-back."""

    def as_dict(self) -> dict[str, int]:
        """JSON-able copy."""
        return asdict(self)


@dataclass
class Solution:
    """What a method deploys: weights, optional digital output trim, placement, and notes."""

    genes: Tensor
    trim: dict[str, tuple[Tensor, Tensor]] | None = None
    placement: dict[str, tuple[Tensor, Tensor]] | None = None
    """Per-tile row/column permutations of each layer (:mod:`memsim.placement`)."""
    adapters: dict[str, nn.Module] | None = None
    """Digital branches added to each analog layer's output (:mod:`lab.fitness.digital`)."""
    committee: int | None = None
    """Copies of the network on independent arrays, outputs averaged (``None``: one)."""
    ensemble: dict[str, Tensor] | None = None
    """``{layer: mix (k, out)}``: k copies of each layer's arrays, mixed per column."""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecoveryData:
    """Everything but the chip: data, genome, training settings, a folder for state."""

    genome: Genome
    base_genes: Tensor
    base_state: dict[str, Tensor]
    task: Task
    train: ImageDataset
    val: ImageDataset
    qat_sigma: float
    bits: int
    lr: float
    seed: int
    ga: GAConfig
    fitness: FitnessConfig
    """The fine-tune every method shares and the GA's fitness (the ``[fitness]`` table)."""
    settings: RecoverySection
    work_dir: Path
    train_mode: bool = True
    """Fine-tunes run in train mode (``fitness.finetune_mode = "train"``) or as deployed."""
    snapshot_every: int = 0
    """A GA saves its best-ever weights every this many generations (0: never)."""
    executor: Any = None
    """Where a GA evaluates its population (a :class:`lab.executors.ExecutorSpec`)."""
    progress: bool = False
    echo: Callable[[str], None] = print


class RecoveryMethod:
    """A recovery method: subclass it in one module of :mod:`lab.methods.builtin`."""

    name: str = ""
    """Name used in ``recovery.methods``."""
    needs: frozenset[Access] = frozenset()
    """What it sees of the chip; the :class:`~lab.methods.chip.Chip` refuses the rest."""
    label: str = ""
    """Extra note printed with the score (e.g. "upper reference")."""
    uses_chip_evaluations: bool = False
    """Whether it spends the chip-evaluation budget (the search methods)."""
    finetune_kinds: frozenset[str] = frozenset({"software"})
    """The ``fitness.finetune`` kinds its fine-tune has (``"software"``, ``"chip"``)."""

    def __init__(self, settings: RecoverySection) -> None:
        """Keep the stage's settings."""
        self.settings = settings

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Return the weights to deploy, spending at most ``budget``."""
        raise NotImplementedError
