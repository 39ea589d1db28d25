"""The hardware commands (export, profiles fit, inspect) and the --conductances hook."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

import memsim
from lab.cli import build_parser
from lab.cli.common import CliError
from lab.hardware import HardwareCliError, apply_measured_conductances, load_chip
from models.checkpoint import save_checkpoint
from models.protonet import ProtoNet

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "measurements.csv"


def _parser() -> argparse.ArgumentParser:
    return build_parser()


def _run(*argv: str) -> int:
    args = _parser().parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = ProtoNet(in_channels=1, hidden=8, blocks=2)
    path = tmp_path_factory.mktemp("ckpt") / "proto.pt"
    return save_checkpoint(path, model, {"dataset": "digits", "task": "protonet-digits"})


def test_export_writes_npz_and_csv_that_import_back(tmp_path, checkpoint, capsys):
    out = tmp_path / "exp"
    assert _run("export", checkpoint, "--profile", "rram_1t1r_yao2020", "--out", out) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "encoder.0.0.weight" in text
    z = np.load(out / "chip.npz")
    assert str(z["schema"]) == memsim.export.SCHEMA and int(z["version"]) == 1
    # the converters were calibrated on the digits calibration images
    assert np.isfinite(z["layer0.adc_range"]).all() and np.isfinite(z["layer0.dac_range"])
    lines = (out / "chip.csv").read_text().splitlines()
    assert lines[0] == ",".join(memsim.export.CSV_COLUMNS)
    assert len(lines) - 1 == int(sum(z[f"layer{i}.used"].sum() for i in range(2)))
    with pytest.raises(CliError, match="exists; pass --force"):
        _run("export", checkpoint, "--profile", "rram_1t1r_yao2020", "--out", out)
    # the hook evaluate uses: a programmed-state export scored on another chip seed
    assert (
        _run(
            "export",
            checkpoint,
            "--profile",
            "rram_1t1r_yao2020",
            "--out",
            tmp_path / "prog",
            "--quantity",
            "programmed",
            "--seed",
            "3",
        )
        == 0
    )
    ref, _ = load_chip(checkpoint, "rram_1t1r_yao2020", seed=3)
    chip, _ = load_chip(
        checkpoint,
        "rram_1t1r_yao2020",
        seed=3,
        chip_seed=50,
        conductances=tmp_path / "prog" / "chip.npz",
    )
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(chip(x), ref(x))


def test_conductances_hook_refuses_a_map_of_another_model(tmp_path, checkpoint):
    torch.manual_seed(1)
    other = save_checkpoint(
        tmp_path / "other.pt", ProtoNet(in_channels=1, hidden=4, blocks=2), {"dataset": "digits"}
    )
    _run("export", other, "--profile", "rram_1t1r_yao2020", "--out", tmp_path / "o")
    chip, _ = load_chip(checkpoint, "rram_1t1r_yao2020", seed=0)
    before = memsim.conductances(chip)
    with pytest.raises(HardwareCliError, match=r"layer 'encoder\.0\.0\.weight'"):
        apply_measured_conductances(chip, tmp_path / "o" / "chip.npz")
    after = memsim.conductances(chip)
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_chip(tmp_path / "missing.pt", "ideal")


def test_profiles_fit_on_the_example_csv(tmp_path, capsys):
    out = tmp_path / "my_chip.json"
    with threadpool_limits(1):
        assert _run("profiles", "fit", EXAMPLE, "--base", "rram_wan2022", "--out", out) == 0
    text = capsys.readouterr().out
    assert "programming: degree" in text and "stuck-at" in text
    data = json.loads(out.read_text())
    assert data["name"] == "my_chip" and data["extends"] == "rram_wan2022"
    prof = memsim.load_profile(out)
    # examples/make_measurements.py drew nu ~ N(0.01, 0.004) and 0.8 % read noise
    assert prof.drift.nu_mean == pytest.approx(0.01, abs=0.002)
    assert prof.read_noise.sigma == pytest.approx(0.008, rel=0.1)
    for png in ("programming", "drift", "read_noise", "stuck"):
        assert (tmp_path / "my_chip_fit" / f"{png}.png").stat().st_size > 1000
    with pytest.raises(CliError, match="--max-degree must be in 0..15"):
        _run(
            "profiles",
            "fit",
            EXAMPLE,
            "--base",
            "rram_wan2022",
            "--out",
            tmp_path / "b.json",
            "--max-degree",
            "20",
        )
    with pytest.raises(CliError, match="must end in .json"):
        _run("profiles", "fit", EXAMPLE, "--base", "rram_wan2022", "--out", tmp_path / "b")


def test_inspect_writes_the_device_figures(tmp_path, checkpoint, capsys):
    out = tmp_path / "insp"
    assert (
        _run(
            "inspect",
            checkpoint,
            "--profile",
            "rram_1t1r_faulty_chen2015",
            "--out",
            out,
            "--times",
            "10,3600",
            "--max-tiles",
            "4",
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "conductances.png",
        "drift.png",
        "faults_encoder.0.0.weight.png",
        "faults_encoder.1.0.weight.png",
        "tiles.png",
    ]
    with pytest.raises(SystemExit):  # argparse: "argument --drift/--times: bad duration 'a'"
        _run("inspect", checkpoint, "--profile", "ideal", "--out", out, "--times", "a,b")
    assert "argument --drift/--times: bad duration 'a'" in capsys.readouterr().err
