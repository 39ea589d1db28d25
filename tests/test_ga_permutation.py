"""Batched permutation operators of ga.permutation: valid children, tails kept, selection."""

from __future__ import annotations

import torch

from ga.permutation import (
    inversion_mutation,
    order_crossover,
    random_permutations,
    sigmoid_roulette,
    swap_mutation,
)

L = 12


def _is_perm(x: torch.Tensor) -> bool:
    return bool((x.sort(dim=1).values == torch.arange(x.shape[1])).all())


def test_operators_give_permutations_that_keep_the_inactive_tail():
    gen = torch.Generator().manual_seed(0)
    n = torch.randint(1, L + 1, (400,), generator=gen)
    a, b = random_permutations(n, L, gen), random_permutations(n, L, gen)
    kids = {
        "ox": order_crossover(a, b, n, gen),
        "swap": swap_mutation(a, n, 1.0, gen),
        "inversion": inversion_mutation(a, n, 1.0, gen),
    }
    tail = torch.arange(L).expand(400, -1) >= n.unsqueeze(1)
    for name, x in {"a": a, **kids}.items():
        assert _is_perm(x), name
        assert torch.equal(x[tail], torch.arange(L).expand(400, -1)[tail]), name
    assert not torch.equal(kids["swap"], a) and not torch.equal(kids["inversion"], a)
    assert torch.equal(swap_mutation(a, n, 0.0, gen), a)


def test_order_crossover_keeps_a_block_of_one_parent_and_the_order_of_the_other():
    gen = torch.Generator().manual_seed(1)
    n = torch.full((300,), L)
    a, b = random_permutations(n, L, gen), random_permutations(n, L, gen)
    child = order_crossover(a, b, n, gen)
    for i in range(300):
        same = (child[i] == a[i]).nonzero().reshape(-1)
        lo, hi = int(same.min()), int(same.max())
        # the rest, read left to right, is in b's order
        rest = [int(v) for j, v in enumerate(child[i]) if not lo <= j <= hi]
        order = [int(v) for v in b[i] if int(v) in set(rest)]
        assert rest == order


def test_sigmoid_roulette_prefers_the_fitter_member_per_row():
    gen = torch.Generator().manual_seed(2)
    fitness = torch.tensor([[0.1, 0.9, 0.5], [0.9, 0.1, 0.5]])
    picks = sigmoid_roulette(fitness, 4000, gen, tau=20.0, center="mean")
    counts = [torch.bincount(p, minlength=3) for p in picks]
    assert counts[0].argmax() == 1 and counts[1].argmax() == 0
    flat = sigmoid_roulette(fitness, 4000, gen, tau=1e-6)
    assert (torch.bincount(flat[0], minlength=3) > 1200).all()  # no pressure: ~uniform
