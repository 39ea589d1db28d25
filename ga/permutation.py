"""Batched operators of a permutation GA: order crossover, swap and inversion mutation.

Every operator works on a batch of permutations ``(M, L)`` at once (one row per
individual, or per individual and sub-problem flattened together) with a per-row
*active length* ``n``: only the first ``n[i]`` entries of row ``i`` are permuted, the
tail stays as it is.  This lets sub-problems of different sizes (tiles of a crossbar with
fewer used rows than the tile has) share one tensor, and keeps every operator a handful
of tensor ops with no loop over individuals.

Selection is the paper's sigmoid roulette (:func:`ga.operators.sigmoid_rws_probabilities`)
taken independently per sub-problem: :func:`sigmoid_roulette` draws parents for every
column of a ``(T, P)`` fitness table at once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _below(n: Tensor, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Uniform integers in ``[0, n)`` of ``shape`` (``n`` broadcast over the last dims)."""
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return (u * n.reshape(n.shape + (1,) * (len(shape) - n.dim())).double()).long()


@torch.no_grad()
def random_permutations(n: Tensor, length: int, generator: torch.Generator) -> Tensor:
    """One random permutation per row of its first ``n[i]`` entries (identity tail), ``(M, L)``."""
    pos = torch.arange(length).expand(n.numel(), -1)
    keys = torch.rand((n.numel(), length), generator=generator, dtype=torch.float64)
    # the tail sorts after every active key and keeps its order
    keys = torch.where(pos < n.unsqueeze(1), keys, 2.0 + pos.double())
    return keys.argsort(dim=1)


@torch.no_grad()
def order_crossover(a: Tensor, b: Tensor, n: Tensor, generator: torch.Generator) -> Tensor:
    """Order crossover (OX1) of parent rows ``a`` and ``b``, ``(M, L)`` each.

    The child takes a random segment ``[lo, hi]`` (inside the active length) from ``a`` and
    fills the other positions, left to right, with ``b``'s remaining values in ``b``'s
    order, so it is a permutation that keeps ``a``'s block and ``b``'s relative order.
    """
    m, length = a.shape
    ends = _below(n, (m, 2), generator)
    lo, hi = ends.min(dim=1).values, ends.max(dim=1).values
    pos = torch.arange(length).expand(m, -1)
    in_seg = (pos >= lo.unsqueeze(1)) & (pos <= hi.unsqueeze(1))
    taken = torch.zeros((m, length), dtype=torch.bool).scatter(1, a, in_seg)
    # b's values not in a's segment first, in b's order (stable sort on the taken flag)
    rest = b.gather(1, taken.gather(1, b).long().argsort(dim=1, stable=True))
    slots = in_seg.long().argsort(dim=1, stable=True)  # positions outside the segment first
    child = torch.empty_like(a).scatter_(1, slots, rest)
    return torch.where(in_seg, a, child)


@torch.no_grad()
def swap_mutation(x: Tensor, n: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Swap two random active entries of each row with ``probability``."""
    m, length = x.shape
    ij = _below(n, (m, 2), generator)
    hit = torch.rand(m, generator=generator) < probability
    i, j = ij[:, 0], ij[:, 1]
    idx = torch.arange(length).expand(m, -1).clone()
    rows = torch.arange(m)
    idx[rows, i] = torch.where(hit, j, i)
    idx[rows, j] = torch.where(hit, i, j)
    return x.gather(1, idx)


@torch.no_grad()
def inversion_mutation(
    x: Tensor, n: Tensor, probability: float, generator: torch.Generator
) -> Tensor:
    """Reverse a random active segment ``[lo, hi]`` of each row with ``probability``."""
    m, length = x.shape
    ends = _below(n, (m, 2), generator)
    lo, hi = ends.min(dim=1).values, ends.max(dim=1).values
    hit = torch.rand(m, generator=generator) < probability
    pos = torch.arange(length).expand(m, -1)
    inside = (pos >= lo.unsqueeze(1)) & (pos <= hi.unsqueeze(1)) & hit.unsqueeze(1)
    idx = torch.where(inside, (lo + hi).unsqueeze(1) - pos, pos)
    return x.gather(1, idx)


@torch.no_grad()
def sigmoid_roulette(
    fitness: Tensor,
    num_parents: int,
    generator: torch.Generator,
    *,
    tau: float = 1.0,
    center: str = "none",
) -> Tensor:
    """Parents per sub-problem by the paper's sigmoid roulette, ``(T, num_parents)``.

    ``fitness`` is ``(T, P)`` (non-negative, larger is better); row ``t`` gets
    probabilities ``sigmoid(tau * (f_i / sum_j f_j - c))`` as in
    :func:`ga.operators.sigmoid_rws_probabilities` (``c = 1/P`` for ``center="mean"``).
    """
    if center not in ("none", "mean"):
        raise ValueError(f"center must be 'none' or 'mean', got {center!r}")
    f = fitness.double()
    total = f.sum(dim=1, keepdim=True)
    share = torch.where(total > 0, f / total.clamp(min=1e-300), 1.0 / f.shape[1])
    offset = 0.0 if center == "none" else 1.0 / f.shape[1]
    w = torch.sigmoid(tau * (share - offset))
    probs = w / w.sum(dim=1, keepdim=True)
    return torch.multinomial(probs, num_parents, replacement=True, generator=generator)


__all__ = [
    "inversion_mutation",
    "order_crossover",
    "random_permutations",
    "sigmoid_roulette",
    "swap_mutation",
]
