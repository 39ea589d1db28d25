"""The ``[fitness]`` table: its validation, and configs written before it existed."""

import pytest
from cli_support import TINY_TOML, cli

from lab.experiment.config import ConfigError, ExperimentConfig, build_config
from lab.fitness.config import MOVED_FROM_GA, FitnessConfig

RAW = {"experiment": {"name": "x", "task": "protonet-digits", "scale": "quick"}}


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"draws": 0}, "draws"),
        ({"evaluation": "gpu"}, "evaluation"),
        ({"finetune_steps": -1}, "finetune_steps"),
        ({"finetune_lr": 0.0}, "finetune_lr"),
        ({"finetune_mode": "train_eval"}, "finetune_mode"),
        ({"chip_awar": True}, "chip_awar"),
    ],
)
def test_a_bad_fitness_key_is_refused_naming_it(knobs, field):
    with pytest.raises(ConfigError) as err:
        build_config({**RAW, "fitness": knobs}, origin="cfg.toml")
    line = str(err.value)
    assert "\n" not in line and f"fitness.{field}:" in line and line.startswith("cfg.toml:")


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_FROM_GA.items()))
def test_a_key_that_moved_out_of_ga_names_its_new_place(old, new):
    with pytest.raises(ConfigError) as err:
        build_config({**RAW, "ga": {old: FitnessConfig.model_fields[new].default}})
    assert f"ga.{old}: this key moved to the [fitness] table as {new}" in str(err.value)
    with pytest.raises(ConfigError, match=rf"--set ga.{old}: .*fitness\.{new}\b"):
        build_config(RAW, overrides=[f"ga.{old}=1"])


def test_fitness_keys_reach_the_config_and_the_budget():
    from lab.experiment.pipeline import budget_of

    cfg = build_config(
        RAW,
        overrides=["fitness.finetune_steps=7", "fitness.draws=3", "ga.population_size=4"],
    )
    assert isinstance(cfg, ExperimentConfig) and cfg.fitness.finetune_steps == 7
    gens = cfg.ga.generations
    budget = budget_of(cfg)
    assert budget.steps == 4 * (gens + 1) * 7 and budget.chip_evaluations == 4 * (gens + 1) * 3


def test_the_cli_refuses_an_old_config_in_one_line(tmp_path, capsys):
    new = "[fitness]\nfinetune_steps = 1\nfinetune_lr = 1e-4\n\n"
    assert new in TINY_TOML
    old = TINY_TOML.replace(new, "").replace("[ga]\n", "[ga]\nfitness_draws = 2\n")
    path = tmp_path / "old.toml"
    path.write_text(old)
    rc, out, err = cli(capsys, "ga", path, "--run-root", tmp_path / "runs")
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert "ga.fitness_draws: this key moved to the [fitness] table as draws" in line
    assert not (tmp_path / "runs").exists()
