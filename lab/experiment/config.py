"""``ExperimentConfig``: one experiment (methods compared on a chip) as a validated TOML file.

A config has one table per concern; ``[ga]`` is a :class:`ga.GAConfig`::

    [experiment]  name, task (baseline task), scale (baseline recipe), seed, replicates,
                  paper numbers
    [data]        validation split size, optional test subset
    [chip]        device profile, chip seed(s), QAT noise of the fine-tunes
    [fitness]     FitnessConfig: the fine-tune every method shares (steps, lr, mode,
                  batches / episodes), programming draws per fitness evaluation
    [evaluation]  test draws (>= 5), support draws, drift times, test_every
    [ga]          GAConfig: the paper's GA (population, operators, Lamarckian write-back)
    [recovery]    the methods compared on one budget (default qat and ga) and their settings

Every table forbids unknown keys, so a typo is an error naming the key.  Optional
``[quick]`` and ``[medium]`` tables hold overrides (same layout) applied by
``scale="quick"`` or ``scale="medium"``: the file states the paper's settings and, next to
them, what the smaller runs change.
``--set section.key=value`` overrides anything after that; values are parsed as TOML
(``3``, ``0.5``, ``true``, ``"text"``, ``[1, 2]``) and fall back to plain strings.
"""

from __future__ import annotations

import copy
import json
import tomllib
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ga.config import GAConfig
from lab.fitness.config import MOVED_FROM_GA, FitnessConfig
from lab.methods.config import RecoverySection

Scale = Literal["quick", "medium", "paper"]
SCALE_TABLES = ("quick", "medium")  # override tables a config may hold, merged by scale


class ConfigError(ValueError):
    """An experiment config could not be read, overridden or validated."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExperimentSection(_Section):
    """What is run, and the paper's numbers it is compared with."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Run-folder prefix.")
    description: str = Field("", description="Human-readable summary.")
    task: str = Field(description="Baseline task of models.baselines (its TASKS).")
    scale: Scale = Field("paper", description="Baseline recipe scale.")
    seed: int = Field(0, ge=0, description="Baseline seed (checkpoint name) and split seed.")
    paper_baseline: float | None = Field(None, description="Paper's baseline accuracy (%).")
    paper_ga: float | None = Field(None, description="Paper's GA accuracy (%).")
    replicates: int = Field(
        1,
        ge=1,
        le=100,
        description="Independent replicates, each with its own baseline, method and "
        "evaluation seeds (seed + r); results report the mean over replicates and a 95 % "
        "t-interval of each method's paired difference to recovery.reference.",
    )
    vary_chips: bool = Field(
        False,
        description="Replicates also draw new chip instances (chip seeds + 1000 r) instead "
        "of sharing the configured chips.",
    )

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        # the one list of tasks is the recipes' (adding a network adds a recipe there)
        from models.baselines import TASKS

        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASKS)}")
        return value

    @model_validator(mode="after")
    def _scale_has_a_recipe(self) -> ExperimentSection:
        from models.baselines import MEDIUM_TASKS

        if self.scale == "medium" and self.task not in MEDIUM_TASKS:
            raise ValueError(
                f"scale 'medium' is defined for {', '.join(MEDIUM_TASKS)} only, "
                f"not {self.task!r}; choose quick or paper"
            )
        return self


class DataSection(_Section):
    """Dataset location and splits."""

    root: str | None = Field(
        None, description="Folder with <dataset>.npz; None: $MEMSIM_DATA, shared/data, cache."
    )
    val_size: int = Field(
        1000, ge=10, description="Images carved (stratified) out of train for the fitness."
    )
    test_size: int | None = Field(
        None, ge=10, description="Stratified test subset size; None = the whole test set."
    )
    download: bool = Field(
        True, description="Let torchvision download a dataset found nowhere locally."
    )
    baseline_holdout: bool = Field(
        True,
        description="Train the baseline without the validation images (checkpoint "
        "<task>-<scale>-seed<k>-holdout<val_size>.pt), so the fitness is measured on images "
        "the baseline never saw; false reuses the standard <task>-<scale>-seed<k>.pt of "
        "models.baselines, whose training data include the validation split.",
    )


class ChipSection(_Section):
    """The simulated chip the GA is trained on, and the chips it is tested on."""

    profile: str = Field(
        "auto", description="Profile name or JSON path; 'auto' = the task's paper_* profile."
    )
    chip_seed: int = Field(0, ge=0, description="Chip instance (faults, d2d) of the fitness.")
    transfer_chip_seeds: list[int] = Field(
        default_factory=list, description="Other chip instances the results are also tested on."
    )
    qat_sigma: float | None = Field(
        None, ge=0.0, le=1.0, description="Relative noise of every QAT fine-tune; None = task's."
    )

    @model_validator(mode="after")
    def _distinct_chips(self) -> ChipSection:
        if self.chip_seed in self.transfer_chip_seeds:
            raise ValueError("transfer_chip_seeds must differ from chip_seed")
        return self


