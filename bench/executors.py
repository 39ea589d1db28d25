"""Executors: GA generation time, a 4-cell sweep, and Ray's per-task overhead.

Run: ``.venv/bin/python bench/executors.py [--workers 2] [--generations 2] [--steps 3]
[--val 200] [--data-root DIR] [--skip-sweep]``

1. **GA population evaluation** (ProtoNet-MNIST at quick scale, population 10, Table 1
   GA operators, ``--steps`` QAT steps per member, as ``bench/ga_speed.py``): a
   :class:`ga.GATrainer` evaluates through :class:`lab.fitness.parallel.ParallelFitness`
   under ``serial``, ``process`` with ``--workers`` and ``ray`` with ``--workers``.
   Printed: median seconds per generation over generations 1.. (generation 0 also starts
   the workers and is left out), the speedup over serial, and the seconds of one member's
   fitness.  All three runs must end with the same best-ever genes (checked).
2. **A 4-cell sweep** (``memsim sweep grid`` on a small digits config: P=6, 3
   generations, 5 QAT steps, 300 test images, control off; 4 values of
   ``faults.stuck_at_gmax_rate``): wall time under each executor, the baseline trained
   before the clock starts.  The parallel executors pay for starting their worker
   processes (each imports torch and loads the data), so cells much shorter than that
   start-up are faster serially.
3. **Ray's overhead over process per task**: 100 no-op tasks through each executor's
   ``map`` (workers already started), seconds per task, and the difference.

Every worker runs one torch thread.  On a shared machine the figures move with the load
of the other processes; they are one run's measurements, not a benchmark suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402

from ga import GAConfig, GATrainer, Genome  # noqa: E402
from lab.executors import ExecutorSpec, make_executor  # noqa: E402
from lab.fitness.config import FitnessConfig  # noqa: E402
from lab.fitness.parallel import population_evaluator  # noqa: E402
from lab.fitness.task import TaskFitness  # noqa: E402
from models.baselines import get_recipe  # noqa: E402
from models.checkpoint import build_model  # noqa: E402
from models.data import load_dataset, train_val_split  # noqa: E402
from models.evaluate import paper_profile  # noqa: E402
from models.tasks import make_task  # noqa: E402

SWEEP_TOML = """\
[experiment]
name = "bench-sweep"
task = "protonet-digits"
scale = "quick"
seed = 0

[data]
val_size = 300
test_size = 300

[evaluation]
draws = 5
support_draws = 1

[fitness]
finetune_steps = 5
finetune_lr = 1e-4

