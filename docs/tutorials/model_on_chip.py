"""Tutorial: your model on a chip.

Train a tiny MLP on scikit-learn's 8x8 digits, put it on a simulated RRAM chip with
``memsim.convert``, measure its accuracy over several programming draws, and watch it
age with ``memsim.drift``.  Runs in a few seconds on one CPU thread.
"""

import statistics

import torch
from sklearn.datasets import load_digits
from torch import nn

import memsim

torch.manual_seed(0)  # the digital model is the same on every run

# --- 1. A digital model --------------------------------------------------------------
# 1797 images of 8x8 pixels (0..16); the first 1400 train, the rest test.
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
    """Top-1 accuracy on the test images (never used for training or calibration)."""
    net.eval()
    return (net(x_test).argmax(1) == y_test).float().mean().item()


print(f"digital accuracy: {accuracy(model):.3f}")

# --- 2. Onto a chip -------------------------------------------------------------------
# A device profile holds every number of the chip (conductance window, programming
# noise, read noise, drift, converters, tile size), each with its published source.
profile = memsim.load_profile("rram_1t1r_yao2020")
print(
    f"profile {profile.name}: {profile.tile.rows}x{profile.tile.cols} tiles, "
    f"window {profile.device.g_min_uS}..{profile.device.g_max_uS} uS"
)

# convert() returns a deep copy whose Linear layers sit on analog tiles; `model` stays
# digital.  chip_seed fixes the chip instance (its defects and device-to-device
# variation), seed the programming and read noise.
chip = memsim.convert(model, profile, seed=0, chip_seed=7)
# The ADC and DAC ranges of this profile are calibrated from a batch of inputs: take
# training images, so the test images stay unseen.
if memsim.needs_calibration(chip):
    memsim.calibrate(chip, x_train[:256])
print(memsim.tile_report(chip))
print(f"accuracy on the chip: {accuracy(chip):.3f}")

# --- 3. Programming is random: measure over several draws -------------------------------
# program() writes the weights again into the same chip (same defects) with fresh
# programming noise; every draw is one possible outcome of programming the chip.
draws = []
for seed in range(5):
    memsim.program(chip, seed=seed)
    memsim.calibrate(chip, x_train[:256])
    draws.append(accuracy(chip))
print(
    f"over 5 programming draws: mean {statistics.fmean(draws):.3f}, "
    f"min {min(draws):.3f}, max {max(draws):.3f}"
)

# --- 4. Drift -----------------------------------------------------------------------------
# The conductances relax after programming.  drift() sets the chip's age (seconds after
# programming); it is not cumulative, so the loop visits each age once.
memsim.program(chip, seed=0)
memsim.calibrate(chip, x_train[:256])
for label, t_s in [
    ("1 second", 1.0),
    ("1 hour", 3600.0),
    ("1 day", 86400.0),
    ("1 year", 365 * 86400.0),
]:
    memsim.drift(chip, t_s)
    print(f"after {label:>8}: accuracy {accuracy(chip):.3f}")

# The weights the chip holds now, against the ones it was asked to hold:
eff, target = memsim.effective_weights(chip), memsim.target_weights(chip)
for name in eff:
    rel = (eff[name] - target[name]).norm() / target[name].norm()
    print(f"layer {name}: relative weight error after a year {rel:.3f}")
