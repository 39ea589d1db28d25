"""``memsim train-baseline``: settings in the file's identity, never an overwrite by accident."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from cli_support import cli

from models.baselines import baseline_file_name, baseline_identity
from models.checkpoint import load_checkpoint

TINY = ("--set", "episodes=2", "--set", "eval_draws=1", "--set", "support_draws=1")


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_standard_settings_keep_the_standard_name():
    assert baseline_file_name("protonet-digits", "quick", 0) == "protonet-digits-quick-seed0.pt"
    # an override equal to the recipe's value, and the recipe's own profile, change nothing
    same = {"episodes": 200}
    assert baseline_file_name("protonet-digits", "quick", 3, same, "paper_2bit_5pct") == (
        "protonet-digits-quick-seed3.pt"
    )
    assert baseline_identity("protonet-digits", "quick", same) is None


def test_other_settings_get_a_hash_of_them_in_the_name():
    a = baseline_file_name("protonet-digits", "quick", 0, {"episodes": 20})
    assert re.fullmatch(r"protonet-digits-quick-seed0-[0-9a-f]{8}\.pt", a)
    # the same settings give the same name; any other setting another one
    assert a == baseline_file_name("protonet-digits", "quick", 0, {"episodes": 20})
    names = {
        a,
        baseline_file_name("protonet-digits", "quick", 0, {"episodes": 21}),
        baseline_file_name("protonet-digits", "quick", 0, {"episodes": 20, "lr": 0.002}),
        baseline_file_name("protonet-digits", "quick", 0, None, "ideal"),
        baseline_file_name("protonet-digits", "quick", 0, {"episodes": 20}, "ideal"),
    }
    assert len(names) == 5
    # the hash is over the settings, not their order
    two = {"episodes": 20, "lr": 0.002}
    assert baseline_identity("protonet-digits", "quick", two) == baseline_identity(
        "protonet-digits", "quick", dict(reversed(two.items()))
    )


def test_an_existing_baseline_is_never_replaced_without_force(tmp_path, capsys):
    out = tmp_path / "baselines"
    out.mkdir()
    standard = out / "protonet-digits-quick-seed0.pt"
    standard.write_text("an older baseline")
    before = snapshot(tmp_path)

    # different settings: a new file beside the standard one, which is kept as it was
    rc, stdout, err = cli(capsys, "train-baseline", "protonet-digits", "--out", out, *TINY)
    assert rc == 0, err
    path = Path(json.loads(stdout)["checkpoint"])
    digest = baseline_identity(
        "protonet-digits", "quick", {"episodes": 2, "eval_draws": 1, "support_draws": 1}
    )
    assert path == out / f"protonet-digits-quick-seed0-{digest}.pt"
    assert standard.read_text() == "an older baseline"
    assert {
        k: v for k, v in snapshot(tmp_path).items() if k != str(path.relative_to(tmp_path))
    } == (before)
    _, meta = load_checkpoint(path)
    assert meta["identity"] == digest
    assert meta["overrides"] == {"episodes": 2, "eval_draws": 1, "support_draws": 1}

    # the same settings again: refused before any training, nothing touched
    trained = snapshot(tmp_path)
    rc, stdout, err = cli(capsys, "train-baseline", "protonet-digits", "--out", out, *TINY)
    assert rc == 2 and stdout == ""
    assert err.strip() == (
        f"memsim train-baseline: error: {path}: a baseline checkpoint of these settings is "
        "already there; it is kept (use it, pass --force to replace it, or choose another --out)"
    )
    assert snapshot(tmp_path) == trained

    # --force replaces it
    rc, _, err = cli(capsys, "train-baseline", "protonet-digits", "--out", out, *TINY, "--force")
    assert rc == 0, err
    after = snapshot(tmp_path)
    key = str(path.relative_to(tmp_path))
    assert after[key][1] != trained[key][1]
    assert standard.read_text() == "an older baseline"


def test_the_python_api_refuses_an_existing_file_too(tmp_path):
    from models.baselines import train_baseline

    target = tmp_path / "b.pt"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="b.pt: a baseline checkpoint is already there"):
        train_baseline("protonet-digits", "quick", 0, out_dir=tmp_path, path=target)
    assert target.read_text() == "keep me"
