"""``defect_aware_oracle``: QAT through the simulator's true defect map (upper reference)."""

from __future__ import annotations

from torch import nn

from lab.fitness.config import FinetuneKind
from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.chip_training import counted_chip_qat
from lab.methods.training import counted_qat


class DefectAwareOracle(RecoveryMethod):
    """QAT whose forward sees the chip's true stuck/gain map (the chip-aware control).

    No real chip reveals this map; it bounds what defect-aware training can win back.
    """

    name = "defect_aware_oracle"
    needs = frozenset({Access.true_defects})
    label = "upper reference"
    finetune_kinds = frozenset({"software", "chip"})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps`` steps through :meth:`Chip.true_defect_map`.

        With ``fitness.finetune = "chip"``: chip in the loop on the chip instance itself
        (:meth:`Chip.true_instance`).
        """
        if data.fitness.finetune is FinetuneKind.CHIP:
            genes = counted_chip_qat(
                baseline, chip, data, data.base_genes, budget.steps, defects="true"
            )
            return Solution(genes)
        genes = counted_qat(
            baseline, chip, data, data.base_genes, budget.steps, chip.true_defect_map()
        )
        return Solution(genes)
