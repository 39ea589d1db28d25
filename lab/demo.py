"""The ``memsim demo`` experiment: GA training of a ProtoNet on a realistic RRAM chip.

Everything it needs ships with the package: scikit-learn's bundled 8x8 ``digits`` data,
the ``rram_1t1r_yao2020`` device profile and the config below.  It trains (or reuses)
the quick ProtoNet baseline, runs a small GA on chip 1, trains the extra-QAT control,
and scores all three on the held-out test split of chip 1 and of a second chip.

Settings beyond the paper's GA operators (sigmoid roulette, two-point crossover 0.8,
maxmin mutation 0.01, ``origin`` start):

* ``weight_bits = 4``: the chip's 8 conductance levels per device give 15 weight levels
  per differential pair, close to a 4-bit (16-level) symmetric quantizer;
* ``qat_sigma = 0.03``: the fine-tune's relative weight noise, of the order of the
  profile's programming noise (1.5 % of the window) and device variation (3 %);
* ``finetune_lr = 1e-4``: chosen on the *validation* fitness (1e-3 made the 5-step
  fine-tune worse than no fine-tune); the test set played no part in it.
"""

from __future__ import annotations

DEMO_TOML = """\
[experiment]
name = "demo"
description = "ProtoNet on bundled digits, GA on a simulated Yao-2020 1T1R RRAM chip"
task = "protonet-digits"
scale = "quick"
seed = 0

[data]
val_size = 300

[chip]
profile = "rram_1t1r_yao2020"
chip_seed = 1
transfer_chip_seeds = [2]
qat_sigma = 0.03

[evaluation]
draws = 5
support_draws = 4

[ga]
population_size = 6
generations = 5
selection = "sigmoid_rws"
crossover = "two_points"
crossover_probability = 0.8
mutation = "maxmin"
mutation_probability = 0.01
init = "origin"
weight_bits = 4
finetune_steps = 5
finetune_lr = 1e-4
fitness_draws = 1
seed = 0
"""
