"""``remap_greedy``: blind QAT, then a deterministic placement on the read-back defects."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.remap_method import choose_placement, read_back
from lab.methods.training import counted_qat


class RemapGreedy(RecoveryMethod):
    """The ``qat`` weights, placed by the greedy baseline of :mod:`lab.methods.remap`.

    Columns of every tile by an optimal assignment on the activity-weighted weight error
    over the read-back defect map, rows greedily; no data beyond the row activities and
    no chip evaluation.  The placement is deployed with the weights.
    """

    name = "remap_greedy"
    needs = frozenset({Access.readback})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Read back, QAT for ``budget.steps`` steps, then place the result greedily."""
        est = read_back(chip, data)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps)
        placement, info = choose_placement(
            baseline, data, genes, est, "greedy", data.work_dir / self.name
        )
        return Solution(genes, placement=placement, info=info)