[ga]
population_size = 6
generations = 3
init = "origin"
mutation = "maxmin"
weight_bits = 2
seed = 0
"""


def _noop(x: int) -> int:
    return x


def _data_root() -> str | None:
    # the project's shared data folder next to the checkout (or next to its worktree folder)
    for parent in Path(__file__).resolve().parents[1:4]:
        cand = parent / "shared" / "data"
        if cand.is_dir():
            return str(cand)
    return None


def _fitness(args: argparse.Namespace) -> tuple[TaskFitness, GAConfig, Any]:
    recipe = get_recipe("protonet-mnist", "quick")
    train, _ = load_dataset(recipe.dataset, root=args.data_root)
    train, val = train_val_split(train, args.val / len(train), 0)
    kwargs = dict(recipe.model_kwargs, in_channels=train.images.shape[1])
    torch.manual_seed(0)
    model = build_model(recipe.arch, kwargs)
    genome = Genome.from_model(model)
    cfg = GAConfig(
        population_size=10,
        generations=args.generations,
        selection="sigmoid_rws",
        crossover="two_points",
        mutation="maxmin",
        mutation_probability=0.01,
        init="large",
        weight_bits=recipe.bits,
        progress=False,
    )
    fitness_cfg = FitnessConfig(
        finetune_steps=args.steps, finetune_lr=1e-4, draws=1, evaluation="serial"
    )
    fitness = TaskFitness(
        model,
        genome,
        paper_profile(recipe.bits, recipe.sigma),
        fitness_cfg,
        weight_bits=cfg.weight_bits,
        task=make_task(model),
        train=train,
        val=val,
        qat_sigma=recipe.sigma,
        chip_seed=0,
    )
    return fitness, cfg, model


def _ga(fitness: TaskFitness, cfg: GAConfig, model: Any, spec: ExecutorSpec) -> tuple[float, Any]:
    marks: list[float] = []
    with population_evaluator(fitness, spec) as evaluator:
        trainer = GATrainer.from_model(
            cfg, evaluator, model, on_generation=lambda _t, _r: marks.append(time.perf_counter())
        )
        result = trainer.run()
    per_gen = [b - a for a, b in zip(marks, marks[1:])]
    return statistics.median(per_gen), result.best_solution


def _sweep(spec: ExecutorSpec, root: Path, config: Path) -> float:
    from lab.studies.sweep_grid import parse_axis, run_grid

    axis = parse_axis("faults.stuck_at_gmax_rate=0,0.02,0.05,0.1")
    t0 = time.perf_counter()
    state, _ = run_grid(
        config,
        [axis],
        run_root=root,
        out=root / f"sweep-{spec.kind.value}",
        executor=spec,
        progress=False,
        echo=lambda _s: None,
    )
    wall = time.perf_counter() - t0
    assert all(r["status"] == "complete" for r in state["runs"]), state["runs"]
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--generations", type=int, default=2, help="after generation 0")
    ap.add_argument("--steps", type=int, default=3, help="QAT fine-tune steps per member")
    ap.add_argument("--val", type=int, default=200, help="validation images of the fitness")
    ap.add_argument("--data-root", default=_data_root())
    ap.add_argument("--skip-sweep", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    w = args.workers
    specs = [
        ExecutorSpec(kind="serial"),
        ExecutorSpec(kind="process", workers=w),
        ExecutorSpec(kind="ray", workers=w),
    ]
    label = {"serial": "serial", "process": f"process {w}", "ray": f"ray {w}"}
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machine)")
    print(
        f"1. GA population evaluation, ProtoNet-MNIST quick, P=10, {args.steps} QAT steps/member, "
        f"{args.val} val images; median s/generation over generations 1..{args.generations}"
    )
    fitness, cfg, model = _fitness(args)
    base: float | None = None
    best: Any = None
    for spec in specs:
        s_gen, sol = _ga(fitness, cfg, model, spec)
        base = base or s_gen
        same = best is None or torch.equal(sol, best)
        best = sol if best is None else best
        print(
            f"   {label[spec.kind.value]:<10} {s_gen:7.2f} s/gen  ({s_gen / 10:.2f} s/member)  "
            f"speedup {base / s_gen:4.2f}x  best-ever genes {'identical' if same else 'DIFFER'}",
            flush=True,
        )

    if not args.skip_sweep:
        print("2. 4-cell sweep grid (digits, faults.stuck_at_gmax_rate=0,0.02,0.05,0.1), wall time")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            config = root / "sweep.toml"
            config.write_text(SWEEP_TOML)
            from lab.experiment.config import load_config
            from lab.experiment.context import RunContext
            from lab.experiment.inputs import prepare_inputs

            ctx = RunContext(run_root=root, progress=False, echo=lambda _s: None)
            prepare_inputs(load_config(config), ctx)  # baseline
            serial_wall: float | None = None
            for spec in specs:
                wall = _sweep(spec, root, config)
                serial_wall = serial_wall or wall
                print(
                    f"   {label[spec.kind.value]:<10} {wall:7.1f} s  "
                    f"speedup {serial_wall / wall:4.2f}x",
                    flush=True,
                )

    print("3. per-task overhead: 100 no-op tasks through map (workers started before)")
    per_task = {}
    for spec in specs[1:]:
        with make_executor(spec) as ex:
            ex.map(_noop, range(w))  # start the workers
            t0 = time.perf_counter()
            ex.map(_noop, range(100))
            per_task[spec.kind.value] = (time.perf_counter() - t0) / 100
        print(f"   {label[spec.kind.value]:<10} {1e3 * per_task[spec.kind.value]:7.2f} ms/task")
    print(f"   Ray over process: {1e3 * (per_task['ray'] - per_task['process']):+.2f} ms per task")


if __name__ == "__main__":
    main()
