"""``ga``: the paper's GA with its blind QAT fine-tune, fitness measured on the chip."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import run_ga


class GA(RecoveryMethod):
    """The paper's method as in ``memsim ga`` (chip accuracy as the fitness)."""

    name = "ga"
    needs = frozenset({Access.accuracy})
    label = "paper's method"
    uses_chip_evaluations = True
    finetune_kinds = frozenset({"software", "chip"})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Run (or resume) the GA in ``<work_dir>/ga``."""
        return run_ga(chip.ga_fitness(), data, budget, data.work_dir / self.name)
