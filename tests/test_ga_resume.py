"""Kill -9 a GA run mid-flight, resume it, and demand a bit-identical ending.

This file is also the script the test runs in subprocesses:
``python tests/test_ga_resume.py RUN_DIR OUT_FILE [--resume] [--sleep S]``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

GENERATIONS = 8
ROOT = Path(__file__).resolve().parents[1]


class NoisyQuadratic:
    """Deterministic-but-noisy fitness with a Lamarckian "fine-tune" step."""

    def __init__(self, n_genes: int) -> None:
        self.target = torch.linspace(-1, 1, n_genes)

    def evaluate_population(self, pop, generation, rng):
        # per-member seeds first, so batched and serial evaluation would agree
        seeds = torch.randint(2**62, (pop.shape[0],), generator=rng)
        noise = torch.stack(
            [torch.randn((), generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        ).double()
        d2 = ((pop.double() - self.target) ** 2).mean(dim=1)
        fit = torch.exp(-d2) * (1 + 0.02 * noise)
        tuned = pop + 0.05 * (self.target - pop) + 0.01 * torch.randn(pop.shape, generator=rng)
        return fit, tuned


def _main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from ga import GAConfig, GATrainer, Genome

    run_dir, out_file = Path(argv[0]), Path(argv[1])
    resume = "--resume" in argv
    sleep = float(argv[argv.index("--sleep") + 1]) if "--sleep" in argv else 0.0
    genome = Genome([("a.weight", (6, 5)), ("b.weight", (4, 6)), ("c.weight", (16,))])
    cfg = GAConfig(
        population_size=8,
        generations=GENERATIONS,
        keep_elitism=2,
        mutation="maxmin",
        mutation_probability=0.1,
        init="large",
        seed=1234,
        checkpoint_dir=run_dir,
        progress=False,
    )

    def on_generation(trainer, record):
        print(f"GEN {record.generation}", flush=True)
        time.sleep(sleep)

    base = torch.linspace(0.5, -0.5, genome.n_genes)
    trainer = GATrainer(
        cfg, NoisyQuadratic(genome.n_genes), base, genome=genome, on_generation=on_generation
    )
    r = trainer.run(resume=resume)
    torch.save(
        {
            "population": r.final_population,
            "fitness": r.final_fitness,
            "best": r.best_solution,
            "best_evaluated": r.best_evaluated_solution,
            "best_fitness": r.best_fitness,
            "history": [h.reproducible() for h in r.history],
            "torch_rng_after": torch.rand(3),  # the global stream was restored too
        },
        out_file,
    )


def _script(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def test_kill9_and_resume_is_bit_identical(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    full_out, part_out = tmp_path / "full.pt", tmp_path / "part.pt"
    subprocess.run(
        _script(str(tmp_path / "full"), str(full_out)), check=True, env=env, capture_output=True
    )

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        _script(str(run_dir), str(part_out), "--sleep", "0.3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        for line in proc.stdout:  # on_generation(g) runs after checkpoint g-1 is on disk
            if line.strip() == "GEN 3":
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not part_out.exists()

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert 2 <= state["generation"] < GENERATIONS
    assert state["stop_reason"] is None

    subprocess.run(
        _script(str(run_dir), str(part_out), "--resume"), check=True, env=env, capture_output=True
    )
    full, part = torch.load(full_out), torch.load(part_out)
    assert full["history"] == part["history"]
    assert len(full["history"]) == GENERATIONS + 1
    assert full["best_fitness"] == part["best_fitness"]
    for key in ["population", "fitness", "best", "best_evaluated", "torch_rng_after"]:
        assert torch.equal(full[key], part[key]), key
    # the history files of the resumed folder hold the whole run
    hist = json.loads((run_dir / "history.json").read_text())
    assert [h["generation"] for h in hist] == list(range(GENERATIONS + 1))


if __name__ == "__main__":
    _main(sys.argv[1:])
