"""``ga_mapping``: blind QAT, then a GA over per-tile row/column permutations."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.remap_method import choose_placement, read_back
from lab.methods.training import counted_qat


class GAMapping(RecoveryMethod):
    """The ``qat`` weights, placed by the permutation GA of :mod:`lab.methods.remap_ga`.

    The GA minimizes the activity-weighted weight error over the read-back defect map
    (no chip evaluation), starting from the greedy placement; it is resumable from
    ``<work_dir>/ga_mapping``.  The placement is deployed with the weights.
    """

    name = "ga_mapping"
    needs = frozenset({Access.readback})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Read back, QAT for ``budget.steps`` steps, then evolve the placement."""
        est = read_back(chip, data)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps)
        placement, info = choose_placement(
            baseline, data, genes, est, "ga", data.work_dir / self.name
        )
        return Solution(genes, placement=placement, info=info)
