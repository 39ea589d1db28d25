"""A GA over per-tile row and column permutations (the search of ``ga_mapping``).

Every tile's cost depends only on its own two permutations (:mod:`lab.methods.remap`), so
the GA keeps one population per tile and evolves all tiles of the chip at once, as
tensors ``(P, T, rows)`` and ``(P, T, cols)``:

1. the cost of every member on every tile (:func:`lab.methods.remap.tile_errors`);
2. elitism: each tile's best member so far is member 0 of the next generation;
3. parents per tile by the paper's sigmoid roulette
   (:func:`ga.permutation.sigmoid_roulette`) on the fitness ``e_0 / (e_0 + e)``, with
   ``e_0`` the tile's error without remapping;
4. order crossover (OX1) of the parents' row and column permutations, then swap and
   inversion mutation, all within each tile's used rows and columns.

The initial population is the identity, any given seeds (``ga_mapping`` gives the greedy
placement, so the GA starts from the baseline and elitism never loses it) and random
permutations.  The state (population, generator, history) is saved to
``<folder>/checkpoint.pt`` every ``checkpoint_every`` generations and at the end; a run
that finds a checkpoint continues from it and ends in the same placement as an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ga.permutation import (
    inversion_mutation,
    order_crossover,
    random_permutations,
    sigmoid_roulette,
    swap_mutation,
)
from lab.methods.remap import TileProblem, identity_rows_cols, tile_errors
from memsim.atomic_io import atomic_torch_save

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class MappingGA:
    """Settings of the permutation GA."""

    population: int = 32
    generations: int = 200
    crossover_probability: float = 0.9
    swap_probability: float = 0.5
    inversion_probability: float = 0.2
    tau: float = 64.0
    """Sigmoid-roulette sharpness (``center="mean"``)."""
    seed: int = 0
    checkpoint_every: int = 25


@dataclass
class MappingResult:
    """The best placement found and the error history."""

    rows: Tensor
    """``(T, R)``."""
    cols: Tensor
    """``(T, C)``."""
    error: float
    history: list[float]
    """Best total error after every generation (generation 0 first)."""


def _children(
    perms: Tensor, parents: Tensor, n: Tensor, cfg: MappingGA, gen: torch.Generator
) -> Tensor:
    """Children ``(P - 1, T, L)`` of ``perms`` ``(P, T, L)`` from parent pairs ``(T, 2(P-1))``."""
    p, t, length = perms.shape
    by_tile = perms.transpose(0, 1)  # (T, P, L)
    picked = by_tile.gather(1, parents.unsqueeze(-1).expand(-1, -1, length))
    a = picked[:, 0::2].transpose(0, 1).reshape(-1, length)  # ((P-1) * T, L)
    b = picked[:, 1::2].transpose(0, 1).reshape(-1, length)
    nn_ = n.repeat(p - 1)
    cross = torch.rand(a.shape[0], generator=gen) < cfg.crossover_probability
    child = torch.where(cross.unsqueeze(1), order_crossover(a, b, nn_, gen), a)
    child = swap_mutation(child, nn_, cfg.swap_probability, gen)
    child = inversion_mutation(child, nn_, cfg.inversion_probability, gen)
    return child.reshape(p - 1, t, length)


def evolve_placement(
    prob: TileProblem,
    cfg: MappingGA,
    folder: Path | None = None,
    seeds: Sequence[tuple[Tensor, Tensor]] = (),
    echo: Callable[[str], None] | None = None,
) -> MappingResult:
    """Run (or resume from ``folder``) the GA of the module docstring on ``prob``."""
    if cfg.population < 2:
        raise ValueError(f"the mapping GA needs a population of >= 2, got {cfg.population}")
    t, r, c = prob.pos.shape
    path = None if folder is None else folder / CHECKPOINT
    gen = torch.Generator().manual_seed(int(cfg.seed))
    base = tile_errors(prob, *identity_rows_cols(prob))[0]  # (T,) error without remapping
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        rows, cols, history = state["rows"], state["cols"], state["history"]
        gen.set_state(state["generator"])
        start = int(state["generation"]) + 1
    else:
        rows, cols = identity_rows_cols(prob, cfg.population)
        extra = cfg.population - 1 - len(seeds)
        if extra < 0:
            raise ValueError(
                f"{len(seeds)} seed placements do not fit a population of "
                f"{cfg.population} beside the identity"
            )
        rand_r = random_permutations(prob.n_rows.repeat(extra), r, gen).reshape(extra, t, r)
        rand_c = random_permutations(prob.n_cols.repeat(extra), c, gen).reshape(extra, t, c)
        rows = torch.cat([rows[:1], *(s[0][None] for s in seeds), rand_r])
        cols = torch.cat([cols[:1], *(s[1][None] for s in seeds), rand_c])
        history, start = [], 0
    err = tile_errors(prob, rows, cols)
    if start == 0:
        history.append(float(err.min(0).values.sum()))
    tiles = torch.arange(t)
    for g in range(start, cfg.generations + 1):
        if g > 0:
            best = err.argmin(0)  # (T,): each tile's elite
            fitness = base / (base + err).clamp(min=1e-12)
            fitness = torch.where(base > 0, fitness, torch.ones_like(fitness))
            parents = sigmoid_roulette(
                fitness.T, 2 * (cfg.population - 1), gen, tau=cfg.tau, center="mean"
            )
            kid_r = _children(rows, parents, prob.n_rows, cfg, gen)
            kid_c = _children(cols, parents, prob.n_cols, cfg, gen)
            rows = torch.cat([rows[best, tiles][None], kid_r])
            cols = torch.cat([cols[best, tiles][None], kid_c])
            err = tile_errors(prob, rows, cols)
            history.append(float(err.min(0).values.sum()))
        last = g == cfg.generations
        if path is not None and g > 0 and (last or g % cfg.checkpoint_every == 0):
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {"generation": g, "rows": rows, "cols": cols, "history": history}
            atomic_torch_save({**state, "generator": gen.get_state()}, path)
        if echo is not None and g > 0 and (last or g % cfg.checkpoint_every == 0):
            echo(f"mapping GA generation {g}/{cfg.generations}: error {history[-1]:.5g}")
    best = err.argmin(0)
    best_rows, best_cols = rows[best, tiles], cols[best, tiles]
    return MappingResult(best_rows, best_cols, float(err.min(0).values.sum()), history)


__all__ = ["CHECKPOINT", "MappingGA", "MappingResult", "evolve_placement"]
