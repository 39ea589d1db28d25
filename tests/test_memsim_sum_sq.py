"""The sum of squared DAC codes over each receptive field, against an exact float64 sum.

The read-noise variance of a partial sum is ``sum x**2`` over the inputs of its tile.
For integer DAC codes the conv layer computes it by running sums (a few full-resolution
maps) or by a convolution with ones (many maps, or a stride); both must equal the exact
sum, so the choice between them never changes an output.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import memsim
from memsim.conv_layer import AnalogConv2d


def _exact(codes: torch.Tensor, conv: AnalogConv2d, n_groups: int, c_t: int) -> torch.Tensor:
    b, _, h, w = codes.shape
    sq = codes.double().square().view(b, n_groups, c_t, h, w).sum(2)
    ones = torch.ones(n_groups, 1, *conv.kernel_size, dtype=torch.float64)
    s = F.conv2d(sq, ones, None, conv.stride, conv.padding, conv.dilation, n_groups)
    return s.reshape(b, n_groups, 1, -1)


@pytest.mark.parametrize(
    ("c_in", "c_out", "kernel", "stride", "padding", "groups"),
    [
        (1, 6, 5, 1, 2, 1),  # LeNet-5's first layer: running sums
        (6, 16, 5, 1, 0, 1),  # two row tiles of three channels: running sums
        (16, 16, 3, 1, 1, 16),  # depthwise: convolution with ones
        (16, 16, 3, 2, 1, 16),  # depthwise, strided
        (2, 4, 3, 2, 1, 1),  # few maps, strided: convolution with ones
    ],
)
def test_sum_of_squares_is_exact_on_both_paths(c_in, c_out, kernel, stride, padding, groups):
    torch.manual_seed(0)
    module = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups)
    chip = memsim.convert(nn.Sequential(module), "rram_1t1r_yao2020", seed=0)
    conv = chip[0]
    g, rt, c_t, pad = conv._geometry()
    assert pad == 0
    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(-127, 128, (3, c_in, 12, 12), generator=gen).float()
    got = conv._sum_sq(codes, g * rt, c_t, integer=True)
    want = _exact(codes, conv, g * rt, c_t)
    assert got.dtype == torch.float32
    assert torch.equal(got.double(), want)
