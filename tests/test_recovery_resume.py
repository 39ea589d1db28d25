"""Kill -9 the recovery stage in the middle of its GA, resume it, demand the same result.

This file is also the script the test runs in subprocesses:
``python tests/test_recovery_resume.py RUN_ROOT RUN_DIR [--resume]``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recovery_support import recovery_config  # noqa: E402

# ----------------------------------------------------------------------------- kill test

KILL_METHODS = ["qat", "ga"]


def _main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT))
    from lab.experiment.context import RunContext
    from lab.experiment.runner import Experiment

    run_root, run_dir = Path(argv[0]), Path(argv[1])
    cfg = recovery_config(
        KILL_METHODS,
        data={"test_size": 100},
        chip={"transfer_chip_seeds": []},
        ga={"population_size": 3, "generations": 4},
        fitness={"finetune_steps": 2},
    )

    def echo(line: str) -> None:
        print(line, flush=True)

    ctx = RunContext(run_root=run_root, progress=False, echo=echo)
    if "--resume" in argv:
        exp = Experiment.open(run_dir, ctx, expected=cfg)
    else:
        from lab.experiment.runner import prepare_run_dir

        prepare_run_dir(cfg, ctx, run_dir)  # config.json and the seed offset, as a new run
        exp = Experiment(cfg, run_dir, ctx)
    exp.run()


def _script(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def _rows(run_dir: Path) -> dict[str, Any]:
    results = json.loads((run_dir / "results.json").read_text())
    return {r["method"]: (r["chips"], r["counters"]) for r in results["methods"]}


def test_kill_in_the_middle_of_the_stage_and_resume_gives_the_same_result(tmp_path):
    run_root = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    full = tmp_path / "full"
    subprocess.run(_script(str(run_root), str(full)), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _script(str(run_root), str(killed)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # qat is done, the GA is between generations 2 and 3
            if line.startswith("GA generation 2/"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert (killed / "recovery" / "qat.pt").is_file()
    assert not (killed / "recovery" / "ga.pt").exists()
    assert not (killed / "results.json").exists()

    out = subprocess.run(
        _script(str(run_root), str(killed), "--resume"),
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "GA: resuming from" in out.stdout
    assert _rows(killed) == _rows(full)


if __name__ == "__main__":
    _main(sys.argv[1:])
