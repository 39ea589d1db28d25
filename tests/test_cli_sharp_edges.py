"""Sharp edges of the ``memsim`` command line: each is refused in one line, exit status 2.

Abbreviated options, a missing ``--data-root``, ``--import`` of a user's own network,
``--resume`` given a file, a conductance map of another chip, the ``compare`` help,
``inspect --times`` and a mistyped ``sweep grid`` key.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from cli_support import cli

import models.checkpoint
from lab.cli import build_parser
from models.checkpoint import save_checkpoint
from models.small import mlp

MLP_KWARGS = {"in_features": 64, "hidden": (16,), "classes": 10}


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every parser below it, leaves and inner levels alike."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += _all_parsers(child)
    return found


@pytest.fixture
def good(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(
        tmp_path / "good.pt",
        mlp(**MLP_KWARGS),
        {"dataset": "digits"},
        arch="mlp",
        model_kwargs=MLP_KWARGS,
    )


# -- options are never abbreviated -------------------------------------------------------------


def test_no_parser_of_the_cli_accepts_abbreviated_options():
    parsers = _all_parsers(build_parser())
    progs = {p.prog for p in parsers}
    # the root, the two-level commands and their subcommands are all walked
    assert {"memsim", "memsim profiles", "memsim profiles fit", "memsim sweep grid"} <= progs
    assert len(parsers) >= 17
    assert [p.prog for p in parsers if p.allow_abbrev] == []


def test_data_is_not_taken_for_data_root(capsys, good):
    rc, out, err = cli(capsys, "evaluate", good, "--profile", "ideal", "--data", "mnist")
    assert rc == 2 and out == ""
    assert err == (
        "memsim evaluate: error: unrecognized arguments: --data mnist; options are never "
        "abbreviated: did you mean --data-root?\n"
    )
    rc, _, err = cli(capsys, "sweep", "grid", "x.toml", "--grid", "ga.seed=1,2", "--seed", "2")
    assert rc == 2
    assert err == (
        "memsim sweep grid: error: unrecognized arguments: --seed 2; options are never "
        "abbreviated: did you mean --seeds?\n"
    )
    rc, _, err = cli(capsys, "profiles", "list", "--colour")
    assert rc == 2 and err == "memsim profiles: error: unrecognized arguments: --colour\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_missing_data_root_is_refused(capsys, tmp_path, good, where):
    root = ["--data-root", str(tmp_path / "nowhere")]
    argv = ["evaluate", good, "--profile", "ideal", "--draws", "1", "--out", tmp_path / "o"]
    rc, out, err = cli(capsys, *(root + argv if where == "before" else argv + root))
    assert rc == 2 and out == ""
    assert err.strip() == (
        f"memsim evaluate: error: --data-root {tmp_path / 'nowhere'}: no such folder; expected "
        "a folder with <dataset>.npz files"
    )
    assert not (tmp_path / "o").exists()
    rc, _, err = cli(capsys, "profiles", "list", "--data-root", good)
    assert rc == 2
    assert err.strip() == (
        f"memsim profiles: error: --data-root {good}: is a file; expected a folder with "
        "<dataset>.npz files"
    )


# -- --import MODULE: a user's own network from the command line ---------------------------------

NET_MODULE = """\
from torch import nn

import models


class {cls}(nn.Module):
    def __init__(self, width: int = 12) -> None:
        super().__init__()
        self.width = width
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(),
                                 nn.Linear(width, 10))

    def forward(self, x):
        return self.net(x)

    def init_kwargs(self):
        return {{"width": self.width}}


