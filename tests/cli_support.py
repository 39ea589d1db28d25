"""Shared helpers of the ``memsim`` CLI tests (imported, not collected)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import DATA  # noqa: F401  (re-exported for the CLI tests)

from lab.cli import main

# One run root per test session, so the digits baseline (quick recipe, 300 held-out
# validation images) is trained once and reused by every test that needs it.
_RUN_ROOT: list[Path] = []

TINY_TOML = """\
[experiment]
name = "tiny"
task = "protonet-digits"
scale = "quick"
seed = 0

[data]
val_size = 300
test_size = 50

[evaluation]
draws = 5
support_draws = 1

[fitness]
finetune_steps = 1
finetune_lr = 1e-4

[ga]
population_size = 3
generations = 2
init = "origin"
mutation = "maxmin"
weight_bits = 2
seed = 0
"""


def run_root(tmp_path_factory: Any) -> Path:
    """The session's shared run root."""
    if not _RUN_ROOT:
        _RUN_ROOT.append(tmp_path_factory.mktemp("cli-runs"))
    return _RUN_ROOT[0]


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run ``memsim ARGV`` in-process; return (exit status, stdout, stderr)."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors and --help
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def run_folder(stdout: str) -> Path:
    """The run folder printed by ``memsim ga`` / ``memsim demo``."""
    for line in stdout.splitlines():
        if line.startswith("run folder: "):
            return Path(line.split("run folder: ")[1].split("  (")[0])
    raise AssertionError(f"no run folder in output:\n{stdout}")


def read(path: Path) -> Any:
    """Load a JSON file."""
    return json.loads(Path(path).read_text())
