"""The docs site builds with `mkdocs build --strict` (a warning fails it)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (dev extra)"
)
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in (
        "index.html",
        "results/index.html",
        "reference/api/index.html",
        "history/index.html",
        "tutorials/index.html",
    ):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "reference/api/index.html").read_text(encoding="utf-8")
    assert 'id="memsim.convert"' in api  # mkdocstrings rendered the docstrings
    tutorial = (tmp_path / "site" / "tutorials/model-on-chip/index.html").read_text(
        encoding="utf-8"
    )
    assert "--8&lt;--" not in tutorial and "--8<--" not in tutorial
    assert "calibrate" in tutorial  # the script itself is on the page


def test_results_blocks_of_the_docs_are_well_formed():
    from lab.studies.published import DOCUMENTS, blocks

    names = {n for d in DOCUMENTS for n in blocks((ROOT / d).read_text(encoding="utf-8"))}
    want = {
        "demo",
        "recovery_mnist_quick",
        "chip_in_the_loop_faulty_quick",
        "demo_ga",
        "table1_quick",
    }
    assert want <= names
