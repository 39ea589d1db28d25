"""Selection, crossover and mutation as batched tensor operators.

EvoTorch style: each operator is a small function that works on the whole
population at once (``(P, n_genes)`` tensors) under ``torch.no_grad()``, with
no Python loop over members or genes, and draws from an explicit
``torch.Generator``.  Every operator draws the same amount of randomness
whatever the data (e.g. crossover points are drawn for every pair, crossed or
not), so the stream position never depends on fitness values.

Names follow PyGAD (``rws``, ``rank``, ``tournament``, ``single_point``,
``two_points``, ``uniform``, ``scattered``); ``sigmoid_rws`` and the two
mutations are the paper's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# --------------------------------------------------------------------------- selection


def _shares(fitness: Tensor) -> Tensor:
    """Return ``f_i / sum f`` in float64 (uniform when the sum is zero)."""
    f = fitness.double()
    total = f.sum()
    if total == 0:
        return torch.full_like(f, 1.0 / f.numel())
    return f / total


@torch.no_grad()
def sigmoid_rws_probabilities(
    fitness: Tensor, tau: float | Tensor = 1.0, center: str = "none"
) -> Tensor:
    """Return the selection probabilities of the paper's sigmoid roulette wheel.

    ``w_i = sigmoid(tau * (f_i / sum_j f_j - c))`` renormalised to sum to 1, with
    ``c = 0`` for ``center="none"`` (with ``tau = 1`` this is the paper's literal
    ``sigmoid(f_i / sum f)``) or ``c = 1/P`` for ``center="mean"``.

    The literal form is a weak pressure: shares lie in ``[0, 1]``, so weights lie
    in ``[0.5, 0.73]`` and, for P = 20 and similar accuracies, the best member is
    picked barely more often than the worst.  ``tau`` sharpens it; see
    :func:`selection_pressure`.

    Args:
        fitness: ``(P,)`` non-negative fitness (e.g. accuracy).
        tau: Scalar, or ``(T,)`` to get one distribution per tau.
        center: ``"none"`` or ``"mean"``.

    Returns:
        ``(P,)`` float64 probabilities, or ``(T, P)`` for a vector ``tau``.

    """
    if center not in ("none", "mean"):
        raise ValueError(f"center must be 'none' or 'mean', got {center!r}")
    share = _shares(fitness)
    offset = 0.0 if center == "none" else 1.0 / share.numel()
    tau_t = torch.as_tensor(tau, dtype=torch.float64)
    w = torch.sigmoid((share - offset) * tau_t.unsqueeze(-1))
    return w / w.sum(dim=-1, keepdim=True)


@torch.no_grad()
def rws_probabilities(fitness: Tensor) -> Tensor:
    """PyGAD's fitness-proportional probabilities ``f_i / sum f``.

    As in PyGAD, a population with negative fitness is first shifted so that
    its worst member gets 0; an all-equal population gets uniform odds.
    """
    f = fitness.double()
    if bool((f < 0).any()):
        f = f - f.min()
    return _shares(f)


@torch.no_grad()
def rank_probabilities(fitness: Tensor) -> Tensor:
    """PyGAD's rank selection odds: rank 1 for the worst .. P for the best, ``p = rank / sum``.

    Ties are ranked by population index (stable sort), so the result is
    deterministic.
    """
    order = torch.argsort(fitness, stable=True)  # ascending: worst first
    ranks = torch.empty(fitness.numel(), dtype=torch.float64)
    ranks[order] = torch.arange(1, fitness.numel() + 1, dtype=torch.float64)
    return ranks / ranks.sum()


@torch.no_grad()
def roulette(probabilities: Tensor, num_parents: int, generator: torch.Generator) -> Tensor:
    """Draw ``num_parents`` indices with replacement from ``probabilities`` (``(P,)``)."""
    return torch.multinomial(probabilities, num_parents, replacement=True, generator=generator)


def sigmoid_rws(
    fitness: Tensor,
    num_parents: int,
    generator: torch.Generator,
    *,
    tau: float = 1.0,
    center: str = "none",
    **_: object,
) -> Tensor:
    """Select parent indices with the sigmoid roulette wheel (see the probabilities)."""
    return roulette(sigmoid_rws_probabilities(fitness, tau, center), num_parents, generator)


def rws(fitness: Tensor, num_parents: int, generator: torch.Generator, **_: object) -> Tensor:
    """Select parent indices with PyGAD's fitness-proportional roulette wheel."""
    return roulette(rws_probabilities(fitness), num_parents, generator)


