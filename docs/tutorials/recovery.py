"""Tutorial: win back accuracy after programming a faulty chip.

A network trained in software loses accuracy on a chip with stuck devices.  memsim's
experiment layer (``lab``, the ``memsim ga`` command) runs recovery methods on the
same baseline, the same chip and the same training budget, and scores them on fresh
programming draws of the test split.  Here, at a tiny size:

* ``qat``: noise-aware fine-tuning that knows nothing about this chip (the control);
* ``defect_aware_readback``: the same fine-tune through the defect map read back from
  the chip's devices (the stuck devices are trained around).

Two replicates (own baseline, method and evaluation seeds each) give an interval for
the paired gain.  About a minute on one CPU thread; run folders go to ``./runs``.
"""

import json
from pathlib import Path

from lab.cli import main

# An experiment is a TOML file; every key is listed, with its default and meaning, by
# `memsim ga CONFIG --print-config`.
Path("recovery.toml").write_text(
    """
[experiment]
name = "tutorial-recovery"
task = "protonet-digits"   # a ProtoNet on scikit-learn's digits: no download
scale = "quick"            # the quick baseline recipe
seed = 0

[data]
val_size = 300             # carved out of the training split for the methods
test_size = 150            # test images scored at the end

[chip]
profile = "rram_1t1r_faulty_chen2015"   # Yao 2020's chip with about 11 % stuck devices
chip_seed = 11                          # this chip instance (its defects)
transfer_chip_seeds = []                # no second chip: keep it short
qat_sigma = 0.03

[evaluation]
draws = 5          # fresh programming draws per score (5 at least)
support_draws = 1

[fitness]
# the fine-tune every method shares: its length per fitness evaluation and learning rate
finetune_steps = 5
finetune_lr = 1e-3

[ga]
# The budget: every method gets population x (generations + 1) x finetune_steps
# training steps, here 2 x 1 x 5 = 10.  ([ga] sets it even when the GA is not run.)
population_size = 2
generations = 0
weight_bits = 4
seed = 0

[recovery]
methods = ["qat", "defect_aware_readback"]
readback_reads = 4   # reads per device when the defect map is read back
""",
    encoding="utf-8",
)

# The same as `memsim --threads 1 ga recovery.toml --replicates 2 --no-progress`.
status = main("--threads 1 --no-progress ga recovery.toml --replicates 2 --run-root runs".split())
if status != 0:
    raise SystemExit(f"memsim ga failed with status {status}")

# The run folder holds everything: config, each replicate's folder, the figure, and the
# aggregate results.json the table above was printed from.
folder = max(Path("runs/ga").glob("tutorial-recovery-*"))
results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
chip = str(results["fitness_chip"])
for method in results["methods"]:
    score = method["chips"][chip]
    line = f"{method['method']}: test accuracy {score['mean_pct']:.1f} % on chip {chip}"
    if "vs_reference" in score:
        v = score["vs_reference"]
        line += f", per replicate {[round(p, 1) for p in v['replicate_pp']]} points over qat"
    print(line)
# With two replicates the 95 % interval is very wide: the replicates tell how much the
# gain varies, and `memsim demo` uses five.  The per-replicate gains are paired (same
# programming draws for both methods), which is what makes them comparable at all.
