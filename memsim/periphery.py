"""DAC and ADC quantizers.

Both are symmetric mid-tread uniform quantizers: ``b`` bits give the
``2**b - 1`` levels ``k * bound / (2**(b-1) - 1)`` for ``|k| <= 2**(b-1) - 1``
(the convention of aihwkit's ``inp_res``/``out_res = 1 / (2**b - 2)``); one bit
gives the two levels ``+-bound``, and maps 0 to ``+bound``.  Values beyond ``bound``
saturate.  Ties round half to even (``torch.round``): a value exactly half a step
between two levels goes to the level with the even code.  In the layers the DAC works
in units of its range, and the ADC range (calibrated or the fixed ``adc.bound``) is in
normalized units relative to the DAC full scale: a device at full window driven at the
DAC's full-scale input contributes 1.0, whatever that input is in activation units.
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
