"""Property tests of the device-profile schema.

Profiles are drawn field by field from the schema itself (each field's type and
validated range), so a field added later is covered without editing this file.
"""

from __future__ import annotations

import enum
import math
import types
import typing

import annotated_types as at
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from torch import nn

import memsim
from memsim.profiles import (
    DeviceProfile,
    DriftModel,
    ProgNoiseModel,
    ProgrammingNoise,
    ReadNoiseModel,
    WeightQuant,
)

# the device-law sections name a registered law: draw memsim's own ones (no params)
_LAWS = {"programming_noise": ProgNoiseModel, "drift": DriftModel, "read_noise": ReadNoiseModel}

SETTINGS = settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _sections() -> dict[str, type[BaseModel]]:
    out = {}
    for name, info in DeviceProfile.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = ann
    return out


def _bounds(metadata: list[object]) -> dict[str, object]:
    kw: dict[str, object] = {}
    for m in metadata:
        if isinstance(m, at.Ge):
            kw["min_value"] = m.ge
        elif isinstance(m, at.Gt):
            kw["min_value"], kw["exclude_min"] = m.gt, True
        elif isinstance(m, at.Le):
            kw["max_value"] = m.le
        elif isinstance(m, at.Lt):
            kw["max_value"], kw["exclude_max"] = m.lt, True
    return kw


def _strip_optional(ann: object) -> tuple[object, bool]:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(ann))
    return ann, False


def _leaf(ann: object, metadata: list[object]) -> st.SearchStrategy:
    """A strategy of valid values for one field: finite and in its validated range."""
    base, optional = _strip_optional(ann)
    kw = _bounds(metadata)
    if base is bool:
        strat: st.SearchStrategy = st.booleans()
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        strat = st.sampled_from([e.value for e in base])
    elif base is int:
        lo, hi = kw.get("min_value"), kw.get("max_value")
        lo = None if lo is None else math.floor(lo) + (1 if kw.get("exclude_min") else 0)
        strat = st.integers(min_value=lo, max_value=hi)
    elif base is float:
        strat = st.floats(allow_nan=False, allow_infinity=False, **kw)  # type: ignore[arg-type]
    elif typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        item_type, _ = _strip_optional(item)
        item_meta = list(getattr(item, "__metadata__", ()))
        if typing.get_origin(item) is typing.Annotated:
            item_type = typing.get_args(item)[0]
            item_meta = [m for a in item.__metadata__ for m in getattr(a, "metadata", [a])]
        max_len = min(4, next((m.max_length for m in metadata if isinstance(m, at.MaxLen)), 4))
        strat = st.lists(_leaf(item_type, item_meta), max_size=max_len)
    else:
        raise TypeError(f"no strategy for {ann!r}")
    return st.one_of(st.none(), strat) if optional else strat


@st.composite
def profile_dicts(draw: st.DrawFn) -> dict[str, object]:
    """A raw profile dict with every numeric field drawn from its valid range."""
    data: dict[str, object] = {"name": "drawn"}
    for sec_name, sec in _sections().items():
        data[sec_name] = {
            f: draw(_leaf(info.annotation, info.metadata), label=f"{sec_name}.{f}")
            for f, info in sec.model_fields.items()
            if not (sec_name in _LAWS and f in ("model", "params"))
        }
        if sec_name in _LAWS:
            data[sec_name]["model"] = draw(st.sampled_from([e.value for e in _LAWS[sec_name]]))
    # the cross-field rules of the schema, satisfied by drawing dependent values
    dev = data["device"]
    if dev["g_max_uS"] - dev["g_min_uS"] < 1e-3 * dev["g_max_uS"]:
        dev["g_min_uS"] = draw(st.floats(0.0, 0.998 * dev["g_max_uS"]))
    flt = data["faults"]
    if flt["stuck_at_gmin_rate"] + flt["stuck_at_gmax_rate"] > 1.0:
        flt["stuck_at_gmax_rate"] = draw(st.floats(0.0, 1.0 - flt["stuck_at_gmin_rate"]))
    pn = data["programming_noise"]
    if pn["model"] == ProgNoiseModel.polynomial.value and not pn["coeffs_uS"]:
        info = ProgrammingNoise.model_fields["coeffs_uS"]
        pn["coeffs_uS"] = draw(_leaf(info.annotation, info.metadata).filter(bool))
    if data["ir_drop"]["enabled"]:
        # an IR-drop solve loads the lines with every cell of the tile, used or not, so
        # the cost grows with the tile, not the model: keep such tiles small enough to run
        data["tile"]["rows"] = draw(st.integers(1, 64))
        data["tile"]["cols"] = draw(st.integers(1, 64))
    mp = data["mapping"]
    if mp["weight_quant"] == WeightQuant.symmetric.value and mp["weight_bits"] is None:
        mp["weight_bits"] = draw(st.integers(1, 16))
    return data


def _tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


@SETTINGS
@given(profile_dicts())
def test_any_finite_in_range_profile_loads_and_runs(data):
    try:
        prof = memsim.validate_profile(data)
    except memsim.ProfileError as exc:
        # float rounding of the drawn stuck-at rates may exceed 1 by one ulp
        assume("stuck_at_gmin_rate + stuck_at_gmax_rate" not in str(exc))
        raise
    chip = memsim.convert(_tiny_model(), prof, seed=0)
    x = torch.rand(4, 1, 6, 6)
    memsim.calibrate(chip, x)
    y = chip(x)
    assert y.shape == (4, 3)
    assert torch.isfinite(y).all(), y
    for key, w in memsim.effective_weights(chip).items():
        assert torch.isfinite(w).all(), key
    memsim.drift(chip, 3600.0)
    assert torch.isfinite(chip(x)).all()


def _leaf_paths() -> list[str]:
    """Every value slot of a profile: each field, the first list item, a source entry."""
    paths = ["name", "description", "extends", "source.general"]
    for sec_name, sec in _sections().items():
        for f, info in sec.model_fields.items():
            base, _ = _strip_optional(info.annotation)
            paths.append(f"{sec_name}.{f}")
            if typing.get_origin(base) is list:
                paths.append(f"{sec_name}.{f}.0")
                paths.append(f"{sec_name}.{f}.2")
    return paths


def _base_profile() -> dict[str, object]:
    data = memsim.load_profile("rram_wan2022").model_dump(mode="json")
    data["programming_noise"]["coeffs_uS"] = [0.2, 1.0, -0.5]
    return data


def _put(data: dict[str, object], path: str, value: float) -> None:
    *parents, last = path.split(".")
    node: typing.Any = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@SETTINGS
@given(
    st.sampled_from(_leaf_paths()),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
def test_any_non_finite_value_is_refused_naming_its_path(path, value):
    data = _base_profile()
    _put(data, path, value)
    with pytest.raises(memsim.ProfileError) as info:
        memsim.validate_profile(data, "drawn.json")
    msg = str(info.value)
    assert msg.startswith("drawn.json: invalid profile:")
    assert f"field '{path}'" in msg, msg


def test_every_leaf_path_is_exercised():
    # the sampled test above draws 30 of these; here each one is tried once
    for path in _leaf_paths():
        for value in (math.nan, math.inf, -math.inf):
            data = _base_profile()
            _put(data, path, value)
            with pytest.raises(memsim.ProfileError, match=f"field '{path}'"):
                memsim.validate_profile(data)
