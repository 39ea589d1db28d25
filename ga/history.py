"""Per-generation records, the run result, and their CSV/JSON files."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from torch import Tensor

from memsim.atomic_io import atomic_write_text
from memsim.tracking import Tracker

HISTORY_CSV = "history.csv"
HISTORY_JSON = "history.json"


@dataclass(frozen=True)
class GenerationRecord:
    """Fitness statistics of one generation (generation 0 = the initial population).

    Attributes:
        generation: Index; 0 is the evaluated initial population.
        best: Best fitness measured this generation.
        mean: Mean fitness of the population.
        std: Population standard deviation of the fitness (``ddof=0``).
        best_ever: Best fitness measured in any generation so far.
        best_ever_generation: Generation where ``best_ever`` was measured.
        wall_time_s: Wall-clock seconds spent on this generation (the only
            field that is not reproducible).

    """

    generation: int
    best: float
    mean: float
    std: float
    best_ever: float
    best_ever_generation: int
    wall_time_s: float

    def reproducible(self) -> dict[str, Any]:
        """Return the record without ``wall_time_s`` (what must match across identical runs)."""
        d = asdict(self)
        d.pop("wall_time_s")
        return d


def track_record(tracker: Tracker | None, record: GenerationRecord) -> None:
    """Report a generation's fitness statistics to ``tracker`` (no-op for None).

    Series ``ga/best``, ``ga/mean``, ``ga/std``, ``ga/best_ever`` (validation fitness,
    fractions) and ``ga/wall_time_s``, all at step ``record.generation``.
    """
    if tracker is None:
        return
    for key in ("best", "mean", "std", "best_ever", "wall_time_s"):
        tracker.log_scalar(f"ga/{key}", float(getattr(record, key)), record.generation)


@dataclass
class GAResult:
    """Outcome of :meth:`ga.GATrainer.run`.

    Attributes:
        history: One record per generation, starting with generation 0.
        best_solution: Best-ever gene vector as it stands in the population
            (after Lamarckian write-back when enabled).
        best_evaluated_solution: The weights that produced ``best_fitness``
            (the fitness's fine-tuned vector; equals ``best_solution`` when
            Lamarckian or when the fitness writes nothing back).
        best_fitness: Best fitness ever measured (an optimistic, noisy maximum).
        best_generation: Generation of ``best_fitness``.
        final_population: Population after the last generation ``(P, n_genes)``.
        final_fitness: Its fitness ``(P,)``.
        generations_completed: Index of the last completed generation.
        stop_reason: ``"completed"``, ``"early_stop"`` or ``"callback"``.
        test_accuracies: What ``test_fn(best_solution)`` returned, if given.
        test_accuracy_mean: Mean of ``test_accuracies``.
        test_accuracy_std: Population std (``ddof=0``) of ``test_accuracies``.

    """

    history: list[GenerationRecord]
    best_solution: Tensor
    best_evaluated_solution: Tensor
    best_fitness: float
    best_generation: int
    final_population: Tensor
    final_fitness: Tensor
    generations_completed: int
    stop_reason: str
    test_accuracies: list[float] | None = None
    test_accuracy_mean: float | None = None
    test_accuracy_std: float | None = None

    def set_test_accuracies(self, values: list[float]) -> None:
        """Store test accuracies and their mean and population std."""
        vals = [float(v) for v in values]
        self.test_accuracies = vals
        if vals:
            mean = sum(vals) / len(vals)
            self.test_accuracy_mean = mean
            self.test_accuracy_std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no tensors)."""
        return {
            "best_fitness": self.best_fitness,
            "best_generation": self.best_generation,
            "generations_completed": self.generations_completed,
            "stop_reason": self.stop_reason,
            "test_accuracies": self.test_accuracies,
            "test_accuracy_mean": self.test_accuracy_mean,
            "test_accuracy_std": self.test_accuracy_std,
            "history": [asdict(r) for r in self.history],
        }


def records_to_csv(records: list[GenerationRecord]) -> str:
    """Render records as CSV text with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [f.name for f in fields(GenerationRecord)]
    writer.writerow(names)
    for r in records:
        writer.writerow([repr(getattr(r, n)) for n in names])
    return buf.getvalue()


def write_history(run_dir: Path, records: list[GenerationRecord]) -> None:
    """Atomically (re)write ``history.csv`` and ``history.json`` in ``run_dir``."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / HISTORY_CSV, records_to_csv(records))
    atomic_write_text(run_dir / HISTORY_JSON, json.dumps([asdict(r) for r in records], indent=1))
