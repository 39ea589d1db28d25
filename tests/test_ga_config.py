import pytest
from pydantic import ValidationError

from ga import GAConfig, MutationType, SelectionType


def _loc_of(exc: ValidationError) -> list[tuple]:
    return [e["loc"] for e in exc.errors()]


def test_defaults_follow_the_paper():
    cfg = GAConfig()
    assert cfg.selection is SelectionType.SIGMOID_RWS
    assert cfg.selection_tau == 1.0 and cfg.sigmoid_center.value == "none"
    assert cfg.crossover.value == "two_points" and cfg.crossover_probability == 0.8
    assert cfg.mutation is MutationType.ADD_NOISE and cfg.mutation_sigma == 0.05
    assert cfg.reference_noise == (0.05, 0.10)
    assert cfg.lamarckian is True
    assert cfg.mutation_scale.value == "relative"


def test_every_field_is_documented():
    for name, info in GAConfig.model_fields.items():
        assert info.description, name


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"population_size": 1}, "population_size"),
        ({"crossover_probability": 1.5}, "crossover_probability"),
        ({"crossover_probability": -0.1}, "crossover_probability"),
        ({"mutation_probability": 2.0}, "mutation_probability"),
        ({"selection": "roulette_of_doom"}, "selection"),
        ({"crossover": "three_points"}, "crossover"),
        ({"mutation": "flip"}, "mutation"),
        ({"init": "random"}, "init"),
        ({"selection_tau": 0.0}, "selection_tau"),
        ({"population_size": 4, "keep_elitism": 4}, "keep_elitism"),
        ({"population_size": 4, "selection": "tournament", "tournament_k": 5}, "tournament_k"),
        ({"mutation": "maxmin", "mutation_scale": "level_step"}, "mutation_scale"),
        ({"reference_noise": (0.05, -0.1)}, "reference_noise"),
        ({"early_stop_patience": 0}, "early_stop_patience"),
        ({"weight_bits": 17}, "weight_bits"),
        ({"populaton_size": 10}, "populaton_size"),  # typo -> extra="forbid"
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as err:
        GAConfig(**kwargs)
    assert (field,) in _loc_of(err.value)
    assert field in str(err.value)


def test_config_is_frozen_and_hash_ignores_display_fields(tmp_path):
    cfg = GAConfig(seed=3)
    with pytest.raises(ValidationError):
        cfg.seed = 4
    assert (
        cfg.config_hash() == GAConfig(seed=3, progress=False, checkpoint_dir=tmp_path).config_hash()
    )
    assert cfg.config_hash() != GAConfig(seed=4).config_hash()
    assert cfg.config_hash() != GAConfig(seed=3, mutation_probability=0.02).config_hash()


def test_enum_values_accept_strings():
    cfg = GAConfig(selection="rank", crossover="uniform", mutation="maxmin", init="origin")
    assert cfg.selection is SelectionType.RANK
    assert cfg.mutation is MutationType.MAXMIN
