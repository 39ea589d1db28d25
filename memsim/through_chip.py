"""Straight-through gradients of an analog layer's forward pass (training through the chip).

In training mode the analog layers still compute the chip's forward pass (DAC, tile MVM
on the programmed conductances, read noise, ADC, digital scaling, IR-drop transfer) and
return exactly its output.  The backward pass is that of the layer's linear model
``y = gain * (W_eff x) + offset + b`` on the weights the chip holds now (``W_eff``,
:meth:`memsim.tiles.TileArray.effective_weight`), with straight-through estimators for
everything that has no useful derivative:

* the DAC and ADC quantizers and their clipping pass the gradient unchanged;
* read noise and bit-line noise are additive, so they do not change the gradient;
* the mapping of the target weights onto conductances (digital quantization, scaling,
  conductance levels, programming noise, stuck devices, device gains, drift) is taken
  as the identity: ``d W_eff / d target = 1``.

``d y / d x`` uses ``W_eff`` (the chip's weights, faults and drift included), so the
gradient that reaches earlier layers is the one of the chip, not of the digital model.
For the ideal profile (no noise, no quantizer, no defect) the forward pass is exactly
the linear model and these gradients are the exact ones (``tests/test_memsim_train.py``
checks them against finite differences).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .layers import AnalogLayer


class ThroughChip(torch.autograd.Function):
    """The chip's forward pass with straight-through gradients (see the module doc)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, target: Tensor, bias: Tensor | None, layer: AnalogLayer
    ) -> Tensor:
        """Run the chip's forward pass on ``x``; ``target`` and ``bias`` are the leaves."""
        y = layer._chip_forward(x)
        ctx.layer = layer
        # saved, not referenced: reprogramming between forward and backward (which would
        # make this gradient refer to a state the output did not come from) is an error
        ctx.save_for_backward(x, layer.tiles.w_eff)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        """Gradients of the linear model on ``W_eff`` for ``x``, the targets and the bias."""
        layer: AnalogLayer = ctx.layer
        x, w_eff = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_lin = grad
        if layer.trim is not None:
            # the digital output trim multiplies the array's output (its offset has no
            # gradient); the bias is added after it
            g_lin = grad * layer.trim[0].view(layer._out_view(grad.dim()))
        gx, gw = layer._linear_grads(x, w_eff, g_lin, need_x, need_w)
        gb = None
        if need_b:
            dims = [d for d in range(grad.dim()) if d != layer._out_dim(grad.dim())]
            gb = grad.sum(dims) if dims else grad
        return gx, gw, gb, None
