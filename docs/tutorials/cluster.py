"""Tutorial: run the GA on worker processes and on Ray (a cluster).

Every command that runs GA or sweep work takes ``--executor serial|process|ray`` and
``--workers N``.  The GA's population is cut into one chunk per worker; each worker holds
its own copy of the fitness (model, data, chip), and every member's score depends only
on its genes and seeds.  So the results are the same, bit for bit, under every executor
and worker count.  This tutorial runs one tiny GA experiment three ways and checks that.
On a real cluster, add ``--address auto`` (see docs/howto/executors.md).  About a minute
on one CPU, most of it the baseline's training and the workers' and Ray's start-up; run
folders go to ``./runs``.
"""

import importlib.util
import json
from pathlib import Path
from typing import Any

from lab.cli import main

# A tiny GA experiment: the paper's GA on a ProtoNet for digits (no other method: short).
TINY_TOML = """
[experiment]
name = "tutorial-cluster"
task = "protonet-digits"
scale = "quick"
seed = 0

[data]
val_size = 300
test_size = 60

[chip]
profile = "rram_1t1r_faulty_chen2015"
chip_seed = 11
transfer_chip_seeds = []

[evaluation]
draws = 5
support_draws = 1

[fitness]
finetune_steps = 2
finetune_lr = 1e-3

[ga]
population_size = 4   # 4 members: 2 per worker
generations = 1
init = "origin"
mutation = "maxmin"
weight_bits = 4
seed = 0

[recovery]
methods = ["ga"]
"""


def run(options: list[str]) -> dict[str, Any]:
    """Run the tiny experiment with these executor options; its fitness chip and methods."""
    # one run root for all three runs: the baseline is trained once, then reused
    before = set(Path("runs/ga").glob("tutorial-cluster-*"))
    argv = ["--threads", "1", "--no-progress", "ga", "tiny.toml", "--run-root", "runs"]
    status = main(argv + options)
    if status != 0:
        raise SystemExit(f"memsim ga {' '.join(options)} failed with status {status}")
    (folder,) = set(Path("runs/ga").glob("tutorial-cluster-*")) - before
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    # everything a method reports except its wall time, which depends on the machine
    methods = {
        m["method"]: {k: v for k, v in m.items() if k != "wall_time_s"} for m in results["methods"]
    }
    # the chip's key: its seed (chip_seed, shifted by $MEMSIM_SEED_OFFSET if set)
    return {"chip": str(results["fitness_chip"]), "methods": methods}


def tutorial() -> None:
    """Run the experiment under every executor and compare the results."""
    Path("tiny.toml").write_text(TINY_TOML, encoding="utf-8")
    executors = [["--executor", "serial"], ["--executor", "process", "--workers", "2"]]
    if importlib.util.find_spec("ray") is not None:
        # Without --address (and without $RAY_ADDRESS) memsim starts a local Ray instance
        # for the command and stops it afterwards; on a cluster: --address auto or HOST:PORT.
        executors.append(["--executor", "ray", "--workers", "2"])
    else:
        print("ray is not installed (pip install 'memsim[distributed]'): its run is skipped")
    scores = {options[1]: run(options) for options in executors}

    # Every method's test scores (each draw's accuracy included) are the same everywhere.
    for name, run_scores in scores.items():
        chip = run_scores["methods"]["ga"]["chips"][run_scores["chip"]]
        draws = [round(a, 4) for a in chip["accuracies"]]
        print(f"{name:>7}: ga {chip['mean_pct']:.2f} %, test draws {draws}")
    same = all(s == scores["serial"] for s in scores.values())
    print(f"identical results under every executor: {same}")
    if not same:
        raise SystemExit("the executors disagree")


# Worker processes are spawned: they import this file again, so the work must not start
# on import, only when the file is run as a script.
if __name__ == "__main__":
    tutorial()
