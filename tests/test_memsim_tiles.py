"""The tile state: pure operations, a read-only view, no getter with a side effect."""

import copy
import re
from pathlib import Path

import torch
from torch import nn

import memsim
from memsim import tile_ops, tiles
from memsim.seeds import device_seed

ROOT = Path(__file__).resolve().parent.parent


def _chip(profile="rram_1t1r_yao2020"):
    torch.manual_seed(0)
    return memsim.convert(nn.Linear(20, 6), profile, seed=1, chip_seed=2)


def test_target_conductances_has_no_side_effect():
    layer = memsim.analog_layers(_chip("rram_wan2022"))[0][1]
    scale = layer.tiles.scale.clone()
    layer.set_targets(layer.tiles.target * 3.0)
    g = layer.tiles.target_conductances()
    assert torch.equal(layer.tiles.scale, scale)  # the scales change when programmed
    g2, s2 = tiles.target_conductances(layer.tiles.target, layer.layout, layer.profile)
    assert torch.equal(g, g2) and not torch.equal(s2, scale)
    memsim.program(layer, seed=3)
    assert torch.equal(layer.tiles.scale, s2)


def test_view_reads_the_state_and_applies_the_chip_defects():
    layer = memsim.analog_layers(_chip("rram_1t1r_faulty_chen2015"))[0][1]
    view = layer.tiles
    assert view.g_prog is layer.g_prog and view.fault is layer.fault
    g = torch.full_like(view.g_prog, 10.0)
    stuck = view.apply_defects(g)
    assert torch.all(stuck[view.fault == 2] == layer.profile.device.g_max_uS)
    assert torch.all(stuck[view.fault == 1] == layer.profile.device.g_min_uS)
    fault, gain = tiles.draw_defects(tuple(g.shape), layer.profile, torch.Generator())
    assert fault.dtype == torch.int8 and float(gain.min()) >= 0.0


_PRIVATE = re.compile(
    r"(?<!tiles)(?<!self)(?<!view)(?<!layout)\.(g_prog|g_now|w_norm|w_eff|comp_ref|comp_gain|adc_range|dac_range"
    r"|tile_of_partial|_apply_chip|_conductances_at|_has_drift|_read_gens)\b"
)
_LAYER_BUFFERS = re.compile(r"\blayer\.(target|fault|gain|scale|nu)\b")


def test_no_file_outside_the_tile_state_touches_its_buffers():
    owners = {"memsim/tiles.py", "memsim/layers.py", "memsim/periphery.py"}
    hits = []
    for folder in ("memsim", "lab"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in owners:
                continue
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _PRIVATE.search(line) or _LAYER_BUFFERS.search(line):
                    hits.append(f"{rel}:{no}: {line.strip()}")
    assert not hits, "use layer.tiles (read-only) or the layer's methods:\n" + "\n".join(hits)


def _pcm_layer(seed=5):
    torch.manual_seed(0)
    chip = memsim.convert(nn.Linear(20, 6), "pcm_joshi2020", seed=seed)
    return chip, memsim.analog_layers(chip)[0][1]


def test_deferred_drift_exponents_are_the_ones_drawn_after_the_programming_noise():
    # the draw order a programming seed stands for: programming noise, then the exponents,
    # from one generator (a hand-made reference, independent of the deferral)
    chip, layer = _pcm_layer(seed=5)
    g_target = layer.tiles.target_conductances()
    gen = tiles.generator(device_seed(5, tiles.STREAM_PROG, layer.layer_index))
    g = layer.physics.program(g_target, gen)
    nu = layer.physics.drift_exponents(g_target, gen)
    assert torch.equal(layer.tiles.g_prog, g)
    saved = chip.state_dict()["nu"]  # saved without reading tiles.nu first
    assert torch.equal(saved, nu) and torch.equal(layer.tiles.nu, nu)
    assert float(nu.min()) > 0.0  # the law draws |N(mu, sig)| with mu >= 0.049
    # a second programming reuses the tensor of the target conductances: its exponents
    # are its own (the first programming's deferred draw is gone with it)
    layer.set_targets(layer.tiles.target * -0.5)
    memsim.program(layer, seed=7)
    g_target = layer.tiles.target_conductances()
    gen = tiles.generator(device_seed(7, tiles.STREAM_PROG, layer.layer_index))
    layer.physics.program(g_target, gen)
    assert torch.equal(layer.tiles.nu, layer.physics.drift_exponents(g_target, gen))


def test_drift_and_copies_see_the_deferred_exponents():
    _, eager = _pcm_layer()
    eager.tiles.nu  # noqa: B018  (drawn now)
    _, lazy = _pcm_layer()
    twin = copy.deepcopy(lazy)  # a copy made before the draw
    for layer in (eager, lazy, twin):
        memsim.drift(layer, 3600.0)
    assert torch.equal(lazy.tiles.g_now, eager.tiles.g_now)
    assert torch.equal(twin.tiles.g_now, eager.tiles.g_now)
    assert not torch.equal(eager.tiles.g_now, eager.tiles.g_prog)  # it drifted


def test_a_loaded_state_replaces_a_deferred_draw():
    chip_a, layer_a = _pcm_layer(seed=5)
    chip_b, layer_b = _pcm_layer(seed=6)
    chip_a.load_state_dict(chip_b.state_dict())
    assert torch.equal(layer_a.tiles.nu, layer_b.tiles.nu)
    memsim.drift(chip_a, 86400.0)
    memsim.drift(chip_b, 86400.0)
    assert torch.equal(layer_a.tiles.g_now, layer_b.tiles.g_now)


def test_piece_bounds_keep_the_last_piece_at_least_16_long():
    assert tile_ops.piece_bounds(200, 64) == [(0, 64), (64, 128), (128, 200)]  # 8 merged
    assert tile_ops.piece_bounds(210, 64) == [(0, 64), (64, 128), (128, 192), (192, 210)]
    assert tile_ops.piece_bounds(10, 64) == [(0, 10)]


def test_programming_in_pieces_gives_the_values_of_the_whole_layer():
    # the whole-layer steps by hand: programming noise, defects, the 1/f read at t = 0
    profile = memsim.load_profile(
        {"extends": "pcm_joshi2020", "faults": {"stuck_at_gmin_rate": 0.05, "d2d_sigma": 0.1}}
    )
    torch.manual_seed(0)
    layer = memsim.analog_layers(memsim.convert(nn.Linear(23, 7), profile, seed=1))[0][1]
    phys, g_target = layer.physics, layer.tiles.target_conductances()
    fault, gain = tiles.draw_defects(tuple(g_target.shape), profile, torch.Generator())
    g_min, g_max = phys.g_min, phys.g_max
    gen, read = torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)
    g_prog = tiles.apply_defects(phys.program(g_target, gen), fault, gain, g_min, g_max, True)
    g_now = tiles.apply_defects(
        phys.drift(g_prog, None, 0.0, read), fault, gain, g_min, g_max, False
    )
    for piece in (64, 128, 4096):  # 322 devices: a last piece of 66 (64 + 2), 66, all
        out_prog, out_now = torch.empty_like(g_target), torch.empty_like(g_target)
        tile_ops.program_in_pieces(
            g_target,
            phys,
            torch.Generator().manual_seed(3),
            torch.Generator().manual_seed(4),
            (fault.reshape(-1), gain.reshape(-1)),
            out_prog,
            out_now,
            piece,
        )
        assert torch.equal(out_prog, g_prog) and torch.equal(out_now, g_now), piece
    assert not torch.equal(g_now, g_prog)  # the read at t = 0 added 1/f noise
