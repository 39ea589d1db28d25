"""Conductance maps: export -> import round trips, CSV == npz, refused maps."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from torch import nn

import memsim
from memsim.export import CSV_COLUMNS, ConductanceMapError
from models.data import load_digits_dataset
from tests.digits_support import trained_digits_mlp


def _profile(base: str, **over: dict) -> memsim.DeviceProfile:
    raw = memsim.load_profile(base).model_dump(mode="json")
    for section, values in over.items():
        raw[section] = {**raw[section], **values}
    raw["name"] = f"{base}_test"
    return memsim.validate_profile(raw)


def _noiseless() -> memsim.DeviceProfile:
    # Wan's chip with every random effect off: 4-bit DAC, 8-bit ADC, 256x256 tiles cut
    # down so the MLP spans several tiles
    return _profile(
        "rram_wan2022",
        programming_noise={"model": "none"},
        read_noise={"model": "none"},
        tile={"rows": 24, "cols": 12},
    )


def _accuracy(chip: nn.Module, data) -> float:
    with torch.no_grad():
        return float((chip(data.images).argmax(1) == data.labels).float().mean())


@pytest.fixture(scope="module")
def digits():
    train, test = load_digits_dataset()
    return train, test, trained_digits_mlp(train)


def _state(chip: nn.Module) -> dict[str, torch.Tensor]:
    # tensors only: the non-tensor _extra_state (seed, age, flags) is covered by g_now
    out = {k: v.clone() for k, v in chip.state_dict().items() if isinstance(v, torch.Tensor)}
    for name, layer in memsim.analog_layers(chip):
        out[f"{name}.g_now"] = layer.g_now.clone()
    return out


def test_round_trip_without_noise_is_bit_exact(tmp_path, digits):
    train, test, model = digits
    prof = _noiseless()
    cal = train.images[:256]
    chip = memsim.convert(model, prof, seed=0, chip_seed=0)
    memsim.calibrate(chip, cal)
    ref_out = chip(test.images)
    ref_acc = _accuracy(chip, test)
    memsim.export_chip(chip, tmp_path / "chip.npz", csv_path=tmp_path / "chip.csv")
    for name in ("chip.npz", "chip.csv"):
        other = memsim.convert(model, prof, seed=11, chip_seed=12)
        # scramble the second chip so that only the import can make it agree
        gen = torch.Generator().manual_seed(0)
        for _, layer in memsim.analog_layers(other):
            layer.load_measured(torch.rand(layer.g_prog.shape, generator=gen) * 40)
        memsim.calibrate(other, cal)
        assert not torch.equal(other(test.images), ref_out)
        memsim.import_conductances(other, tmp_path / name)
        memsim.calibrate(other, cal)
        assert torch.equal(other(test.images), ref_out), name
        assert _accuracy(other, test) == ref_acc
    # the map holds the targets: weight_scale * (G+ - G-) / window gives the weights back
    z = np.load(tmp_path / "chip.npz")
    w = model[1].weight.detach().numpy()
    t, r, c = z["layer0.pos_tile"], z["layer0.pos_row"], z["layer0.pos_col"]
    dg = z["layer0.g_plus_uS"][t, r, c] - z["layer0.g_minus_uS"][t, r, c]
    back = z["layer0.weight_scale"][t, c] * dg / (prof.device.g_max_uS - prof.device.g_min_uS)
    np.testing.assert_allclose(back, w, rtol=0, atol=1e-5 * np.abs(w).max())
    assert z["layer0.layout"][-1] == memsim.tile_report(chip).layers[0].tiles > 1
    np.testing.assert_array_equal(z["layer0.bias"], model[1].bias.detach().numpy())


def test_programmed_state_moves_to_another_chip(tmp_path, digits):
    # a noisy, faulty chip's programmed state imported into a chip of another seed:
    # the second chip computes exactly what the first does (same read-noise seed)
    train, test, model = digits
    prof = memsim.load_profile("rram_1t1r_faulty_chen2015")
    cal = train.images[:256]
    chip = memsim.convert(model, prof, seed=3, chip_seed=4)
    memsim.calibrate(chip, cal)
    ref = chip(test.images)
    memsim.export_chip(chip, tmp_path / "prog.npz", quantity="programmed")
    other = memsim.convert(model, prof, seed=3, chip_seed=99)
    assert not torch.equal(other(test.images), ref)
    memsim.import_conductances(other, tmp_path / "prog.npz")
    memsim.calibrate(other, cal)
    assert torch.equal(other(test.images), ref)
    for (_, a), (_, b) in zip(memsim.analog_layers(chip), memsim.analog_layers(other)):
        assert torch.equal(a.fault, b.fault) and torch.equal(a.gain, b.gain)
    # drift after the import ages the measured state with the chip's exponents
    memsim.drift(chip, 3600.0)
    memsim.drift(other, 3600.0)
    assert torch.equal(
        memsim.effective_weights(chip)["1.weight"], memsim.effective_weights(other)["1.weight"]
    )


def test_measurement_is_read_exactly_at_t0_on_pcm(tmp_path, digits):
    # pcm_joshi2020 adds accumulated 1/f noise at every read; an imported measurement
    # already is a read, so at t = 0 the chip holds it unchanged
    _, _, model = digits
    chip = memsim.convert(model, "pcm_joshi2020", seed=0)
    memsim.export_chip(chip, tmp_path / "m.npz", quantity="target")
    memsim.import_conductances(chip, tmp_path / "m.npz")
    z = np.load(tmp_path / "m.npz")
    got = memsim.conductances(chip)["1.weight"].numpy()
    t, r, c = z["layer0.pos_tile"], z["layer0.pos_row"], z["layer0.pos_col"]
    assert np.array_equal(got[0], z["layer0.g_plus_uS"][t, r, c])
    memsim.drift(chip, 86400.0)
    assert not np.array_equal(memsim.conductances(chip)["1.weight"].numpy()[0], got[0])


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_csv_and_npz_hold_the_same_numbers(tmp_path, digits):
    _, _, model = digits
    prof = _profile("rram_1t1r_yao2020", tile={"rows": 40, "cols": 8})  # 8 levels
    chip = memsim.convert(model, prof, seed=1, chip_seed=2)
    memsim.export_chip(chip, tmp_path / "c.npz", csv_path=tmp_path / "c.csv")
    z = np.load(tmp_path / "c.npz")
    header, rows = _read_csv(tmp_path / "c.csv")
    assert tuple(header) == CSV_COLUMNS
    names = [str(n) for n in z["layer_names"]]
    assert names == ["1.weight", "3.weight"]
    for i, name in enumerate(names):
        mine = [r for r in rows if r[0] == name]
        t, r, c = (np.array([int(x[j]) for x in mine]) for j in (1, 2, 3))
        used = z[f"layer{i}.used"]
        assert len(mine) == int(used.sum()) == model[2 * i + 1].weight.numel()
        assert used[t, r, c].all()
        for j, key in ((4, "g_plus_uS"), (5, "g_minus_uS")):
            vals = np.array([float(x[j]) for x in mine], dtype=np.float32)
            assert np.array_equal(vals, z[f"layer{i}.{key}"][t, r, c])
        for j, key in ((6, "level_plus"), (7, "level_minus")):
            vals = np.array([int(x[j]) for x in mine])
            assert np.array_equal(vals, z[f"layer{i}.{key}"][t, r, c])
    # levels: each target is g_min + level * window / 7, level = round(|w|/s * 7)
    w = model[1].weight.detach()
    s = chip[1].scale.repeat_interleave(chip[1].layout.row_span, 1)[:, : w.shape[1]]
    lev = torch.round((w / s).abs() * 7).numpy().astype(int)
    t, r, c = z["layer0.pos_tile"], z["layer0.pos_row"], z["layer0.pos_col"]
    got = np.where(w.numpy() > 0, z["layer0.level_plus"][t, r, c], z["layer0.level_minus"][t, r, c])
    assert np.array_equal(got, lev)
    g = z["layer0.g_plus_uS"][t, r, c]
    np.testing.assert_allclose(g, 2.0 + z["layer0.level_plus"][t, r, c] * 18.0 / 7, atol=1e-5)


def _write_npz(path, src, **changes):
    z = dict(np.load(src))
    for key, val in changes.items():
        if val is None:
            z.pop(key)
        else:
            z[key] = val
    np.savez(path, **z)
    return path


@pytest.fixture
def exported(tmp_path, digits):
    _, _, model = digits
    prof = _profile("rram_wan2022", tile={"rows": 24, "cols": 12})
    chip = memsim.convert(model, prof, seed=0, chip_seed=0)
    src = memsim.export_chip(chip, tmp_path / "ok.npz", csv_path=tmp_path / "ok.csv")
    target = memsim.convert(model, prof, seed=5, chip_seed=6)
    return tmp_path, src, target


def _refused(chip, path, *words):
    before = _state(chip)
    with pytest.raises(ConductanceMapError) as err:
        memsim.import_conductances(chip, path)
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    after = _state(chip)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    return msg


def test_malformed_maps_are_refused_and_the_chip_is_unchanged(exported):
    tmp, src, chip = exported
    z = np.load(src)
    g1 = z["layer1.g_plus_uS"]
    # wrong shape: the last tile of the second layer is missing
    _refused(
        chip,
        _write_npz(tmp / "a.npz", src, **{"layer1.g_plus_uS": g1[:-1]}),
        "layer '3.weight'",
        f"tile {g1.shape[0] - 1}",
    )
    # tiles of another size
    _refused(
        chip,
        _write_npz(tmp / "b.npz", src, **{"layer0.g_minus_uS": z["layer0.g_minus_uS"][:, :-1]}),
        "layer '1.weight'",
        "tile 0",
        "24 x 12",
    )
    # missing layer
    names = z["layer_names"][:1]
    _refused(
        chip,
        _write_npz(tmp / "c.npz", src, layer_names=names),
        "layer '3.weight'",
        "tiles 0..",
        "missing",
    )
    # negative conductance in a later tile of the first layer; the valid second layer
    # is not written either
    bad = z["layer0.g_plus_uS"].copy()
    t, r, c = (int(z[f"layer0.pos_{k}"][0, 50]) for k in ("tile", "row", "col"))
    assert t > 0
    bad[t, r, c] = -0.5
    msg = _refused(
        chip,
        _write_npz(tmp / "d.npz", src, **{"layer0.g_plus_uS": bad}),
        "layer '1.weight'",
        f"tile {t}",
        "negative",
    )
    assert f"row {r}, col {c}" in msg
    # wrong units field
    _refused(chip, _write_npz(tmp / "e.npz", src, units=np.array("nS")), "units", "'nS'")
    _refused(chip, _write_npz(tmp / "f.npz", src, units=None), "units")
    # values a thousand times too large (nS written as uS)
    _refused(
        chip,
        _write_npz(tmp / "g.npz", src, **{"layer1.g_minus_uS": z["layer1.g_minus_uS"] * 1000}),
        "layer '3.weight'",
        "micro-siemens",
    )
    # NaN and a fault code that does not exist
    nan = z["layer1.g_minus_uS"].copy()
    nan[0, 0, 0] = np.nan
    _refused(
        chip,
        _write_npz(tmp / "h.npz", src, **{"layer1.g_minus_uS": nan}),
        "layer '3.weight'",
        "tile 0",
        "non-finite",
    )
    codes = z["layer0.fault_plus"].copy()
    codes[1, 0, 0] = 7
    _refused(
        chip,
        _write_npz(tmp / "i.npz", src, **{"layer0.fault_plus": codes}),
        "layer '1.weight'",
        "tile 1",
        "fault_plus",
    )
    # a map exported for other weights (its scales differ)
    _refused(
        chip,
        _write_npz(tmp / "j.npz", src, **{"layer0.weight_scale": z["layer0.weight_scale"] * 2}),
        "layer '1.weight'",
        "weight_scale",
    )
    # an unknown layer name
    _refused(
        chip,
        _write_npz(tmp / "k.npz", src, layer_names=np.array(["1.weight", "x.weight"])),
        "x.weight",
    )


def test_malformed_csv_is_refused(exported):
    tmp, _, chip = exported
    header, rows = _read_csv(tmp / "ok.csv")

    def write(name, head, body):
        with open(tmp / name, "w", newline="") as f:
            csv.writer(f).writerows([head, *body])
        return tmp / name

    units = [h.replace("g_plus_uS", "g_plus_nS") for h in header]
    _refused(chip, write("u.csv", units, rows), "g_plus_nS", "units")
    second = [r for r in rows if r[0] == "3.weight"]
    _refused(
        chip,
        write("m.csv", header, [r for r in rows if r[0] != "3.weight"]),
        "layer '3.weight'",
        "missing",
    )
    drop = second[-1]
    _refused(
        chip,
        write("s.csv", header, [r for r in rows if r is not drop]),
        "layer '3.weight'",
        f"tile {drop[1]}",
        "missing",
    )
    neg = [list(r) for r in rows]
    neg[5][5] = "-1.0"
    _refused(
        chip, write("n.csv", header, neg), f"layer '{neg[5][0]}'", f"tile {neg[5][1]}", "negative"
    )
    dup = [*rows, rows[0]]
    _refused(chip, write("d.csv", header, dup), "more than once")
    # the untouched CSV is accepted, also with every field quoted
    memsim.import_conductances(chip, tmp / "ok.csv")
    assert chip[1].measured and chip[3].measured
    g = memsim.conductances(chip)
    with open(tmp / "q.csv", "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows([header, *rows])
    memsim.import_conductances(chip, tmp / "q.csv")
    assert all(torch.equal(g[k], v) for k, v in memsim.conductances(chip).items())
    bad = [list(r) for r in rows]
    bad[3][4] = "abc"
    _refused(chip, write("x.csv", header, bad), "not a table")


def test_missing_file_is_file_not_found(tmp_path, digits):
    _, _, model = digits
    chip = memsim.convert(model, "ideal", seed=0)
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        memsim.import_conductances(chip, tmp_path / "nope.npz")
