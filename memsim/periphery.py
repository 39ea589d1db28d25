"""DAC and ADC quantizers.

Both are symmetric mid-tread uniform quantizers: ``b`` bits give the
``2**b - 1`` levels ``k * bound / (2**(b-1) - 1)`` for ``|k| <= 2**(b-1) - 1``
(the convention of aihwkit's ``inp_res``/``out_res = 1 / (2**b - 2)``); one bit
gives the two levels ``+-bound``.  Values beyond ``bound`` saturate.
"""

from __future__ import annotations

import torch
from torch import Tensor


def uniform_quantize(v: Tensor, bound: Tensor | float, bits: int) -> Tensor:
    """Quantize ``v`` to ``bits`` over ``[-bound, bound]`` (``bound`` broadcastable)."""
    if bits == 1:
        b = torch.as_tensor(bound, dtype=v.dtype, device=v.device)
        return torch.where(v >= 0, b, -b).expand_as(v)
    m = float(2 ** (bits - 1) - 1)
    step = bound / m
    return torch.clamp(torch.round(v / step), -m, m) * step
