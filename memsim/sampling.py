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

On a CPU with more than one intra-op thread, :func:`draw_later` draws the ``exact``
numbers on a background thread while the layer computes its partial sums: the draw is
single-threaded, so otherwise one core idles through it.  The numbers are the same
ones, from the same generator, in the same order (``MEMSIM_OVERLAP_NOISE=0`` turns it
off).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    # a forked child inherits the executor but not its thread: it would queue forever
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


def overlap_enabled(device: torch.device, sampler: NoiseSampler) -> bool:
    """Whether :func:`draw_later` draws on the background thread."""
    return (
        sampler == NoiseSampler.exact
        and device.type == "cpu"
        and torch.get_num_threads() > 1
        and os.environ.get("MEMSIM_OVERLAP_NOISE", "1") != "0"
    )


def draw_later(draw: Callable[[], Tensor], overlap: bool) -> Callable[[], Tensor]:
    """Start ``draw`` (a :func:`standard_normal` call); return what waits for its numbers.

    With ``overlap`` (see :func:`overlap_enabled`) it runs on the background thread now,
    and nothing else may use its generator or ``out`` tensor until the returned function
    has been called; without, it runs when the returned function is called.
    """
    if not overlap:
        return draw
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(1, thread_name_prefix="memsim-noise")
    return _pool.submit(draw).result
