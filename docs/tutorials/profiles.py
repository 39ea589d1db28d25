"""Tutorial: write and derive a device profile.

A device profile is a JSON file (or dict) that may ``extends`` a shipped profile and
override some fields.  This tutorial writes one, loads it three ways, derives variants
in code with ``profile.derive``, shows what validation refuses, and gives one layer of a
network its own converters with ``layer_profiles``.  Runs in seconds on one CPU thread.
"""

import json
import statistics
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import memsim

torch.manual_seed(0)

# --- 1. A profile file that extends a shipped one ------------------------------------
# Units are in the field names, unknown fields are errors, and `source` says where each
# changed number comes from (here: made up for the tutorial, and it says so).
my_chip = {
    "name": "my_chip",
    "extends": "rram_1t1r_yao2020",
    "description": "Yao's chip with more stuck devices and 6-bit ADCs (tutorial values)",
    "faults": {"stuck_at_gmin_rate": 0.02, "stuck_at_gmax_rate": 0.01},
    "adc": {"bits": 6},
    "source": {"faults": "tutorial: assumed", "adc.bits": "tutorial: assumed"},
}
path = Path("my_chip.json")  # written in the current directory
path.write_text(json.dumps(my_chip, indent=2), encoding="utf-8")

from_file = memsim.load_profile(path)  # a path ...
from_dict = memsim.load_profile(my_chip)  # ... or the same dict, without a file
assert from_file == from_dict
base = memsim.load_profile("rram_1t1r_yao2020")  # ... or a shipped name
print(
    f"{from_file.name}: adc {from_file.adc.bits} bits (base {base.adc.bits}), "
    f"stuck at g_max {from_file.faults.stuck_at_gmax_rate} "
    f"(base {base.faults.stuck_at_gmax_rate})"
)
# Fields the file does not set come from the parent:
print(
    f"inherited: tile {from_file.tile.rows}x{from_file.tile.cols}, "
    f"programming noise sigma {from_file.programming_noise.sigma}"
)

# --- 2. Derive in code ---------------------------------------------------------------
# derive() returns a validated child; the changed fields are marked in its source.
low_adc = from_file.derive(adc={"bits": 3})
print(f"derived: {low_adc.name}, extends {low_adc.extends}")
print(f"  its description says what changed: {low_adc.description!r}")

# --- 3. What validation refuses --------------------------------------------------------
# A bad value fails at once, with the field named; nothing is simulated with it.
for bad in ({"adc": {"bits": 0}}, {"adc": {"bitz": 6}}):
    try:
        from_file.derive(bad)
    except memsim.ProfileError as err:
        print(f"refused {bad}: {' '.join(str(err).split())}")

# --- 4. Compare the variants on one model ------------------------------------------------
x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(200):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x_train), y_train).backward()
    opt.step()


@torch.no_grad()
def chip_accuracy(profile, draws: int = 3, **convert_options) -> float:
    """Mean test accuracy of `model` on chip 7 of `profile` over a few programming draws."""
    accs = []
    for seed in range(draws):
        chip = memsim.convert(model, profile, seed=seed, chip_seed=7, **convert_options)
        memsim.calibrate(chip, x_train[:256])
        chip.eval()
        accs.append((chip(x_test).argmax(1) == y_test).float().mean().item())
    return statistics.fmean(accs)


for label, profile in [
    ("rram_1t1r_yao2020", base),
    ("my_chip", from_file),
    ("my_chip, 3-bit ADC", low_adc),
]:
    print(f"accuracy on {label:>20}: {chip_accuracy(profile):.3f}")

# --- 5. One layer with its own settings ----------------------------------------------------
# layer_profiles maps module names (or prefixes, or fnmatch patterns) to a dict of
# changes (derived from the chip's profile) or to a whole profile.  Here the output layer
# ("2") keeps 8-bit ADCs while the hidden layer has the 3-bit ones.
mixed = chip_accuracy(low_adc, layer_profiles={"2": {"adc": {"bits": 8}}})
print(f"accuracy with 3-bit ADCs but an 8-bit output layer: {mixed:.3f}")
