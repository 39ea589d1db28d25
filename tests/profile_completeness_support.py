"""Helpers of the profile completeness test: the schema's fields, who reads them, who
translates them."""

from __future__ import annotations

import contextlib
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path

import torch
from pydantic import BaseModel
from torch import nn

import memsim
from memsim.profiles import DeviceProfile


def _model_of(ann: object) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def sections() -> dict[type[BaseModel], str]:
    """Section class -> its path in the profile."""
    out: dict[type[BaseModel], str] = {}
    for name, info in DeviceProfile.model_fields.items():
        model = _model_of(info.annotation)
        if model is not None:
            out[model] = name
    return out


def schema_fields() -> set[str]:
    """Every leaf field of the profile schema, as a dotted path."""
    out = set()
    for name, info in DeviceProfile.model_fields.items():
        model = _model_of(info.annotation)
        if model is None:
            out.add(name)
        else:
            out.update(f"{name}.{f}" for f in model.model_fields)
    return out


@contextlib.contextmanager
def traced_reads() -> Iterator[set[str]]:
    """Record every field of a profile section that is read while the block runs."""
    paths = sections()
    reads: set[str] = set()
    originals = {cls: cls.__getattribute__ for cls in paths}

    def make(cls: type[BaseModel]):
        fields = set(cls.model_fields)

        def getter(self, name):
            if name in fields:
                reads.add(f"{paths[type(self)]}.{name}")
            return originals[cls](self, name)

        return getter

    for cls in paths:
        cls.__getattribute__ = make(cls)  # type: ignore[method-assign]
    try:
        yield reads
    finally:
        for cls, orig in originals.items():
            cls.__getattribute__ = orig  # type: ignore[method-assign]


def workload_profiles() -> list[DeviceProfile]:
    """Shipped profiles and variants that reach every mode of every section."""
    import importlib.util

    names = [
        n
        for n in memsim.list_profiles()
        if "aihwkit" not in n or importlib.util.find_spec("aihwkit") is not None
    ]
    out = [memsim.load_profile(n) for n in names if n != "rram_wan2022_irdrop"]
    yao = memsim.load_profile("rram_1t1r_yao2020")
    small = {"tile": {"rows": 8, "cols": 8}}
    for over in (
        {"dac": {"mode": "fixed", "bound": 2.0}, "adc": {"mode": "fixed", "bound": 4.0}},
        {"dac": {"mode": "dynamic"}, "adc": {"mode": "dynamic", "offset": 0.01}},
        {"drift": {"model": "power_law", "nu_mean": 0.05, "nu_std": 0.01}},
        {"read_noise": {"model": "proportional", "sigma": 0.02}},
        {"programming_noise": {"model": "gaussian", "sigma": 0.02}},
        {"mapping": {"weight_scaling": "per_tile", "weight_quant": "ternary"}},
        {"output_noise": {"sigma": 0.01}},
        {
            **small,
            "ir_drop": {
                "enabled": True,
                "model": "fast",
                "pair_layout": "separate",
                "word_line_driver": "right",
                "sense_amp": "top",
                "unused_cells": "none",
                "r_wire_ohm": 1.0,
                "r_access_ohm": 100.0,
            },
        },
        {**small, "ir_drop": {"enabled": True, "model": "exact", "r_wire_ohm": 1.0}},
    ):
        out.append(yao.derive(over))
    return out


def run_workload(profile: DeviceProfile) -> None:
    """Everything a user does with a chip: convert, calibrate, run, drift, export, cost."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.rand(4, 1, 6, 6)
    chip = memsim.convert(model, profile, seed=0)
    memsim.calibrate(chip, x)
    chip(x)
    memsim.drift(chip, 3600.0)
    chip(x)
    with tempfile.TemporaryDirectory() as tmp:
        memsim.export_chip(chip, Path(tmp) / "chip.npz")
    with contextlib.suppress(memsim.CostModelError):
        memsim.cost_report(chip, x)
    memsim.needs_calibration(chip)


def knob_fields(knobs) -> set[str]:
    """The profile fields a translation report accounts for.

    A knob's field may name several (``"tile.rows x tile.cols"``, ``"device.g_min_uS /
    g_max_uS"``); a law's knob (``"<section>.model"``) covers its section: the law
    translates its own parameters.
    """
    out: set[str] = set()
    laws = ("programming_noise", "drift", "read_noise")
    for k in knobs:
        section = ""
        for token in k.field.replace("/", " ").replace(" x ", " ").split():
            path = token if "." in token or not section else f"{section}.{token}"
            section = path.split(".")[0]
            out.add(path)
            if path in {f"{s}.model" for s in laws} or path == section:
                out.add(section)
        out.update(getattr(k, "covers", ()))
    return out


def covered(field: str, paths: set[str]) -> bool:
    """Whether ``field`` is one of ``paths`` or lies under one."""
    return any(field == p or field.startswith(p + ".") for p in paths)
