"""Every command line of the README's shell blocks runs, at its smallest setting.

The lines are read from ``README.md`` (fenced ``bash``, ``sh``, ``shell`` and ``console``
blocks, comments dropped), and each must have an entry in :data:`PLANS` saying how it is
shrunk: a new line fails :func:`test_every_readme_command_has_a_plan` until it is taught
here.  Each ``memsim`` line runs as a subprocess (``python -m lab.cli``, the console
script's entry point) in a temporary folder with the README's own arguments and what
makes it small appended (one replicate, one GA generation, one draw, ...), and must exit
0.  The placeholders of the README (``CHECKPOINT``, ``CONFIG``, ``P``, ``my_chip.json``,
``measurements.csv``) become the digits baseline that the demo line trains, a tiny
experiment config, a shipped profile, the README's own JSON profile and the example
measurements of ``examples/``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import TINY_TOML
from conftest import DATA, ROOT

README = ROOT / "README.md"
SHELLS = ("bash", "sh", "shell", "console")

SMALL_GA = (
    "--replicates", "1",
    "--set", "ga.generations=1",
    "--set", "fitness.finetune_steps=1",
    "--set", "data.val_size=100",
    "--set", "data.test_size=100",
    "--set", "evaluation.support_draws=1",
)  # fmt: skip
"""One replicate, one GA generation of one fine-tune step, 100 validation and test images.
``data.val_size=100`` everywhere, so that the runs of one dataset share one held-out
baseline in the common run root."""


def readme_commands() -> list[str]:
    """The command lines of the README's shell blocks, comments dropped, spaces normalized."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(
        rf"^```(?:{'|'.join(SHELLS)})\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE
    )
    lines: list[str] = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines
        for raw in joined.splitlines():
            line = re.sub(r"^\$ ", "", raw.strip())  # console prompts
            line = re.sub(r"(^|\s)#.*$", "", line)  # comments
            if line.strip():
                lines.append(" ".join(line.split()))
    return lines


class Workspace:
    """One temporary folder and run root shared by the module's commands."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = root / "runs"
        self._checkpoint: Path | None = None
        self._demo: subprocess.CompletedProcess[str] | None = None

    def folder(self, name: str) -> Path:
        """A fresh working folder for one command."""
        path = self.root / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def memsim(self, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run ``memsim ARGS`` in ``cwd`` with one torch thread; require exit status 0."""
        env = dict(os.environ)
        # this checkout's packages, whatever the interpreter has installed
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).strip(
            os.pathsep
        )
        env["OMP_NUM_THREADS"] = "1"
        argv = [sys.executable, "-m", "lab.cli", "--threads", "1", "--no-progress"]
        argv += [str(a) for a in args]
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (
            f"memsim {' '.join(argv[3:])} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
        return proc

    def demo(self) -> subprocess.CompletedProcess[str]:
        """``memsim demo`` at its smallest setting, run once (it trains the digits baseline)."""
        if self._demo is None:
            self._demo = self.memsim(
                "demo", *SMALL_GA, "--set", "ga.population_size=2", "--run-root", self.runs,
                cwd=self.folder("demo"),
            )  # fmt: skip
            found = sorted((self.runs / "baselines").glob("protonet-digits-quick-*.pt"))
            assert found, "memsim demo wrote no digits baseline"
            self._checkpoint = found[0]
        return self._demo

    def checkpoint(self) -> Path:
        """The digits baseline the demo trained (``CHECKPOINT`` of the README)."""
        if self._checkpoint is None:
            self.demo()
        assert self._checkpoint is not None
        return self._checkpoint

    def readme_profile(self, cwd: Path) -> Path:
        """The README's JSON profile example, written as ``cwd/<its name>.json``."""
        text = README.read_text(encoding="utf-8")
        blocks = re.findall(r"^```json\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
        data = next(json.loads(b) for b in blocks if '"extends"' in b)
        path = cwd / f"{data['name']}.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"))


def _needs_mnist() -> None:
    if not (DATA / "mnist.npz").is_file():
        pytest.skip(f"{DATA / 'mnist.npz'} is absent (offline, the download cannot run)")


# ---- the plans: one per README line -------------------------------------------------


