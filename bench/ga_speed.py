"""GA generation time: batched vs serial population evaluation, and the GA's own overhead.

Run: ``.venv/bin/python bench/ga_speed.py [--population 10] [--generations 1] [--steps 3]
[--val 200] [--threads 1] [--tasks protonet-mnist,mobilenetv2-cifar10] [--data-root DIR]``

For ProtoNet-MNIST and MobileNetV2-CIFAR10 at quick scale (the ``models.baselines``
quick recipe's architecture, bit width and noise; CIFAR: its stratified 20 % training
subset), a :class:`ga.GATrainer` with a :class:`lab.fitness.task.TaskFitness` (what
``lab.experiment.runner`` runs: episodes for ProtoNet, 64-image batches for MobileNetV2; Table 1
GA settings) runs ``1 + generations`` generations once per evaluation mode, with a
per-generation checkpoint as in real runs.  Printed per task and mode:

* ``s/gen``: median seconds per generation (generation 0 included; timed from one
  ``on_generation`` callback to the next, so selection, crossover, mutation, fitness and
  the checkpoint are all in);
* ``fine-tune`` and ``chip``: the fitness's seconds per generation in the QAT fine-tune
  (the part that is batched) and in programming and measuring the chip (always serial);
* ``GA overhead``: the share of the run's wall time spent outside
  ``evaluate_population`` (target: < 5 % at population 10);

then the ratio batched / serial of the seconds per generation and the mode
``evaluation="auto"`` picks (:data:`lab.fitness.batched.AUTO_EVALUATION`).

Models are randomly initialised (seeded): the timings do not depend on the weight values.
``--steps`` defaults to 3 QAT steps per member (the quick experiment configs use 3 to 5,
the paper configs 10); fine-tune time is linear in it.  Use ``--threads 1`` (default) to
compare without OpenMP oversubscription on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# named ga_speed.py, not ga.py: run as a script, this folder comes first on sys.path, and a
# bench/ga.py would shadow the package ga for every bench script (bench/vs_aihwkit.py too)
import torch

from ga import GAConfig, GATrainer, Genome
from lab.fitness.batched import auto_evaluation
from lab.fitness.config import FitnessConfig
from lab.fitness.task import TaskFitness
from models.baselines import get_recipe
from models.checkpoint import build_model
from models.data import load_dataset, train_val_split
from models.evaluate import paper_profile
from models.tasks import make_task

TASKS = ("protonet-mnist", "mobilenetv2-cifar10")
MODES = ("serial", "batched")


def _default_data_root() -> str | None:
    # the project's shared data folder sits next to the checkout; else models.data searches
    here = Path(__file__).resolve().parents[1]
    for cand in (here / "shared" / "data", here.parent / "shared" / "data"):
        if cand.is_dir():
            return str(cand)
    return None


def _prepare(task: str, args: argparse.Namespace) -> dict[str, Any]:
    recipe = get_recipe(task, "quick")
    train, _ = load_dataset(recipe.dataset, root=args.data_root)
    if recipe.train_fraction < 1.0:
        # as models.baselines does: a stratified, seeded subset of the training split
        train = train_val_split(train, recipe.train_fraction, 0)[1]
    train, val = train_val_split(train, args.val / len(train), 0)
    kwargs = dict(recipe.model_kwargs)
    if recipe.is_protonet:
        kwargs["in_channels"] = train.images.shape[1]
    torch.manual_seed(0)
    model = build_model(recipe.arch, kwargs)
    return {
        "recipe": recipe,
        "train": train,
        "val": val,
        "model": model,
        "genome": Genome.from_model(model),
        "task": make_task(model),
        "profile": paper_profile(recipe.bits, recipe.sigma),
    }


def _run(case: dict[str, Any], mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    recipe = case["recipe"]
    cfg = GAConfig(
        population_size=args.population,
        generations=args.generations,
        selection="sigmoid_rws",
        crossover="two_points",
        mutation="maxmin",
        mutation_probability=0.01,
        init="large",
        weight_bits=recipe.bits,
        checkpoint_dir=tmp / f"{recipe.task}-{mode}",
        progress=False,
    )
    fitness_cfg = FitnessConfig(
        finetune_steps=args.steps, finetune_lr=1e-4, draws=1, evaluation=mode
    )
    fitness = TaskFitness(
        case["model"],
        case["genome"],
        case["profile"],
        fitness_cfg,
        weight_bits=cfg.weight_bits,
        task=case["task"],
        train=case["train"],
        val=case["val"],
        qat_sigma=recipe.sigma,
        chip_seed=0,
    )
    _ = fitness.evaluation  # resolve the mode (the batched probe) before the clock starts
    fit_s: list[float] = []

    def timed(pop: torch.Tensor, generation: int, rng: torch.Generator) -> Any:
        t = time.perf_counter()
        out = fitness.evaluate_population(pop, generation, rng)
        fit_s.append(time.perf_counter() - t)
        return out

    marks: list[float] = []
    trainer = GATrainer.from_model(
        cfg, timed, case["model"], on_generation=lambda _t, _r: marks.append(time.perf_counter())
    )
    t0 = time.perf_counter()
    trainer.run()
    total = time.perf_counter() - t0
    gens = len(fit_s)
    per_gen = [b - a for a, b in zip([t0, *marks], marks)]
    return {
        "s_per_gen": statistics.median(per_gen),
        "finetune": fitness.finetune_s / gens,
        "chip": fitness.chip_s / gens,
        "overhead": (total - sum(fit_s)) / total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--generations", type=int, default=1, help="after generation 0")
    ap.add_argument("--steps", type=int, default=3, help="QAT fine-tune steps per member")
    ap.add_argument("--val", type=int, default=200, help="validation images of the fitness")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--data-root", default=_default_data_root())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tasks = [t for t in args.tasks.split(",") if t]
    modes = [m for m in args.modes.split(",") if m]
    print(
        f"GA generation time at quick scale: population {args.population}, "
        f"{1 + args.generations} generations, {args.steps} QAT steps per member, "
        f"{args.val} validation images, {args.threads} thread(s); median over generations"
    )
    print(
        f"{'task':<22} {'mode':<8} {'s/gen':>7} {'fine-tune':>10} {'chip':>7} {'GA overhead':>12}"
    )
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            case = _prepare(task, args)
            res: dict[str, dict[str, float]] = {}
            for mode in modes:
                r = res[mode] = _run(case, mode, args, Path(tmp))
                worst = max(worst, r["overhead"])
                print(
                    f"{task:<22} {mode:<8} {r['s_per_gen']:>7.2f} {r['finetune']:>10.2f} "
                    f"{r['chip']:>7.2f} {r['overhead']:>11.2%}",
                    flush=True,
                )
            auto = auto_evaluation(case["model"]).value
            if "serial" in res and "batched" in res:
                ratio = res["batched"]["s_per_gen"] / res["serial"]["s_per_gen"]
                faster = "batched" if ratio < 1 else "serial"
                print(
                    f"{task:<22} ratio batched/serial {ratio:.2f} ({faster} faster); "
                    f"auto picks {auto}",
                    flush=True,
                )
    verdict = "met" if worst < 0.05 else "NOT met"
    print(f"GA overhead: at most {worst:.2%} of the generation time (target < 5 %: {verdict})")


if __name__ == "__main__":
    main()
