"""Fault injection into the GA checkpoint: a damaged file is refused and changes nothing.

A seeded run is interrupted after generation 2; its checkpoint is then truncated at
random offsets, replaced by random bytes, by a tensor, by an empty file and by a dict
missing entries.  Every resume must raise :class:`ga.checkpoint.CheckpointCorruptError`
naming the file, and leave every file of the run folder as it was.  With the good file
restored, the resume ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ga import GAConfig, GATrainer, Genome
from ga.checkpoint import CHECKPOINT_NAME, CheckpointCorruptError

GENOME = Genome([("a.weight", (4, 3)), ("b.weight", (5,))])


class Quadratic:
    """Noisy fitness with a Lamarckian step; all randomness from the trainer's stream."""

    def __init__(self) -> None:
        self.target = torch.linspace(-1, 1, GENOME.n_genes)

    def evaluate_population(self, pop, generation, rng):
        d2 = ((pop.double() - self.target) ** 2).mean(dim=1)
        fit = torch.exp(-d2) * (1 + 0.01 * torch.randn(pop.shape[0], generator=rng).double())
        return fit, pop + 0.1 * (self.target - pop)


class Interrupt(Exception):
    pass


def trainer(run_dir: Path, stop_at: int | None = None, population: int = 4) -> GATrainer:
    cfg = GAConfig(
        population_size=population,
        generations=4,
        mutation="maxmin",
        mutation_probability=0.2,
        seed=7,
        checkpoint_dir=run_dir,
        progress=False,
    )

    def on_generation(_trainer, record):
        if record.generation == stop_at:
            raise Interrupt  # before this generation's checkpoint: the file holds the last

    return GATrainer(
        cfg,
        Quadratic(),
        torch.linspace(0.5, -0.5, GENOME.n_genes),
        genome=GENOME,
        on_generation=on_generation,
    )


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def outcome(result) -> tuple:
    return (
        result.final_population.tolist(),
        result.final_fitness.tolist(),
        result.best_solution.tolist(),
        result.best_fitness,
        [h.reproducible() for h in result.history],
    )


def faults(good: bytes) -> dict[str, bytes | None]:
    rng = np.random.default_rng(2024)
    out: dict[str, bytes | None] = {
        f"truncated at {n}": good[:n] for n in sorted(rng.integers(1, len(good) - 1, size=6))
    }
    out["truncated to 0 bytes"] = b""
    out["random bytes"] = rng.bytes(len(good))
    out["a tensor"] = None  # written with torch.save below
    out["a dict missing entries"] = None
    return out


def test_damaged_checkpoints_are_refused_and_the_good_one_resumes(tmp_path):
    reference = outcome(trainer(tmp_path / "ref").run())

    run_dir = tmp_path / "run"
    with pytest.raises(Interrupt):
        trainer(run_dir, stop_at=2).run()
    path = run_dir / CHECKPOINT_NAME
    good = path.read_bytes()

    for name, data in faults(good).items():
        if name == "a tensor":
            torch.save(torch.arange(5.0), path)
        elif name == "a dict missing entries":
            torch.save({"format": 1, "generation": 1}, path)
        else:
            path.write_bytes(data)
        before = snapshot(run_dir)
        with pytest.raises(CheckpointCorruptError) as err:
            trainer(run_dir).run(resume=True)
        message = str(err.value)
        assert message.startswith(f"{path}: "), name
        assert "restore it from a backup, or start a new run" in message, name
        assert snapshot(run_dir) == before, name

    path.write_bytes(good)
    assert outcome(trainer(run_dir).run(resume=True)) == reference


def test_the_smallest_population_runs_with_the_default_selection(tmp_path):
    # tournament_k defaults to 3; with sigmoid_rws it is unused and must not block P = 2
    result = trainer(tmp_path, population=2).run()
    assert result.final_population.shape == (2, GENOME.n_genes)
    with pytest.raises(ValueError, match="tournament_k=3 must be <= population_size=2"):
        GAConfig(population_size=2, selection="tournament")
