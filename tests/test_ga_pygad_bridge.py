import numpy as np
import pygad
import torch

from ga.pygad_bridge import PygadOperators, pygad_crossover, pygad_mutation, pygad_selection


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
