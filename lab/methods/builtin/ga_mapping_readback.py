"""``ga_mapping_readback``: GA placement, then defect-aware QAT through the placed map."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.remap_method import choose_placement, placed_weight_map, read_back
from lab.methods.training import counted_qat


class GAMappingReadback(RecoveryMethod):
    """Remapping composed with ``defect_aware_readback``.

    The permutation GA places the baseline weights on the read-back defect map; the
    weights are then trained for ``budget.steps`` steps through the estimated defects as
    the placed weights see them, and deployed with the placement.
    """

    name = "ga_mapping_readback"
    needs = frozenset({Access.readback})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """Read back, place the baseline weights, then QAT through the placed estimate."""
        est = read_back(chip, data)
        placement, info = choose_placement(
            baseline, data, data.base_genes, est, "ga", data.work_dir / self.name
        )
        weight_map = placed_weight_map(est, placement)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps, weight_map)
        info["estimated_faults"] = {k: e.fault for k, e in est.items()}
        return Solution(genes, placement=placement, info=info)
