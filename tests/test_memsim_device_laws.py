"""Device laws from user code: registered by name, selected in a profile JSON."""

import importlib.util
import json

import pydantic
import pytest
import torch
from torch import nn

import memsim
from memsim import ProfileError, laws


class _Loss(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    loss: float = pydantic.Field(ge=0.0, le=1.0)
    offset_uS: float = 0.0


class LossyProgramming(laws.ProgrammingLaw):
    """A user's law: each device ends at ``(1 - loss) G_target + offset`` (µS)."""

    name = "test_lossy"
    Params = _Loss
    aihwkit_missing = "a test law"

    def program(self, g_target, gen):
        return g_target * (1.0 - self.params.loss) + self.params.offset_uS


@pytest.fixture
def lossy():
    memsim.register_device_law(LossyProgramming)
    yield LossyProgramming
    laws.unregister_device_law("programming_noise", "test_lossy")


def _profile_json(tmp_path, programming_noise, **extra):
    data = {
        "name": "lossy",
        "extends": "ideal",
        "device": {"g_min_uS": 1.0, "g_max_uS": 41.0},
        "tile": {"rows": 8, "cols": 8},
        "programming_noise": programming_noise,
        **extra,
    }
    path = tmp_path / "lossy.json"
    path.write_text(json.dumps(data))
    return path


def test_a_user_programming_law_selected_in_a_profile_json(tmp_path, lossy):
    path = _profile_json(
        tmp_path, {"model": "test_lossy", "params": {"loss": 0.25, "offset_uS": 0.5}}
    )
    prof = memsim.load_profile(path)
    assert prof.programming_noise.model == "test_lossy"
    lin = nn.Linear(3, 2, bias=False)
    w = torch.tensor([[0.5, -1.0, 0.0], [0.25, 0.75, -0.5]])
    lin.weight.data.copy_(w)
    chip = memsim.convert(lin, prof, seed=0)
    g = memsim.conductances(chip)["weight"]
    # by hand: per-layer scale max|w| = 1 maps onto the 40 µS window above g_min = 1 µS,
    # positive weights on G+, negative on G-, the other device at g_min
    g_plus = 1.0 + 40.0 * w.clamp(min=0)
    g_minus = 1.0 + 40.0 * (-w).clamp(min=0)
    expected = torch.stack([g_plus, g_minus]) * 0.75 + 0.5
    torch.testing.assert_close(g, expected, rtol=0, atol=1e-5)


def test_user_law_params_are_validated_and_names_checked(tmp_path, lossy):
    with pytest.raises(ProfileError, match=r"programming_noise.*params.loss"):
        memsim.load_profile(_profile_json(tmp_path, {"model": "test_lossy", "params": {}}))
    with pytest.raises(ProfileError, match=r"params.loss"):
        memsim.load_profile(
            _profile_json(tmp_path, {"model": "test_lossy", "params": {"loss": 2.0}})
        )
    with pytest.raises(ProfileError, match=r"unknown programming_noise model 'nope'.*test_lossy"):
        memsim.load_profile(_profile_json(tmp_path, {"model": "nope"}))
    with pytest.raises(ProfileError, match="takes no params"):
        memsim.load_profile(_profile_json(tmp_path, {"model": "gaussian", "params": {"a": 1}}))


def test_registering_twice_needs_replace(lossy):
    class Other(laws.ProgrammingLaw):
        name = "test_lossy"

    with pytest.raises(ValueError, match="already registered"):
        memsim.register_device_law(Other)
    memsim.register_device_law(LossyProgramming)  # the same class again is fine


def test_state_dependent_read_noise_is_exact_in_distribution():
    prof = memsim.load_profile("ideal").derive(
        device={"g_min_uS": 0.0, "g_max_uS": 10.0},
        tile={"rows": 4, "cols": 4},
        read_noise={"model": "proportional", "sigma": 0.1},
    )
    torch.manual_seed(0)
    lin = nn.Linear(6, 3, bias=False)  # 6 inputs on 4-row tiles: two partial sums
    chip = memsim.convert(lin, prof, seed=1)
    x = torch.randn(1, 6)
    g = memsim.conductances(chip)["weight"]
    scale = lin.weight.detach().abs().max()
    # each device reads G (1 + 0.1 N(0, 1)): output variance sum_i x_i^2 (0.1 G_i / 10)^2
    var = (x[0] ** 2 * ((0.1 * g / 10.0) ** 2).sum(0)).sum(1) * scale**2
    ys = chip(x.expand(20000, 6))
    mean = x @ memsim.effective_weights(chip)["weight"].T
    torch.testing.assert_close(ys.mean(0), mean[0], atol=float(4 * var.sqrt().max() / 100), rtol=0)
    torch.testing.assert_close(ys.var(0), var, rtol=0.05, atol=0)


@pytest.mark.skipif(importlib.util.find_spec("aihwkit") is None, reason="needs aihwkit")
def test_a_law_without_translation_is_reported():
    from memsim.backends.aihwkit import NOT_TRANSLATED, translate

    prof = memsim.load_profile("rram_wan2022").derive(
        read_noise={"model": "proportional", "sigma": 0.02}
    )
    knob = next(k for k in translate(prof).knobs if k.field == "read_noise.model")
    assert knob.status == NOT_TRANSLATED and "constant" in knob.note


def test_laws_from_an_entry_point_are_found_by_name(monkeypatch):
    class FromPackage(laws.DriftLaw):
        name = "test_from_entry_point"

    class EntryPoint:
        def load(self):
            return FromPackage

    def entry_points(group):
        assert group == laws.ENTRY_POINT_GROUP
        return [EntryPoint()]

    monkeypatch.setattr(laws.metadata, "entry_points", entry_points)
    monkeypatch.setattr(laws, "_entry_points_loaded", False)
    try:
        assert laws.law_class("drift", "test_from_entry_point") is FromPackage
        prof = memsim.load_profile("ideal").derive(drift={"model": "test_from_entry_point"})
        assert prof.drift.model == "test_from_entry_point"
    finally:
        laws.unregister_device_law("drift", "test_from_entry_point")