def rank(fitness: Tensor, num_parents: int, generator: torch.Generator, **_: object) -> Tensor:
    """Select parent indices with PyGAD's linear rank selection."""
    return roulette(rank_probabilities(fitness), num_parents, generator)


@torch.no_grad()
def tournament(
    fitness: Tensor, num_parents: int, generator: torch.Generator, *, k: int = 3, **_: object
) -> Tensor:
    """Select parent indices by ``k``-way tournaments (candidates drawn with replacement).

    The fittest candidate wins; on ties the first drawn candidate wins.
    """
    cand = torch.randint(0, fitness.numel(), (num_parents, k), generator=generator)
    winner = fitness[cand].argmax(dim=1, keepdim=True)
    return cand.gather(1, winner).squeeze(1)


SelectionFn = Callable[..., Tensor]
SELECTIONS: dict[str, SelectionFn] = {
    "sigmoid_rws": sigmoid_rws,
    "rws": rws,
    "rank": rank,
    "tournament": tournament,
}
"""Selection operators by name: ``fn(fitness, num_parents, generator, **kw) -> indices``."""


@dataclass(frozen=True)
class SelectionPressure:
    """Selection pressure of ``sigmoid_rws`` at one tau.

    Attributes:
        tau: The sharpness.
        p_best: Probability of drawing the fittest member.
        p_worst: Probability of drawing the least fit member.
        ratio_best_worst: ``p_best / p_worst`` (1 = no pressure).
        expected_best_copies: ``num_parents * p_best``: parents expected to be
            copies of the best member (1 = neutral when ``num_parents = P``).

    """

    tau: float
    p_best: float
    p_worst: float
    ratio_best_worst: float
    expected_best_copies: float


def selection_pressure(
    fitness: Tensor,
    taus: Sequence[float],
    center: str = "none",
    num_parents: int | None = None,
) -> list[SelectionPressure]:
    """Report how strongly ``sigmoid_rws`` favours the best member, per tau.

    Args:
        fitness: ``(P,)`` fitness of a population.
        taus: Sharpness values to evaluate.
        center: ``"none"`` or ``"mean"`` (see :func:`sigmoid_rws_probabilities`).
        num_parents: Parents drawn per generation (default P).

    Returns:
        One :class:`SelectionPressure` per tau.

    """
    probs = sigmoid_rws_probabilities(
        fitness, torch.tensor(list(taus), dtype=torch.float64), center
    )
    best, worst = int(torch.argmax(fitness)), int(torch.argmin(fitness))
    n = fitness.numel() if num_parents is None else num_parents
    return [
        SelectionPressure(
            tau=float(t),
            p_best=float(p[best]),
            p_worst=float(p[worst]),
            ratio_best_worst=float(p[best] / p[worst]),
            expected_best_copies=float(n * p[best]),
        )
        for t, p in zip(taus, probs)
    ]


# --------------------------------------------------------------------------- crossover


def _pairs(parents: Tensor) -> tuple[Tensor, Tensor]:
    if parents.dim() != 2 or parents.shape[0] % 2:
        raise ValueError(f"parents must be (2k, n_genes), got {tuple(parents.shape)}")
    return parents[0::2], parents[1::2]


def _swap_children(a: Tensor, b: Tensor, swap: Tensor) -> Tensor:
    """Children of pairs ``(a_i, b_i)``: where ``swap`` the genes are exchanged.

    Returns ``(2k, n)`` with child ``2i`` = a-with-b-segment and ``2i+1`` its
    complement, so every position keeps the pair's two gene values.
    """
    c1 = torch.where(swap, b, a)
    c2 = torch.where(swap, a, b)
    return torch.stack((c1, c2), dim=1).reshape(-1, a.shape[1])


