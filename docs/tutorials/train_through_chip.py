"""Tutorial: hardware-aware training through the chip.

Train a tiny MLP on scikit-learn's 8x8 digits, put it on a faulty RRAM chip, and win
back accuracy by training *through that chip*: the forward pass is the chip's own (its
stuck devices, programming and read noise, converters), the gradients reach the digital
target weights, and the trained targets are programmed into the chip.  Two regimes:

* ``chip_in_the_loop``: one chip with fixed defects, reprogrammed as the targets move;
* ``noise_in_the_loop``: every step programs the targets afresh from the profile's
  physics (hardware-aware training, as aihwkit's ``AnalogSGD`` route does with its noise
  models), optionally on a new chip instance every step (``fresh_chip=True``).

Runs in about half a minute on one CPU thread.
"""

import statistics

import torch
from sklearn.datasets import load_digits
from torch import nn

import memsim

torch.manual_seed(0)

# --- 1. A digital model ----------------------------------------------------------------
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
def accuracy(net: nn.Module, draws: int = 5) -> float:
    """Test accuracy over ``draws`` fresh programmings of the chip's current targets."""
    net.eval()
    if not any(True for _ in memsim.analog_layers(net)):
        return (net(x_test).argmax(1) == y_test).float().mean().item()
    scores = []
    for seed in range(100, 100 + draws):
        memsim.program(net, seed=seed)  # same chip (same defects), fresh programming noise
        scores.append((net(x_test).argmax(1) == y_test).float().mean().item())
    return statistics.fmean(scores)


print(f"digital accuracy: {accuracy(model):.3f}")

# --- 2. On a faulty chip ------------------------------------------------------------------
# About 11 % of this profile's devices are stuck (Chen 2015's fault rates on Yao 2020's
# 1T1R array); chip_seed fixes which ones.
PROFILE = "rram_1t1r_faulty_chen2015"
chip = memsim.convert(model, PROFILE, seed=0, chip_seed=3)
before = accuracy(chip)
print(f"converted, untouched: accuracy on the chip {before:.3f}")


# --- 3. Chip in the loop -------------------------------------------------------------------
# The trainer's forward runs on the chip; loss.backward() reaches every analog layer's
# .target and .bias (straight-through gradients for the quantizers and the mapping);
# every step the updated targets are programmed into the same chip.
def train(chip: nn.Module, regime: str, steps: int = 150, **options: bool) -> None:
    """``steps`` Adam steps of batch 64 through ``chip`` in ``regime``, then deploy."""
    optimizer = torch.optim.Adam(chip.parameters(), lr=3e-3)
    trainer = memsim.HardwareAwareTrainer(chip, optimizer, regime, seed=1, **options)
    gen = torch.Generator().manual_seed(2)
    for step in range(steps):
        idx = torch.randint(0, len(x_train), (64,), generator=gen)
        loss = trainer.step(x_train[idx], y_train[idx])
        if step % 50 == 0:
            print(f"  {regime} step {step:>3}: loss {loss.item():.3f}")
    trainer.deploy(seed=0)  # program the trained targets; the chip is in eval mode


train(chip, "chip_in_the_loop")
after = accuracy(chip)
print(f"trained chip in the loop: accuracy on the chip {after:.3f} (gain {after - before:+.3f})")

# --- 4. Noise in the loop (hardware-aware training) ---------------------------------------
# A fresh conversion of the digital model on the same chip instance: every step programs
# the targets afresh from the profile's physics, so the weights learn to survive
# programming noise; on this chip the stuck devices are in every forward pass as well.
# (fresh_chip=True would draw a new chip instance every step: weights for the profile in
# general rather than for this chip.)
chip2 = memsim.convert(model, PROFILE, seed=0, chip_seed=3)
train(chip2, "noise_in_the_loop")
noise = accuracy(chip2)
print(f"trained noise in the loop: accuracy on the chip {noise:.3f} (gain {noise - before:+.3f})")

# --- 5. Age the trained chip -----------------------------------------------------------------
memsim.program(chip, seed=0)
for label, t_s in [("1 hour", 3600.0), ("1 day", 86400.0), ("1 year", 365 * 86400.0)]:
    memsim.drift(chip, t_s)
    with torch.no_grad():
        acc = (chip(x_test).argmax(1) == y_test).float().mean().item()
    print(f"chip-in-the-loop chip after {label:>6}: accuracy {acc:.3f}")
