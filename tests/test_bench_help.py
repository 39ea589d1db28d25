"""Every bench/ and examples/ script answers ``--help`` without starting its run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPTS = sorted(p.relative_to(ROOT) for p in (ROOT / "bench").glob("*.py"))
SCRIPTS += [ROOT.joinpath("examples", "make_measurements.py").relative_to(ROOT)]


def test_no_bench_script_shadows_a_package():
    # run as a script, bench/ comes first on sys.path: bench/ga.py made `import ga` fail
    packages = {"memsim", "ga", "models", "lab"}
    assert packages.isdisjoint(p.stem for p in SCRIPTS)


def _help(script, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s) for s in SCRIPTS])
def test_help_prints_usage_and_runs_nothing(script, tmp_path):
    proc = _help(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: "), proc.stdout[:500]
    assert "-h, --help" in proc.stdout and proc.stderr == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("script", "default"),
    [
        ("bench/cost_tradeoff.py", "runs/bench/cost_tradeoff"),
        ("examples/make_measurements.py", "runs/examples/measurements.csv"),
    ],
)
def test_scripts_write_outside_tracked_files_by_default(script, default, tmp_path):
    text = " ".join(_help(script, tmp_path).stdout.split())
    assert f"(default: {ROOT / default};" in text
