"""``memsim train-baseline`` and ``memsim compare``."""

import json

import pytest
from cli_support import cli

from lab.cli.compare import INSTALL_HINT, aihwkit_available
from models.baselines import baseline_file_name


def test_train_baseline_delegates_to_models_baselines(tmp_path, capsys):
    rc, out, err = cli(
        capsys,
        "train-baseline",
        "protonet-digits",
        "--scale",
        "quick",
        "--out",
        tmp_path,
        "--set",
        "episodes=20",
        "--seed",
        "3",
    )
    assert rc == 0, err
    metrics = json.loads(out)
    # --set changes the model, so its hash is part of the name (the standard name is kept
    # for the standard recipe, which the experiments reuse)
    name = baseline_file_name("protonet-digits", "quick", 3, {"episodes": 20})
    assert name != "protonet-digits-quick-seed3.pt"
    assert metrics["checkpoint"].endswith(name)
    assert (tmp_path / name).is_file()
    assert 0.1 < metrics["accuracy_mean"] <= 1.0


def test_train_baseline_rejects_an_unknown_task(capsys):
    rc, _, err = cli(capsys, "train-baseline", "resnet-imagenet")
    assert rc == 2 and "invalid choice" in err


def test_compare_help_works_without_aihwkit(capsys):
    rc, out, _ = cli(capsys, "compare", "--help")
    assert rc == 0 and "--profile" in out


def test_compare_without_aihwkit_says_how_to_install(capsys, monkeypatch):
    import lab.cli.compare

    # whether or not aihwkit is installed here, check the message a user without it gets
    monkeypatch.setattr(lab.cli.compare, "aihwkit_available", lambda: False)
    rc, out, err = cli(capsys, "compare", "model.pt", "--profile", "pcm_joshi2020")
    assert rc == 2
    assert INSTALL_HINT in err and out == ""


@pytest.mark.skipif(not aihwkit_available(), reason="needs aihwkit")
def test_compare_reaches_memsim_compare(capsys):
    rc, _, err = cli(capsys, "--threads", "1", "compare", "missing.pt", "--profile", "ideal")
    assert rc == 2 and "missing.pt" in err
