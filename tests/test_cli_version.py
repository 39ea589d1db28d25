"""`memsim --version` prints the package version."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.MULTILINE).group(1)


def test_version_flag_prints_memsim_and_the_version(capsys):
    from lab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"memsim {_pyproject_version()}"


def test_version_falls_back_to_pyproject_without_an_installed_distribution(monkeypatch):
    import importlib.metadata

    import lab.cli

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert lab.cli.version() == _pyproject_version()