models.register_architecture("{arch}", {cls})
"""


@pytest.fixture
def registry(monkeypatch):
    """An own copy of the model registry and of ``sys.modules`` for the test."""
    monkeypatch.setattr(models.checkpoint, "ARCHITECTURES", dict(models.checkpoint.ARCHITECTURES))
    before = set(sys.modules)
    yield models.checkpoint.ARCHITECTURES
    for name in set(sys.modules) - before:
        if name.startswith("issue27_"):
            del sys.modules[name]


def _own_network(tmp_path: Path, module: str, arch: str) -> Path:
    """Write ``<module>.py`` registering ``arch``, and a checkpoint of it; return the checkpoint."""
    source = NET_MODULE.format(cls="OwnNet", arch=arch)
    (tmp_path / f"{module}.py").write_text(source)
    namespace: dict = {}
    exec(compile(source, f"{module}.py", "exec"), namespace)  # registers it in the copy
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / f"{arch}.pt", namespace["OwnNet"](8), {"dataset": "digits"})
    del models.checkpoint.ARCHITECTURES[arch]  # as in a fresh `memsim` process
    return ckpt


def test_import_registers_a_users_network_before_the_command(
    capsys, tmp_path, monkeypatch, registry
):
    ckpt = _own_network(tmp_path, "issue27_mynet", "issue27net")
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", ckpt, "--profile", "ideal", "--draws", "1", "--test-size", "20"]
    rc, _, err = cli(capsys, *argv, "--out", "e0")
    assert rc == 2 and "unknown architecture 'issue27net'" in err
    assert "--import MODULE" in err
    # a module name, found from the current folder, before the subcommand ...
    rc, out, err = cli(capsys, "--import", "issue27_mynet", *argv, "--out", "e1")
    assert rc == 0, err
    assert "digital (no chip)" in out and (tmp_path / "e1" / "evaluate.json").is_file()
    # ... or a .py file after it
    del registry["issue27net"]
    sys.modules.pop("issue27_mynet")
    rc, out, err = cli(capsys, *argv, "--out", "e2", "--import", str(tmp_path / "issue27_mynet.py"))
    assert rc == 0, err


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "issue27_absent",
            None,
            "--import issue27_absent: no module named 'issue27_absent' in the current folder or "
            "on sys.path; give an importable module name or the path of a .py file",
        ),
        (
            "issue27_absent.py",
            None,
            "--import issue27_absent.py: no such file; expected a module name or a .py file",
        ),
        (
            "issue27_broken",
            "import issue27_no_such_dependency\n",
            "--import issue27_broken: importing it raised ModuleNotFoundError: No module named "
            "'issue27_no_such_dependency' (--debug shows the traceback)",
        ),
        (
            "issue27_raises",
            "raise RuntimeError('no GPU here')\n",
            "--import issue27_raises: importing it raised RuntimeError: no GPU here (--debug "
            "shows the traceback)",
        ),
    ],
)
def test_a_module_that_cannot_be_imported_is_one_line(
    capsys, tmp_path, monkeypatch, registry, good, module, source, expected
):
    if source is not None:
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(capsys, "--import", module, "evaluate", good, "--profile", "ideal")
    assert rc == 2 and out == ""
    assert err.strip() == f"memsim evaluate: error: {expected}"
    assert textwrap.dedent(err).count("\n") == 1


# -- misleading words and tracebacks ------------------------------------------------------------


def test_resume_given_a_file_says_it_is_a_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text("[experiment]\n")
    rc, out, err = cli(capsys, "ga", "--resume", "tiny.toml")
    assert rc == 2 and out == ""
    assert err.strip() == (
        "memsim ga: error: --resume tiny.toml: is a file, not a run folder; give the run "
        "folder <run-root>/ga/<name>-<timestamp>"
    )
    run = tmp_path / "runs" / "ga" / "tiny-20260101-000000"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    rc, _, err = cli(capsys, "ga", "--resume", run / "config.json")
    assert rc == 2
    assert err.strip() == (
        f"memsim ga: error: --resume {run / 'config.json'}: is a file, not a run folder; "
        f"its folder {run} is one"
    )
    rc, _, err = cli(capsys, "ga", "--resume", "nowhere")
    assert err.strip() == "memsim ga: error: --resume nowhere: no such run folder"


@pytest.mark.parametrize("installed", [True, False])
def test_compare_help_says_whether_aihwkit_is_installed(capsys, monkeypatch, installed):
    import lab.cli.compare

    monkeypatch.setattr(lab.cli.compare, "aihwkit_available", lambda: installed)
    rc, out, _ = cli(capsys, "compare", "--help")
    assert rc == 0
    text = " ".join(out.split())
    if installed:
        assert "It needs IBM aihwkit, which is installed in this environment." in text
        assert "not installed" not in text
    else:
        assert (
            "It needs IBM aihwkit, which is not installed in this environment: pip install "
            "'memsim[aihwkit]' (aihwkit==1.1.0)."
        ) in text


def test_evaluate_with_a_map_of_another_chip_is_one_line_as_inspect(capsys, tmp_path, good):
    torch.manual_seed(1)
    kwargs = dict(MLP_KWARGS, hidden=(8,))
    other = save_checkpoint(
        tmp_path / "other.pt",
        mlp(**kwargs),
        {"dataset": "digits"},
        arch="mlp",
        model_kwargs=kwargs,
    )
    chip = "rram_1t1r_yao2020"
    rc, _, err = cli(
        capsys,
        "export",
        other,
        "--profile",
        chip,
        "--out",
        tmp_path / "x",
        "--quantity",
        "programmed",
    )
    assert rc == 0, err
    measured = tmp_path / "x" / "chip.csv"
    rc, out, err = cli(
        capsys,
        "evaluate",
        good,
        "--profile",
        chip,
        "--draws",
        "1",
        "--conductances",
        measured,
        "--out",
        tmp_path / "e",
    )
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1
    assert err.startswith(f"memsim evaluate: error: {measured}: layer '1.weight', tile ")
    rc, _, err_inspect = cli(
        capsys,
        "inspect",
        good,
        "--profile",
        chip,
        "--conductances",
        measured,
        "--out",
        tmp_path / "i",
    )
    assert rc == 2
    # the same message as inspect gives for the same file
    assert err.split(": error: ", 1)[1] == err_inspect.split(": error: ", 1)[1]
    assert not (tmp_path / "e").exists()


def test_inspect_takes_times_as_drift(capsys, tmp_path, good, monkeypatch):
    import lab.plots.inspect

    seen = []

    def fake_inspect(chip, out, *, times, max_tiles):
        seen.append(times)
        return []

    monkeypatch.setattr(lab.plots.inspect, "inspect_chip", fake_inspect)
    monkeypatch.chdir(tmp_path)
    for option in (["--times", "1h", "1d"], ["--drift", "1h", "1d"], ["--times", "3600,1d"]):
        rc, _, err = cli(capsys, "inspect", good, "--profile", "ideal", *option)
        assert rc == 0, err
    rc, _, _ = cli(capsys, "inspect", good, "--profile", "ideal")
    assert rc == 0
    assert seen == [[3600.0, 86400.0]] * 3 + [[1.0, 60.0, 3600.0, 86400.0, 2592000.0]]


# -- sweep grid: every key and value is checked before anything is created ------------------


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        (
            "adc.bitz=4,6",
            "--grid adc.bitz: unknown key 'bitz' in [adc] of the device profile; known: bits, "
            "bound, margin, mode",
        ),
        (
            "ga.generationz=4,6",
            "--grid ga.generationz: unknown key 'generationz' in [ga] of the experiment config; "
            "known: checkpoint_dir, crossover, ",
        ),
        (
            "device.g_min_uS.x=1,2",
            "--grid device.g_min_uS.x: device.g_min_uS is a value of the device profile, not a "
            "table",
        ),
        (
            "adc.bits=4,40",
            "--grid cell adc.bits=40: paper_2bit_5pct: invalid profile: field 'adc.bits': Input "
            "should be less than or equal to 16 (got 40)",
        ),
        (
            "ga.population_size=4,-1",
            "--grid cell ga.population_size=-1: tiny.toml: invalid experiment config: "
            "ga.population_size: ",
        ),
    ],
)
def test_a_bad_grid_key_or_value_creates_nothing(capsys, tmp_path, monkeypatch, axis, expected):
    from cli_support import TINY_TOML

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    (tmp_path / "rr").mkdir()
    rc, out, err = cli(capsys, "sweep", "grid", "tiny.toml", "--grid", axis, "--run-root", "rr")
    assert rc == 2 and out == ""
    assert err.startswith(f"memsim sweep grid: error: {expected}"), err
    assert err.count("\n") == 1
    assert list((tmp_path / "rr").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rr", "tiny.toml"]


# -- checks across config sections: refused before any training, without the whole config -------


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (
            ["ga.population_size=3"],
            "ga_knobs needs at least 4 members for its differential evolution (each trial "
            "mixes three others); it gets 3 (ga.population_size=3, "
            "recovery.chip_evaluations=None, fitness.draws=1); raise them or drop ga_knobs "
            "from recovery.methods",
        ),
        (
            ["recovery.chip_evaluations=6", "fitness.draws=2"],
            "ga_knobs needs at least 4 members for its differential evolution (each trial "
            "mixes three others); it gets 3 (ga.population_size=4, "
            "recovery.chip_evaluations=6, fitness.draws=2); raise them or drop ga_knobs "
            "from recovery.methods",
        ),
        (
            ["ga.early_stop_patience=2"],
            "ga.early_stop_patience: early stopping is not available in an experiment, where "
            "every method gets the GA's full budget; leave it unset",
        ),
    ],
)
def test_a_config_check_across_sections_is_one_short_line(
    capsys, tmp_path, monkeypatch, sets, expected
):
    from cli_support import TINY_TOML

    monkeypatch.chdir(tmp_path)
    config = TINY_TOML.replace("population_size = 3", "population_size = 4")
    (tmp_path / "tiny.toml").write_text(config + '\n[recovery]\nmethods = ["qat", "ga_knobs"]\n')
    args = [a for s in sets for a in ("--set", s)]
    # before the fix, ga_knobs raised numpy's ValueError with a traceback after the
    # baseline and QAT had run, and a cross-section message ended with the whole config
    rc, out, err = cli(capsys, "ga", "tiny.toml", *args, "--run-root", "rr")
    assert rc == 2 and out == ""
    assert err == f"memsim ga: error: tiny.toml: invalid experiment config: {expected}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]
