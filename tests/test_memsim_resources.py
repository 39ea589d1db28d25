"""A chip beyond the machine's memory is refused at once, with an estimate (memsim.resources)."""

from __future__ import annotations

import json
import re
import time

import pytest
import torch
from cli_support import cli
from torch import nn

import memsim
import memsim.resources
from memsim.resources import ChipMemoryError, irdrop_bytes, module_layout
from models.checkpoint import save_checkpoint
from models.small import mlp


def _huge_irdrop_profile(path):
    path.write_text(
        json.dumps(
            {
                "name": "huge_irdrop",
                "extends": "rram_wan2022_irdrop",
                "tile": {"rows": 65536, "cols": 65536},
            }
        )
    )
    return path


@pytest.fixture
def machine_64gib(monkeypatch):
    """A machine with at most 64 GiB free, so that the refusals do not depend on the host."""
    real = memsim.resources.available_bytes("cpu")
    assert real is not None and real > 0  # /proc/meminfo or sysconf answered
    free = min(real, 64 * 2**30)
    monkeypatch.setattr(memsim.resources, "available_bytes", lambda device="cpu": free)
    return free


def test_huge_tiles_with_ir_drop_are_refused_within_seconds(tmp_path, machine_64gib):
    path = _huge_irdrop_profile(tmp_path / "huge.json")
    memsim.load_profile(path)  # the profile itself is valid: it is the chip that is too big
    start = time.perf_counter()
    with pytest.raises(ChipMemoryError) as info:
        memsim.convert(nn.Sequential(nn.Linear(16, 10)), path, seed=0)
    assert time.perf_counter() - start < 30  # the unguarded convert ran for minutes
    message = str(info.value)
    assert re.fullmatch(
        r"memsim\.convert: IR drop on 65536x65536 tiles needs ~[0-9,]+ GiB for the transfer "
        r"matrices \(layer '0': 1 tile\(s\)\); this machine has [0-9.,]+ GiB available; use "
        r"smaller tiles \(tile\.rows, tile\.cols\), ir_drop\.model 'fast' or "
        r"ir_drop\.enabled false",
        message,
    ), message
    assert isinstance(info.value, MemoryError) and isinstance(info.value, ValueError)
    # a float64 transfer matrix of 65536 x 131072 alone is 64 GiB; the estimate is above it
    assert int(re.search(r"~([0-9,]+) GiB", message)[1].replace(",", "")) > 64


def test_a_chip_within_memory_is_not_refused():
    torch.manual_seed(0)
    chip = memsim.convert(nn.Linear(32, 8), "rram_wan2022_irdrop", seed=0)
    assert len(memsim.analog_layers(chip)) == 1


def test_the_weights_alone_can_be_too_many(monkeypatch):
    monkeypatch.setattr(memsim.resources, "available_bytes", lambda device="cpu": 2**20)
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    with pytest.raises(ChipMemoryError) as info:
        memsim.convert(model, "rram_1t1r_yao2020", seed=0)
    assert str(info.value) == (
        "memsim.convert: the chip needs ~0.012 GiB for 267,264 weights on 2 analog layer(s); "
        "this machine has 0.00098 GiB available; keep large layers digital or use a smaller "
        "model"
    )


def test_the_estimate_grows_with_the_solve():
    base = memsim.load_profile("rram_wan2022_irdrop")
    layer = nn.Linear(1024, 1024)
    exact = irdrop_bytes(module_layout(layer, base), base)
    fast_profile = base.model_copy(
        update={"ir_drop": base.ir_drop.model_copy(update={"model": "fast"})}
    )
    off = base.model_copy(update={"ir_drop": base.ir_drop.model_copy(update={"enabled": False})})
    assert irdrop_bytes(module_layout(layer, off), off) == 0
    assert 0 < irdrop_bytes(module_layout(layer, fast_profile), fast_profile) < exact


def test_export_and_import_of_huge_tiles_are_refused(tmp_path, machine_64gib):
    path = tmp_path / "huge.json"
    path.write_text(
        json.dumps(
            {"name": "huge", "extends": "rram_wan2022", "tile": {"rows": 65536, "cols": 65536}}
        )
    )
    torch.manual_seed(0)
    chip = memsim.convert(nn.Linear(16, 10), path, seed=0)  # without IR drop: small
    start = time.perf_counter()
    with pytest.raises(ChipMemoryError) as info:
        memsim.export_chip(chip, tmp_path / "chip.npz")
    assert re.fullmatch(
        r"memsim\.export_chip: the per-tile arrays of 65536x65536 tiles need ~96 GiB "
        r"\(4,294,967,296 cells; largest: layer 'weight', 1 tile\(s\)\); this machine has "
        r"[0-9.,]+ GiB available; use smaller tiles \(tile\.rows, tile\.cols\)",
        str(info.value),
    ), str(info.value)
    with pytest.raises(ChipMemoryError, match=r"^memsim\.import_conductances: the per-tile"):
        memsim.import_conductances(chip, tmp_path / "chip.npz")
    assert time.perf_counter() - start < 30
    assert list(tmp_path.iterdir()) == [path]


def test_the_cli_refuses_it_in_one_line(capsys, tmp_path, machine_64gib):
    path = _huge_irdrop_profile(tmp_path / "huge.json")
    kwargs = {"in_features": 64, "hidden": (16,), "classes": 10}
    ckpt = save_checkpoint(
        tmp_path / "m.pt", mlp(**kwargs), {"dataset": "digits"}, arch="mlp", model_kwargs=kwargs
    )
    rc, out, err = cli(capsys, "evaluate", ckpt, "--profile", path, "--out", tmp_path / "o")
    assert rc == 2 and out == ""
    assert err.startswith(
        "memsim evaluate: error: memsim.convert: IR drop on 65536x65536 tiles needs ~"
    )
    assert err.count("\n") == 1
