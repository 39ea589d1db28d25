import numpy as np
import pygad
import pytest
import torch

from ga.pygad_bridge import (
    PygadOperators,
    RemeasuringGA,
    pygad_crossover,
    pygad_mutation,
    pygad_selection,
)


def _run_pygad(seed: int) -> np.ndarray:
    target = np.linspace(-1, 1, 12)

    def fitness(ga, solution, idx):
        return float(np.exp(-np.mean((solution - target) ** 2)))

    ga = pygad.GA(
        num_generations=4,
        num_parents_mating=6,
        fitness_func=fitness,
        initial_population=np.zeros((8, 12)),
        parent_selection_type=pygad_selection("sigmoid_rws", tau=10.0, center="mean"),
        crossover_type=pygad_crossover("two_points", probability=0.8),
        mutation_type=pygad_mutation(
            "maxmin", 0.2, low=torch.full((12,), -1.0), high=torch.full((12,), 1.0)
        ),
        keep_elitism=1,
        random_seed=seed,
        suppress_warnings=True,
    )
    ga.run()
    return ga.population


def test_our_operators_run_inside_pygad_ga():
    pop = _run_pygad(3)
    assert pop.shape == (8, 12)
    assert np.abs(pop).max() <= 1.0
    assert np.array_equal(pop, _run_pygad(3))
    assert not np.array_equal(pop, _run_pygad(4))


def test_pygad_builtin_operators_on_helper_are_seeded():
    ops = PygadOperators(population_size=6, crossover_probability=0.8, tournament_k=3)
    fit = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.2, 0.4])
    parents = torch.randn(5, 9, generator=torch.Generator().manual_seed(0))
    out = []
    for _ in range(2):
        ops.reseed(7, generation=3)
        out.append(
            (
                ops.select("rank", fit, 5),
                ops.select("tournament", fit, 5),
                ops.select("rws", fit, 5),
                ops.crossover("two_points", parents, 5),
            )
        )
    for a, b in zip(*out):
        assert torch.equal(a, b)
    idx = out[0][0]
    assert idx.dtype == torch.int64 and ((idx >= 0) & (idx < 6)).all()
    children = out[0][3]
    assert children.dtype == parents.dtype and children.shape == (5, 9)
    # every child gene comes from some parent at the same position
    assert (children[:, None, :] == parents[None]).any(dim=1).all()


def _maxmin_ga(seed: int, **kwargs) -> pygad.GA:
    ga = pygad.GA(
        num_generations=3,
        num_parents_mating=4,
        fitness_func=lambda ga, sol, idx: -float(np.sum(sol**2)),
        sol_per_pop=6,
        num_genes=7,
        parent_selection_type="sss",
        crossover_type="single_point",
        mutation_type=pygad_mutation("maxmin", 0.5),
        random_seed=seed,
        suppress_warnings=True,
        **kwargs,
    )
    ga.run()
    return ga


def test_maxmin_without_bounds_takes_them_from_the_ga_init_range():
    # it used to fail with KeyError: 'low'
    ga = _maxmin_ga(0, init_range_low=2.0, init_range_high=3.0)
    assert ga.population.min() >= 2.0 and ga.population.max() <= 3.0
    # the mutation drew genes: not every gene is still one of the initial values
    assert not np.isin(ga.population, ga.initial_population).all()


def test_maxmin_without_bounds_takes_them_from_the_gene_space():
    space = [{"low": -0.5 * (j + 1), "high": 0.1 * j} for j in range(7)]
    ga = _maxmin_ga(1, gene_space=space)
    low = np.array([s["low"] for s in space])
    high = np.array([s["high"] for s in space])
    assert ((ga.population >= low) & (ga.population <= high)).all()


def test_maxmin_refuses_a_gene_space_without_bounds_and_half_given_bounds():
    with pytest.raises(ValueError, match="gene_space"):
        _maxmin_ga(0, gene_space=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="both low and high"):
        pygad_mutation("maxmin", 0.1, low=0.0)


def _noisy_run(ga_class: type[pygad.GA]) -> tuple[list[int], list[float]]:
    """A GA on a pure-noise fitness: (fitness calls per generation, best fitness per generation)."""
    rng = np.random.default_rng(0)  # each call is a new measurement of the same quality
    calls, per_generation = [0], []

    def fitness(ga, solution, idx):
        calls[0] += 1
        return float(rng.normal())

    def count(ga):
        per_generation.append(calls[0])
        calls[0] = 0

    ga = ga_class(
        num_generations=10,
        num_parents_mating=4,
        fitness_func=fitness,
        sol_per_pop=8,
        num_genes=5,
        parent_selection_type="sss",
        crossover_type="single_point",
        mutation_type=pygad_mutation("maxmin", 0.3),
        keep_elitism=2,
        save_solutions=True,
        random_seed=3,
        suppress_warnings=True,
        on_generation=count,
    )
    ga.run()
    return per_generation[1:], list(ga.best_solutions_fitness)


def test_plain_pygad_freezes_the_cached_fitness_of_its_elites():
    calls, best = _noisy_run(pygad.GA)
    # the two elites are not measured again: their first (lucky) score is kept ...
    assert all(c <= 8 - 2 for c in calls)
    # ... so the best score of a pure-noise fitness can only climb
    assert np.all(np.diff(best) >= 0)


def test_remeasuring_ga_scores_every_member_every_generation():
    calls, best = _noisy_run(RemeasuringGA)
    assert calls == [8] * len(calls)
    # the elites' scores are drawn again, so the best of a generation can fall
    assert np.any(np.diff(best) < 0)


def test_remeasuring_ga_keeps_its_settings():
    re = RemeasuringGA(
        num_generations=2,
        num_parents_mating=4,
        fitness_func=lambda ga, sol, idx: 0.0,
        sol_per_pop=6,
        num_genes=7,
        keep_elitism=2,
        keep_parents=-1,
        save_solutions=True,
        suppress_warnings=True,
    )
    re.run()
    assert (re.keep_elitism, re.keep_parents, re.save_solutions) == (2, -1, True)
    assert len(re.solutions) == 6 * 3  # the history of solutions was still saved
