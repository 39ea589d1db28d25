"""``memsim cost`` (lab/cli/cost.py) through a local argparse parser."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import torch

from lab.cli import build_parser
from lab.cli.common import CliError
from models.checkpoint import save_checkpoint
from models.protonet import ProtoNet


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, ProtoNet(in_channels=1, hidden=8, blocks=2), {"dataset": "digits"})
    return path


def test_cost_command_prints_and_writes_csv_json_and_plot(checkpoint, tmp_path, capsys):
    out = tmp_path / "cost"
    args = _parse(
        [
            "cost",
            str(checkpoint),
            "--profile",
            "rram_1t1r_yao2020",
            "--images",
            "16",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "TOPS/W" in printed and "encoder.0.0" in printed
    data = json.loads((out / "cost.json").read_text())
    assert data["profile"] == "rram_1t1r_yao2020" and data["inferences"] == 16
    assert [r["kind"] for r in data["layers"]] == ["conv2d", "conv2d"]
    rows = list(csv.DictReader((out / "cost.csv").open()))
    assert rows[-1]["name"] == "total"
    assert float(rows[-1]["energy_J"]) == pytest.approx(data["totals"]["energy_J"])
    png = (out / "cost_energy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_command_user_errors(checkpoint, tmp_path):
    args = _parse(["cost", str(tmp_path / "none.pt"), "--profile", "rram_wan2022"])
    with pytest.raises(CliError, match="none.pt"):
        args.func(args)
    args = _parse(["cost", str(checkpoint), "--profile", "ideal", "--out", str(tmp_path)])
    with pytest.raises(CliError, match=r"dac\.bits"):
        args.func(args)
    args = _parse(["cost", str(checkpoint), "--profile", "no_such_chip"])
    with pytest.raises(CliError, match="unknown profile name"):
        args.func(args)
    args = _parse(["cost", str(checkpoint), "--profile", "rram_wan2022", "--images", "0"])
    with pytest.raises(CliError, match="--images"):
        args.func(args)
