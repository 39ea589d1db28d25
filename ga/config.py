"""``GAConfig``: every knob of the GA, validated before any work starts.

Defaults reproduce the paper where it states a value (two-point crossover with
CP = 0.8, ``add_noise`` mutation ``gene * (1 + N(0, 0.05))``, the literal
``sigmoid(f_i / sum f)`` roulette, reference models at 5 % and 10 % noise,
Lamarckian write-back).  Values the paper does not pin down (population size,
generations, MP) are project defaults and say so in their description.  What one
fitness evaluation does (the fine-tune, the programming draws) belongs to the fitness,
not to the GA: see ``lab.fitness.config.FitnessConfig``.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class SelectionType(str, Enum):
    """Parent selection operators (PyGAD names plus the paper's sigmoid roulette)."""

    SIGMOID_RWS = "sigmoid_rws"
    RWS = "rws"
    RANK = "rank"
    TOURNAMENT = "tournament"


class SigmoidCenter(str, Enum):
    """Offset subtracted from the fitness share before the sigmoid of ``sigmoid_rws``."""

    NONE = "none"
    MEAN = "mean"


class CrossoverType(str, Enum):
    """Crossover operators, named as in PyGAD."""

    TWO_POINTS = "two_points"
    SINGLE_POINT = "single_point"
    UNIFORM = "uniform"
    SCATTERED = "scattered"


class MutationType(str, Enum):
    """Mutation operators of the paper."""

    ADD_NOISE = "add_noise"
    MAXMIN = "maxmin"


class MutationScale(str, Enum):
    """How ``add_noise`` sizes its perturbation."""

    RELATIVE = "relative"
    LEVEL_STEP = "level_step"


class InitMode(str, Enum):
    """Population initialisation modes of the paper."""

    ORIGIN = "origin"
    LARGE = "large"


class OperatorBackend(str, Enum):
    """Which implementation runs the PyGAD-named selection and crossover operators."""

    TORCH = "torch"
    PYGAD = "pygad"


class EarlyStopMetric(str, Enum):
    """History column watched by the plateau early stop."""

    BEST_EVER = "best_ever"
    BEST = "best"
    MEAN = "mean"


# Fields that only change where/how results are shown, never the numbers; a run
# may be resumed with different values for these.
_NON_SEMANTIC_FIELDS = frozenset({"checkpoint_dir", "progress"})


class GAConfig(BaseModel):
    """Configuration of a GA training run.

    Invalid values raise ``pydantic.ValidationError`` whose location names the
    offending field, at construction time, before any model or data is touched.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    population_size: int = Field(
        20, ge=2, description="Number of solutions P in the population (project default)."
    )
    generations: int = Field(
        50,
        ge=0,
        description="Number of evolution steps after evaluating the initial population "
        "(generation 0); the history therefore has generations + 1 rows.",
    )
    selection: SelectionType = Field(
        SelectionType.SIGMOID_RWS, description="Parent selection operator."
    )
    selection_tau: float = Field(
        1.0,
        gt=0,
        description="sigmoid_rws sharpness tau multiplying the sigmoid argument (an inverse "
        "temperature: larger = more selection pressure). 1.0 with sigmoid_center='none' is the "
        "paper's literal sigmoid(f_i / sum f).",
    )
    sigmoid_center: SigmoidCenter = Field(
        SigmoidCenter.NONE,
        description="sigmoid_rws offset: 'none' uses sigmoid(tau * f_i/sum f) (paper), 'mean' uses "
        "sigmoid(tau * (f_i/sum f - 1/P)) so that an average member sits at 0.5.",
    )
    tournament_k: int = Field(
        3, ge=1, description="Candidates per tournament for selection='tournament' (PyGAD K)."
    )
    crossover: CrossoverType = Field(
        CrossoverType.TWO_POINTS, description="Crossover operator (paper: two_points)."
    )
    crossover_probability: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="CP: probability that a parent pair is crossed (paper: 0.8); with "
        "operator_backend='pygad' PyGAD's per-parent meaning applies instead.",
    )
    operator_backend: OperatorBackend = Field(
        OperatorBackend.TORCH,
        description="'torch': batched tensor operators of ga.operators; 'pygad': PyGAD's own "
        "built-in rws/rank/tournament and crossovers on a seeded helper instance. sigmoid_rws "
        "and the mutations always run in torch.",
    )
    mutation: MutationType = Field(MutationType.ADD_NOISE, description="Mutation operator.")
    mutation_probability: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="MP: per-gene mutation probability (project default).",
    )
    mutation_sigma: float = Field(
        0.05,
        ge=0.0,
        description="add_noise relative std: gene * (1 + N(0, sigma)) (paper: 0.05).",
    )
    mutation_scale: MutationScale = Field(
        MutationScale.RELATIVE,
        description="'relative' (paper): multiplicative add_noise; 'level_step': additive "
        "gene + N(0, mutation_level_sigma * step) with step the layer's quantizer level spacing "
        "at weight_bits. Only valid with mutation='add_noise'.",
    )
    mutation_level_sigma: float = Field(
        0.5,
        gt=0.0,
        description="Std of the level_step mutation in units of the layer's level step.",
    )
    init: InitMode = Field(
        InitMode.LARGE,
        description="'origin': every member is the baseline; 'large': member 0 is the baseline "
        "and the others baseline + U(-1, 1) * |ref_a - ref_b| per gene.",
    )
    weight_bits: int = Field(
        2,
        ge=0,
        le=16,
        description="Bit width of the deployed weights (0 = ternary) used for the reference "
        "models and the level_step mutation scale.",
    )
    reference_noise: tuple[float, float] = Field(
        (0.05, 0.10),
        description="Multiplicative noise sigmas of the two reference models "
        "(paper: 5 % and 10 %).",
    )
    seed: int = Field(0, ge=0, description="Root seed of every random stream of the run.")
    lamarckian: bool = Field(
        True,
        description="Write the fitness's fine-tuned weights back into the population.",
    )
    keep_elitism: int = Field(
        1,
        ge=0,
        description="Best members copied unchanged into the next generation (PyGAD default 1); "
        "they are re-evaluated every generation like everyone else. Must be < population_size.",
    )
    early_stop_patience: int | None = Field(
        None,
        ge=1,
        description="Stop after this many generations without an improvement of "
        "early_stop_metric larger than early_stop_min_delta; None disables early stopping.",
    )
    early_stop_min_delta: float = Field(
        0.0, ge=0.0, description="Minimum improvement that resets the patience counter."
    )
    early_stop_metric: EarlyStopMetric = Field(
        EarlyStopMetric.BEST_EVER, description="History column watched by the early stop."
    )
    checkpoint_dir: Path | None = Field(
        None,
        description="Run folder for the per-generation checkpoint and history.csv/json; None "
        "disables checkpointing (and resume).",
    )
    progress: bool = Field(True, description="Show a tqdm progress bar per generation.")

    @field_validator("tournament_k", "keep_elitism")
    @classmethod
    def _below_population(cls, value: int, info: ValidationInfo) -> int:
        pop = info.data.get("population_size")
        if pop is None:
            return value
        if info.field_name == "keep_elitism" and value >= pop:
            raise ValueError(
                f"keep_elitism={value} must be < population_size={pop} "
                "(at least one offspring per generation)"
            )
        # tournament_k is a knob of the tournament only: with its default 3 and another
        # selection, the legal minimum population of 2 must not be refused because of it
        if (
            info.field_name == "tournament_k"
            and info.data.get("selection") is SelectionType.TOURNAMENT
            and value > pop
        ):
            raise ValueError(
                f"tournament_k={value} must be <= population_size={pop} with selection='tournament'"
            )
        return value

    @field_validator("reference_noise")
    @classmethod
    def _noise_non_negative(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) < 0:
            raise ValueError(f"reference_noise sigmas must be >= 0, got {value}")
        return value

    @field_validator("mutation_scale")
    @classmethod
    def _level_step_needs_add_noise(
        cls, value: MutationScale, info: ValidationInfo
    ) -> MutationScale:
        if value is MutationScale.LEVEL_STEP and info.data.get("mutation") is MutationType.MAXMIN:
            raise ValueError("mutation_scale='level_step' only applies to mutation='add_noise'")
        return value

    def semantic_dict(self) -> dict:
        """Return the JSON-able fields that determine the numbers of a run."""
        return self.model_dump(mode="json", exclude=set(_NON_SEMANTIC_FIELDS))

    def config_hash(self) -> str:
        """Return a SHA-256 of :meth:`semantic_dict` (what a resume must match)."""
        blob = json.dumps(self.semantic_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()
