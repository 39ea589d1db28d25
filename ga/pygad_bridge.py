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


def pygad_mutation(
    name: str = "add_noise", probability: float = 0.01, **kwargs: Any
) -> Callable[..., Any]:
    """Wrap ``add_noise`` (kw: ``sigma``, ``step``) or ``maxmin`` (kw: ``low``, ``high``).

    Returns:
        ``fn(offspring, ga_instance) -> mutated offspring``.

    """
    fns: dict[str, Callable[..., Tensor]] = {"add_noise": ops.add_noise, "maxmin": ops.maxmin}
    fn = fns[name]

    def mutate(offspring: np.ndarray, ga_instance: Any) -> Any:
        pop = torch.as_tensor(np.asarray(offspring, dtype=np.float64))
        if name == "add_noise":
            out = fn(
                pop,
                probability,
                kwargs.get("sigma", 0.05),
                _torch_gen(ga_instance),
                kwargs.get("step"),
            )
        else:
            out = fn(pop, probability, kwargs["low"], kwargs["high"], _torch_gen(ga_instance))
        return out.numpy()

    return mutate
