"""Per-layer profiles reach aihwkit: each layer its own ``rpu_config``, as aihwkit users do."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("aihwkit")

import memsim  # noqa: E402
from memsim.backends import aihwkit as ab  # noqa: E402
from memsim.backends.compare import compare  # noqa: E402
from models.small import mlp  # noqa: E402

# models.small.mlp: Linear "1" (784 -> 256), "3" (256 -> 256), "5" (256 -> 10)
FIRST_AND_LAST = {"1": {"adc": {"bits": 6}, "tile": {"rows": 128, "cols": 128}}, "5": {}}


def _out_res(bits: int) -> float:
    return 1.0 / (2**bits - 2)  # memsim.backends.aihwkit: the same 2**b - 1 levels


def _tile_config(dep: ab.Deployment, name: str):
    tiles = list(dep.model.get_submodule(name).analog_tiles())
    return tiles[0].rpu_config, len(tiles)


def test_each_layer_gets_the_rpu_config_of_its_own_profile():
    torch.manual_seed(0)
    base = memsim.load_profile("pcm_joshi2020")
    assert base.adc.bits == 8 and base.tile.rows == 256
    dep = ab.convert(mlp(), base, seed=0, layer_profiles={"1": FIRST_AND_LAST["1"]})
    first, n_first = _tile_config(dep, "1")
    assert first.forward.out_res == pytest.approx(_out_res(6))
    assert first.mapping.max_input_size == first.mapping.max_output_size == 128
    # 784 inputs over 128-row tiles: 7 row tiles, 256 outputs over 128 columns: 2
    assert n_first == 7 * 2
    assert dep.layers[0].aihwkit_rows == (112,) * 7 == dep.layers[0].memsim_rows
    for name in ("3", "5"):
        cfg, _ = _tile_config(dep, name)
        assert cfg.forward.out_res == pytest.approx(_out_res(8))
        assert cfg.mapping.max_input_size == 256
    assert set(dep.layer_translations) == {"1"}


def test_without_overrides_nothing_changes():
    torch.manual_seed(0)
    model = mlp()
    plain = ab.convert(model, "pcm_joshi2020", seed=0)
    same = ab.convert(model, "pcm_joshi2020", seed=0, layer_profiles={})
    assert plain.layer_translations == same.layer_translations == {}
    x = torch.rand(8, 1, 28, 28)
    outs = []
    for dep in (plain, same):
        torch.manual_seed(1)  # aihwkit draws its per-MVM read noise from the global RNG
        with torch.no_grad():
            outs.append(dep.model(x))
    assert torch.equal(*outs)


def test_a_key_that_matches_no_layer_is_refused_naming_the_layers():
    with pytest.raises(ValueError, match="match no analog layer.*'1', '3', '5'"):
        ab.convert(mlp(), "pcm_joshi2020", layer_profiles={"features": {"adc": {"bits": 6}}})


def test_compare_gives_both_simulators_the_same_per_layer_profiles():
    torch.manual_seed(0)
    model = mlp().eval()
    x = torch.rand(64, 1, 28, 28)
    y = model(x).argmax(1)
    result = compare(
        model,
        "pcm_joshi2020",
        x,
        y,
        drift_times=[3600.0],
        draws=1,
        verbose=False,
        layer_profiles={"1": FIRST_AND_LAST["1"]},
    )
    own = result["layer_profiles"]["1"]
    assert list(result["layer_profiles"]) == ["1"]
    assert own["adc"]["bits"] == 6 and own["tile"]["rows"] == 128
    for sim in ("memsim", "aihwkit"):
        assert 0.0 <= result["times"][0][sim]["acc_mean"] <= 100.0
