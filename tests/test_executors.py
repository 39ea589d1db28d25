"""Executors: a GA on digits gives the same run under serial, process and Ray.

This file is also the script the kill test runs in a subprocess:
``python tests/test_executors.py RUN_DIR OUT_FILE EXECUTOR WORKERS [--sleep S]``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

KILL_GENERATIONS = 4


def _problem(**cfg_kw):
    """Digits MLP on the paper's 2-bit / 5 % chip: (fitness, genome, baseline genes, cfg)."""
    from config_support import chip_fitness, configs
    from digits_support import trained_digits_mlp

    from ga import Genome
    from models.data import load_dataset, train_val_split
    from models.evaluate import paper_profile

    train, _ = load_dataset("digits")
    train, val = train_val_split(train, 0.2, seed=0)
    val = val.subset(torch.arange(90))
    model = trained_digits_mlp(train)
    genome = Genome.from_model(model)
    base = dict(
        population_size=5,  # 5 members on 2 workers: chunks of 3 and 2
        generations=2,
        keep_elitism=1,
        draws=1,
        finetune_steps=2,
        finetune_lr=1e-2,
        weight_bits=2,
        mutation="maxmin",
        mutation_probability=0.05,
        init="origin",
        seed=3,
        progress=False,
    )
    base.update(cfg_kw)
    cfgs = configs(**base)
    fitness = chip_fitness(model, genome, paper_profile(2, 0.05), cfgs, train=train, val=val)
    return fitness, genome, genome.from_module(model), cfgs[0]


def _run(kind, workers, *, resume=False, on_generation=None, **cfg_kw):
    from ga import GATrainer
    from lab.executors import ExecutorSpec
    from lab.fitness.parallel import population_evaluator

    fitness, genome, base, cfg = _problem(**cfg_kw)
    spec = ExecutorSpec(kind=kind, workers=workers)
    with population_evaluator(fitness, spec) as evaluator:
        trainer = GATrainer(cfg, evaluator, base, genome=genome, on_generation=on_generation)
        return trainer.run(resume=resume)


def _summary(result):
    return {
        "history": [h.reproducible() for h in result.history],
        "best": result.best_solution,
        "best_evaluated": result.best_evaluated_solution,
        "population": result.final_population,
        "fitness": result.final_fitness,
    }


def _assert_same(a, b):
    assert a["history"] == b["history"]
    for key in ("best", "best_evaluated", "population", "fitness"):
        assert torch.equal(a[key], b[key]), key


def _main(argv):
    torch.set_num_threads(1)
    run_dir, out_file, kind, workers = Path(argv[0]), Path(argv[1]), argv[2], int(argv[3])
    sleep = float(argv[argv.index("--sleep") + 1]) if "--sleep" in argv else 0.0

    def on_generation(trainer, record):
        print(f"GEN {record.generation}", flush=True)
        time.sleep(sleep)

    r = _run(
        kind,
        workers,
        on_generation=on_generation,
        generations=KILL_GENERATIONS,
        checkpoint_dir=run_dir,
    )
    torch.save(_summary(r), out_file)


# ----------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def reference():
    torch.set_num_threads(1)
    return _summary(_run("serial", 1))


def test_serial_executor_matches_the_plain_fitness(reference):
    # the executor path against the fitness the trainer used before executors existed
    from ga import GATrainer

    fitness, genome, base, cfg = _problem()
    plain = _summary(GATrainer(cfg, fitness, base, genome=genome).run())
    _assert_same(reference, plain)
    assert len(reference["history"]) == 3 and reference["population"].shape[0] == 5


def test_process_executor_is_bit_identical(reference):
    _assert_same(_summary(_run("process", 2)), reference)


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_executor_is_bit_identical(reference, ray_local, workers):
    _assert_same(_summary(_run("ray", workers)), reference)


def test_worker_state_is_sent_once_and_kept(ray_local):
    # a worker keeps its copy of the state between calls (here a counter's position)
    import itertools

    from lab.executors import ExecutorSpec, make_executor

    for kind in ("serial", "process", "ray"):
        with make_executor(ExecutorSpec(kind=kind)) as ex, ex.pool(itertools.count(7)) as pool:
            assert pool.map("__next__", [(), (), ()]) == [7, 8, 9], kind


