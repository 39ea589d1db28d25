"""Tutorial: fit a profile to measurements, and the hardware round trip.

Part 1 fits a device profile to device measurements (programming error, drift, read
noise, stuck devices), as ``memsim profiles fit`` does.  The "measurements" here are
drawn from a made-up chip, so the fit can be checked against the truth.

Part 2 is the round trip with a test bench: export what to program (``memsim
export``), program and read back the devices (here: a simulated chip stands in for the
silicon), import the measured conductances, and score the network on exactly those
conductances.  Runs in seconds on one CPU thread; files go to the current directory.
"""

import csv
import json
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import memsim
from memsim import fit

torch.manual_seed(0)

# --- Part 1: fit a profile -------------------------------------------------------------
# The "real" devices: Wan 2022's RRAM with a tighter write-verify (0.7 x its programming
# error), power-law drift, 0.8 % read noise and 1 % / 2 % stuck devices.
wan = memsim.load_profile("rram_wan2022")
truth = wan.derive(
    name="tutorial_test_chip",
    programming_noise={"coeffs_uS": [0.7 * c for c in wan.programming_noise.coeffs_uS]},
    drift={"model": "power_law", "t0_s": 1.0, "nu_mean": 0.01, "nu_std": 0.004},
    read_noise={"sigma": 0.008},
    faults={"stuck_at_gmin_rate": 0.01, "stuck_at_gmax_rate": 0.02},
)

# A test bench would write this CSV: one row per measurement, columns
# kind,device,target_uS,t_s,g_uS (see docs/howto/device-profiles.md).
tables = fit.simulate_measurements(
    truth,
    n_program=1500,
    n_drift_devices=100,
    drift_times_s=(1.0, 10.0, 100.0, 1e3, 1e4, 1e5),
    n_read_devices=30,
    n_reads=10,
    n_stuck_devices=600,
    seed=1,
)
for table in tables.values():  # a bench does not know the true values: drop them
    for key in [k for k in table if k.endswith("_true")]:
        del table[key]
csv_path = fit.write_measurements("measurements.csv", tables)

# Fit on top of the shipped profile: it supplies the window and everything unmeasured.
result = fit.fit_profile(csv_path, "rram_wan2022", name="my_chip_fitted")
print(result.summary())
Path("my_chip_fitted.json").write_text(json.dumps(result.profile, indent=2), encoding="utf-8")
fitted = memsim.load_profile("my_chip_fitted.json")  # a profile like any other
print(f"drift nu_mean: fitted {fitted.drift.nu_mean:.4f}, true {truth.drift.nu_mean}")
print(f"read noise sigma: fitted {fitted.read_noise.sigma:.4f}, true {truth.read_noise.sigma}")
print(
    f"stuck at g_max: fitted {fitted.faults.stuck_at_gmax_rate:.4f}, "
    f"true {truth.faults.stuck_at_gmax_rate}"
)

# --- Part 2: the hardware round trip ----------------------------------------------------
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
def accuracy(net: nn.Module) -> float:
    """Top-1 accuracy on the test images."""
    net.eval()
    return (net(x_test).argmax(1) == y_test).float().mean().item()


# 1. Export what to program: one row per weight cell, G+ and G- in uS.
chip = memsim.convert(model, fitted, seed=0, chip_seed=0)
memsim.calibrate(chip, x_train[:256])
memsim.export_chip(chip, "chip.npz", csv_path="chip.csv")
with open("chip.csv", newline="", encoding="utf-8") as f:
    header = f.readline().strip()
    cells = sum(1 for _ in f)
print(f"to program: chip.csv, {cells} weight cells ({header})")
print(f"simulated accuracy with the fitted profile: {accuracy(chip):.3f}")

# 2. The test bench programs chip.csv and reads every device back.  Here the "silicon"
#    is the true device model on another chip instance: its programmed state is what a
#    read-back would give.  A real bench writes the same columns with its own values.
silicon = memsim.convert(model, truth, seed=5, chip_seed=3)
memsim.export_chip(silicon, "readback.npz", quantity="programmed", csv_path="readback.csv")
with (
    open("readback.csv", newline="", encoding="utf-8") as f_in,
    open("measured.csv", "w", newline="", encoding="utf-8") as f_out,
):
    rows = csv.DictReader(f_in)
    columns = ["layer", "tile", "row", "col", "g_plus_uS", "g_minus_uS"]  # level_* optional
    out = csv.DictWriter(f_out, columns, extrasaction="ignore")
    out.writeheader()
    out.writerows(rows)

# 3. Import the measurement into the chip and score it.  The import checks layer names,
#    tile counts and sizes, that every weight cell appears once, and the units.
memsim.import_conductances(chip, "measured.csv")
memsim.calibrate(chip, x_train[:256])  # converter ranges for the measured array
print(f"accuracy on the measured conductances: {accuracy(chip):.3f}")

# 4. What the bench measured against what was asked for, cell by cell (the .npz files
#    hold the dense per-tile arrays and the mask of cells that hold a weight).
measured = memsim.read_conductance_map("readback.npz")
target = memsim.read_conductance_map("chip.npz")
for name, layer in measured.layers.items():
    used = target.layers[name].fields["used"]
    err = abs(layer.g_plus - target.layers[name].g_plus)[used]
    print(
        f"layer {name}: G+ off target by {err.mean():.3f} uS on average, "
        f"{(err > 5).mean():.1%} of the devices by more than 5 uS (mostly the stuck ones)"
    )
