"""Bad input at the command line: one error line, exit status 2, and nothing on disk changed.

Each case runs ``memsim ...`` in-process on a small folder of fixtures (a tiny MLP
checkpoint for the bundled digits data, damaged copies of it, a damaged dataset file,
...), asserts the exact message, and asserts that every file under the folder has the
same bytes and modification time as before, and that no file was added.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_support import TINY_TOML, cli

from lab.cli import main
from lab.cli.errors import error_line
from models.checkpoint import save_checkpoint
from models.data import DatasetFileError, load_dataset, load_npz
from models.small import mlp

MLP_KWARGS = {"in_features": 64, "hidden": (16,), "classes": 10}


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``root``: content digest (files) and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root))] = (digest, p.stat().st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def digits_sha() -> str:
    return load_dataset("digits")[0].sha256


@pytest.fixture
def box(tmp_path: Path, digits_sha: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder (the current directory) with good and damaged inputs."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    net = mlp(**MLP_KWARGS)
    meta = {"dataset": "digits", "dataset_sha256": digits_sha}
    good = save_checkpoint(tmp_path / "good.pt", net, meta, arch="mlp", model_kwargs=MLP_KWARGS)
    other = {**meta, "dataset_sha256": "0" * 64}
    save_checkpoint(tmp_path / "othersha.pt", net, other, arch="mlp", model_kwargs=MLP_KWARGS)
    wrong = dict(MLP_KWARGS, hidden=(8,))  # weights of a 16-wide net, a model of 8
    payload = torch.load(good, weights_only=True)
    payload["model_kwargs"] = wrong
    torch.save(payload, tmp_path / "wrongshape.pt")
    save_checkpoint(
        tmp_path / "mnistnet.pt", net, {"dataset": "mnist"}, arch="mlp", model_kwargs=MLP_KWARGS
    )
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(2000))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    (tmp_path / "afolder").mkdir()
    (tmp_path / "afile").write_text("x")
    # a small dataset archive in the shared/data format, then truncated
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (40, 8, 8), dtype=np.uint8),
        "y_train": np.arange(40, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 255, (20, 8, 8), dtype=np.uint8),
        "y_test": np.arange(20, dtype=np.uint8) % 10,
        "classes": np.asarray([str(i) for i in range(10)]),
    }
    (tmp_path / "badnpz").mkdir()
    np.savez_compressed(tmp_path / "badnpz" / "whole.npz", **arrays)
    whole = (tmp_path / "badnpz" / "whole.npz").read_bytes()
    (tmp_path / "badnpz" / "mnist.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "latin1.toml").write_bytes('[experiment]\nname = "caf\xe9"\n'.encode("latin-1"))
    (tmp_path / "latin1.json").write_bytes('{"name": "caf\xe9"}'.encode("latin-1"))
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    (tmp_path / "typo.toml").write_text(TINY_TOML.replace("[ga]\n", "[ga]\npopulaton_size = 4\n"))
    (tmp_path / "badprof.toml").write_text(
        TINY_TOML.replace("[ga]", '[chip]\nprofile = "no_such_chip"\n\n[ga]')
    )
    (tmp_path / "nodata.toml").write_text(
        TINY_TOML.replace('task = "protonet-digits"', 'task = "protonet-mnist"').replace(
            "test_size = 50", 'test_size = 50\nroot = "/nonexistent"\ndownload = false'
        )
    )
    (tmp_path / "rr").mkdir()
    return tmp_path


EV = ("evaluate", "--profile", "ideal", "--draws", "1", "--run-root", "rr")

CASES = [
    # (argv, exact text expected on stderr)
    ((*EV, "missing.pt"), "memsim evaluate: error: missing.pt: no such checkpoint file"),
    (
        (*EV, "afolder"),
        "memsim evaluate: error: afolder: is a folder; expected a checkpoint file (.pt)",
    ),
    (
        (*EV, "trunc.pt"),
        "memsim evaluate: error: trunc.pt: not a readable checkpoint, corrupt or truncated "
        "(PytorchStreamReader failed reading zip archive: failed finding central directory)",
    ),
    (
        (*EV, "garbage.pt"),
        "memsim evaluate: error: garbage.pt: not a readable checkpoint, corrupt or truncated",
    ),
    (
        (*EV, "tensor.pt"),
        "memsim evaluate: error: tensor.pt: not a memsim checkpoint (a dict with 'arch' and "
        "'state_dict')",
    ),
    (
        (*EV, "wrongshape.pt"),
        "memsim evaluate: error: wrongshape.pt: its weights do not fit its 'mlp' model "
        "(Error(s) in loading state_dict for Sequential:)",
    ),
    (
        (*EV, "good.pt", "--test-size", "5"),
        "memsim evaluate: error: --test-size 5: the stratified subset needs at least one image "
        "per class; digits has 10 classes, so use --test-size >= 10 (at most 360)",
    ),
    (
        (*EV, "good.pt", "--test-size", "1000"),
        "memsim evaluate: error: --test-size 1000: the digits test split has only 360 images; "
        "use --test-size 10..360, or omit it for all",
    ),
    (
        (*EV, "othersha.pt", "--test-size", "20"),
        "memsim evaluate: error: othersha.pt was trained on digits data with sha256 "
        "000000000000..., but the digits data loaded now (sklearn) has sha256 ",
    ),
    (
        (*EV, "mnistnet.pt", "--data-root", "badnpz"),
        "memsim evaluate: error: badnpz/mnist.npz: corrupt or truncated dataset file "
        "(BadZipFile: File is not a zip file); expected an .npz archive with x_train, "
        "y_train, x_test, y_test, classes; delete it or fetch it again",
    ),
    (
        ("evaluate", "good.pt", "--profile", "ideal", "--run-root", "afile"),
        "memsim evaluate: error: --run-root afile/evaluate: cannot be created: afile is a "
        "file; expected a folder",
    ),
    (
        ("evaluate", "good.pt", "--profile", "ideal", "--out", "afile"),
        "memsim evaluate: error: --out afile: is a file; expected a folder",
    ),
    (
        ("evaluate", "good.pt", "--profile", "no_such_chip"),
        "memsim evaluate: error: unknown profile name 'no_such_chip'",
    ),
    (
        ("evaluate", "good.pt", "--profile", "latin1.json"),
        "memsim evaluate: error: latin1.json: not UTF-8 text (invalid continuation byte at byte "
        "13); profile files must be UTF-8 JSON",
    ),
    # argparse-level option checks
    (
        ("--threads", "-1", "profiles", "list"),
        "argument --threads: expected an integer >= 1, got -1",
    ),
    (("--threads", "0", "profiles", "list"), "argument --threads: expected an integer >= 1, got 0"),
    (
        (*EV, "good.pt", "--drift", "nan"),
        "argument --drift: bad duration 'nan': use a number of seconds or 30s/10min/1h/1d/1y",
    ),
    (
        (*EV, "good.pt", "--drift", "inf"),
        "argument --drift: bad duration 'inf': use a number of seconds or 30s/10min/1h/1d/1y",
    ),
    ((*EV, "good.pt", "--drift=-1h"), "argument --drift: bad duration '-1h'"),
    ((*EV, "good.pt", "--test-size", "0"), "argument --test-size: expected an integer >= 1, got 0"),
    (
        (*EV, "good.pt", "--support-draws", "0"),
        "argument --support-draws: expected an integer >= 1, got 0",
    ),
    (
        ("evaluate", "good.pt", "--profile", "ideal", "--draws", "0"),
        "argument --draws: expected an integer >= 1, got 0",
    ),
    (
        ("compare", "good.pt", "--profile", "ideal", "--limit", "0"),
        "argument --limit: expected an integer >= 1, got 0",
    ),
    (
        ("compare", "good.pt", "--profile", "ideal", "--batch-size", "0"),
        "argument --batch-size: expected an integer >= 1, got 0",
    ),
    (
        ("reproduce", "table1", "--jobs", "0", "--run-root", "rr"),
        "argument --jobs: expected an integer >= 1, got 0",
    ),
    # configs
    (
        ("ga", "latin1.toml", "--run-root", "rr"),
        "memsim ga: error: latin1.toml: not UTF-8 text (invalid continuation byte at byte 24); "
        "TOML files must be UTF-8",
    ),
    (
        ("ga", "typo.toml", "--run-root", "rr"),
        "memsim ga: error: typo.toml: invalid experiment config: ga.populaton_size: unknown key "
        "(not part of the experiment config schema); known keys of [ga]: ['checkpoint_dir', "
        "'crossover', ",
    ),
    (
        ("ga", "afolder", "--run-root", "rr"),
        "memsim ga: error: afolder: is a folder; expected an experiment .toml file",
    ),
    (
        ("ga", "tiny.toml", "--run-root", "afile"),
        "memsim ga: error: --run-root afile: is a file; expected a folder",
    ),
    (
        ("ga", "--resume", "nowhere"),
        "memsim ga: error: --resume nowhere: no such run folder",
    ),
    (
        ("ga", "badprof.toml", "--run-root", "rr"),
        "memsim ga: error: chip.profile = 'no_such_chip': unknown profile name 'no_such_chip'",
    ),
    (
        ("ga", "nodata.toml", "--run-root", "rr"),
        "memsim ga: error: dataset 'mnist' not found. Looked in:\n  - /nonexistent/mnist.npz",
    ),
    # train-baseline overrides
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", "nosuch=1"),
        "memsim train-baseline: error: --set: unknown override 'nosuch'; recipe fields: ['arch', "
        "'bits', 'dataset', 'eval_draws', 'k_shot', 'model_kwargs', 'sigma', 'support_draws', "
        "'test_fraction', 'train_fraction'], training fields: ['bits', 'episodes', 'k_shot', "
        "'lr', 'lr_gamma', 'lr_step', 'n_query', 'n_way', 'sigma']",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", "episodes=abc"),
        "memsim train-baseline: error: --set: override episodes='abc': episodes must be an integer",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", "episodes=0"),
        "memsim train-baseline: error: --set: override episodes=0: episodes must be an "
        "integer >= 1",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", "lr=-1"),
        "memsim train-baseline: error: --set: override lr=-1: lr must be > 0",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", "sigma=NaN"),
        "memsim train-baseline: error: --set: override sigma=nan: sigma must be finite",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", 'dataset="imagenet"'),
        "memsim train-baseline: error: --set: override dataset='imagenet': choose from",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "rr", "--set", 'task="x"'),
        "memsim train-baseline: error: --set: override task: choose the task with the "
        "command's arguments",
    ),
    (
        ("train-baseline", "protonet-digits", "--out", "afile"),
        "memsim train-baseline: error: --out afile: is a file; expected a folder",
    ),
    (
        ("train-baseline", "protonet-digits", "--profile", "nope.json"),
        "memsim train-baseline: error: ",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_error_line_and_changes_nothing(box, capsys, argv, expected):
    before = snapshot(box)
    rc, out, err = cli(capsys, *argv)
    assert rc == 2
    assert expected in err, err
    assert "Traceback" not in err and out == ""
    # the error line comes first; only argparse prints its usage before it
    first = [line for line in err.splitlines() if "error:" in line][0]
    assert first.startswith("memsim") and ": error: " in first
    assert snapshot(box) == before


def test_debug_shows_the_traceback(box):
    with pytest.raises(FileNotFoundError, match="missing.pt: no such checkpoint file"):
        main(["--debug", *EV, "missing.pt"])
    with pytest.raises(FileNotFoundError):
        main([*EV, "missing.pt", "--debug"])  # after the subcommand too


def test_os_errors_name_the_file_and_what_is_wrong():
    assert (
        error_line("evaluate", FileNotFoundError(2, "No such file or directory", "x.pt"))
        == "memsim evaluate: error: x.pt: no such file or folder"
    )
    assert (
        error_line("ga", IsADirectoryError(21, "Is a directory", "runs"))
        == "memsim ga: error: runs: is a folder, expected a file"
    )
    assert (
        error_line("ga", NotADirectoryError(20, "Not a directory", "afile/ga"))
        == "memsim ga: error: afile/ga: a file is in the way where a folder is needed"
    )
    assert (
        error_line("ga", PermissionError(13, "Permission denied", "/ro/runs"))
        == "memsim ga: error: /ro/runs: permission denied (read-only or not yours)"
    )
    assert (
        error_line("ga", OSError(30, "Read-only file system", "/ro"))
        == "memsim ga: error: /ro: read-only file system"
    )


def test_a_read_only_run_root_is_refused_before_any_work(box, capsys, monkeypatch):
    # the tests may run as root, for whom chmod does not make a folder read-only
    real_access = os.access

    def access(path, mode, **kw):
        if Path(path).resolve() == (box / "rr").resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    before = snapshot(box)
    rc, out, err = cli(capsys, "evaluate", "good.pt", "--profile", "ideal", "--run-root", "rr")
    assert rc == 2 and out == ""
    assert err.strip() == (
        "memsim evaluate: error: --run-root rr/evaluate: rr is not writable (read-only or not "
        "yours)"
    )
    rc, _, err = cli(capsys, "ga", "tiny.toml", "--run-root", "rr")
    assert rc == 2
    assert (
        err.strip()
        == "memsim ga: error: --run-root rr: rr is not writable (read-only or not yours)"
    )
    assert snapshot(box) == before


def test_a_write_error_during_a_command_is_one_line(box, capsys, monkeypatch):
    import lab.run_folder

    def refuse(path, obj):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lab.run_folder, "atomic_text_json", refuse)
    rc, _, err = cli(capsys, *EV, "good.pt", "--test-size", "20", "--out", "rr/ev.json")
    assert rc == 2
    assert (
        err.strip()
        == "memsim evaluate: error: rr/ev.json: permission denied (read-only or not yours)"
    )


def test_evaluate_test_size_and_data_mismatch_override(box, capsys):
    rc, out, err = cli(capsys, *EV, "good.pt", "--test-size", "20", "--out", "rr/a.json")
    assert rc == 0, err
    assert "20 test images" in out
    rc, out, err = cli(
        capsys, *EV, "othersha.pt", "--test-size", "20", "--allow-data-mismatch", "--out", "rr/b"
    )
    assert rc == 0, err
    assert "20 test images" in out and (box / "rr" / "b" / "evaluate.json").is_file()


def test_load_npz_names_the_file(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (10, 4, 4), dtype=np.uint8)
    y = np.arange(10, dtype=np.uint8)
    np.savez(tmp_path / "nolabels.npz", x_train=x, x_test=x, y_test=y, classes=np.arange(10))
    with pytest.raises(DatasetFileError, match=r"nolabels.npz: missing array\(s\) \['y_train'\]"):
        load_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "short.npz", x_train=x, y_train=y[:5], x_test=x, y_test=y, classes=y)
    with pytest.raises(DatasetFileError, match="short.npz: y_train must be 1-D with one label"):
        load_npz(tmp_path / "short.npz")
    np.savez(tmp_path / "float.npz", x_train=x / 1.0, y_train=y, x_test=x, y_test=y, classes=y)
    with pytest.raises(DatasetFileError, match="float.npz: x_train must be uint8"):
        load_npz(tmp_path / "float.npz")
    np.save(tmp_path / "single.npy", x)
    (tmp_path / "single.npz").write_bytes((tmp_path / "single.npy").read_bytes())
    with pytest.raises(DatasetFileError, match="single.npz: a single array"):
        load_npz(tmp_path / "single.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DatasetFileError, match="empty.npz: corrupt or truncated dataset file"):
        load_npz(tmp_path / "empty.npz")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_npz(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        load_npz(tmp_path / "none.npz")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("aihwkit") is None, reason="needs aihwkit"
)
def test_compare_refuses_an_unknown_dataset(box, capsys):
    before = snapshot(box)
    rc, _, err = cli(capsys, "compare", "good.pt", "--profile", "ideal", "--data", "nosuch")
    assert rc == 2
    assert err.strip() == (
        "memsim compare: error: --data 'nosuch': unknown dataset; choose from digits, mnist, "
        "fashion_mnist, cifar10, cifar100 or give a .npz file"
    )
    rc, _, err = cli(capsys, "compare", "afolder", "--profile", "ideal")
    assert rc == 2 and "afolder: is a folder" in err
    assert snapshot(box) == before


def test_profiles_validate_reports_a_folder_or_non_utf8_file_as_invalid(box, capsys):
    rc, _, err = cli(capsys, "profiles", "validate", "afolder/", "latin1.json")
    assert rc == 1  # a failed check, as for any invalid profile
    assert "INVALID afolder: is a folder; expected a profile .json file" in err
    assert "INVALID latin1.json: not UTF-8 text (invalid continuation byte at byte 13)" in err


def test_a_broken_pipe_still_ends_quietly(monkeypatch):
    import lab.cli.profiles

    def broken(_args):
        raise BrokenPipeError(32, "Broken pipe")

    # main() builds its parser on each call, so it picks up the patched function
    monkeypatch.setattr(lab.cli.profiles, "cmd_list", broken)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert main(["profiles", "list"]) == 0
