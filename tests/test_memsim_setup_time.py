"""A chip whose IR-drop solves would run for hours is refused at once (memsim.resources).

The refusals are checked on the operation count and the message, never on wall time:
the assumed flop rate is fixed here, so the tests do not depend on the machine.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from cli_support import cli
from torch import nn

import memsim
import memsim.api
import memsim.irdrop
import memsim.resources
from memsim.resources import (
    SETUP_SECONDS_ENV,
    ChipTimeError,
    check_setup_time,
    irdrop_cost,
    max_setup_seconds,
    module_layout,
)
from models.checkpoint import save_checkpoint
from models.small import mlp

RATE = 1e11
"""The flop rate assumed in these tests (one CPU thread's; the real one scales with threads)."""


def _profile(path, rows, cols, model="exact", **ir):
    path.write_text(
        json.dumps(
            {
                "name": "big_irdrop",
                "extends": "rram_wan2022_irdrop",
                "tile": {"rows": rows, "cols": cols},
                "ir_drop": {"model": model, **ir},
            }
        )
    )
    return path


@pytest.fixture
def fixed_machine(monkeypatch):
    """64 GiB free and :data:`RATE` flop/s, whatever the host; the default limit."""
    monkeypatch.setattr(memsim.resources, "available_bytes", lambda device="cpu": 64 * 2**30)
    monkeypatch.setattr(memsim.resources, "flop_rate", lambda device="cpu": RATE)
    monkeypatch.delenv(SETUP_SECONDS_ENV, raising=False)


@pytest.fixture
def no_solve(monkeypatch):
    """Fail the test if convert starts building a layer or solving IR drop."""

    def refuse(*args, **kwargs):
        raise AssertionError("the chip was built before the time check")

    monkeypatch.setattr(memsim.irdrop, "transfer_matrices", refuse)
    monkeypatch.setattr(memsim.api, "AnalogLinear", refuse)


def test_within_memory_but_beyond_time_is_refused_before_building(
    tmp_path, fixed_machine, no_solve
):
    path = _profile(tmp_path / "big.json", 4096, 4096)
    profile = memsim.load_profile(path)
    layout = module_layout(nn.Linear(16, 10), profile)
    # within memory: ~3.9 GiB of the 64 GiB
    assert memsim.resources.irdrop_bytes(layout, profile) < 4 * 2**30
    with pytest.raises(ChipTimeError) as info:
        memsim.convert(nn.Sequential(nn.Linear(16, 10)), path, seed=0)
    # one tile, G+ and G- interleaved: 4096 rows by 8192 bit lines, solved along the
    # 8192 bit lines with a 4096 x 4096 Cholesky inverse each
    flops = 8192 * (4096**3 + 4096**2 * 8192)
    assert flops == 1_688_849_860_263_936
    seconds = flops / RATE + 2 * 4096 * 2e-6 + 8191 * 2e-5
    assert round(seconds) == 16_889
    assert str(info.value) == (
        "memsim.convert: the exact IR-drop solve of 4096x4096 tiles takes ~1.7e+15 flops, at "
        "least ~16,889 s at 1e+11 flop/s (layer '0': 1 tile(s)); the limit is 600 s "
        "(MEMSIM_MAX_SETUP_SECONDS); use smaller tiles (tile.rows, tile.cols), "
        "ir_drop.model 'fast' or ir_drop.enabled false"
    )
    assert isinstance(info.value, ValueError)


def test_the_operation_count_follows_the_solve():
    base = memsim.load_profile("rram_wan2022_irdrop")
    assert base.ir_drop.pair_layout.value == "interleaved"
    layer = nn.Linear(600, 100)  # 256 x 256 tiles: 3 row blocks of 600 inputs, 1 of 100 outputs

    def with_ir(**fields):
        return base.model_copy(update={"ir_drop": base.ir_drop.model_copy(update=fields)})

    lay = module_layout(layer, base)
    assert (lay.rows, lay.cols, lay.n_tiles) == (base.tile.rows, base.tile.cols, 3)
    r, n = lay.rows, 2 * lay.cols  # interleaved: one array of 2 cols bit lines per tile
    exact = irdrop_cost(lay, base)
    assert exact.flops == 3 * n * (r**3 + r**2 * n)
    assert (exact.chain_steps, exact.block_steps) == (2 * r, n - 1)
    separate = with_ir(pair_layout="separate")  # two square arrays per tile
    c = lay.cols
    assert irdrop_cost(lay, separate).flops == 6 * c * (r**3 + r**2 * c)
    fast = irdrop_cost(lay, with_ir(model="fast"))
    assert fast.flops == 40 * 3 * r * n and fast.chain_steps == 2 * (r + n)
    assert fast.block_steps == 0
    for off in (with_ir(enabled=False), with_ir(r_wire_ohm=0.0)):
        assert irdrop_cost(lay, off).seconds(RATE) == 0.0
    # a tall array is solved transposed: the shorter side is the Cholesky size
    tall = base.model_copy(update={"tile": base.tile.model_copy(update={"rows": 1024})})
    tall_lay = module_layout(nn.Linear(1024, 64), tall)
    short, long = 2 * tall_lay.cols, 1024
    assert short < long
    assert irdrop_cost(tall_lay, tall).flops == long * (short**3 + short**2 * long)


def test_the_limit_comes_from_the_environment(tmp_path, monkeypatch, fixed_machine):
    assert max_setup_seconds() == 600.0
    path = _profile(tmp_path / "p.json", 128, 128)
    profile = memsim.load_profile(path)
    model = nn.Sequential(nn.Linear(16, 10))
    cost = irdrop_cost(module_layout(model[0], profile), profile)
    assert 0.01 < cost.seconds(RATE) < 0.1  # 1.6e9 flops, 255 block steps
    monkeypatch.setenv(SETUP_SECONDS_ENV, "0.01")
    with pytest.raises(ChipTimeError) as info:
        memsim.convert(model, path, seed=0)
    assert re.fullmatch(
        r"memsim\.convert: the exact IR-drop solve of 128x128 tiles takes ~1\.6e\+09 flops, "
        r"at least ~0\.022 s at 1e\+11 flop/s \(layer '0': 1 tile\(s\)\); the limit is "
        r"0\.01 s \(MEMSIM_MAX_SETUP_SECONDS\); use smaller tiles \(tile\.rows, tile\.cols\), "
        r"ir_drop\.model 'fast' or ir_drop\.enabled false",
        str(info.value),
    ), str(info.value)
    monkeypatch.setenv(SETUP_SECONDS_ENV, "inf")
    torch.manual_seed(0)
    assert len(memsim.analog_layers(memsim.convert(model, path, seed=0))) == 1
    for bad in ("abc", "0", "-5", "nan"):
        monkeypatch.setenv(SETUP_SECONDS_ENV, bad)
        with pytest.raises(ChipTimeError, match=r"^MEMSIM_MAX_SETUP_SECONDS="):
            memsim.convert(model, path, seed=0)


def test_the_layers_add_up_and_the_fast_model_is_named(tmp_path):
    path = _profile(tmp_path / "p.json", 128, 128, model="fast")
    profile = memsim.load_profile(path)
    layers = [
        (name, module_layout(nn.Linear(k, 10), profile), profile)
        for name, k in (("a", 16), ("b", 300))
    ]
    costs = [irdrop_cost(lay, p).seconds(RATE) for _, lay, p in layers]
    check_setup_time(layers, limit_s=sum(costs), rate=RATE)  # at the limit: accepted
    with pytest.raises(ChipTimeError) as info:
        check_setup_time(layers, limit_s=0.99 * sum(costs), rate=RATE)
    message = str(info.value)
    # the larger layer: 3 tiles of 128 rows by 256 interleaved bit lines, 40 flops a cell
    assert 40 * 3 * 128 * 256 == 3_932_160
    assert message.startswith(
        "memsim.convert: the fast IR-drop solve of 128x128 tiles takes ~3.9e+06 flops"
    ), message
    assert "(layer 'b': 3 tile(s); all 2 layers: ~" in message
    # the fast model is already the light one: only smaller tiles or no IR drop remain
    assert message.endswith("use smaller tiles (tile.rows, tile.cols), ir_drop.enabled false")


def test_the_cli_refuses_it_in_one_line(capsys, tmp_path, fixed_machine, no_solve):
    path = _profile(tmp_path / "big.json", 4096, 4096)
    kwargs = {"in_features": 64, "hidden": (16,), "classes": 10}
    ckpt = save_checkpoint(
        tmp_path / "m.pt", mlp(**kwargs), {"dataset": "digits"}, arch="mlp", model_kwargs=kwargs
    )
    rc, out, err = cli(capsys, "evaluate", ckpt, "--profile", path, "--out", tmp_path / "o")
    assert rc == 2 and out == ""
    assert err.startswith(
        "memsim evaluate: error: memsim.convert: the exact IR-drop solve of 4096x4096 tiles takes ~"
    ), err
    assert "(MEMSIM_MAX_SETUP_SECONDS)" in err and err.count("\n") == 1


def test_a_conductance_map_beyond_the_time_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(SETUP_SECONDS_ENV, raising=False)
    torch.manual_seed(0)
    chip = memsim.convert(nn.Linear(100, 50), "rram_1t1r_yao2020", seed=0)
    memsim.export_chip(chip, tmp_path / "chip.npz", csv_path=tmp_path / "chip.csv")
    ((_, layer),) = memsim.analog_layers(chip)
    lay = layer.layout
    cells, lines = lay.n_tiles * lay.rows * lay.cols, lay.out * lay.k
    assert lines == 5000 and cells >= lines
    seconds = cells * 5e-8 + lines * 1e-6  # the floors of a .npz cell and a CSV line
    assert cells * 5e-8 < 0.002 < seconds
    monkeypatch.setenv(SETUP_SECONDS_ENV, "0.002")
    out = tmp_path / "out"
    with pytest.raises(ChipTimeError) as info:
        memsim.export_chip(chip, out / "chip.npz", csv_path=out / "chip.csv")
    assert str(info.value) == (
        f"memsim.export_chip: {cells:,} tile cells as .npz and 5,000 CSV lines take at least "
        f"~{seconds:.2g} s (>= 0.05 us a cell, 1 us a line); the limit is 0.002 s "
        "(MEMSIM_MAX_SETUP_SECONDS); use the .npz alone (no CSV; memsim export --no-csv) or "
        "smaller tiles (tile.rows, tile.cols)"
    )
    assert not out.exists()  # refused before any file or folder was written
    with pytest.raises(ChipTimeError, match=r"^memsim\.import_conductances: 5,000 CSV lines "):
        memsim.import_conductances(chip, tmp_path / "chip.csv")
    # the .npz alone is within the limit, both ways
    memsim.export_chip(chip, out / "chip.npz")
    memsim.import_conductances(chip, out / "chip.npz")