def _pip_install(ws: Workspace) -> None:
    # Not run: it would reinstall the package into the interpreter running these tests,
    # and its build backend (setuptools >= 77) comes from the network.  What can be
    # checked offline: the extras it names exist.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert {"dev", "aihwkit"} <= set(extras), sorted(extras)


def _make(target: str, recipe_end: str) -> Callable[[Workspace], None]:
    def check(ws: Workspace) -> None:
        if shutil.which("make") is None:
            pytest.skip("make is not installed")
        # -n prints the recipe without running it: the venv setup, then the command
        # as a user runs it: not as a sub-make of `make test` (whose MAKEFLAGS/MAKELEVEL
        # make a nested make print "Entering directory" lines)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        proc = subprocess.run(
            ["make", "--no-print-directory", "-n", target],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().splitlines()[-1] == recipe_end, proc.stdout

    return check


def _make_demo(ws: Workspace) -> None:
    # `make demo` is the venv setup (not repeated: the tests already run in one) and then
    # `memsim demo`, which runs here at its smallest setting
    _make("demo", ".venv/bin/memsim demo")(ws)
    ws.demo()


def _make_test(ws: Workspace) -> None:
    # `make test` is not run: its last step is this very test suite (it would run this
    # file again, and the whole suite far beyond this file's budget); its recipe is checked
    _make("test", ".venv/bin/python -m pytest")(ws)
    recipe = subprocess.run(
        ["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60
    ).stdout
    assert ".venv/bin/ruff check ." in recipe and ".venv/bin/lint-imports" in recipe


def _demo(ws: Workspace) -> None:
    out = ws.demo().stdout
    assert "on rram_1t1r_faulty_chen2015 chip " in out, out
    for method in ("qat", "ga", "defect_aware_oracle", "defect_aware_readback", "progressive"):
        assert f"  {method} " in out, method


def _profiles_list(ws: Workspace) -> None:
    out = ws.memsim("profiles", "list", cwd=ws.folder("list")).stdout
    assert "rram_1t1r_yao2020" in out


def _profiles_validate(ws: Workspace) -> None:
    cwd = ws.folder("validate")
    path = ws.readme_profile(cwd)
    assert path.name == "my_chip.json"
    ws.memsim("profiles", "validate", "my_chip.json", cwd=cwd)


def _evaluate_my_chip(ws: Workspace) -> None:
    cwd = ws.folder("evaluate_my_chip")
    ws.readme_profile(cwd)
    ws.memsim(
        "evaluate", ws.checkpoint(), "--profile", "my_chip.json", "--drift", "1h", "1d",
        "--draws", "1", "--support-draws", "1", "--test-size", "100", "--out", "out",
        cwd=cwd,
    )  # fmt: skip
    assert (cwd / "out").is_dir()


def _profiles_fit(ws: Workspace) -> None:
    cwd = ws.folder("fit")
    shutil.copy(ROOT / "examples" / "measurements.csv", cwd / "measurements.csv")
    ws.memsim(
        "profiles", "fit", "measurements.csv", "--base", "rram_wan2022", "--out", "my_chip.json",
        "--no-plots", cwd=cwd,
    )  # fmt: skip
    ws.memsim("profiles", "validate", "my_chip.json", cwd=cwd)


def _ga_recovery(ws: Workspace) -> None:
    _needs_mnist()
    # the two methods of the paper's comparison on the faulty chip alone: each further
    # method and transfer chip adds minutes of scoring on MNIST; tests/test_recovery_*
    # run every method
    ws.memsim(
        "ga", ROOT / "experiments" / "recovery_faulty.toml", "--scale", "quick", *SMALL_GA,
        "--set", 'recovery.methods=["qat", "ga"]', "--set", "chip.transfer_chip_seeds=[]",
        "--run-root", ws.runs, cwd=ws.folder("ga"),
    )  # fmt: skip


def _reproduce_table1(ws: Workspace) -> None:
    _needs_mnist()
    # one row (MNIST, sharing the held-out baseline of the recovery line), one generation
    out = ws.memsim(
        "reproduce", "table1", "--scale", "quick", "--rows", "protonet_mnist", *SMALL_GA[2:],
        "--run-root", ws.runs, cwd=ws.folder("table1"),
    ).stdout  # fmt: skip
    # the row ran (a row without its data is reported as skipped and still exits 0)
    assert "| ProtoNet | MNIST |" in out and "skipped" not in out, out


def _sweep_grid(ws: Workspace) -> None:
    cwd = ws.folder("sweep")
    config = TINY_TOML.replace("val_size = 300", "val_size = 100")  # the demo's baseline
    assert config != TINY_TOML
    (cwd / "tiny.toml").write_text(config, encoding="utf-8")
    # two of the README's three values and one seed: still a grid, a third of the runs
    ws.memsim(
        "sweep", "grid", "tiny.toml", "--grid", "faults.stuck_at_gmax_rate=0,0.05",
        "--seeds", "1", "--run-root", ws.runs, "--out", "grids", cwd=cwd,
    )  # fmt: skip
    assert list((cwd / "grids").glob("*/grid.csv"))


SMALL_PER_COMMAND: dict[str, tuple[str, ...]] = {
    "evaluate": ("--draws", "1", "--support-draws", "1", "--test-size", "100", "--out", "out"),
    "compare": (
        "--drift", "1h", "--draws", "1", "--limit", "50", "--support-draws", "1", "--out", "out",
    ),
    "cost": ("--images", "8", "--out", "out"),
    "export": ("--out", "out"),  # --out is required (the README's line leaves it out)
    "inspect": ("--drift", "1h", "--max-tiles", "1", "--out", "out"),
}  # fmt: skip
"""What shrinks each command of the README's ``evaluate | compare | ...`` line."""


def _checkpoint_commands(ws: Workspace) -> None:
    aihwkit = importlib.util.find_spec("aihwkit") is not None
    for command, small in SMALL_PER_COMMAND.items():
        if command == "compare" and not aihwkit:
            continue  # reported as a skip once the others have run
        cwd = ws.folder(f"checkpoint_{command}")
        ws.memsim(command, ws.checkpoint(), "--profile", "rram_1t1r_yao2020", *small, cwd=cwd)
        assert any((cwd / "out").iterdir()), f"memsim {command} wrote nothing"
    if not aihwkit:
        pytest.skip("memsim compare not run: it needs IBM aihwkit (the others ran)")


PLANS: dict[str, Callable[[Workspace], None]] = {
    "pip install -e '.[dev,aihwkit]'": _pip_install,
    "make demo": _make_demo,
    "make test": _make_test,
    "memsim profiles list": _profiles_list,
    "memsim profiles validate my_chip.json": _profiles_validate,
    "memsim evaluate CHECKPOINT --profile my_chip.json --drift 1h 1d --draws 5": (
        _evaluate_my_chip
    ),
    "memsim profiles fit measurements.csv --base rram_wan2022 --out my_chip.json": (_profiles_fit),
    "memsim demo": _demo,
    "memsim ga experiments/recovery_faulty.toml --scale quick --replicates 5": _ga_recovery,
    "memsim reproduce table1 --scale quick": _reproduce_table1,
    "memsim sweep grid CONFIG --grid faults.stuck_at_gmax_rate=0,0.05,0.1 --seeds 3": (_sweep_grid),
    "memsim evaluate | compare | cost | export | inspect CHECKPOINT --profile P": (
        _checkpoint_commands
    ),
}
"""How each README command line runs here, keyed by the line as :func:`readme_commands`
gives it."""


def test_every_readme_command_has_a_plan():
    lines = readme_commands()
    assert len(lines) >= 10, lines  # the extraction still finds the README's blocks
    new = [line for line in lines if line not in PLANS]
    assert not new, (
        f"README.md has command lines this test cannot run yet: {new}; add each to PLANS in "
        "tests/test_readme_commands.py with its smallest setting"
    )
    gone = [line for line in PLANS if line not in lines]
    assert not gone, f"PLANS has lines the README no longer has: {gone}"


def test_the_extraction_reads_continuations_prompts_and_comments(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(
        "```console\n$ memsim demo  # a comment\n```\n"
        "```bash\n# a comment line\nmemsim ga x.toml \\\n    --seeds 3\n\n```\n"
        "```python\nprint('not a shell line')\n```\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(sys.modules[__name__], "README", readme)
    assert readme_commands() == ["memsim demo", "memsim ga x.toml --seeds 3"]


@pytest.mark.parametrize("line", [line for line in readme_commands() if line in PLANS])
def test_readme_command_runs(line: str, ws: Workspace) -> None:
    PLANS[line](ws)
