"""Bridges between our tensor operators and PyGAD.

Two directions:

* :class:`PygadOperators` runs PyGAD's own built-in selection and crossover
  methods (``rws``, ``rank``, ``tournament``, ``single_point``, ``two_points``,
  ``uniform``, ``scattered``) on a small helper ``pygad.GA`` instance whose
  ``numpy_random_generator`` / ``python_random_generator`` are re-seeded for
  every generation from the run's seed, so they stay deterministic and
  resumable (``operator_backend="pygad"``).
* ``pygad_selection`` / ``pygad_crossover`` / ``pygad_mutation`` wrap our
  operators as PyGAD custom-operator callables, so they can be injected into a
  plain ``pygad.GA(parent_selection_type=..., crossover_type=...,
  mutation_type=...)``.  They draw their torch seed from the GA instance's
  ``numpy_random_generator``, i.e. they follow PyGAD's ``random_seed``.

For a noisy fitness (a chip measurement) drive :class:`RemeasuringGA` instead of
``pygad.GA``: it scores every member anew each generation, where ``pygad.GA`` reuses
the cached scores of elites, kept parents and saved solutions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pygad
import torch
from torch import Tensor

from ga import operators as ops
from ga.rng import STREAM_PYGAD, numpy_random_state, python_random

_PYGAD_SELECTION = {
    "rws": "roulette_wheel_selection",
    "rank": "rank_selection",
    "tournament": "tournament_selection",
}
_PYGAD_CROSSOVER = {
    "single_point": "single_point_crossover",
    "two_points": "two_points_crossover",
    "uniform": "uniform_crossover",
    "scattered": "scattered_crossover",
}


class PygadOperators:
    """PyGAD's built-in operators on a seeded helper ``pygad.GA`` instance.

    Selection only needs indices, so the helper's population is a ``(P, 1)``
    column of member indices: PyGAD copies "parents" out of it and we keep the
    indices it returns; the real genes never go through PyGAD's selection.
    """

    def __init__(
        self, population_size: int, crossover_probability: float, tournament_k: int
    ) -> None:
        """Build the helper instance (no fitness is ever computed by it)."""
        self.ga = pygad.GA(
            num_generations=1,
            num_parents_mating=2,
            fitness_func=lambda ga, sol, idx: 0.0,
            initial_population=np.arange(population_size, dtype=np.float64)[:, None],
            gene_type=float,
            parent_selection_type="rank",
            K_tournament=tournament_k,
            crossover_type="two_points",
            crossover_probability=crossover_probability,
            mutation_type=None,
            suppress_warnings=True,
            random_seed=0,
        )

    def reseed(self, seed: int, generation: int) -> None:
        """Point PyGAD's generators at the streams of ``generation``."""
        self.ga.numpy_random_generator = numpy_random_state(seed, STREAM_PYGAD, generation)
        self.ga.python_random_generator = python_random(seed, STREAM_PYGAD, generation, 1)

    def select(self, name: str, fitness: Tensor, num_parents: int) -> Tensor:
        """Run PyGAD's ``name`` selection; return ``(num_parents,)`` member indices."""
        method = getattr(self.ga, _PYGAD_SELECTION[name])
        _, idx = method(fitness.double().numpy(), num_parents)
        return torch.as_tensor(np.asarray(idx, dtype=np.int64))

    def crossover(self, name: str, parents: Tensor, num_offspring: int) -> Tensor:
        """Run PyGAD's ``name`` crossover on ``parents``; return ``(num_offspring, n)``.

        PyGAD's semantics apply: each offspring mates two parents among those
        whose uniform draw is below ``crossover_probability``.
        """
        method = getattr(self.ga, _PYGAD_CROSSOVER[name])
        out = method(parents.double().numpy(), (num_offspring, parents.shape[1]))
        return torch.from_numpy(np.asarray(out, dtype=np.float64)).to(parents.dtype)


def _torch_gen(ga_instance: Any) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(ga_instance.numpy_random_generator.randint(0, 2**31 - 1)))
    return gen


def pygad_selection(name: str = "sigmoid_rws", **kwargs: Any) -> Callable[..., Any]:
    """Wrap one of :data:`ga.operators.SELECTIONS` as a PyGAD ``parent_selection_type``.

    Args:
        name: Operator name.
        **kwargs: Operator options (``tau``, ``center``, ``k``).

    Returns:
        ``fn(fitness, num_parents, ga_instance) -> (parents, indices)``.

    """
    fn = ops.SELECTIONS[name]

    def select(fitness: np.ndarray, num_parents: int, ga_instance: Any) -> tuple[Any, Any]:
        idx = fn(
            torch.as_tensor(np.asarray(fitness, dtype=np.float64)),
            num_parents,
            _torch_gen(ga_instance),
            **kwargs,
        ).numpy()
        return ga_instance.population[idx, :].copy(), idx

    return select


def pygad_crossover(name: str = "two_points", probability: float = 0.8) -> Callable[..., Any]:
    """Wrap one of :data:`ga.operators.CROSSOVERS` as a PyGAD ``crossover_type``.

    Parents are paired consecutively (cyclically when PyGAD asks for more
    offspring than there are parents).
    """
    fn = ops.CROSSOVERS[name]

    def crossover(parents: np.ndarray, offspring_size: tuple[int, int], ga_instance: Any) -> Any:
        n_off = offspring_size[0]
        need = n_off + n_off % 2
        idx = np.arange(need) % parents.shape[0]
        children = fn(
            torch.as_tensor(np.asarray(parents, dtype=np.float64)[idx]),
            probability,
            _torch_gen(ga_instance),
        )
        return children[:n_off].numpy()

    return crossover


