"""Shared config of the recovery-stage tests (imported, not collected)."""

from __future__ import annotations

from typing import Any


def recovery_config(methods: list[str], **sections: dict[str, Any]) -> Any:
    """A small digits recovery experiment on chip 11 of the faulty RRAM profile."""
    from lab.experiment.config import ExperimentConfig, deep_merge

    raw: dict[str, Any] = {
        "experiment": {"name": "rec", "task": "protonet-digits", "scale": "quick", "seed": 0},
        "data": {"val_size": 300, "test_size": 150},
        "chip": {
            "profile": "rram_1t1r_faulty_chen2015",
            "chip_seed": 11,
            "transfer_chip_seeds": [12],
            "qat_sigma": 0.03,
        },
        "evaluation": {"draws": 5, "support_draws": 1},
        "fitness": {"finetune_steps": 4, "finetune_lr": 1e-3},
        "ga": {
            "population_size": 4,
            "generations": 3,
            "init": "origin",
            "mutation": "maxmin",
            "mutation_probability": 0.01,
            "weight_bits": 4,
            "seed": 0,
        },
        "recovery": {"methods": methods},
    }
    return ExperimentConfig.model_validate(deep_merge(raw, sections))
