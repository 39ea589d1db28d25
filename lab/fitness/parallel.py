"""The GA's population evaluation spread over an executor's workers.

:class:`ParallelFitness` is a :class:`ga.trainer.FitnessFn` around a
:class:`lab.fitness.chip.ChipFitness` (or any object with ``config.draws`` and
``evaluate_member(genes, seeds)``).  Per generation it:

1. draws every member's seeds from the trainer's generator, in this process, before
   anything is dispatched: ``(P, 1 + R)`` integers, exactly as ``ChipFitness`` does;
2. cuts the population into one contiguous chunk per worker;
3. has each worker evaluate its members one after the other with
   ``evaluate_member(genes, seeds)``; the worker's copy of the fitness (model, datasets,
   the chip converted with the run's ``chip_seed``) was sent once when the pool started;
4. puts fitness and tuned genes back together in member order.

A member's score thus depends only on its genes and its own seeds, never on which worker
ran it or which members ran before it there: the process-global torch RNG (which an
``nn.Dropout`` in the fine-tune draws from) is forked and seeded from the member's
fine-tune seed for the member's evaluation, and restored afterwards.  So history and
best-ever genes are bit-identical for every executor and worker count, and a run
checkpointed under one executor resumes under another to the same result.

The batched fine-tune (``fitness.evaluation = "batched"``) stacks the whole population in one
process; it runs only with the ``serial`` executor, where this wrapper hands the
population to the fitness unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from lab.executors import (
    Executor,
    ExecutorError,
    ExecutorKind,
    ExecutorSpec,
    WorkerPool,
    make_executor,
    split,
)
from lab.fitness.config import EvaluationMode

GLOBAL_RNG_SALT = 0x0D12_0F0A
"""Mixed into a member's fine-tune seed to seed the global torch RNG for that member."""


def member_global_seed(finetune_seed: int) -> int:
    """The global-RNG seed of a member (``torch.manual_seed`` takes 64 bits)."""
    return (int(finetune_seed) ^ GLOBAL_RNG_SALT) % 2**63


class MemberEvaluator:
    """What each worker holds: the fitness, and the loop over a chunk of members."""

    def __init__(self, fitness: Any) -> None:
        """Wrap ``fitness`` (anything with ``evaluate_member(genes, seeds)``)."""
        self.fitness = fitness

    def evaluate(
        self, genes: Tensor, seeds: list[list[int]]
    ) -> tuple[list[float], Tensor, float, float, dict[str, int]]:
        """Evaluate every row of ``genes`` with its seeds.

        Returns:
            ``(fitness per member, tuned genes, fine-tune seconds, chip seconds, counts)``;
            ``counts`` is what the fitness's ``counters`` (if it has any, e.g. a recovery
            method's step and chip-evaluation counters) grew by in this call.

        """
        f = self.fitness
        ft0, chip0 = getattr(f, "finetune_s", 0.0), getattr(f, "chip_s", 0.0)
        counts0 = _counts(f)
        fits: list[float] = []
        tuned = torch.empty_like(genes)
        for i in range(genes.shape[0]):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(member_global_seed(seeds[i][0]))
                fit, tuned[i] = f.evaluate_member(genes[i], seeds[i])
            fits.append(float(fit))
        return (
            fits,
            tuned,
            getattr(f, "finetune_s", 0.0) - ft0,
            getattr(f, "chip_s", 0.0) - chip0,
            {k: v - counts0[k] for k, v in _counts(f).items()},
        )


def _counts(fitness: Any) -> dict[str, int]:
    counters = getattr(fitness, "counters", None)
    return counters.as_dict() if counters is not None else {}


class ParallelFitness:
    """``FitnessFn`` that evaluates a population's members on an executor's workers.

    Attributes:
        fitness: The wrapped fitness (this process's copy; workers hold their own).
        executor: Where the members run.
        finetune_s: Seconds the workers spent fine-tuning (summed over workers).
        chip_s: Seconds they spent programming and measuring chips.

    """

    def __init__(self, fitness: Any, executor: Executor) -> None:
        """Wrap ``fitness``; the workers start at the first evaluation.

        Raises:
            ExecutorError: A batched fine-tune was requested with a parallel executor.

        """
        self.fitness = fitness
        self.executor = executor
        self.finetune_s = 0.0
        self.chip_s = 0.0
        self._pool: WorkerPool | None = None
        self._pool_is_remote = executor.spec.parallel
        self._delegate = False
        if getattr(fitness.config, "evaluation", None) is EvaluationMode.BATCHED:
            if executor.spec.kind is not ExecutorKind.SERIAL:
                raise ExecutorError(
                    "fitness.evaluation = 'batched' fine-tunes the whole population in one "
                    "process; use --executor serial, or fitness.evaluation = 'serial' or "
                    "'auto' to spread the members over workers"
                )
            self._delegate = True

    def evaluate_population(
        self, population: Tensor, generation: int, rng: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """Return every member's fitness and tuned genes (see the module docstring)."""
        if self._delegate:
            return self.fitness.evaluate_population(population, generation, rng)
        cfg = self.fitness.config
        p, r = population.shape[0], cfg.draws
        seeds = torch.randint(0, 2**62, (p, 1 + r), generator=rng).tolist()
        if self._pool is None:
            self._pool = self.executor.pool(MemberEvaluator(self.fitness))
        # the serial pool counts on this process's fitness itself
        chunks = split(p, self.executor.workers)
        calls = [(population[c.start : c.stop].clone(), seeds[c.start : c.stop]) for c in chunks]
        results = self._pool.map("evaluate", calls)
        fitness = torch.empty(p, dtype=torch.float64)
        tuned = torch.empty_like(population)
        for c, (fits, genes, ft_s, chip_s, counts) in zip(chunks, results):
            fitness[c.start : c.stop] = torch.tensor(fits, dtype=torch.float64)
            tuned[c.start : c.stop] = genes.to(population.dtype)
            self.finetune_s += ft_s
            self.chip_s += chip_s
            if self._pool_is_remote:  # a worker's counts: add them to this process's counters
                for key, value in counts.items():
                    counter = self.fitness.counters
                    setattr(counter, key, getattr(counter, key) + value)
        return fitness, (tuned if cfg.finetune_steps > 0 else None)

    def close(self) -> None:
        """Stop the workers (the executor itself stays open)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> ParallelFitness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def population_evaluator(fitness: Any, spec: ExecutorSpec | None) -> Iterator[ParallelFitness]:
    """A :class:`ParallelFitness` on a new executor for ``spec``; both closed on exit."""
    executor = make_executor(spec)
    try:
        with ParallelFitness(fitness, executor) as evaluator:
            yield evaluator
    finally:
        executor.close()
