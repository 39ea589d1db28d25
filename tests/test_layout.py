"""The one command line: global flags, one --drift syntax, one model registry, compare."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from cli_support import cli
from torch import nn

import models
from lab.cli import _leaf_parsers, build_parser
from lab.experiment.config import describe_config, load_config
from models.checkpoint import load_checkpoint, save_checkpoint, save_model
from models.data import load_dataset
from models.protonet import ProtoNet
from models.small import mlp

needs_aihwkit = pytest.mark.skipif(
    importlib.util.find_spec("aihwkit") is None, reason="needs aihwkit"
)


def _leaves() -> list:
    return [p for p in _leaf_parsers(build_parser()) if p.prog != "memsim"]


def _minimal_args(prog: str) -> list[str]:
    # the positional arguments each subcommand needs before its options parse
    words = prog.split()[1:]
    need = {
        "evaluate": ["x.pt", "--profile", "ideal"],
        "compare": ["x.pt", "--profile", "ideal"],
        "cost": ["x.pt", "--profile", "ideal"],
        "export": ["x.pt", "--profile", "ideal", "--out", "o"],
        "inspect": ["x.pt", "--profile", "ideal"],
        "train-baseline": ["protonet-digits"],
        "show": ["ideal"],
        "validate": ["x.json"],
        "fit": ["m.csv", "--base", "rram_wan2022", "--out", "o.json"],
        "grid": ["x.toml", "--grid", "ga.seed=1,2"],
    }
    return words + need.get(words[-1], [])


def test_every_subcommand_takes_the_global_flags_before_or_after_its_name(tmp_path):
    parser = build_parser()
    leaves = _leaves()
    assert len(leaves) >= 12
    for leaf in leaves:
        argv = _minimal_args(leaf.prog)
        after = parser.parse_args(
            [*argv, "--threads", "3", "--data-root", str(tmp_path), "--no-progress"]
        )
        before = parser.parse_args(
            ["--threads", "3", "--data-root", str(tmp_path), "--no-progress", *argv]
        )
        for args in (after, before):
            assert args.threads == 3, leaf.prog
            assert args.data_root == str(tmp_path), leaf.prog
            assert args.progress is False, leaf.prog
            assert args.device == "cpu", leaf.prog
        plain = parser.parse_args(argv)
        assert plain.threads is None and plain.progress is True and plain.data_root is None


def test_threads_flag_sets_torch_threads_on_any_subcommand(capsys):
    before = torch.get_num_threads()
    try:
        rc, out, _ = cli(capsys, "profiles", "list", "--threads", "2")
        assert rc == 0 and "rram_1t1r_yao2020" in out
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_threads_must_be_a_positive_integer(capsys, value):
    rc, _, err = cli(capsys, "--threads", value, "profiles", "list")
    assert rc == 2 and "expected an integer >= 1" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a CPU machine")
def test_device_cuda_is_refused_without_cuda(capsys):
    rc, _, err = cli(capsys, "profiles", "list", "--device", "cuda")
    assert rc == 2 and "CUDA is not available" in err
    rc, _, err = cli(capsys, "--device", "tpu", "profiles", "list")
    assert rc == 2 and "expected cpu, cuda or cuda:N" in err


def test_data_root_after_the_subcommand_is_where_data_is_read(capsys, tmp_path):
    torch.manual_seed(0)
    net = ProtoNet(in_channels=1, hidden=8)
    ckpt = save_checkpoint(tmp_path / "p.pt", net, {"dataset": "fashion_mnist"})
    (tmp_path / "empty").mkdir()  # a missing --data-root is refused before any work
    rc, _, err = cli(
        capsys, "evaluate", ckpt, "--profile", "ideal", "--data-root", tmp_path / "empty"
    )
    assert rc == 2 and "fashion_mnist" in err and str(tmp_path / "empty") in err


def test_one_drift_syntax_everywhere():
    parser = build_parser()
    for cmd in ("evaluate", "compare"):
        a = parser.parse_args([cmd, "x.pt", "--profile", "ideal", "--drift", "1h", "1d"])
        b = parser.parse_args([cmd, "x.pt", "--profile", "ideal", "--drift", "3600,86400"])
        assert a.drift == [[3600.0], [86400.0]] and b.drift == [[3600.0, 86400.0]]
    for bad in ("nan", "inf", "-1", "1 fortnight"):
        with pytest.raises(SystemExit):
            parser.parse_args(["evaluate", "x.pt", "--profile", "ideal", "--drift", bad])


def test_mlp_checkpoints_evaluate_through_the_one_registry(capsys, tmp_path):
    torch.manual_seed(0)
    net = mlp(64, (32,), 10)
    ckpt = save_model(
        tmp_path / "mlp.pt",
        "mlp",
        net,
        {"dataset": "digits"},
        {"in_features": 64, "hidden": [32], "classes": 10},
    )
    rc, out, err = cli(
        capsys, "evaluate", ckpt, "--profile", "ideal", "--draws", "1", "--out", tmp_path / "e"
    )
    assert rc == 0, err
    data = json.loads((tmp_path / "e" / "evaluate.json").read_text())
    # the ideal chip computes what the digital model computes
    assert data["results"][0]["mean_pct"] == pytest.approx(data["digital_pct"], abs=1e-9)


def test_a_users_own_network_is_registered_through_the_api(tmp_path):
    class TwoLayer(nn.Module):
        def __init__(self, width: int = 5) -> None:
            super().__init__()
            self.width = width
            self.net = nn.Sequential(
                nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)
            )

        def forward(self, x):
            return self.net(x)

        def init_kwargs(self):
            return {"width": self.width}

    models.register_architecture("two_layer_test", TwoLayer)
    torch.manual_seed(0)
    net = TwoLayer(7)
    path = save_checkpoint(tmp_path / "t.pt", net, {"dataset": "digits"})
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, TwoLayer) and loaded.width == 7 and meta == {"dataset": "digits"}
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(loaded(x), net.eval()(x))
    with pytest.raises(ValueError, match="already registered"):
        models.register_architecture("two_layer_test", mlp)


def test_a_derived_profile_without_a_name_is_labelled_by_its_file(tmp_path):
    import memsim

    path = tmp_path / "yao_256.json"
    path.write_text(json.dumps({"extends": "rram_1t1r_yao2020", "tile": {"rows": 256}}))
    prof = memsim.load_profile(path)
    assert prof.name == "yao_256" and prof.tile.rows == 256
    assert prof.description.startswith("yao_256 (extends rram_1t1r_yao2020).")
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"name": "mine", "extends": "rram_1t1r_yao2020"}))
    assert memsim.load_profile(named).name == "mine"


def test_print_config_lists_every_key_with_default_and_description(capsys):
    rc, out, err = cli(capsys, "ga", "experiments/protonet_digits.toml", "--print-config")
    assert rc == 0, err
    cfg = load_config("experiments/protonet_digits.toml")
    assert out == describe_config(cfg)
    for section in type(cfg).model_fields:
        model = getattr(cfg, section)
        assert f"[{section}]" in out
        for key, info in type(model).model_fields.items():
            assert f"\n{key} = " in out or f"\n# {key} = (unset)" in out, (section, key)
            assert (info.description or "") in out
    assert "population_size = 10" in out and "(default 20)" in out


@needs_aihwkit
def test_compare_scores_a_protonet_like_evaluate(capsys, tmp_path):
    train, _ = load_dataset("digits")
    torch.manual_seed(0)
    net = ProtoNet(in_channels=1, hidden=8, blocks=2)
    ckpt = save_checkpoint(tmp_path / "proto.pt", net, {"dataset": "digits"})
    rc, _, err = cli(
        capsys,
        "evaluate",
        ckpt,
        "--profile",
        "pcm_joshi2020",
        "--draws",
        "1",
        "--support-draws",
        "2",
        "--out",
        tmp_path / "ev",
    )
    assert rc == 0, err
    evaluated = json.loads((tmp_path / "ev" / "evaluate.json").read_text())
    rc, out, err = cli(
        capsys,
        "compare",
        ckpt,
        "--profile",
        "pcm_joshi2020",
        "--draws",
        "1",
        "--drift",
        "1h",
        "--support-draws",
        "2",
        "--out",
        tmp_path / "cmp",
    )
    assert rc == 0, err
    compared = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert compared["scoring"] == "nearest prototype"
    assert compared["digital_accuracy"] == pytest.approx(evaluated["digital_pct"], abs=1e-9)
    # an untrained embedding still separates digits far above chance (10 %)
    assert compared["digital_accuracy"] > 40.0
    assert compared["times"][0]["memsim"]["acc_mean"] > 30.0
    assert f"digital {compared['digital_accuracy']:.2f}%" in out


def test_compare_refuses_a_protonet_given_as_tensors():
    from lab.compare import compare

    net = ProtoNet(in_channels=1, hidden=8, blocks=2)
    with pytest.raises(ValueError, match="ProtoNet"):
        compare(net, "ideal", [3600.0], 1, (torch.zeros(4, 1, 8, 8), torch.zeros(4)), None)


def test_evaluate_reports_energy_per_inference_from_the_cost_model(capsys, tmp_path):
    import memsim
    from models.data import calibration_images

    torch.manual_seed(0)
    net = mlp(64, (32,), 10)
    ckpt = save_model(
        tmp_path / "mlp.pt",
        "mlp",
        net,
        {"dataset": "digits"},
        {"in_features": 64, "hidden": [32], "classes": 10},
    )
    rc, out, err = cli(
        capsys,
        "evaluate",
        ckpt,
        "--profile",
        "rram_1t1r_yao2020",
        "--draws",
        "1",
        "--out",
        tmp_path / "e",
    )
    assert rc == 0, err
    cost = json.loads((tmp_path / "e" / "evaluate.json").read_text())["cost"]
    train, test = load_dataset("digits")
    chip = memsim.convert(net, "rram_1t1r_yao2020", seed=0, chip_seed=0)
    memsim.calibrate(chip, calibration_images(train))
    ref = memsim.cost_report(chip.eval(), test.images[:64])
    assert cost["available"] and cost["energy_J"] == pytest.approx(ref.energy_J, rel=1e-12)
    assert cost["tops_per_w"] == pytest.approx(ref.tops_per_w, rel=1e-12)
    assert f"energy per inference {1e9 * ref.energy_J:.3f} nJ" in out
