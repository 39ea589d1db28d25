"""``trim_grad``: blind QAT, then per-column gains/offsets after the ADC fitted by gradient."""

from __future__ import annotations

from torch import nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.correction import digital_overhead, fit_layerwise
from lab.methods.training import counted_qat


class TrimGrad(RecoveryMethod):
    """Digital output trim (:mod:`memsim.trim`) fitted on measured layer outputs.

    No reprogramming: the weights are the blind QAT solution; the chip is programmed
    once and each layer's trim (a gain and an offset per column) takes Adam steps on the
    squared error between the chip's trimmed output and the digital network's, layer by
    layer (:func:`lab.methods.correction.fit_layerwise`).  ``recovery.correction_fraction``
    of the step budget fits the trims, the rest trains the weights.
    """

    name = "trim_grad"
    needs = frozenset({Access.layer_outputs})

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT, then the layer-wise trim fit; both together spend ``budget.steps``."""
        fit = round(self.settings.correction_fraction * budget.steps)
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps - fit)
        trim = fit_layerwise(baseline, chip, data, genes, fit, "trim")["trim"]
        image = data.train.images[:1]
        info = digital_overhead(baseline, list(data.genome.keys), image, trim=trim)
        return Solution(genes, trim=trim, info=info)
