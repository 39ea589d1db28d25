"""``qat``: the blind control, noise-aware QAT of the baseline for the whole step budget."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import counted_qat


class QAT(RecoveryMethod):
    """Noise-aware QAT without any information about the chip (today's ``control``)."""

    name = "qat"
    needs = frozenset()
    label = "blind control"

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps`` steps."""
        return Solution(counted_qat(baseline, chip, data, data.base_genes, budget.steps))
