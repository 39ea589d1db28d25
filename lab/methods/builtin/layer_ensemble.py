"""``layer_ensemble``: k arrays per layer; per column, the healthy copies are averaged."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lab.fitness.digital import copy_key, ensemble_network
from lab.fitness.finetune import with_genes
from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.remap import row_activity
from lab.methods.training import counted_qat
from memsim.defects import DefectMap


def column_errors(w: Tensor, dmap: DefectMap, activity: Tensor) -> Tensor:
    """Activity-weighted ``|stored - target|`` of every output column, ``(out,)``."""
    ideal = DefectMap(
        torch.ones_like(dmap.gain),
        torch.zeros_like(dmap.offset),
        dmap.layout,
        dmap.profile,
        dmap.weight_shape,
    )
    with torch.no_grad():
        err = (dmap.apply(w) - ideal.apply(w)).abs().reshape(activity.shape) * activity
    return err.sum(1)


class LayerEnsembleRecovery(RecoveryMethod):
    """The ``qat`` weights on ``recovery.ensemble_size`` copies of every layer's arrays.

    The copies are read back (as ``defect_aware_readback`` reads the chip); for each
    output column, the copies whose estimated activity-weighted error is within
    ``recovery.ensemble_tolerance`` of the best copy's count as healthy and are
    averaged, the others are left out of that column.  Price: k times the arrays.
    """

    name = "layer_ensemble"
    needs = frozenset({Access.readback})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps``, read back the k copies, mix the healthy ones."""
        s = self.settings
        k = s.ensemble_size
        keys = list(data.genome.keys)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps)
        net = with_genes(baseline, data.genome, genes)
        est = chip.estimate_defects_of(
            ensemble_network(net, keys, k),
            reads=s.readback_reads,
            seed=data.seed,
            threshold=s.readback_threshold,
        )
        activity = row_activity(net, keys, data.train.images)
        weights = data.genome.unflatten(genes)
        mixes: dict[str, Tensor] = {}
        healthy_share = []
        for key in keys:
            errs = torch.stack(
                [
                    column_errors(weights[key], est[copy_key(key, c)].defect_map, activity[key])
                    for c in range(k)
                ]
            )  # (k, out)
            healthy = errs <= s.ensemble_tolerance * errs.min(0).values + 1e-12
            mixes[key] = healthy.float() / healthy.float().sum(0)
            healthy_share.append(float(healthy.float().mean()))
        info = {"arrays": k, "healthy_copy_share": sum(healthy_share) / len(healthy_share)}
        return Solution(genes, ensemble=mixes, info=info)