@torch.no_grad()
def two_points(parents: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Two-point crossover of consecutive parent pairs ``(0, 1), (2, 3), ...``.

    Each pair is crossed with probability ``probability`` (the paper's CP);
    the genes in ``[lo, hi)`` are exchanged, where ``lo < hi`` is a uniformly
    drawn pair of distinct points in ``[0, n_genes]`` (as in PyGAD).
    Uncrossed pairs are copied.

    Args:
        parents: ``(2k, n_genes)``.
        probability: Crossover probability per pair.
        generator: Random stream.

    Returns:
        ``(2k, n_genes)`` children; child ``2i`` / ``2i+1`` come from pair ``i``.

    """
    a, b = _pairs(parents)
    k, n = a.shape
    cross = torch.rand(k, generator=generator, dtype=torch.float64) < probability
    p = torch.randint(0, n + 1, (k,), generator=generator)
    q = torch.randint(0, n, (k,), generator=generator)
    q = q + (q >= p).long()  # skip p so that the two points differ
    lo, hi = torch.minimum(p, q), torch.maximum(p, q)
    j = torch.arange(n)
    swap = (j >= lo[:, None]) & (j < hi[:, None]) & cross[:, None]
    return _swap_children(a, b, swap)


@torch.no_grad()
def single_point(parents: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Single-point crossover: genes from a point ``c`` in ``[1, n_genes)`` on are exchanged."""
    a, b = _pairs(parents)
    k, n = a.shape
    cross = torch.rand(k, generator=generator, dtype=torch.float64) < probability
    c = torch.randint(min(1, n - 1), max(n, 1), (k,), generator=generator)
    swap = (torch.arange(n) >= c[:, None]) & cross[:, None]
    return _swap_children(a, b, swap)


@torch.no_grad()
def uniform(parents: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Uniform crossover: each gene of a crossed pair is exchanged with probability 1/2."""
    a, b = _pairs(parents)
    k, n = a.shape
    cross = torch.rand(k, generator=generator, dtype=torch.float64) < probability
    swap = (torch.rand(k, n, generator=generator) < 0.5) & cross[:, None]
    return _swap_children(a, b, swap)


scattered = uniform
"""PyGAD's ``scattered``: the same mechanic as ``uniform`` (PyGAD keeps both names)."""

CrossoverFn = Callable[[Tensor, float, torch.Generator], Tensor]
CROSSOVERS: dict[str, CrossoverFn] = {
    "two_points": two_points,
    "single_point": single_point,
    "uniform": uniform,
    "scattered": scattered,
}
"""Crossover operators by name: ``fn(parents (2k, n), probability, generator) -> children``."""


# --------------------------------------------------------------------------- mutation


@torch.no_grad()
def mutation_mask(
    shape: torch.Size | tuple[int, ...], probability: float, generator: torch.Generator
) -> Tensor:
    """Boolean mask of genes to mutate, each independently with ``probability``."""
    return torch.rand(shape, generator=generator, dtype=torch.float64) < probability


@torch.no_grad()
def add_noise(
    population: Tensor,
    probability: float,
    sigma: float,
    generator: torch.Generator,
    step: Tensor | None = None,
) -> Tensor:
    """Apply the paper's ``add_noise`` mutation, per gene with probability ``probability``.

    Default (paper): ``gene * (1 + N(0, sigma))``.  With ``step`` (``(n_genes,)``,
    the layer's quantizer level spacing) the perturbation is additive and sized
    in level steps instead: ``gene + sigma * step * N(0, 1)``, which also moves
    genes that are zero.

    Args:
        population: ``(P, n_genes)``.
        probability: Per-gene mutation probability (MP).
        sigma: Relative std, or std in level steps when ``step`` is given.
        generator: Random stream.
        step: Optional per-gene level step.

    Returns:
        A new ``(P, n_genes)`` tensor.

    """
    mask = mutation_mask(population.shape, probability, generator)
    eps = torch.randn(population.shape, generator=generator, dtype=population.dtype)
    if step is None:
        mutated = population * (1.0 + sigma * eps)
    else:
        mutated = population + sigma * step.to(population.dtype) * eps
    return torch.where(mask, mutated, population)


@torch.no_grad()
def maxmin(
    population: Tensor,
    probability: float,
    low: Tensor,
    high: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """Apply the paper's ``maxmin`` mutation: a mutated gene is redrawn from ``U(low, high)``.

    ``low``/``high`` are per-gene (``(n_genes,)``): for gene ``j`` of layer ``l``,
    ``min(G1min_l, G2min_l)`` and ``max(G1max_l, G2max_l)`` over that layer of the
    two reference models (see :func:`ga.references.maxmin_bounds`).

    Args:
        population: ``(P, n_genes)``.
        probability: Per-gene mutation probability (MP).
        low: Per-gene lower bound.
        high: Per-gene upper bound.
        generator: Random stream.

    Returns:
        A new ``(P, n_genes)`` tensor.

    """
    mask = mutation_mask(population.shape, probability, generator)
    u = torch.rand(population.shape, generator=generator, dtype=population.dtype)
    low = low.to(population.dtype)
    drawn = low + (high.to(population.dtype) - low) * u
    # float rounding of low + span * u may step just past high; keep the bound exact
    drawn = torch.minimum(torch.maximum(drawn, low), high.to(population.dtype))
    return torch.where(mask, drawn, population)
