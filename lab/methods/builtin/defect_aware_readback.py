"""``defect_aware_readback``: QAT through a defect map estimated from device read-back."""

from __future__ import annotations

from torch import nn

from lab.fitness.config import FinetuneKind
from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.chip_training import counted_chip_qat
from lab.methods.training import counted_qat
from memsim.readback import estimated_weight_map


class DefectAwareReadback(RecoveryMethod):
    """Estimate stuck devices and gains by reading back all-g_max and all-g_min, then QAT.

    The estimate (:func:`memsim.readback.estimate_defects`, ``recovery.readback_reads``
    reads per device and target) replaces the true map of ``defect_aware_oracle``; the
    estimated fault codes are kept in the solution so the stage can report the
    confusion matrix against the truth.  With ``fitness.finetune = "chip"`` the fine-tune
    is chip in the loop on the estimate's twin (``defects="read_back"``).
    """

    name = "defect_aware_readback"
    needs = frozenset({Access.readback})
    finetune_kinds = frozenset({"software", "chip"})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Read back, estimate, then QAT for ``budget.steps`` steps through the estimate."""
        s = self.settings
        est = chip.estimate_defects(
            reads=s.readback_reads, seed=data.seed, threshold=s.readback_threshold
        )
        if data.fitness.finetune is FinetuneKind.CHIP:
            # chip in the loop on the twin whose defects are the estimate
            genes = counted_chip_qat(
                baseline, chip, data, data.base_genes, budget.steps, defects="read_back",
                estimates=est,
            )  # fmt: skip
        else:
            genes = counted_qat(
                baseline, chip, data, data.base_genes, budget.steps, estimated_weight_map(est)
            )
        return Solution(genes, info={"estimated_faults": {k: e.fault for k, e in est.items()}})