def _bounds_of(ga_instance: Any, n_genes: int) -> tuple[Tensor, Tensor]:
    """Per-gene ``(low, high)`` of a ``pygad.GA``: its ``gene_space`` or its init range.

    A ``gene_space`` dict ``{"low": a, "high": b}`` (one for all genes, or one per gene)
    bounds the genes; without one, PyGAD's ``init_range_low`` / ``init_range_high`` do,
    as they bound the initial population.
    """
    space = getattr(ga_instance, "gene_space", None)
    if isinstance(space, dict):
        space = [space] * n_genes
    if isinstance(space, list | tuple) and len(space) == n_genes:
        if all(isinstance(s, dict) and "low" in s and "high" in s for s in space):
            low = torch.tensor([float(s["low"]) for s in space], dtype=torch.float64)
            high = torch.tensor([float(s["high"]) for s in space], dtype=torch.float64)
            return low, high
    if space is not None:
        raise ValueError(
            "pygad_mutation('maxmin'): the GA's gene_space gives no low/high for every "
            "gene; pass low= and high= to pygad_mutation"
        )
    lo, hi = float(ga_instance.init_range_low), float(ga_instance.init_range_high)
    # PyGAD allows init_range_low > init_range_high; the interval is the same
    return torch.full((n_genes,), min(lo, hi), dtype=torch.float64), torch.full(
        (n_genes,), max(lo, hi), dtype=torch.float64
    )


def _per_gene(value: Any, n_genes: int) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64)).expand(n_genes).clone()


def pygad_mutation(
    name: str = "add_noise",
    probability: float = 0.01,
    *,
    sigma: float = 0.05,
    step: Any = None,
    low: Any = None,
    high: Any = None,
) -> Callable[..., Any]:
    """Wrap ``add_noise`` (``sigma``, ``step``) or ``maxmin`` (``low``, ``high``) for PyGAD.

    PyGAD calls a custom mutation as ``fn(offspring, ga_instance)``, so bounds that are
    not given here are read from the GA instance when it calls: its ``gene_space``
    (``{"low": a, "high": b}``, for all genes or per gene), else its
    ``init_range_low`` / ``init_range_high``.

    Args:
        name: ``"add_noise"`` or ``"maxmin"``.
        probability: Per-gene mutation probability.
        sigma: ``add_noise``'s relative (or, with ``step``, level-step) noise.
        step: ``add_noise``'s per-gene level spacing (``None``: multiplicative noise).
        low: ``maxmin``'s per-gene lower bound (scalar or ``(n_genes,)``).
        high: ``maxmin``'s per-gene upper bound (scalar or ``(n_genes,)``).

    Returns:
        ``fn(offspring, ga_instance) -> mutated offspring``.

    Raises:
        ValueError: An unknown ``name``, or only one of ``low`` / ``high``.

    """
    if name not in ("add_noise", "maxmin"):
        raise ValueError(f"pygad_mutation: unknown mutation {name!r} (add_noise, maxmin)")
    if (low is None) != (high is None):
        raise ValueError("pygad_mutation('maxmin'): give both low and high, or neither")
    step_t = None if step is None else torch.as_tensor(np.asarray(step, dtype=np.float64))

    def mutate(offspring: np.ndarray, ga_instance: Any) -> Any:
        pop = torch.as_tensor(np.asarray(offspring, dtype=np.float64))
        gen = _torch_gen(ga_instance)
        if name == "add_noise":
            out = ops.add_noise(pop, probability, sigma, gen, step_t)
        else:
            n = pop.shape[1]
            if low is None:
                lo, hi = _bounds_of(ga_instance, n)
            else:
                lo, hi = _per_gene(low, n), _per_gene(high, n)
            out = ops.maxmin(pop, probability, lo, hi, gen)
        return out.numpy()

    return mutate


class RemeasuringGA(pygad.GA):
    """A ``pygad.GA`` that calls ``fitness_func`` for every member in every generation.

    ``pygad.GA.cal_pop_fitness`` reuses a cached score for any member whose genes equal
    a kept elite (``keep_elitism``), a previous parent (``keep_parents``, default ``-1``
    = all of them, which also catches an unchanged child) or a saved solution
    (``save_solutions``, ``save_best_solutions``).  For a deterministic fitness that
    saves time.  A chip fitness is a noisy measurement (every evaluation draws new
    programming and read noise), and a cached score freezes the luckiest draw: the
    elite keeps its best-ever score, the reported best fitness can only climb, and
    selection favours a lucky draw instead of a good member.  This subclass hides
    those caches from ``cal_pop_fitness`` only, so elitism, kept parents and the
    saved-solution history still work as configured, but every score is fresh.
    """

    # the attributes that gate PyGAD's fitness caches in cal_pop_fitness, and the value
    # that turns each cache off
    _CACHE_GATES = {
        "save_solutions": False,
        "save_best_solutions": False,
        "keep_elitism": 0,
        "keep_parents": 0,
    }

    def cal_pop_fitness(self) -> np.ndarray:
        """Score every member of ``self.population`` anew (no cached value is reused)."""
        kept = {attr: getattr(self, attr) for attr in self._CACHE_GATES}
        try:
            for attr, off in self._CACHE_GATES.items():
                setattr(self, attr, off)
            return super().cal_pop_fitness()
        finally:
            for attr, value in kept.items():
                setattr(self, attr, value)
