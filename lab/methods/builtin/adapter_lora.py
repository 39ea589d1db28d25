"""``adapter_lora``: blind QAT, then rank-r digital adapters fitted on measured outputs."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.correction import digital_overhead, fit_layerwise
from lab.methods.training import counted_qat


class AdapterLoRA(RecoveryMethod):
    """A rank-``recovery.adapter_rank`` digital branch beside every analog layer.

    The analog weights are the blind QAT solution, programmed once and never changed;
    each layer's adapter ``B(A(x))`` is fitted on the chip's measured outputs, layer by
    layer (:func:`lab.methods.correction.fit_layerwise`), with
    ``recovery.correction_fraction`` of the step budget.  The adapters' digital
    parameters and multiply-accumulates per inference are reported.
    """

    name = "adapter_lora"
    needs = frozenset({Access.layer_outputs})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT, then the layer-wise adapter fit; both together spend ``budget.steps``."""
        s = self.settings
        fit = round(s.correction_fraction * budget.steps)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps - fit)
        adapters = fit_layerwise(baseline, chip, data, genes, fit, "adapter", rank=s.adapter_rank)[
            "adapters"
        ]
        image = data.train.images[:1]
        info = digital_overhead(baseline, list(data.genome.keys), image, adapters=adapters)
        info["adapter_rank"] = s.adapter_rank
        return Solution(genes, adapters=adapters, info=info)
