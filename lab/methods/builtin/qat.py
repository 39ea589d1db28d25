"""``qat``: the blind control, noise-aware QAT of the baseline for the whole step budget."""

from __future__ import annotations

from torch import nn

from lab.fitness.config import FinetuneKind
from lab.methods.base import Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.chip_training import counted_chip_qat
from lab.methods.training import counted_qat


class QAT(RecoveryMethod):
    """Noise-aware QAT without any information about the chip (today's ``control``).

    With ``fitness.finetune = "chip"``: noise in the loop through the simulated chip, a
    fresh chip instance of the profile every step (it knows no defects).
    """

    name = "qat"
    needs = frozenset()
    label = "blind control"
    finetune_kinds = frozenset({"software", "chip"})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT (or noise in the loop through the chip) for ``budget.steps`` steps."""
        if data.fitness.finetune is FinetuneKind.CHIP:
            genes = counted_chip_qat(baseline, chip, data, data.base_genes, budget.steps)
            return Solution(genes)
        return Solution(counted_qat(baseline, chip, data, data.base_genes, budget.steps))
