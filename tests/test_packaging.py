"""pyproject.toml: every package folder ships, and the license is an SPDX string with its file."""

from __future__ import annotations

import tomllib

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _package_folders() -> set[str]:
    found = set()
    for top in ("memsim", "ga", "models", "lab"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    return found


def test_every_package_folder_is_listed():
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    # the profiles live at the root and install as memsim.device_profiles
    assert setuptools["package-dir"] == {"memsim.device_profiles": "device_profiles"}
    assert (ROOT / "device_profiles" / "__init__.py").is_file()
    assert setuptools["package-data"] == {"memsim.device_profiles": ["*.json"]}
    assert {"lab.methods", "lab.methods.builtin"} <= _package_folders()
    assert listed == _package_folders() | {"memsim.device_profiles"}


def test_license_is_an_spdx_string_with_its_file():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n\nCopyright (c) 2026 memsim contributors\n")
    # the SPDX form needs setuptools >= 77
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]
