import json

import pytest
import torch
from torch import nn

from ga import CheckpointMismatchError, GAConfig, GATrainer, Genome
from ga.checkpoint import load_checkpoint

N_GENES = 24
GENOME = Genome([("l1.weight", (4, 3)), ("l2.weight", (3, 4))])


class NoisyQuadratic:
    """exp(-mean((x - t)^2)) with 2 % multiplicative noise from the trainer's stream."""

    def __init__(self, write_back: bool = False) -> None:
        self.target = torch.linspace(-1, 1, N_GENES)
        self.write_back = write_back
        self.calls: list[tuple[int, torch.Tensor]] = []

    def evaluate_population(self, pop, generation, rng):
        self.calls.append((generation, pop.clone()))
        noise = torch.randn(pop.shape[0], generator=rng, dtype=torch.float64)
        d2 = ((pop.double() - self.target) ** 2).mean(dim=1)
        fit = torch.exp(-d2) * (1 + 0.02 * noise)
        tuned = pop + 0.1 * (self.target - pop) if self.write_back else None
        return fit, tuned


def _cfg(**kw) -> GAConfig:
    base = dict(population_size=6, generations=5, progress=False, mutation_probability=0.2)
    base.update(kw)
    return GAConfig(**base)


def _base() -> torch.Tensor:
    return torch.full((N_GENES,), 0.3)


def _run(cfg: GAConfig, fitness=None, **kw):
    fitness = fitness or NoisyQuadratic()
    return GATrainer(cfg, fitness, _base(), genome=GENOME, **kw).run()


def _same(r1, r2) -> None:
    assert [h.reproducible() for h in r1.history] == [h.reproducible() for h in r2.history]
    assert torch.equal(r1.final_population, r2.final_population)
    assert torch.equal(r1.final_fitness, r2.final_fitness)
    assert torch.equal(r1.best_solution, r2.best_solution)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"selection": "rank", "crossover": "uniform", "mutation": "maxmin", "init": "origin"},
        {"selection": "tournament", "crossover": "single_point", "mutation_scale": "level_step"},
        {"operator_backend": "pygad", "selection": "rws", "crossover": "two_points"},
        {"operator_backend": "pygad", "selection": "sigmoid_rws", "crossover": "scattered"},
    ],
)
def test_same_seed_same_result(kw):
    r1 = _run(_cfg(**kw))
    r2 = _run(_cfg(**kw))
    _same(r1, r2)
    r3 = _run(_cfg(seed=1, **kw))
    assert not torch.equal(r1.final_population, r3.final_population)


def test_history_and_best_ever():
    r = _run(_cfg(generations=6))
    assert [h.generation for h in r.history] == list(range(7))
    best_ever = [h.best_ever for h in r.history]
    assert best_ever == sorted(best_ever)
    assert r.best_fitness == max(h.best for h in r.history) == best_ever[-1]
    assert r.history[r.best_generation].best == r.best_fitness
    assert r.stop_reason == "completed" and r.generations_completed == 6


def test_every_member_including_elites_is_reevaluated_each_generation():
    fit = NoisyQuadratic()
    fitness_seen = []
    GATrainer(
        _cfg(keep_elitism=2, generations=3),
        fit,
        _base(),
        genome=GENOME,
        on_fitness=lambda tr, f: fitness_seen.append(f.clone()),
    ).run()
    assert [g for g, _ in fit.calls] == [0, 1, 2, 3]
    assert all(p.shape == (6, N_GENES) for _, p in fit.calls)
    for g in range(1, 4):
        # the two elites of generation g-1 lead generation g unchanged, and get a fresh draw
        prev_pop, prev_fit = fit.calls[g - 1][1], fitness_seen[g - 1]
        elite_idx = torch.argsort(prev_fit, descending=True, stable=True)[:2]
        assert torch.equal(fit.calls[g][1][:2], prev_pop[elite_idx])
        assert not torch.equal(fitness_seen[g][:2], prev_fit[elite_idx])


def test_lamarckian_write_back():
    r = _run(_cfg(lamarckian=True), NoisyQuadratic(write_back=True))
    r_off = _run(_cfg(lamarckian=False), NoisyQuadratic(write_back=True))
    target = torch.linspace(-1, 1, N_GENES)
    # write-back pulls the population to the target far faster
    d_on = (r.final_population - target).pow(2).mean()
    d_off = (r_off.final_population - target).pow(2).mean()
    assert d_on < d_off
    # without write-back the scored (tuned) weights differ from the genome
    assert not torch.equal(r_off.best_evaluated_solution, r_off.best_solution)
    assert torch.equal(r.best_evaluated_solution, r.best_solution)


def test_early_stop_on_plateau():
    def flat(pop, generation, rng):
        return torch.ones(pop.shape[0]), None

    r = _run(_cfg(generations=50, early_stop_patience=3), flat)
    assert r.stop_reason == "early_stop"
    assert len(r.history) == 4


