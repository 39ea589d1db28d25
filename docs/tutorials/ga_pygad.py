"""Tutorial: the paper's GA, and memsim's chip fitness in a plain ``pygad.GA``.

Part 1 runs the GA of Zhang, Zhang and Wu with memsim's own trainer (``ga.GATrainer``)
and the chip-in-the-loop fitness (``lab.fitness.chip.ChipFitness``): every member is
fine-tuned for a few QAT steps, programmed onto the simulated chip, and scored by its
validation accuracy there.

Part 2 drives the same chip fitness from a plain PyGAD GA with the paper's operators
(sigmoid roulette selection, two-point crossover, ``maxmin`` mutation), and shows the
one setting a noisy fitness needs: PyGAD reuses the cached score of kept elites and
parents, so use ``ga.pygad_bridge.RemeasuringGA``.  Under a minute on one CPU thread.
"""

import statistics

import numpy as np
import pygad
import torch
from torch import nn

from ga import GAConfig, GATrainer, Genome
from ga.pygad_bridge import RemeasuringGA, pygad_crossover, pygad_mutation, pygad_selection
from ga.references import make_references, maxmin_bounds
from lab.fitness.chip import ChipFitness, deployed_test_fn
from lab.fitness.config import FitnessConfig
from models.data import load_dataset, train_val_split
from models.evaluate import evaluate_deployed

torch.manual_seed(0)

# --- The model and the chip ---------------------------------------------------------------
# Digits as (1, 8, 8) images, normalized; 20 % of the training split is the validation
# split the fitness measures on.  The test split is only used for the final scores.
train, test = load_dataset("digits")
train, val = train_val_split(train, 0.2, seed=0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), 1e-2)
for _ in range(300):
    idx = torch.randint(0, len(train), (64,))
    loss = nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()

# The paper's simple chip model: weights quantized to 2 bits (4 symmetric levels) with 5 %
# multiplicative programming noise.  Few levels and noise cost a software-trained
# network accuracy.
PROFILE = "paper_2bit_5pct"
TEST_DRAWS, TEST_SEED = 3, 7  # the same fresh test chips for every score below
baseline = evaluate_deployed(model, test, PROFILE, draws=TEST_DRAWS, seed=TEST_SEED)
print(f"baseline on the chip: test accuracy {baseline.mean:.3f}")

# --- Part 1: the paper's GA -------------------------------------------------------------------
# Genes are the weights of the analog layers, flattened (ga.Genome).  The paper's
# method: population around the baseline ("origin"), sigmoid roulette selection, two-point
# crossover, maxmin mutation (a gene redrawn within its layer's range), a short QAT
# fine-tune of every member whose result is written back (Lamarckian).  Tiny budget.
genome = Genome.from_model(model)
cfg = GAConfig(
    population_size=6,
    generations=3,
    selection="sigmoid_rws",
    crossover="two_points",
    mutation="maxmin",
    mutation_probability=0.05,
    init="origin",
    weight_bits=2,
    seed=0,
    progress=False,
)
# What one fitness evaluation does: a 3-step QAT fine-tune, then one programming draw.
fit_cfg = FitnessConfig(finetune_steps=3, finetune_lr=1e-2, draws=1)
fitness = ChipFitness(
    model,
    genome,
    PROFILE,
    fit_cfg,
    weight_bits=cfg.weight_bits,
    train=train,
    val=val,
    qat_sigma=0.05,
)
test_fn = deployed_test_fn(model, genome, test, PROFILE, draws=TEST_DRAWS, seed=TEST_SEED)
result = GATrainer.from_model(cfg, fitness, model, test_fn=test_fn).run()
for record in result.history:
    print(
        f"generation {record.generation}: best fitness {record.best:.3f}, "
        f"mean {record.mean:.3f} (validation accuracy on the chip)"
    )
# The best fitness is a maximum over many noisy measurements: optimistic.  Only the test
# accuracy of the best solution on fresh chips is a result.
print(f"paper's GA: test accuracy {result.test_accuracy_mean:.3f}")

# --- Part 2: the chip fitness in a plain pygad.GA ---------------------------------------------
# PyGAD's fitness_func(ga, solution, index) -> float.  Each call programs the chip anew
# with a fresh seed: the same solution scores differently every time, like on silicon.
# This is pure search (no fine-tune); fitness.measure programs and scores as they are.
calls = [0]  # fitness calls in the current generation
measurements = [0]  # all measurements so far: each one gets its own programming seed


def chip_fitness(ga_instance: pygad.GA, solution: np.ndarray, index: int) -> float:
    """Validation accuracy of `solution` on one fresh programming of the chip."""
    calls[0] += 1
    measurements[0] += 1
    return fitness.measure(torch.as_tensor(solution), [1000 + measurements[0]])


# maxmin redraws a gene within its layer's range over two noisy quantized references of
# the baseline (the paper's G1, G2); PyGAD calls a custom mutation as fn(offspring, ga).
baseline_genes = genome.from_module(model)
ref_a, ref_b = make_references(genome, baseline_genes, 2, (0.05, 0.10), torch.Generator())
low, high = maxmin_bounds(genome, ref_a, ref_b)
gen = torch.Generator().manual_seed(1)
initial = baseline_genes * (1 + 0.05 * torch.randn(8, len(baseline_genes), generator=gen))


def run_pygad(ga_class: type[pygad.GA]) -> tuple[pygad.GA, list[int]]:
    """Six generations of `ga_class` with the paper's operators; fitness calls per generation."""
    per_generation: list[int] = []

    def count(ga_instance: pygad.GA) -> None:
        per_generation.append(calls[0])
        calls[0] = 0

    calls[0] = 0
    ga_instance = ga_class(
        num_generations=6,
        num_parents_mating=8,
        fitness_func=chip_fitness,
        initial_population=initial.double().numpy(),
        parent_selection_type=pygad_selection("sigmoid_rws", tau=10.0, center="mean"),
        crossover_type=pygad_crossover("two_points", probability=0.8),
        mutation_type=pygad_mutation("maxmin", 0.05, low=low, high=high),
        keep_elitism=2,
        random_seed=0,
        suppress_warnings=True,
        on_generation=count,
    )
    ga_instance.run()
    return ga_instance, per_generation[1:]  # the first count includes the initial population


# The pitfall.  pygad.GA does not call fitness_func for a member whose genes equal a
# kept elite or a previous parent: it reuses the old score.  For a chip that freezes the
# luckiest draw of the elites: their score never falls, and the reported best can only
# climb although nothing improved.
plain, plain_calls = run_pygad(pygad.GA)
print(f"pygad.GA: fitness calls per generation {plain_calls} for 8 members")
print(f"  best fitness per generation {np.round(plain.best_solutions_fitness, 3).tolist()}")

# RemeasuringGA is a pygad.GA that scores every member anew each generation; elitism,
# kept parents and the saved history work as configured.
remeasured, fresh_calls = run_pygad(RemeasuringGA)
print(f"RemeasuringGA: fitness calls per generation {fresh_calls} for 8 members")
print(f"  best fitness per generation {np.round(remeasured.best_solutions_fitness, 3).tolist()}")

# The result is scored like the paper's GA: on fresh test chips.  best_solution() would
# measure the whole population once more; the last generation's scores are enough here.
best = remeasured.population[int(np.argmax(remeasured.last_generation_fitness))]
accs = test_fn(torch.as_tensor(best, dtype=torch.float32))
print(f"pygad with the chip fitness: test accuracy {statistics.fmean(accs):.3f}")
