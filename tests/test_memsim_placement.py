"""Per-tile row/column placement of weights (memsim.placement): state, physics, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import memsim
from memsim import placement as P

PROFILE = "rram_1t1r_faulty_chen2015"


def _chip(seed: int = 3) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 10))  # two column tiles of 8 columns: 8 + 2 used
    return memsim.convert(net, memsim.load_profile(PROFILE), seed=seed, chip_seed=5)


def _placement() -> P.Placement:
    chip = _chip()
    lay = memsim.analog_layers(chip)[0][1].layout
    rows, cols = P.identity_placement(lay)
    gen = torch.Generator().manual_seed(1)
    rows[0, :20] = torch.randperm(20, generator=gen)
    rows[1, :20] = torch.randperm(20, generator=gen)
    cols[0, :8] = torch.randperm(8, generator=gen)
    cols[1, :2] = torch.tensor([1, 0])
    return rows, cols


def test_weights_see_the_device_at_their_placed_cell(tmp_path: Path) -> None:
    chip = _chip()
    layer = memsim.analog_layers(chip)[0][1]
    fault_before = layer.tiles.fault.clone()
    memsim.set_placement(chip, {"0.weight": _placement()})
    # the chip's devices did not move: only which weight sits on them
    assert torch.equal(layer.tiles.fault, fault_before)
    path = memsim.export_chip(chip, tmp_path / "c.npz", quantity="programmed")
    z = np.load(path)
    t, r, c = z["layer0.pos_tile"], z["layer0.pos_row"], z["layer0.pos_col"]
    physical_fault = np.stack([z["layer0.fault_plus"][t, r, c], z["layer0.fault_minus"][t, r, c]])
    placed = layer.tiles.placed(layer.tiles.fault).numpy()
    assert (placed == physical_fault).all()
    assert not (placed == fault_before.numpy()).all()  # the placement moved a stuck device
    # stuck devices hold their level under whichever weight sits on them
    g = layer.tiles.g_prog.numpy()
    assert np.allclose(g[placed == 2], layer.physics.g_max)
    assert np.allclose(g[placed == 1], layer.physics.g_min)


def test_placement_changes_the_chip_and_survives_programming() -> None:
    chip = _chip()
    layer = memsim.analog_layers(chip)[0][1]
    w0 = layer.tiles.w_eff.clone()
    memsim.set_placement(chip, {"0.weight": _placement()})
    w1 = layer.tiles.w_eff.clone()
    assert not torch.equal(w0, w1)
    memsim.program(chip, seed=3)  # same seed, placement kept: same state
    assert torch.equal(layer.tiles.w_eff, w1)
    memsim.clear_placement(chip)
    assert torch.equal(layer.tiles.w_eff, w0)


def test_state_dict_and_conductance_map_round_trip(tmp_path: Path) -> None:
    chip = _chip()
    memsim.set_placement(chip, {"0.weight": _placement()})
    w = memsim.analog_layers(chip)[0][1].tiles.w_eff.clone()
    sd = chip.state_dict()
    again = _chip(seed=4)
    again.load_state_dict(sd)
    assert torch.equal(memsim.analog_layers(again)[0][1].tiles.w_eff, w)
    # a state saved before placements existed loads with the identity placement
    old = _chip(seed=4)
    old.load_state_dict({k: v for k, v in sd.items() if not k.endswith("_perm")})
    assert P.is_identity(memsim.analog_layers(old)[0][1].tiles.placement)

    path = memsim.export_chip(chip, tmp_path / "c.npz", quantity="programmed")
    imported = memsim.import_conductances(_chip(seed=4), path)
    layer = memsim.analog_layers(imported)[0][1]
    rows, cols = _placement()
    assert torch.equal(layer.tiles.placement[0], rows) and torch.equal(
        layer.tiles.placement[1], cols
    )
    assert torch.allclose(layer.tiles.w_eff, w, atol=1e-5)


def test_invalid_placements_are_refused() -> None:
    chip = _chip()
    lay = memsim.analog_layers(chip)[0][1].layout
    rows, cols = P.identity_placement(lay)
    bad = cols.clone()
    bad[1, :8] = torch.arange(8).flip(0)  # moves the 2 used columns of tile 1 to unused ones
    with pytest.raises(ValueError, match="outside"):
        memsim.set_placement(chip, {"0.weight": (rows, bad)})
    dup = rows.clone()
    dup[0, 1] = 0
    with pytest.raises(ValueError, match="permutation"):
        memsim.set_placement(chip, {"0.weight": (dup, cols)})
    with pytest.raises(ValueError, match="no analog layer"):
        memsim.set_placement(chip, {"fc.weight": (rows, cols)})
