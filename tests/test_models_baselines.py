"""Tests of deployment profiles, deployed evaluation, checkpoints and the baseline recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import memsim
from lab.cli import main as memsim_main
from memsim.quantization import TERNARY
from models.baselines import (
    TASKS,
    apply_overrides,
    baseline_file_name,
    get_recipe,
    recipe_differences,
    train_baseline,
)
from models.checkpoint import load_checkpoint, save_checkpoint
from models.data import load_dataset
from models.evaluate import (
    classifier_accuracy,
    evaluate_deployed,
    paper_profile,
    paper_profile_name,
    software_accuracy,
)
from models.mobilenet import mobilenet_v2_cifar
from models.protonet import ProtoNet
from models.quant import quantized_state_dict


def main(argv: list[str]) -> int:
    # `python -m models.baselines` became `memsim train-baseline`
    return memsim_main(["train-baseline", *argv])


@pytest.fixture(scope="module")
def digits() -> tuple:
    return load_dataset("digits")


def _small_classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.mark.parametrize(
    ("bits", "sigma", "name"),
    [
        (2, 0.05, "paper_2bit_5pct"),
        (3, 0.2, "paper_3bit_20pct"),
        (TERNARY, 0.05, "paper_ternary_5pct"),
    ],
)
def test_paper_profiles_resolve_to_the_shipped_ones(bits: int, sigma: float, name: str) -> None:
    assert paper_profile_name(bits, sigma) == name
    assert paper_profile(bits, sigma) == memsim.load_profile(name)


def test_derived_profile_changes_only_quantization_and_noise() -> None:
    prof = paper_profile(4, 0.1)
    base = memsim.load_profile("paper_2bit_5pct")
    assert prof.name == "paper_4bit_10pct"
    assert prof.mapping.weight_bits == 4 and prof.programming_noise.sigma == 0.1
    assert prof.adc == base.adc and prof.dac == base.dac and prof.drift == base.drift


@pytest.mark.parametrize("bits", [2, 3, TERNARY])
def test_deployment_quantizer_is_the_training_quantizer(bits: int) -> None:
    # with the noise switched off, the chip must hold exactly the QAT forward's weights
    torch.manual_seed(0)
    model = ProtoNet(in_channels=1, hidden=8)
    chip = memsim.convert(model, paper_profile(bits, 0.0), seed=0)
    expected = quantized_state_dict(model, bits)
    for name, w in memsim.effective_weights(chip).items():
        torch.testing.assert_close(w, expected[name], rtol=1e-5, atol=1e-6)


def test_deployed_noise_matches_the_training_noise_definition() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(400, 300))
    prof = paper_profile(8, 0.05)
    chip = memsim.convert(model, prof, seed=3)
    eff = memsim.effective_weights(chip)["0.weight"]
    target = quantized_state_dict(model, 8)["0.weight"]
    mask = target.abs() > 1e-3
    ratio = eff[mask] / target[mask]
    assert float(ratio.mean()) == pytest.approx(1.0, abs=0.002)
    assert float(ratio.std()) == pytest.approx(0.05, rel=0.05)


def test_evaluate_deployed_on_an_ideal_chip_equals_software_accuracy(digits: tuple) -> None:
    train, test = digits
    model = _small_classifier()
    x, y = train.images, train.labels
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    acc = classifier_accuracy(model, test)
    assert acc > 0.85
    res = evaluate_deployed(model, test, "ideal", draws=2, seed=0)
    assert res.accuracies == [acc, acc] and res.std == 0.0 and res.profile == "ideal"
    noisy = evaluate_deployed(model, test, paper_profile(2, 0.2), draws=3, seed=0)
    assert len(noisy.accuracies) == 3 and len(set(noisy.accuracies)) > 1
    assert noisy.mean < acc  # 2-bit, 20 % noise costs accuracy on average
    again = evaluate_deployed(model, test, paper_profile(2, 0.2), draws=3, seed=0)
    assert again.accuracies == noisy.accuracies


def test_protonet_deployed_evaluation_uses_support_draws(digits: tuple) -> None:
    train, test = digits
    torch.manual_seed(0)
    model = ProtoNet(in_channels=1, hidden=16)
    res = evaluate_deployed(
        model, test, "ideal", draws=2, seed=1, support=train, k_shot=5, support_draws=3
    )
    assert len(res.accuracies) == 6 and res.k_shot == 5 and res.support_draws == 3
    # ideal chip: noise draw 2 repeats draw 1 only if the support draws repeat, they don't
    assert res.accuracies[:3] != res.accuracies[3:]
    # even an untrained Conv-4 with prototypes beats chance (10 %) on digits
    assert res.mean > 0.3
    sw = software_accuracy(model, test, support=train, seed=1, support_draws=3)
    assert sw == pytest.approx(sum(res.accuracies[:3]) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="support"):
        evaluate_deployed(model, test, "ideal", draws=1)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = mobilenet_v2_cifar(num_classes=10, width_mult=0.25).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, {"task": "x", "accuracy": 0.5})
    loaded, meta = load_checkpoint(path)
    assert meta == {"task": "x", "accuracy": 0.5}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_recipes_match_the_paper_table() -> None:
    expected = {
        "protonet-mnist": ("mnist", 2, 0.05),
        "protonet-fashion-mnist": ("fashion_mnist", 3, 0.20),
        "mobilenetv2-cifar10": ("cifar10", 2, 0.05),
        "micronet-cifar100": ("cifar100", TERNARY, 0.05),
        "protonet-digits": ("digits", 2, 0.05),
        "vit-digits": ("digits", 4, 0.05),
    }
    assert set(TASKS) == set(expected)
    for task, (dataset, bits, sigma) in expected.items():
        for scale in ("quick", "paper"):
            r = get_recipe(task, scale)
            assert (r.dataset, r.bits, r.sigma) == (dataset, bits, sigma)
            assert (r.train.bits, r.train.sigma) == (bits, sigma)  # train = deploy
            assert r.eval_draws >= 5
    proto = get_recipe("protonet-mnist", "paper")
    assert (proto.train.n_way, proto.train.k_shot, proto.train.n_query) == (5, 5, 15)
    assert proto.k_shot == 5 and proto.support_draws >= 5
    assert get_recipe("mobilenetv2-cifar10", "paper").train.epoch_fraction == 0.5
    assert get_recipe("mobilenetv2-cifar10", "paper").model_kwargs["width_mult"] == 1.0
    quick, paper = get_recipe("protonet-mnist", "quick"), get_recipe("protonet-mnist", "paper")
    assert quick.train.episodes < paper.train.episodes
    with pytest.raises(ValueError):
        get_recipe("protonet-mnist", "huge")
    with pytest.raises(KeyError):
        apply_overrides(quick, {"no_such_field": 1})


def test_recipe_differences_name_every_changed_field_with_both_values() -> None:
    recipe = get_recipe("mobilenetv2-cifar10", "medium")
    assert recipe_differences(recipe.as_dict(), recipe) == []
    stored = recipe.as_dict()  # the previous medium recipe, written by an older version
    stored["train"]["epochs"], stored["train"]["float_epochs"] = 18, 15
    del stored["eval_draws"]
    stored["model_kwargs"]["dropout"] = 0.2
    assert recipe_differences(stored, recipe) == [
        "eval_draws: (absent) in the checkpoint, 5 now",
        "model_kwargs.dropout: 0.2 in the checkpoint, (absent) now",
        "train.epochs: 18 in the checkpoint, 19 now",
        "train.float_epochs: 15 in the checkpoint, 17 now",
    ]
    # another scale of the same task: its width, among others
    other = get_recipe("mobilenetv2-cifar10", "quick")
    assert "model_kwargs.width_mult: 0.25 in the checkpoint, 0.5 now" in recipe_differences(
        other.as_dict(), recipe
    )


def test_protonet_digits_baseline_end_to_end(tmp_path: Path) -> None:
    overrides = {"episodes": 40, "eval_draws": 2, "support_draws": 2}
    model, path, metrics = train_baseline(
        "protonet-digits", "quick", seed=0, out_dir=tmp_path, overrides=overrides
    )
    # overrides change the model: their hash is part of the file name
    assert path == tmp_path / baseline_file_name("protonet-digits", "quick", 0, overrides)
    assert path.name != "protonet-digits-quick-seed0.pt" and path.is_file()
    assert len(metrics["accuracies"]) == 4
    assert metrics["profile"] == "paper_2bit_5pct"
    assert 0.5 < metrics["accuracy_mean"] <= 1.0  # 40 noisy 2-bit episodes already learn
    loaded, meta = load_checkpoint(path)
    for key in ("task", "bits", "noise", "seed", "dataset_sha256", "scale", "accuracy"):
        assert key in meta
    assert (meta["task"], meta["bits"], meta["noise"], meta["scale"]) == (
        "protonet-digits",
        2,
        0.05,
        "quick",
    )
    assert meta["dataset_sha256"] == load_dataset("digits")[0].sha256
    assert meta["accuracy"] == metrics["accuracy_mean"]
    assert meta["recipe"]["train"]["episodes"] == 40
    x = torch.randn(3, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    # same seed, same result
    _, _, again = train_baseline(
        "protonet-digits", "quick", seed=0, out_dir=tmp_path / "b", overrides=overrides
    )
    assert again["accuracies"] == metrics["accuracies"]


def test_cli_runs_and_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "protonet-digits",
        "--out",
        str(tmp_path),
        "--set",
        "episodes=5",
        "--set",
        "eval_draws=1",
        "--set",
        "support_draws=1",
        "--profile",
        "ideal",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == "ideal" and len(out["accuracies"]) == 1
    assert Path(out["checkpoint"]).is_file()
