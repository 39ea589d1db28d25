"""``ga_progressive``: the paper's GA with the progressive fine-tune as its Lamarckian step."""

from __future__ import annotations

from torch import Tensor, nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import progressive_tune, run_ga


class GAProgressive(RecoveryMethod):
    """GA whose every member is fine-tuned progressively on the chip before it is measured.

    Each member's ``fitness.finetune_steps`` steps are spread over the network's layers as in
    ``progressive``; the tuned weights are written back (Lamarckian), so the training
    accumulates over generations.
    """

    name = "ga_progressive"
    needs = frozenset({Access.accuracy, Access.layer_outputs})
    uses_chip_evaluations = True

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Run (or resume) the GA in ``<work_dir>/ga_progressive``."""
        fitness = chip.ga_fitness()

        def finetune(genes: Tensor, seed: int) -> Tensor:
            return progressive_tune(
                baseline, chip, data, genes, steps=data.fitness.finetune_steps, seed=seed
            )

        fitness.finetune_fn = finetune
        # its fine-tune measures this process's chip: the members run here, one by one
        return run_ga(fitness, data, budget, data.work_dir / self.name, parallel=False)
