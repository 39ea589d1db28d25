"""memsim compare simulates the same layers on both sides unless told otherwise."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

pytest.importorskip("aihwkit")

from cli_support import cli  # noqa: E402

import models.checkpoint  # noqa: E402
from memsim.backends.compare import compare  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402


class Separable(nn.Module):
    """A digits classifier with a depthwise conv, which aihwkit cannot map."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 10),
        )

    def forward(self, x):
        return self.body(x)


def _data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return Separable().eval(), torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))


def test_by_default_both_sides_keep_the_depthwise_conv_digital(capsys):
    model, x, y = _data()
    res = compare(model, "pcm_joshi2020", x, y, drift_times=[3600.0], draws=1, verbose=True)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (
        "digital on both sides (aihwkit cannot map them, so memsim keeps them digital too): "
        "body.2 (depthwise conv (groups=4)); memsim compare --unequal-layers maps them onto "
        "memsim's tiles only"
    )
    assert res["equal_layers"] is True
    assert res["digital_both_sides"] == ["body.2"] and res["digital_aihwkit_only"] == []
    # memsim's chip really has no tiles for it
    assert res["memsim_analog_layers"] == ["body.0", "body.5"]
    where = {r["name"]: (r["memsim"], r["aihwkit"]) for r in res["layers"]}
    assert where == {
        "body.0": ("analog", "analog"),
        "body.2": ("digital", "digital"),
        "body.5": ("analog", "analog"),
    }
    assert "digital on both sides: body.2" in printed
    assert "Digital on both sides (aihwkit cannot map them): `body.2`" in res["knob_report"]
    assert "| `body.2` | conv2d | digital | digital | - |" in res["knob_report"]


def test_the_unequal_comparison_is_behind_a_flag_and_says_so(capsys):
    model, x, y = _data()
    res = compare(model, "pcm_joshi2020", x, y, drift_times=[3600.0], draws=1, equal_layers=False)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (
        "UNEQUAL LAYERS: digital on the aihwkit side only, on tiles on memsim's side: body.2 "
        "(depthwise conv (groups=4))"
    )
    assert res["digital_both_sides"] == [] and res["digital_aihwkit_only"] == ["body.2"]
    assert res["memsim_analog_layers"] == ["body.0", "body.2", "body.5"]
    assert "UNEQUAL LAYERS, digital on the aihwkit side only: body.2" in printed


def test_the_cli_compares_like_for_like_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(models.checkpoint, "ARCHITECTURES", dict(models.checkpoint.ARCHITECTURES))
    models.checkpoint.register_architecture("separable_test", Separable)
    model, _, _ = _data()
    ckpt = save_checkpoint(tmp_path / "sep.pt", model, {"dataset": "digits"})
    argv = [
        "compare",
        ckpt,
        "--profile",
        "pcm_joshi2020",
        "--drift",
        "1h",
        "--draws",
        "1",
        "--limit",
        "40",
    ]
    rc, out, err = cli(capsys, *argv, "--out", tmp_path / "eq")
    assert rc == 0, err
    assert out.splitlines()[0].startswith("digital on both sides (aihwkit cannot map them")
    saved = json.loads((tmp_path / "eq" / "compare.json").read_text())
    assert saved["memsim_analog_layers"] == ["body.0", "body.5"]
    rc, out, err = cli(capsys, *argv, "--unequal-layers", "--out", tmp_path / "uneq")
    assert rc == 0, err
    assert out.splitlines()[0].startswith("UNEQUAL LAYERS: digital on the aihwkit side only")
    saved = json.loads((tmp_path / "uneq" / "compare.json").read_text())
    assert saved["memsim_analog_layers"] == ["body.0", "body.2", "body.5"]
