"""Training routines the methods share: counted QAT, the progressive fine-tune, the GA."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from ga.checkpoint import load_checkpoint
from ga.history import GenerationRecord
from ga.trainer import GATrainer
from lab.fitness.finetune import qat_tune
from lab.methods.base import Budget, RecoveryData, Solution
from lab.methods.chip import Chip, CountingFitness
from lab.run_folder import read_json, write_json
from memsim.atomic_io import atomic_torch_save
from models.quant import WeightMap, qat_finetune


class BudgetError(RuntimeError):
    """A method's configuration cannot spend exactly the stage's budget."""


def counted_qat(
    baseline: nn.Module,
    chip: Chip,
    data: RecoveryData,
    genes: Tensor,
    steps: int,
    weight_map: WeightMap | None = None,
) -> Tensor:
    """:func:`lab.fitness.finetune.qat_tune` (the control's fine-tune) with its steps counted."""

    def on_step(_step: int, _loss: float) -> None:
        chip.counters.steps += 1

    return qat_tune(
        copy.deepcopy(baseline),
        data.genome,
        genes,
        data.base_state,
        data.task.loss,
        lambda gen: data.task.batch(data.train, gen),
        steps=steps,
        bits=data.bits,
        sigma=data.qat_sigma,
        lr=data.lr,
        seed=data.seed,
        on_step=on_step,
        weight_map=weight_map,
        train_mode=data.train_mode,
    )


def split_steps(steps: int, parts: int) -> list[int]:
    """``steps`` split into ``parts`` near-equal integers that sum to ``steps``."""
    return [steps // parts + (1 if i < steps % parts else 0) for i in range(parts)]


def progressive_tune(
    baseline: nn.Module,
    chip: Chip,
    data: RecoveryData,
    genes: Tensor,
    *,
    steps: int,
    seed: int,
) -> Tensor:
    """NeuRRAM-style progressive chip-in-the-loop fine-tune of ``genes``.

    For ``k = 1 .. N-1``: program layer ``k`` (with the weights trained so far), then
    train layers ``k+1 .. N`` in software with noise-aware QAT on the outputs the chip's
    programmed layers ``1 .. k`` give for each training batch.  ``steps`` is split evenly
    over the ``N - 1`` stages.  BatchNorm stays in eval mode (its running statistics are
    the baseline's, as on the deployed chip), so the digital layers learn to correct what
    the programmed layers actually output.
    """
    keys = list(data.genome.keys)
    if len(keys) < 2:
        raise ValueError("progressive fine-tuning needs a network of at least two layers")
    work = copy.deepcopy(baseline)
    work.load_state_dict(data.base_state)
    data.genome.load_into(work, genes)
    gen = torch.Generator().manual_seed(int(seed))
    every = data.settings.progressive_reprogram_every
    for k, n_steps in enumerate(split_steps(steps, len(keys) - 1), start=1):
        program_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        chip.program_layers({keys[k - 1]: work.get_parameter(keys[k - 1])}, program_seed)
        if n_steps == 0:
            continue
        net = chip.hybrid(work, keys[:k])
        params = dict(net.named_parameters())
        opt = torch.optim.Adam([params[key] for key in keys[k:]], lr=data.lr)

        def on_step(_step: int, _loss: float) -> None:
            chip.counters.steps += 1

        chunks = split_steps(n_steps, -(-n_steps // every)) if every else [n_steps]
        for i, chunk in enumerate(chunks):
            if i:  # fresh programming noise on the same defects: learn the defects only
                program_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
                again = {key: work.get_parameter(key) for key in keys[:k]}
                chip.program_layers(again, program_seed)
            qat_finetune(
                net,
                data.task.loss,
                lambda _step: data.task.batch(data.train, gen),
                steps=chunk,
                bits=data.bits,
                sigma=data.qat_sigma,
                generator=gen,
                optimizer=opt,
                on_step=on_step,
                train_mode=False,
            )
        with torch.no_grad():
            for key in keys[k:]:
                work.get_parameter(key).copy_(params[key])
    return data.genome.from_module(work).to(genes.dtype)


def run_ga(
    fitness: CountingFitness,
    data: RecoveryData,
    budget: Budget,
    folder: Path,
    *,
    parallel: bool = True,
) -> Solution:
    """The paper's GA (``data.ga``) on ``fitness``, checkpointed and resumable in ``folder``.

    The population is evaluated on ``data.executor`` (serial unless ``parallel`` and a
    parallel executor is given; the numbers are the same either way).  The step and
    evaluation counters are saved with every generation, so a resumed run continues
    them from its checkpoint's generation.

    Raises:
        BudgetError: The GA's population x (generations + 1) x fine-tune steps (or x
            fitness draws) differs from the budget.

    """
    g, f = data.ga, data.fitness
    evals = g.population_size * (g.generations + 1)
    if evals * f.finetune_steps != budget.steps or evals * f.draws != budget.chip_evaluations:
        raise BudgetError(
            f"the GA spends {evals * f.finetune_steps} steps and {evals * f.draws} "
            f"chip evaluations (population x (generations + 1) x fitness.finetune_steps / "
            f"fitness.draws), the budget is {budget.steps} and {budget.chip_evaluations}; "
            "leave recovery.steps and recovery.chip_evaluations unset or match them"
        )
    cfg = g.model_copy(update={"checkpoint_dir": folder, "progress": False})
    counters = fitness.counters

    def on_generation(trainer: GATrainer, record: GenerationRecord) -> None:
        # written before the trainer's checkpoint of this generation, so the checkpoint
        # a resume starts from always has its counters on disk
        write_json(folder / f"counters-gen{record.generation:04d}.json", counters.as_dict())
        every = data.snapshot_every
        if every and record.generation % every == 0:
            # best-ever weights for the test-accuracy curve, scored after the run so that
            # the test split never influences it
            (folder / "snapshots").mkdir(parents=True, exist_ok=True)
            path = folder / "snapshots" / f"gen-{record.generation:04d}.pt"
            atomic_torch_save(trainer.best_solution, path)
        data.echo(
            f"GA generation {record.generation}/{g.generations}: validation fitness best "
            f"{100 * record.best:.2f}, best-ever {100 * record.best_ever:.2f} %"
        )

    resume = (folder / "checkpoint.pt").exists()
    if resume:
        done = int(load_checkpoint(folder)["generation"])
        saved = read_json(folder / f"counters-gen{done:04d}.json")
        for key, value in saved.items():
            setattr(counters, key, int(value))
        data.echo(f"GA: resuming from {folder} (generation {done})")
    folder.mkdir(parents=True, exist_ok=True)
    from lab.fitness.parallel import population_evaluator

    with population_evaluator(fitness, data.executor if parallel else None) as evaluator:
        trainer = GATrainer(
            cfg, evaluator, data.base_genes, genome=data.genome, on_generation=on_generation
        )
        result = trainer.run(resume=resume)
    return Solution(
        result.best_solution,
        # the best fitness (a noisy validation maximum) stays in the GA's folder: never a result
        info={"best_generation": result.best_generation},
    )
