"""Tutorial: compare memsim with IBM aihwkit.

The same trained model and the same device profile go through memsim and through
aihwkit; ``memsim.backends.compare.compare`` reports both accuracies, the relative
output error against the digital model and the wall times, per drift time.  By default
memsim runs the *aligned* profile: the profile restricted to what aihwkit can express,
so both codes simulate the same physics.  Needs the ``aihwkit`` extra
(``pip install 'memsim[aihwkit]'``); without it the tutorial says so and stops.
"""

import sys

try:
    import aihwkit  # noqa: F401  (only: is it there?)
except ImportError as err:
    print(f"skipped: aihwkit cannot be imported ({err}); pip install 'memsim[aihwkit]'")
    sys.exit(0)

import torch
from sklearn.datasets import load_digits
from torch import nn

from memsim.backends.compare import compare

torch.manual_seed(0)

x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(200):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x_train), y_train).backward()
    opt.step()
model.eval()

# rram_wan2022 is a profile whose programming noise and drift aihwkit can express (the
# knob table printed below says, field by field, what each side models).  Three
# programming draws per simulator, evaluated one hour and one day after programming.
# Converter ranges are calibrated on training images, never on the test images.
result = compare(
    model,
    "rram_wan2022",
    x_test,
    y_test,
    drift_times=(3600.0, 86400.0),
    draws=3,
    calibration=x_train[:256],
    name="digits-mlp",
    data_desc="sklearn digits, 397 test images",
)

# `result` is a plain dict (what `memsim compare` writes as compare.json).
print()
print(f"digital accuracy: {result['digital_accuracy']:.2f} %")
for row in result["times"]:
    print(
        f"after {row['label']:>3}: memsim {row['memsim']['acc_mean']:.2f} %, "
        f"aihwkit {row['aihwkit']['acc_mean']:.2f} %, "
        f"difference {row['delta_acc']:+.2f} points"
    )
