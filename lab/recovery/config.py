"""The ``[recovery]`` table of an experiment config."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KnobGranularity(str, Enum):
    """What one digital knob of ``ga_knobs`` covers."""

    column = "column"
    """One gain and one offset per output column of every analog layer."""
    layer = "layer"
    """One gain and one offset per analog layer."""


class RecoverySection(BaseModel):
    """Recovery methods compared on one baseline, budget and chip (empty: no stage)."""

    model_config = ConfigDict(extra="forbid")

    methods: list[str] = Field(
        default_factory=list,
        description="Recovery methods to run, in order (lab.recovery.method_names()); an "
        "empty list runs the GA experiment instead of the recovery stage.",
    )
    steps: int | None = Field(
        None,
        ge=0,
        description="Training-step budget of every method; None = the GA's population x "
        "(generations + 1) x finetune_steps.",
    )
    chip_evaluations: int | None = Field(
        None,
        ge=0,
        description="Chip-accuracy measurements (one programming draw on the validation "
        "split each) of the search methods; None = the GA's population x (generations + 1) "
        "x fitness_draws.",
    )
    lr: float | None = Field(
        None, gt=0.0, description="Learning rate of every fine-tune; None = ga.finetune_lr."
    )
    readback_reads: int = Field(
        4, ge=1, le=1024, description="Reads per device and target of defect_aware_readback."
    )
    readback_threshold: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="Normalized read level that separates a stuck device from a working one.",
    )
    progressive_reprogram_every: int = Field(
        0,
        ge=0,
        description="progressive: program the already-programmed layers again (fresh "
        "programming noise, same defects) every this many steps of a stage; 0 = program "
        "each layer once, as NeuRRAM does.",
    )
    knobs: KnobGranularity = Field(
        KnobGranularity.column, description="Granularity of the ga_knobs gains/offsets."
    )
    knob_gain_range: float = Field(
        0.2, gt=0.0, le=1.0, description="ga_knobs: each gain searched in 1 +- this."
    )
    knob_offset_range: float = Field(
        0.5,
        gt=0.0,
        le=5.0,
        description="ga_knobs: each offset searched in +- this x the column's output std "
        "(measured on the digital network, calibration images).",
    )

    @field_validator("methods")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from lab.recovery import method_names

        known = method_names()
        bad = [m for m in value if m not in known]
        if bad:
            raise ValueError(f"unknown recovery method(s) {bad}; known: {known}")
        if len(set(value)) != len(value):
            raise ValueError(f"recovery.methods lists a method twice: {value}")
        return value