def test_on_generation_stop_and_callback_order():
    order = []
    names = ["on_start", "on_fitness", "on_parents", "on_crossover", "on_mutation"]

    def recorder(name):
        return lambda trainer, *args: order.append(name)

    cbs = {n: recorder(n) for n in names}

    def on_generation(trainer, record):
        order.append("on_generation")
        return "stop" if record.generation == 2 else None

    def on_stop(trainer, fitness):
        order.append("on_stop")

    r = _run(_cfg(), on_generation=on_generation, on_stop=on_stop, **cbs)
    assert r.stop_reason == "callback" and r.generations_completed == 2
    gen = ["on_parents", "on_crossover", "on_mutation", "on_fitness", "on_generation"]
    assert order == ["on_start", "on_fitness", "on_generation", *gen, *gen, "on_stop"]


def test_test_fn_fills_accuracy_stats():
    r = _run(_cfg(generations=1), test_fn=lambda best: [0.5, 0.7])
    assert r.test_accuracies == [0.5, 0.7]
    assert r.test_accuracy_mean == pytest.approx(0.6)
    assert r.test_accuracy_std == pytest.approx(0.1)


def test_non_finite_fitness_is_an_error():
    def bad(pop, generation, rng):
        return torch.full((pop.shape[0],), float("nan")), None

    with pytest.raises(ValueError, match="non-finite"):
        _run(_cfg(), bad)


def test_run_folder_files_and_resume_rules(tmp_path):
    cfg = _cfg(checkpoint_dir=tmp_path, generations=3)
    r = _run(cfg)
    for name in ["checkpoint.pt", "history.csv", "history.json", "result.json", "best_solution.pt"]:
        assert (tmp_path / name).exists(), name
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [h["generation"] for h in hist] == [0, 1, 2, 3]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("generation,best")
    state = load_checkpoint(tmp_path)
    assert state["generation"] == 3 and state["stop_reason"] == "completed"

    # resuming a finished run returns it without evaluating anything
    fit = NoisyQuadratic()
    r2 = GATrainer(cfg.model_copy(update={"progress": True}), fit, _base(), genome=GENOME).run(
        resume=True
    )
    assert fit.calls == []
    _same(r, r2)

    with pytest.raises(CheckpointMismatchError, match="mutation_probability"):
        GATrainer(
            _cfg(checkpoint_dir=tmp_path, generations=3, mutation_probability=0.3),
            NoisyQuadratic(),
            _base(),
            genome=GENOME,
        ).run(resume=True)
    with pytest.raises(CheckpointMismatchError, match="initial solution"):
        GATrainer(cfg, NoisyQuadratic(), _base() + 1, genome=GENOME).run(resume=True)
    with pytest.raises(FileNotFoundError):
        GATrainer(_cfg(checkpoint_dir=tmp_path / "nope"), NoisyQuadratic(), _base()).run(
            resume=True
        )
    with pytest.raises(ValueError, match="checkpoint_dir"):
        GATrainer(_cfg(), NoisyQuadratic(), _base()).run(resume=True)


def test_in_process_resume_matches_uninterrupted(tmp_path):
    full = _run(_cfg(generations=6, mutation="maxmin"), NoisyQuadratic(write_back=True))

    def stop_at_3(trainer, record):
        return "stop" if record.generation == 3 else None

    cfg = _cfg(generations=6, mutation="maxmin", checkpoint_dir=tmp_path)
    GATrainer(
        cfg, NoisyQuadratic(write_back=True), _base(), genome=GENOME, on_generation=stop_at_3
    ).run()
    # a "stop" is final; clear it to emulate an interruption after generation 3
    state = load_checkpoint(tmp_path)
    state["stop_reason"] = None
    torch.save(state, tmp_path / "checkpoint.pt")
    fit = NoisyQuadratic(write_back=True)
    resumed = GATrainer(cfg, fit, _base(), genome=GENOME).run(resume=True)
    assert [g for g, _ in fit.calls] == [4, 5, 6]
    _same(full, resumed)


def test_from_model_builds_the_genome():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def fit(pop, generation, rng):
        return -pop.pow(2).mean(1), None

    tr = GATrainer.from_model(_cfg(generations=1), fit, model)
    assert tr.genome.keys == ["0.weight", "2.weight"]
    assert torch.equal(tr.initial_solution, tr.genome.from_module(model))
    r = tr.run()
    assert r.best_solution.shape == (20,)


def test_checkpoint_from_before_a_new_field_resumes_only_at_its_default():
    from ga.checkpoint import check_compatible

    old = _cfg().semantic_dict()
    del old["lamarckian"]  # as written before the field existed
    state = {"config_hash": "old", "config_json": json.dumps(old), "problem": "p"}
    now = _cfg()
    check_compatible(state, now.config_hash(), now.semantic_dict(), "p")
    changed = _cfg(lamarckian=not now.lamarckian)
    with pytest.raises(CheckpointMismatchError, match="lamarckian"):
        check_compatible(state, changed.config_hash(), changed.semantic_dict(), "p")
    with pytest.raises(CheckpointMismatchError, match="different genome"):
        check_compatible(state, now.config_hash(), now.semantic_dict(), "other")
