"""``defect_aware_oracle``: QAT through the simulator's true defect map (upper reference)."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import counted_qat


class DefectAwareOracle(RecoveryMethod):
    """QAT whose forward sees the chip's true stuck/gain map (the chip-aware control).

    No real chip reveals this map; it bounds what defect-aware training can win back.
    """

    name = "defect_aware_oracle"
    needs = frozenset({Access.true_defects})
    label = "upper reference"

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps`` steps through :meth:`Chip.true_defect_map`."""
        genes = counted_qat(
            baseline, chip, data, data.base_genes, budget.steps, chip.true_defect_map()
        )
        return Solution(genes)
