"""The Python parts of ``bench/gpu_check.sh`` (also runnable on a CPU with --device cpu).

``ga``: one MobileNetV2-CIFAR10 GA generation (generation 0 and 1 of a population of
``--population``, quick-scale architecture, ``--steps`` QAT steps per member) with the
model, data and chip on ``--device``; prints seconds per generation.

``agree``: a digits MLP trained on the CPU (seeded), converted with the same chip and
programming seeds on the CPU and on ``--device``; prints the test accuracy of every draw
on both and the largest difference.  Faults and programming noise are drawn on the CPU,
so the programmed conductances must be identical; read noise is drawn on each device,
so the accuracies agree within a few test images, not bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import torch  # noqa: E402
from torch import nn  # noqa: E402


def _data_root() -> str | None:
    for parent in Path(__file__).resolve().parents[1:4]:
        if (parent / "shared" / "data").is_dir():
            return str(parent / "shared" / "data")
    return None


def ga_generation(args: argparse.Namespace) -> None:
    """Time one MobileNetV2-CIFAR10 GA generation on ``args.device``."""
    from ga import GAConfig, GATrainer, Genome
    from lab.fitness.config import FitnessConfig
    from lab.fitness.parallel import population_evaluator
    from lab.fitness.task import TaskFitness
    from models.baselines import get_recipe
    from models.checkpoint import build_model
    from models.data import load_dataset, train_val_split
    from models.evaluate import paper_profile
    from models.tasks import make_task

    dev = torch.device(args.device)
    recipe = get_recipe("mobilenetv2-cifar10", "quick")
    train, _ = load_dataset(recipe.dataset, root=args.data_root)
    train = train_val_split(train, recipe.train_fraction, 0)[1]
    train, val = train_val_split(train, args.val / len(train), 0)
    torch.manual_seed(0)
    model = build_model(recipe.arch, dict(recipe.model_kwargs))
    genome = Genome.from_model(model)
    base = genome.from_module(model)
    model = model.to(dev)
    cfg = GAConfig(
        population_size=args.population,
        generations=1,
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
        train=train.to(dev),
        val=val.to(dev),
        qat_sigma=recipe.sigma,
        chip_seed=0,
    )
    marks = [time.perf_counter()]
    with population_evaluator(fitness, None) as evaluator:
        trainer = GATrainer(
            cfg,
            evaluator,
            base,
            genome=genome,
            on_generation=lambda _t, _r: marks.append(time.perf_counter()),
        )
        result = trainer.run()
    gens = [b - a for a, b in zip(marks, marks[1:])]
    print(
        f"MobileNetV2-CIFAR10 GA on {dev}: P={args.population}, {args.steps} QAT steps/member, "
        f"{args.val} val images: generation 0 {gens[0]:.1f} s, generation 1 {gens[1]:.1f} s; "
        f"best validation fitness {100 * result.best_fitness:.2f} %"
    )


def agree(args: argparse.Namespace) -> None:
    """CPU vs ``args.device`` accuracy of one chip over the same programming draws."""
    import memsim
    from models.data import load_dataset, train_val_split
    from models.evaluate import paper_profile

    train, test = load_dataset("digits")
    train, _ = train_val_split(train, 0.2, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        idx = torch.randint(0, len(train), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    dev = torch.device(args.device)
    profile = paper_profile(2, 0.05)
    weights = {k: v for k, v in model.state_dict().items() if k.endswith("weight")}
    chips = [
        ("cpu", torch.device("cpu"), memsim.convert(model, profile, seed=0, chip_seed=1).eval()),
        (f"{dev}", dev, memsim.convert(model.to(dev), profile, seed=0, chip_seed=1).eval()),
    ]
    accs: list[list[float]] = [[], []]
    same_g = True
    for draw in range(args.draws):
        for i, (_, where, chip) in enumerate(chips):
            memsim.program(chip, {k: v.to(where) for k, v in weights.items()}, seed=100 + draw)
            with torch.no_grad():
                pred = chip(test.images.to(where)).argmax(1).cpu()
            accs[i].append(100 * float((pred == test.labels).float().mean()))
        bufs = [dict(c.named_buffers()) for _, _, c in chips]
        same_g &= all(
            torch.equal(bufs[0][k].cpu(), bufs[1][k].cpu()) for k in bufs[0] if k.endswith("g_prog")
        )
    diff = max(abs(a - b) for a, b in zip(*accs))
    print(f"chip accuracy over {args.draws} programming draws ({len(test)} digits test images):")
    for (name, _, _), values in zip(chips, accs):
        print(f"  {name:<8} " + " ".join(f"{v:6.2f}" for v in values))
    print(
        f"  programmed conductances identical: {same_g}; largest accuracy difference "
        f"{diff:.2f} pp ({'agree' if same_g and diff <= 2.0 else 'DISAGREE'}: <= 2 pp expected "
        "from the per-device read noise)"
    )
    if not same_g or diff > 2.0:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=("ga", "agree"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--val", type=int, default=500)
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--data-root", default=_data_root())
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    (ga_generation if args.what == "ga" else agree)(args)


if __name__ == "__main__":
    main()
