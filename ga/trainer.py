"""``GATrainer``: the generation loop with per-generation checkpoint and resume.

One generation ``g >= 1``::

    elites   = the keep_elitism fittest members of generation g-1 (unchanged)
    parents  = selection(fitness_{g-1})                 # operator stream (seed, g)
    children = mutation(crossover(parents))             # operator stream (seed, g)
    pop_g    = elites ++ children
    fitness_g, tuned = fitness.evaluate_population(pop_g, g, rng)   # fitness stream (seed, g)
    pop_g    = tuned if lamarckian                      # Lamarckian write-back

Every member, elites included, is re-evaluated every generation: with a noisy
chip-in-the-loop fitness, reusing an elite's old score would keep trusting one
lucky draw.  Generation 0 evaluates the initial population.  After each
generation the whole state is checkpointed atomically; ``run(resume=True)``
continues from the last checkpoint and ends bit-identical to an uninterrupted
run (only ``wall_time_s`` differs).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ga import operators as ops
from ga.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from ga.config import (
    GAConfig,
    MutationScale,
    MutationType,
    OperatorBackend,
    SelectionType,
)
from ga.genome import Genome
from ga.history import GAResult, GenerationRecord, track_record, write_history
from ga.init import initial_population
from ga.pygad_bridge import PygadOperators
from ga.references import level_steps, make_references, maxmin_bounds
from ga.rng import (
    STREAM_INIT,
    STREAM_REFERENCES,
    fitness_generator,
    global_states,
    operator_generator,
    restore_global_states,
    seed_globals,
    torch_generator,
)
from memsim.atomic_io import atomic_text_json, atomic_torch_save
from memsim.tracking import Tracker, resolve_tracker

RESULT_JSON = "result.json"
BEST_SOLUTION = "best_solution.pt"


@runtime_checkable
class FitnessFn(Protocol):
    """A population fitness, optionally with Lamarckian write-back.

    ``evaluate_population(population, generation, rng)`` receives a copy of the
    ``(P, n_genes)`` population, the generation index and a ``torch.Generator``
    derived from ``(seed, generation)`` that is independent of the operators'
    streams.  It returns the ``(P,)`` fitness (higher is better, finite) and
    either ``None`` or the ``(P, n_genes)`` weights that were actually scored
    (e.g. after a short fine-tune), which the trainer writes back into the
    population when ``config.lamarckian``.

    To make batched and serial evaluation give identical numbers, draw
    per-member seeds from ``rng`` first (``torch.randint(2**62, (P,),
    generator=rng)``) and seed each member's work from its own seed.
    """

    def evaluate_population(
        self, population: Tensor, generation: int, rng: torch.Generator
    ) -> tuple[Tensor, Tensor | None]:
        """Return ``(fitness (P,), evaluated weights (P, n_genes) or None)``."""
        ...


FitnessCallable = Callable[[Tensor, int, torch.Generator], tuple[Tensor, "Tensor | None"]]
_PYGAD_SELECTIONS = {SelectionType.RWS, SelectionType.RANK, SelectionType.TOURNAMENT}


def _digest(*parts: str | Tensor) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Tensor):
            t = p.detach().contiguous().cpu()
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())
        else:
            h.update(p.encode())
    return h.hexdigest()


class GATrainer:
    """Genetic-algorithm training of a flat gene vector against a pluggable fitness.

    Callbacks use PyGAD's names and receive the trainer first:
    ``on_start(trainer)``, ``on_fitness(trainer, fitness)``,
    ``on_parents(trainer, parent_indices)``, ``on_crossover(trainer, children)``
    and ``on_mutation(trainer, children)`` (these two may return a replacement
    tensor), ``on_generation(trainer, record)`` (return ``"stop"`` to stop) and
    ``on_stop(trainer, fitness)``.  Callbacks that draw random numbers should
    use their own seeded generators to keep runs reproducible.

    Attributes:
        config: The run configuration.
        genome: Layout of the gene vector.
        initial_solution: Baseline gene vector ``(n_genes,)``.
        references: The two reference gene vectors, or None if unused.
        population: Current population ``(P, n_genes)`` (None before run).
        fitness: Its fitness ``(P,)`` float64.
        generation: Index of the last completed generation (-1 before run).
        history: Records of the completed generations.

    """

    def __init__(
        self,
        config: GAConfig,
        fitness: FitnessFn | FitnessCallable,
        initial_solution: Tensor,
        *,
        genome: Genome | None = None,
        references: tuple[Tensor, Tensor] | None = None,
        test_fn: Callable[[Tensor], Sequence[float]] | None = None,
        on_start: Callable[..., Any] | None = None,
        on_fitness: Callable[..., Any] | None = None,
        on_parents: Callable[..., Any] | None = None,
        on_crossover: Callable[..., Any] | None = None,
        on_mutation: Callable[..., Any] | None = None,
        on_generation: Callable[..., Any] | None = None,
        on_stop: Callable[..., Any] | None = None,
        tracker: Tracker | None = None,
    ) -> None:
        """Prepare a run; per-gene bounds and steps are computed once here.

        Args:
            config: Validated configuration.
            fitness: A :class:`FitnessFn` or a callable with the same signature.
            initial_solution: Baseline gene vector ``(n_genes,)``.
            genome: Layout of the vector (default: one flat layer).
            references: The two reference models' gene vectors; built from the
                baseline with ``config.weight_bits`` / ``reference_noise`` when
                needed (``init='large'`` or ``mutation='maxmin'``) and not given.
            test_fn: ``test_fn(best_solution) -> accuracies``, run once at the end.
            on_start: See the class docstring (PyGAD callback names).
            on_fitness: See the class docstring.
            on_parents: See the class docstring.
            on_crossover: See the class docstring.
            on_mutation: See the class docstring.
            on_generation: See the class docstring.
            on_stop: See the class docstring.
            tracker: Receives each generation's fitness statistics
                (:func:`ga.history.track_record`); default the active one
                (:func:`memsim.tracking.tracking`), if any.

        """
        self.config = config
        base = initial_solution.detach().clone()
        if base.dim() != 1:
            raise ValueError(f"initial_solution must be 1-D, got shape {tuple(base.shape)}")
        self.genome = genome if genome is not None else Genome.flat(base.numel())
        if base.numel() != self.genome.n_genes:
            raise ValueError(
                f"initial_solution has {base.numel()} genes, genome has {self.genome.n_genes}"
            )
        self.initial_solution = base
        evaluate = getattr(fitness, "evaluate_population", fitness)
        if not callable(evaluate):
            raise TypeError("fitness must be a FitnessFn or a callable (pop, generation, rng)")
        self._evaluate_fn: FitnessCallable = evaluate
        self.test_fn = test_fn
        self.tracker = resolve_tracker(tracker)
        self.callbacks: dict[str, Callable[..., Any] | None] = dict(  # noqa: C408
            on_start=on_start, on_fitness=on_fitness, on_parents=on_parents,
            on_crossover=on_crossover, on_mutation=on_mutation, on_generation=on_generation,
            on_stop=on_stop,
        )  # fmt: skip

        needs_refs = config.init.value == "large" or config.mutation is MutationType.MAXMIN
        if references is None and needs_refs:
            gen = torch_generator(config.seed, STREAM_REFERENCES)
            references = make_references(
                self.genome, base, config.weight_bits, config.reference_noise, gen
            )
        if references is not None:
            references = tuple(r.detach().clone().to(base.dtype) for r in references)  # type: ignore[assignment]
            for r in references:
                if r.shape != base.shape:
                    raise ValueError(f"reference shape {tuple(r.shape)} != {tuple(base.shape)}")
        self.references = references
        self._bounds = maxmin_bounds(self.genome, *references) if references is not None else None
        self._step = (
            level_steps(self.genome, base, config.weight_bits)
            if config.mutation_scale is MutationScale.LEVEL_STEP
            else None
        )
        self._pygad = None
        if config.operator_backend is OperatorBackend.PYGAD:
            c = config
            self._pygad = PygadOperators(c.population_size, c.crossover_probability, c.tournament_k)
        refs = list(references) if references is not None else []
        self._problem = _digest(self.genome.fingerprint(), base, *refs)
        self._reset()

    @classmethod
    def from_model(
        cls, config: GAConfig, fitness: FitnessFn | FitnessCallable, model: nn.Module, **kwargs: Any
    ) -> GATrainer:
        """Build a trainer whose genes are ``model``'s analog-layer weights."""
        genome = Genome.from_model(model)
        return cls(config, fitness, genome.from_module(model), genome=genome, **kwargs)

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        self.population: Tensor | None = None
        self.fitness: Tensor | None = None
        self.generation = -1
        self.history: list[GenerationRecord] = []
        self.best_fitness = float("-inf")
        self.best_generation = -1
        self.best_solution: Tensor | None = None
        self.best_evaluated_solution: Tensor | None = None
        self.stop_reason: str | None = None
        self._es_best: float | None = None
        self._es_wait = 0

    def _state(self) -> dict[str, Any]:
        return {
            "config_hash": self.config.config_hash(),
            "config_json": json.dumps(self.config.semantic_dict(), sort_keys=True),
            "problem": self._problem,
            "generation": self.generation,
            "population": self.population,
            "fitness": self.fitness,
            "best_fitness": self.best_fitness,
            "best_generation": self.best_generation,
            "best_solution": self.best_solution,
            "best_evaluated_solution": self.best_evaluated_solution,
            "history": [asdict(r) for r in self.history],
            "early_stop": {"best": self._es_best, "wait": self._es_wait},
            "stop_reason": self.stop_reason,
            # the trainer's own streams are counter-based (re-derived from the
            # generation index); the process-global ones are saved for fitness
            # functions that use them
            "rng": {"globals": global_states()},
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.generation = int(state["generation"])
        self.population = state["population"]
        self.fitness = state["fitness"]
        self.best_fitness = float(state["best_fitness"])
        self.best_generation = int(state["best_generation"])
        self.best_solution = state["best_solution"]
        self.best_evaluated_solution = state["best_evaluated_solution"]
        self.history = [GenerationRecord(**r) for r in state["history"]]
        self._es_best = state["early_stop"]["best"]
        self._es_wait = int(state["early_stop"]["wait"])
        self.stop_reason = state["stop_reason"]
        restore_global_states(state["rng"]["globals"])

    # ------------------------------------------------------------------ steps

    def _call(self, name: str, *args: Any) -> Any:
        cb = self.callbacks[name]
        return cb(self, *args) if cb is not None else None

    def _evaluate(self, population: Tensor, generation: int) -> tuple[Tensor, Tensor | None]:
        rng = fitness_generator(self.config.seed, generation)
        fit, evaluated = self._evaluate_fn(population.clone(), generation, rng)
        fit = torch.as_tensor(fit).detach().to(torch.float64).reshape(-1)
        if fit.numel() != population.shape[0]:
            raise ValueError(
                f"fitness returned {fit.numel()} values for {population.shape[0]} members"
            )
        if not bool(torch.isfinite(fit).all()):
            raise ValueError(
                f"fitness returned non-finite values at generation {generation}: {fit}"
            )
        if evaluated is not None:
            evaluated = evaluated.detach().to(population.dtype)
            if evaluated.shape != population.shape:
                raise ValueError(
                    f"fitness returned weights of shape {tuple(evaluated.shape)}, "
                    f"expected {tuple(population.shape)}"
                )
        return fit, evaluated

    def _initial_population(self) -> Tensor:
        cfg = self.config
        gen = torch_generator(cfg.seed, STREAM_INIT)
        return initial_population(
            cfg.init.value, self.initial_solution, cfg.population_size, gen, self.references
        )

    @torch.no_grad()
    def _evolve(self, generation: int) -> Tensor:
        """Produce the (unevaluated) population of ``generation`` from the current one."""
        cfg = self.config
        assert self.population is not None and self.fitness is not None
        pop, fit = self.population, self.fitness
        gen = operator_generator(cfg.seed, generation)
        if self._pygad is not None:
            self._pygad.reseed(cfg.seed, generation)
        n_elite = cfg.keep_elitism
        n_off = cfg.population_size - n_elite
        elites = pop[torch.argsort(fit, descending=True, stable=True)[:n_elite]]

        pygad_cross = self._pygad is not None
        # our crossovers pair parents (2i, 2i+1); PyGAD's pick pairs itself
        n_parents = n_off if pygad_cross else n_off + n_off % 2
        if self._pygad is not None and cfg.selection in _PYGAD_SELECTIONS:
            parent_idx = self._pygad.select(cfg.selection.value, fit, n_parents)
        else:
            parent_idx = ops.SELECTIONS[cfg.selection.value](
                fit,
                n_parents,
                gen,
                tau=cfg.selection_tau,
                center=cfg.sigmoid_center.value,
                k=cfg.tournament_k,
            )
        out = self._call("on_parents", parent_idx)
        parent_idx = out if out is not None else parent_idx
        parents = pop[parent_idx]

        if self._pygad is not None:
            children = self._pygad.crossover(cfg.crossover.value, parents, n_off)
        else:
            children = ops.CROSSOVERS[cfg.crossover.value](parents, cfg.crossover_probability, gen)[
                :n_off
            ]
        out = self._call("on_crossover", children)
        children = out if out is not None else children

        if cfg.mutation is MutationType.MAXMIN:
            assert self._bounds is not None
            children = ops.maxmin(children, cfg.mutation_probability, *self._bounds, gen)
        elif self._step is not None:
            children = ops.add_noise(
                children, cfg.mutation_probability, cfg.mutation_level_sigma, gen, self._step
            )
        else:
            children = ops.add_noise(children, cfg.mutation_probability, cfg.mutation_sigma, gen)
        out = self._call("on_mutation", children)
        children = out if out is not None else children
        return torch.cat((elites, children.to(pop.dtype)))

    def _early_stop(self, record: GenerationRecord) -> bool:
        cfg = self.config
        if cfg.early_stop_patience is None:
            return False
        value = float(getattr(record, cfg.early_stop_metric.value))
        if self._es_best is None or value > self._es_best + cfg.early_stop_min_delta:
            self._es_best, self._es_wait = value, 0
            return False
        self._es_wait += 1
        return self._es_wait >= cfg.early_stop_patience

    def _finish_generation(
        self, population: Tensor, generation: int, t0: float
    ) -> GenerationRecord:
        cfg = self.config
        fit, evaluated = self._evaluate(population, generation)
        self._call("on_fitness", fit)
        if cfg.lamarckian and evaluated is not None:
            population = evaluated
        self.population, self.fitness, self.generation = population, fit, generation

        i = int(torch.argmax(fit))
        if float(fit[i]) > self.best_fitness:
            self.best_fitness = float(fit[i])
            self.best_generation = generation
            self.best_solution = population[i].clone()
            source = evaluated if evaluated is not None else population
            self.best_evaluated_solution = source[i].clone()
        record = GenerationRecord(
            generation=generation,
            best=float(fit.max()),
            mean=float(fit.mean()),
            std=float(fit.std(correction=0)),
            best_ever=self.best_fitness,
            best_ever_generation=self.best_generation,
            wall_time_s=time.perf_counter() - t0,
        )
        self.history.append(record)
        track_record(self.tracker, record)

        if self._call("on_generation", record) == "stop":
            self.stop_reason = "callback"
        elif self._early_stop(record):
            self.stop_reason = "early_stop"
        elif generation >= cfg.generations:
            self.stop_reason = "completed"

        if cfg.checkpoint_dir is not None:
            save_checkpoint(cfg.checkpoint_dir, self._state())
            write_history(cfg.checkpoint_dir, self.history)
        return record

    # ------------------------------------------------------------------ run

    def run(self, resume: bool = False) -> GAResult:
        """Run (or resume) the GA.

        Args:
            resume: Continue from ``config.checkpoint_dir``'s checkpoint.  The
                config's numeric fields and the problem (genome, baseline,
                references) must match it.  Without ``resume`` any existing
                checkpoint in the folder is overwritten by a fresh run.

        Returns:
            The :class:`GAResult`; with a ``test_fn`` its test fields are filled.

        Raises:
            ValueError: ``resume`` without ``checkpoint_dir``.
            FileNotFoundError: ``resume`` and no checkpoint.
            ga.checkpoint.CheckpointMismatchError: Different config or problem.

        """
        cfg = self.config
        if resume:
            if cfg.checkpoint_dir is None:
                raise ValueError("resume=True needs config.checkpoint_dir")
            state = load_checkpoint(cfg.checkpoint_dir)
            check_compatible(state, cfg.config_hash(), cfg.semantic_dict(), self._problem)
            self._restore(state)
        else:
            self._reset()
            seed_globals(cfg.seed)

        self._call("on_start")
        bar = tqdm(
            total=cfg.generations + 1,
            initial=self.generation + 1,
            disable=not cfg.progress,
            desc="GA",
            unit="gen",
        )
        try:
            if self.generation < 0:
                t0 = time.perf_counter()
                self._progress(bar, self._finish_generation(self._initial_population(), 0, t0))
            while self.stop_reason is None:
                t0 = time.perf_counter()
                g = self.generation + 1
                self._progress(bar, self._finish_generation(self._evolve(g), g, t0))
        finally:
            bar.close()

        assert self.population is not None and self.fitness is not None
        assert self.best_solution is not None and self.best_evaluated_solution is not None
        result = GAResult(
            history=list(self.history),
            best_solution=self.best_solution.clone(),
            best_evaluated_solution=self.best_evaluated_solution.clone(),
            best_fitness=self.best_fitness,
            best_generation=self.best_generation,
            final_population=self.population.clone(),
            final_fitness=self.fitness.clone(),
            generations_completed=self.generation,
            stop_reason=self.stop_reason or "completed",
        )
        self._call("on_stop", self.fitness)
        if self.test_fn is not None:
            result.set_test_accuracies(list(self.test_fn(result.best_solution)))
        if cfg.checkpoint_dir is not None:
            run_dir = Path(cfg.checkpoint_dir)
            atomic_torch_save(
                {
                    "best_solution": result.best_solution,
                    "best_evaluated_solution": result.best_evaluated_solution,
                    "keys": self.genome.keys,
                },
                run_dir / BEST_SOLUTION,
            )
            atomic_text_json(run_dir / RESULT_JSON, result.summary())
        return result

    @staticmethod
    def _progress(bar: Any, record: GenerationRecord) -> None:
        bar.update(1)
        bar.set_postfix(
            best=f"{record.best:.4f}",
            mean=f"{record.mean:.4f}",
            best_ever=f"{record.best_ever:.4f}",
        )
