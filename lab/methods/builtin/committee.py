"""``committee``: the ``qat`` weights on k independent arrays, outputs averaged."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.training import counted_qat


class CommitteeRecovery(RecoveryMethod):
    """Blind QAT weights deployed ``recovery.committee_size`` times, outputs averaged.

    Each copy sits on arrays with their own stuck devices, gains and noise
    (:class:`lab.fitness.digital.Committee`), so independent errors average out; the
    price is ``k`` times the arrays (energy and area).  No chip information is used.
    """

    name = "committee"
    needs = frozenset()

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps`` steps; deploy it ``k`` times."""
        k = self.settings.committee_size
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps)
        return Solution(genes, committee=k, info={"arrays": k})
