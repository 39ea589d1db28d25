"""One dict of knobs split into the GA's config and the fitness's config, for tests."""

from __future__ import annotations

from typing import Any

from ga.config import GAConfig
from lab.fitness.config import FitnessConfig


def configs(**knobs: Any) -> tuple[GAConfig, FitnessConfig]:
    """``(GAConfig, FitnessConfig)`` from keyword knobs of either (names as in the TOML)."""
    fitness_keys = FitnessConfig.model_fields.keys() & knobs.keys()
    ga = GAConfig(**{k: v for k, v in knobs.items() if k not in fitness_keys})
    return ga, FitnessConfig(**{k: knobs[k] for k in fitness_keys})


def chip_fitness(model: Any, genome: Any, profile: Any, cfgs: tuple[GAConfig, FitnessConfig], **kw):
    """:class:`lab.fitness.chip.ChipFitness` of ``configs(...)``'s pair."""
    from lab.fitness.chip import ChipFitness

    ga, fitness = cfgs
    return ChipFitness(model, genome, profile, fitness, weight_bits=ga.weight_bits, **kw)