class EvaluationSection(_Section):
    """How baseline, GA and control are scored on the test set."""

    draws: int = Field(5, ge=5, description="Fresh programming/read-noise draws per chip (>= 5).")
    support_draws: int = Field(5, ge=1, description="ProtoNet: support sets per draw.")
    k_shot: int = Field(5, ge=1, description="ProtoNet: test support images per class.")
    seed: int = Field(
        1_000_003, ge=0, description="Seed of the test draws; independent of the fitness streams."
    )
    drift_times_s: list[float] = Field(
        default_factory=list, description="Also score after these drift times (s)."
    )
    test_every: int = Field(
        0, ge=0, description="Also score the best-ever solution every N generations (0: off)."
    )


class ExperimentConfig(_Section):
    """A complete GA experiment."""

    experiment: ExperimentSection
    data: DataSection = DataSection()
    chip: ChipSection = ChipSection()
    fitness: FitnessConfig = FitnessConfig()
    evaluation: EvaluationSection = EvaluationSection()
    ga: GAConfig = GAConfig()
    recovery: RecoverySection = RecoverySection()

    @model_validator(mode="after")
    def _runner_owned(self) -> ExperimentConfig:
        if self.ga.checkpoint_dir is not None:
            raise ValueError("ga.checkpoint_dir is set by the experiment runner (the run folder)")
        if self.ga.early_stop_patience is not None and any(
            m.startswith("ga") for m in self.recovery.methods
        ):
            # every method gets the same budget, fixed before any of them runs
            raise ValueError(
                "ga.early_stop_patience: early stopping is not available in an experiment, "
                "where every method gets the GA's full budget; leave it unset"
            )
        return self

    @model_validator(mode="after")
    def _finetune_kinds(self) -> ExperimentConfig:
        from lab.methods import get_method, split_entry

        for entry in self.recovery.methods:
            name, kind = split_entry(entry)
            kind = kind or self.fitness.finetune.value
            kinds = get_method(name).finetune_kinds
            if kind not in kinds:
                raise ValueError(
                    f"recovery.methods: {name!r} has no {kind!r} fine-tune (fitness.finetune); "
                    f"it has {sorted(kinds)}"
                )
        return self

    @model_validator(mode="after")
    def _ga_knobs_members(self) -> ExperimentConfig:
        # DE/rand/1 mixes three members other than the one it replaces; with fewer than
        # four, ga_knobs would fail only after the baseline and the other methods had run
        if "ga_knobs" not in self.recovery.methods:
            return self
        members = self.ga.population_size
        evaluations = self.recovery.chip_evaluations
        if evaluations is not None:
            members = min(members, evaluations // self.fitness.draws)
        if members < 4:
            raise ValueError(
                f"ga_knobs needs at least 4 members for its differential evolution (each trial "
                f"mixes three others); it gets {members} (ga.population_size="
                f"{self.ga.population_size}, recovery.chip_evaluations={evaluations}, "
                f"fitness.draws={self.fitness.draws}); raise them or drop ga_knobs from "
                "recovery.methods"
            )
        return self

    def resolved(self) -> dict[str, Any]:
        """JSON-able dict of every value, defaults included."""
        return self.model_dump(mode="json")


def describe_config(cfg: ExperimentConfig) -> str:
    """Every key of ``cfg`` as TOML, each with its value, its default and its description.

    What ``memsim ga --print-config CONFIG`` prints: users learn the keys here, not from
    error messages.
    """
    lines: list[str] = []
    for section in type(cfg).model_fields:
        model = getattr(cfg, section)
        doc = (type(model).__doc__ or "").strip().split("\n")[0]
        lines += ["", f"[{section}]" + (f"  # {doc}" if doc else "")]
        for key, info in type(model).model_fields.items():
            value = getattr(model, key)
            shown = value.value if isinstance(value, Enum) else value
            if info.is_required():
                default = "required"
            else:
                d = info.get_default(call_default_factory=True)
                default = f"default {json.dumps(d.value if isinstance(d, Enum) else d)}"
            lines.append(f"# {info.description or ''} ({default})".replace("  ", " "))
            # TOML has no null: an unset key is shown commented out
            lines.append(f"# {key} = (unset)" if shown is None else f"{key} = {_toml_value(shown)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


# ----------------------------------------------------------------------------- loading


def parse_value(text: str) -> Any:
    """Parse one ``--set`` value as a TOML value, or keep it as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``over`` merged in, tables recursively."""
    out = copy.deepcopy(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = copy.deepcopy(val)
    return out


def _known_keys(model: type[BaseModel]) -> dict[str, Any]:
    return {name: info.annotation for name, info in model.model_fields.items()}


def apply_set(raw: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``section.key=value`` override to a raw config dict.

    Raises:
        ConfigError: Malformed assignment, or a section/key the schema does not have.

    """
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects section.key=value, got {assignment!r}")
    parts = key.split(".")
    if len(parts) != 2:
        raise ConfigError(f"--set key {key!r} must be section.key (e.g. ga.population_size)")
    section, field = parts
    sections = ExperimentConfig.model_fields
    if section not in sections:
        raise ConfigError(f"--set {key}: unknown section {section!r}; known: {sorted(sections)}")
    fields = _known_keys(sections[section].annotation)  # type: ignore[arg-type]
    if section == "ga" and field in MOVED_FROM_GA:
        raise ConfigError(f"--set {key}: {_moved(field)}")
    if field not in fields:
        raise ConfigError(
            f"--set {key}: unknown key {field!r} in [{section}]; known: {sorted(fields)}"
        )
    out = copy.deepcopy(raw)
    out.setdefault(section, {})[field] = parse_value(value.strip())
    return out


def _known_at(loc: tuple[Any, ...]) -> list[str] | None:
    """Sorted field names of the config table at ``loc`` (None if it is not a table)."""
    model: Any = ExperimentConfig
    for part in loc:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        if info is None or not (
            isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        ):
            return None
        model = info.annotation
    return sorted(model.model_fields)


def _moved(field: str) -> str:
    return (
        f"this key moved to the [fitness] table as {MOVED_FROM_GA[field]} "
        f"(fitness.{MOVED_FROM_GA[field]}), which every method's fine-tune shares"
    )


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line per bad field, ``section.key: message (got value)``."""
    lines = []
    for err in exc.errors():
        if not err["loc"]:
            # a check across sections names its keys itself; its input is the whole config
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if (
            err["type"] == "extra_forbidden"
            and err["loc"][:1] == ("ga",)
            and (err["loc"][-1] in MOVED_FROM_GA)
        ):
            lines.append(f"{loc}: {_moved(str(err['loc'][-1]))}")
            continue
        if err["type"] == "extra_forbidden":
            known = _known_at(err["loc"][:-1])
            msg = "unknown key (not part of the experiment config schema)"
            if known is not None:
                where = (
                    f"[{'.'.join(str(p) for p in err['loc'][:-1])}]"
                    if len(err["loc"]) > 1
                    else "the top level"
                )
                msg += f"; known keys of {where}: {known}"
        got = f" (got {err['input']!r})" if err["type"] not in ("missing",) else ""
        lines.append(f"{loc}: {msg}{got}")
    if len(lines) == 1:
        return f"{origin}: invalid experiment config: {lines[0]}"
    return f"{origin}: invalid experiment config:\n  " + "\n  ".join(lines)


def build_config(
    raw: dict[str, Any],
    *,
    scale: Scale | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    origin: str = "<config>",
) -> ExperimentConfig:
    """Validate a raw config dict after the ``[quick]`` table and ``--set`` overrides.

    Args:
        raw: Parsed TOML (may hold a ``[quick]`` table).
        scale: ``"quick"`` or ``"medium"`` merges the ``[quick]`` or ``[medium]`` table and
            sets ``experiment.scale``; ``"paper"`` sets it and merges neither; ``None`` keeps
            ``experiment.scale`` as written (and merges neither).
        overrides: ``section.key=value`` strings, applied last, in order.
        origin: Where ``raw`` came from (for messages).

    Raises:
        ConfigError: Naming the bad key or value.

    """
    data = copy.deepcopy(raw)
    tables = {name: data.pop(name, {}) for name in SCALE_TABLES}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
    if scale is not None:
        data = deep_merge(data, tables.get(scale, {}))
        data.setdefault("experiment", {})["scale"] = scale
    for item in overrides:
        data = apply_set(data, item)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict.

    Raises:
        ConfigError: Missing file or a TOML syntax error (with its position).

    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected an experiment .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); TOML files must be UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from exc


def load_config(
    path: str | Path,
    *,
    scale: Scale | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ExperimentConfig:
    """Read, override and validate an experiment TOML file (see :func:`build_config`)."""
    return build_config(read_toml(path), scale=scale, overrides=overrides, origin=str(path))
