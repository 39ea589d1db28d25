"""The ``[recovery]`` table of an experiment config."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class KnobGranularity(str, Enum):
    """What one digital knob of ``ga_knobs`` covers."""

    column = "column"
    """One gain and one offset per output column of every analog layer."""
    layer = "layer"
    """One gain and one offset per analog layer."""


class RecoverySection(BaseModel):
    """The methods compared on one baseline, budget and chip, and their settings."""

    model_config = ConfigDict(extra="forbid")

    methods: list[str] = Field(
        default_factory=lambda: ["qat", "ga"],
        min_length=1,
        description="Methods to run, in order (lab.methods.method_names()), every one on "
        "the same budget; the default is the paper's GA and its equal-budget QAT control. "
        "'name:software' or 'name:chip' runs a method with that fitness.finetune kind, so "
        "both kinds of one method can run side by side.",
    )
    reference: str | None = Field(
        None,
        description="Method (or 'baseline') every other is compared with, paired; None = "
        "'qat' when it runs, else 'baseline'.",
    )
    steps: int | None = Field(
        None,
        ge=0,
        description="Training-step budget of every method; None = the GA's population x "
        "(generations + 1) x fitness.finetune_steps.",
    )
    chip_evaluations: int | None = Field(
        None,
        ge=0,
        description="Chip-accuracy measurements (one programming draw on the validation "
        "split each) of the search methods; None = the GA's population x (generations + 1) "
        "x fitness.draws.",
    )
    lr: float | None = Field(
        None, gt=0.0, description="Learning rate of every fine-tune; None = fitness.finetune_lr."
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

    mapping_population: int = Field(
        32, ge=2, description="ga_mapping: members of the permutation GA (per tile)."
    )
    mapping_generations: int = Field(
        100, ge=0, description="ga_mapping: generations of the permutation GA."
    )
    mapping_selection_tau: float = Field(
        64.0,
        gt=0.0,
        description="ga_mapping: sharpness of its sigmoid roulette (centered at the mean share).",
    )
    mapping_activity: bool = Field(
        True,
        description="Remapping weighs each row's error by its mean |input| on training "
        "images (false: uniform).",
    )

    correction_fraction: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="trim_grad / adapter_lora: share of the step budget that fits the digital "
        "corrections on measured outputs (the rest is the blind QAT of the weights).",
    )
    adapter_rank: int = Field(4, ge=1, description="adapter_lora: rank of each digital adapter.")
    ensemble_size: int = Field(
        3, ge=1, le=16, description="layer_ensemble: copies of every layer's arrays."
    )
    ensemble_tolerance: float = Field(
        1.5,
        ge=1.0,
        description="layer_ensemble: a copy's column counts as healthy when its estimated "
        "error is at most this times the best copy's.",
    )
    committee_size: int = Field(
        3, ge=1, le=16, description="committee: copies of the network whose outputs are averaged."
    )

    @model_validator(mode="after")
    def _reference_runs(self) -> RecoverySection:
        if self.reference is not None and self.reference not in ("baseline", *self.methods):
            raise ValueError(
                f"recovery.reference {self.reference!r} is not run: choose 'baseline' or one "
                f"of recovery.methods {self.methods}"
            )
        return self

    @property
    def reference_method(self) -> str:
        """The method every other is compared with (see ``reference``)."""
        if self.reference is not None:
            return self.reference
        return "qat" if "qat" in self.methods else "baseline"

    @field_validator("methods")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from lab.methods import KINDS, method_names, split_entry

        known = method_names()
        bad = [m for m in value if split_entry(m)[0] not in known]
        if bad:
            raise ValueError(f"unknown recovery method(s) {bad}; known: {known}")
        bad = [m for m in value if split_entry(m)[1] not in (None, *KINDS)]
        if bad:
            raise ValueError(
                f"recovery.methods {bad}: the fine-tune kind after ':' must be one of {list(KINDS)}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"recovery.methods lists a method twice: {value}")
        return value
