"""``progressive``: NeuRRAM-style progressive chip-in-the-loop fine-tuning."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import progressive_tune


class Progressive(RecoveryMethod):
    """Program layer k, train layers k+1..N on its measured outputs, for k = 1..N-1.

    See :func:`lab.methods.training.progressive_tune` (Wan et al., Nature 2022).
    """

    name = "progressive"
    needs = frozenset({Access.layer_outputs})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """The progressive fine-tune for ``budget.steps`` steps from the baseline."""
        genes = progressive_tune(
            baseline, chip, data, data.base_genes, steps=budget.steps, seed=data.seed
        )
        return Solution(genes)
