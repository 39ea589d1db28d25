"""``progressive``: NeuRRAM-style progressive chip-in-the-loop fine-tuning."""

from __future__ import annotations

from torch import nn

from lab.fitness.config import FinetuneKind
from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.chip_training import progressive_chip_tune
from lab.methods.training import progressive_tune


class Progressive(RecoveryMethod):
    """Program layer k, train layers k+1..N on its measured outputs, for k = 1..N-1.

    See :func:`lab.methods.training.progressive_tune` (Wan et al., Nature 2022); with
    ``fitness.finetune = "chip"``, :func:`lab.methods.chip_training.progressive_chip_tune`.
    """

    name = "progressive"
    needs = frozenset({Access.layer_outputs})
    finetune_kinds = frozenset({"software", "chip"})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """The progressive fine-tune for ``budget.steps`` steps from the baseline."""
        tune = (
            progressive_chip_tune
            if data.fitness.finetune is FinetuneKind.CHIP
            else progressive_tune
        )
        genes = tune(baseline, chip, data, data.base_genes, steps=budget.steps, seed=data.seed)
        return Solution(genes)
