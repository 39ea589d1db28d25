"""Samplers for the per-MVM Gaussian read noise.

``exact`` draws fresh ``torch.randn`` numbers for every partial sum of every MVM.  On a
CPU this random-number generation costs more than the matrix products themselves
(about 3 ns per number here), so there is also:

``bank``: one pool of standard normals per device and dtype (at least ``2**22``, and
twice the largest request; it grows when needed), generated once; each MVM batch
reads a contiguous window at a fresh random offset.  Within one call
the numbers are i.i.d. N(0, 1); across calls, windows can overlap, so the same
numbers may reappear *at other positions* (other samples/columns).  Means and
variances over many draws are unbiased, but draws are not independent across calls
in the strict sense.  Use it for throughput (GA fitness, sweeps), and ``exact`` for
noise statistics.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import Tensor

BANK_SIZE = 2**22
_BANK_SEED = 0x5EED_BA4C
_banks: dict[tuple[str, torch.dtype], Tensor] = {}


class NoiseSampler(str, Enum):
    """How read-noise normals are drawn."""

    exact = "exact"
    bank = "bank"


def _bank(device: torch.device, dtype: torch.dtype, n: int) -> Tensor:
    key = (str(device), dtype)
    bank = _banks.get(key)
    if bank is None or bank.numel() < 2 * n:
        size = max(BANK_SIZE, 2 * n)
        gen = torch.Generator().manual_seed(_BANK_SEED)
        bank = torch.randn(size, generator=gen).to(device=device, dtype=dtype)
        _banks[key] = bank
    return bank


def standard_normal(
    shape: torch.Size | tuple[int, ...],
    gen: torch.Generator,
    sampler: NoiseSampler,
    device: torch.device,
    dtype: torch.dtype,
    out: Tensor | None = None,
) -> Tensor:
    """Return N(0, 1) numbers of ``shape`` (a read-only view for the bank sampler).

    ``out``: a tensor of ``shape`` to draw the exact sampler's numbers into (the same
    numbers as without it; it saves the allocation).
    """
    n = 1
    for s in shape:
        n *= int(s)
    if sampler == NoiseSampler.bank:
        bank = _bank(device, dtype, n)
        # the offset comes from the layer's own stream, so runs stay reproducible
        off = int(torch.randint(0, bank.numel() - n + 1, (1,), generator=gen, device=gen.device))
        return bank[off : off + n].view(shape)
    if out is not None:
        return torch.randn(shape, generator=gen, dtype=dtype, device=device, out=out)
    return torch.randn(shape, generator=gen, dtype=dtype, device=device)