@pytest.mark.parametrize("killed, resumed_on", [("ray", "serial"), ("serial", "ray")])
def test_kill_9_and_resume_on_another_executor(tmp_path, request, killed, resumed_on):
    pytest.importorskip("ray")
    run_dir, out_file = tmp_path / "run", tmp_path / "killed.pt"
    cmd = [sys.executable, __file__, str(run_dir), str(out_file), killed, "2", "--sleep", "2"]
    if killed == "serial":
        cmd[5] = "1"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    # its own session, so that the kill takes the local Ray instance it starts with it
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True
    )
    try:
        for line in proc.stdout:
            if line.strip() == "GEN 1":
                time.sleep(0.5)  # mid-sleep after the generation-1 checkpoint
                break
        else:
            pytest.fail(f"the run under {killed} ended before generation 1 (rc {proc.wait()})")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert (run_dir / "checkpoint.pt").exists() and not out_file.exists()

    if resumed_on == "ray":
        request.getfixturevalue("ray_local")
    workers = 2 if resumed_on == "ray" else 1
    resumed = _run(
        resumed_on, workers, resume=True, generations=KILL_GENERATIONS, checkpoint_dir=run_dir
    )
    straight = _run("serial", 1, generations=KILL_GENERATIONS, checkpoint_dir=tmp_path / "straight")
    _assert_same(_summary(resumed), _summary(straight))
    assert resumed.generations_completed == KILL_GENERATIONS


def test_bad_address_fails_fast_with_a_clear_message(tmp_path):
    # in a subprocess: the timeout guards against Ray's own minute-long connect retries
    code = (
        "import sys; from lab.cli import main; "
        "sys.exit(main(['ga', 'experiments/protonet_digits.toml', "
        "'--executor', 'ray', '--address', '127.0.0.1:9']))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert out.returncode == 2, out.stderr
    assert "--address 127.0.0.1:9: no Ray cluster reachable there" in out.stderr
    assert "ray start --head" in out.stderr and "Traceback" not in out.stderr


def test_malformed_address_and_bad_worker_counts_are_refused(capsys):
    from lab.cli import main
    from lab.executors import ExecutorError, ExecutorSpec, check_address

    with pytest.raises(ExecutorError, match="expected auto, HOST:PORT"):
        check_address("headnode")
    with pytest.raises(ExecutorError, match="workers must be an integer >= 1"):
        ExecutorSpec(kind="process", workers=0)
    for argv in (
        ["ga", "x.toml", "--executor", "process", "--workers", "0"],
        ["reproduce", "table1", "--executor", "ray", "--workers", "-1"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "--workers: expected an integer >= 1" in capsys.readouterr().err
    assert main(["ga", "x.toml", "--workers", "2"]) == 2
    assert "--workers 2 needs --executor process or ray" in capsys.readouterr().err
    assert main(["ga", "x.toml", "--executor", "process", "--address", "auto"]) == 2
    assert "use it with --executor ray" in capsys.readouterr().err


def test_a_members_score_does_not_depend_on_the_members_before_it():
    # with nn.Dropout the fine-tune draws from the global RNG: seeded per member, so a
    # worker that ran other members first still gives the same score and genes
    from torch import nn

    from ga import Genome
    from lab.fitness.chip import ChipFitness
    from lab.fitness.parallel import MemberEvaluator
    from models.data import load_dataset, train_val_split
    from models.evaluate import paper_profile

    train, _ = load_dataset("digits")
    train, val = train_val_split(train, 0.2, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 10)
    )
    genome = Genome.from_model(model)
    fitness0, _, _, _ = _problem()
    fitness = ChipFitness(
        model,
        genome,
        paper_profile(2, 0.05),
        fitness0.config,
        weight_bits=fitness0.weight_bits,
        train=train,
        val=val.subset(torch.arange(60)),
    )
    genes = genome.from_module(model).repeat(3, 1)
    genes[1] *= 0.9
    genes[2] *= 1.1
    seeds = [[11, 12], [21, 22], [31, 32]]
    evaluator = MemberEvaluator(fitness)
    torch.manual_seed(123)
    fits, tuned, _, _, _ = evaluator.evaluate(genes, seeds)
    torch.manual_seed(456)  # another global state, and member 2 alone
    fit2, tuned2, _, _, _ = evaluator.evaluate(genes[2:], seeds[2:])
    assert fit2 == fits[2:] and torch.equal(tuned2[0], tuned[2])
    assert not torch.equal(tuned[2], genes[2])  # the fine-tune ran (and dropped units)


def test_split_covers_every_member_once():
    from lab.executors import split

    assert [list(r) for r in split(5, 2)] == [[0, 1, 2], [3, 4]]
    assert [list(r) for r in split(2, 4)] == [[0], [1]]
    for n in range(1, 12):
        for parts in range(1, 6):
            chunks = split(n, parts)
            assert [i for c in chunks for i in c] == list(range(n))
            assert max(map(len, chunks)) - min(map(len, chunks)) <= 1


if __name__ == "__main__":
    _main(sys.argv[1:])
