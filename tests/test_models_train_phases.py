"""Tests of the classifier trainer's float phase, schedules and memory format (``medium``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lab.experiment.config import ConfigError, build_config
from models.baselines import RecipeError, apply_overrides, get_recipe
from models.data import ImageDataset
from models.train import ClassifierConfig, train_classifier


def _data(n: int = 96) -> ImageDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(n, 3, 8, 8, generator=gen)
    labels = torch.arange(n) % 4
    images[:, 0] += labels[:, None, None].float()  # learnable from channel 0
    return ImageDataset(
        images,
        labels,
        classes=[str(c) for c in range(4)],
        sha256="synthetic",
        name="synthetic",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        source="test",
    )


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _train(cfg: ClassifierConfig, **kwargs: object) -> nn.Module:
    model = _net()
    train_classifier(model, _data(), cfg, seed=3, **kwargs)  # type: ignore[arg-type]
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


BASE = {"batch_size": 32, "lr": 0.05, "augment": False}


def test_an_all_float_schedule_is_exactly_full_precision_training() -> None:
    # float_epochs == epochs must ignore bits and sigma altogether: the same weights,
    # bit for bit, as a run that never quantizes
    float_run = _train(ClassifierConfig(epochs=2, float_epochs=2, bits=2, sigma=0.05, **BASE))
    plain = _train(ClassifierConfig(epochs=2, bits=None, sigma=0.0, **BASE))
    qat = _train(ClassifierConfig(epochs=2, bits=2, sigma=0.05, **BASE))
    assert _same(float_run, plain)
    assert not _same(float_run, qat)


def test_the_float_phase_ends_before_qat_and_hands_the_float_model_over() -> None:
    seen: list[dict[str, torch.Tensor]] = []
    cfg = ClassifierConfig(epochs=3, float_epochs=2, bits=2, sigma=0.05, **BASE)
    model = _train(
        cfg, on_float_end=lambda m: seen.append({k: v.clone() for k, v in m.state_dict().items()})
    )
    assert len(seen) == 1
    # what the hook saw is the 2-epoch float run, and the QAT epoch changed it afterwards
    float_only = _train(ClassifierConfig(epochs=2, bits=None, **BASE))
    assert all(torch.equal(seen[0][k], v) for k, v in float_only.state_dict().items())
    assert not all(torch.equal(seen[0][k], v) for k, v in model.state_dict().items())
    # without a float phase the hook is never called
    calls: list[int] = []
    _train(ClassifierConfig(epochs=1, bits=2, **BASE), on_float_end=lambda m: calls.append(1))
    assert calls == []


def test_channels_last_trains_the_same_network_and_returns_the_default_format() -> None:
    cfg = ClassifierConfig(epochs=1, bits=2, sigma=0.05, **BASE)
    plain = _train(cfg)
    fast = _train(ClassifierConfig(epochs=1, bits=2, sigma=0.05, channels_last=True, **BASE))
    conv = fast[0].weight
    assert conv.is_contiguous()  # handed back in the default memory format
    for k, v in plain.state_dict().items():
        # the same draws and steps; only the summation order of the convolutions differs
        assert torch.allclose(v, fast.state_dict()[k], atol=1e-4, rtol=1e-4), k


def test_a_compiled_float_phase_trains_the_same_network(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_compile = torch.compile

    def counting_compile(model: nn.Module) -> object:
        compiled = real_compile(model)

        def forward(x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return compiled(x)

        return forward

    cfg = {"epochs": 3, "float_epochs": 2, "bits": 2, "sigma": 0.05, **BASE}
    eager = _train(ClassifierConfig(**cfg))  # type: ignore[arg-type]
    monkeypatch.setattr(torch, "compile", counting_compile)
    fast = _train(ClassifierConfig(compile_float=True, **cfg))  # type: ignore[arg-type]
    # every float step (2 epochs x 96 // 32) and no QAT step went through the compiled module
    assert calls == [32] * 6
    for k, v in eager.state_dict().items():
        # the same draws and steps; only the rounding of the generated kernels differs
        assert torch.allclose(v, fast.state_dict()[k], atol=1e-4, rtol=1e-4), k


def test_onecycle_peaks_at_the_phase_learning_rate() -> None:
    seen: list[float] = []
    model = _net()
    cfg = ClassifierConfig(epochs=2, schedule="onecycle", momentum=0.0, **BASE)
    orig = torch.optim.SGD.step

    def spy(self: torch.optim.SGD, *a: object, **k: object) -> object:
        seen.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy  # type: ignore[method-assign]
    try:
        train_classifier(model, _data(), cfg, seed=0)
    finally:
        torch.optim.SGD.step = orig  # type: ignore[method-assign]
    # OneCycleLR starts at max_lr / 25 and rises to max_lr (torch's defaults)
    assert seen[0] == pytest.approx(0.05 / 25)
    # the peak falls between steps: within a few % of max_lr, never above it
    assert 0.95 * 0.05 < max(seen) <= 0.05 + 1e-12
    assert seen[-1] < seen[0]


def test_bad_phase_settings_are_refused_with_the_allowed_range() -> None:
    with pytest.raises(ValueError, match="float_epochs must be in 0..epochs"):
        ClassifierConfig(epochs=2, float_epochs=3)
    with pytest.raises(ValueError, match="schedule must be one of"):
        ClassifierConfig(schedule="linear")
    recipe = get_recipe("mobilenetv2-cifar10", "medium")
    with pytest.raises(RecipeError, match="float_epochs must be in 0..epochs"):
        apply_overrides(recipe, {"float_epochs": 20})
    with pytest.raises(RecipeError, match="schedule must be one of cosine, onecycle"):
        apply_overrides(recipe, {"schedule": "step"})


def test_the_medium_recipe_is_the_documented_reduced_one() -> None:
    r = get_recipe("mobilenetv2-cifar10", "medium")
    assert r.model_kwargs["width_mult"] == 0.5
    t = r.train
    assert (t.epochs, t.float_epochs, t.schedule, t.bits, t.sigma) == (19, 17, "onecycle", 2, 0.05)
    assert t.augment and t.label_smoothing == 0.1 and t.channels_last and t.compile_float
    assert r.train_fraction == 1.0 and r.test_fraction == 1.0  # whole CIFAR-10 splits
    with pytest.raises(ValueError, match="scale 'medium' is defined for mobilenetv2-cifar10"):
        get_recipe("protonet-mnist", "medium")


def test_experiment_configs_merge_the_medium_table_and_refuse_it_elsewhere() -> None:
    raw = {
        "experiment": {"name": "m", "task": "mobilenetv2-cifar10"},
        "chip": {"profile": "auto"},
        "ga": {"population_size": 10, "generations": 25},
        "quick": {"ga": {"population_size": 4}},
        "medium": {"ga": {"population_size": 6}},
    }
    assert build_config(raw, scale="medium").ga.population_size == 6
    assert build_config(raw, scale="medium").experiment.scale == "medium"
    assert build_config(raw, scale="quick").ga.population_size == 4
    assert build_config(raw, scale="paper").ga.population_size == 10
    raw["experiment"]["task"] = "protonet-mnist"
    with pytest.raises(ConfigError, match="scale 'medium' is defined for"):
        build_config(raw, scale="medium")
