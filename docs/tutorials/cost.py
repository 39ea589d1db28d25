"""Tutorial: energy, latency and area of a network on a chip.

``memsim.cost_report(chip, x)`` runs one forward pass and counts what the chip does:
the crossbar reads, the DAC input cycles, the ADC conversions and the digital work, per
layer and per inference, priced with the numbers in the profile's ``periphery`` section
(every number cited in the profile).  This tutorial reads a report, then trades ADC
resolution against accuracy and energy.  Runs in seconds on one CPU thread.
"""

import statistics

import torch
from sklearn.datasets import load_digits
from torch import nn

import memsim

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

# --- 1. One report -------------------------------------------------------------------------
profile = memsim.load_profile("rram_1t1r_yao2020")
chip = memsim.convert(model, profile, seed=0, chip_seed=7)
memsim.calibrate(chip, x_train[:256])  # the converter ranges decide the DAC codes too
report = memsim.cost_report(chip, x_test[:64])  # averaged over 64 inferences
print(report)  # per layer: tiles, MVMs, energy by term, latency, area

# The same numbers as attributes (per inference), e.g. for your own tables:
print(
    f"energy {report.energy_J * 1e9:.3f} nJ, latency {report.latency_s * 1e6:.3f} us, "
    f"area {report.area_mm2:.4f} mm2, {report.tops_per_w:.2f} TOPS/W"
)
terms = {t: report.term(t) / report.energy_J for t in ("array_J", "dac_J", "adc_J", "digital_J")}
print("energy shares: " + ", ".join(f"{t[:-2]} {share:.0%}" for t, share in terms.items()))


# --- 2. ADC resolution: accuracy against energy ---------------------------------------------
@torch.no_grad()
def accuracy(net: nn.Module) -> float:
    """Top-1 accuracy on the test images."""
    return (net(x_test).argmax(1) == y_test).float().mean().item()


# An ADC's energy grows about exponentially with its bits; fewer bits save energy and
# cost accuracy.  Three programming draws per setting, the same chip instance.
print(f"{'ADC bits':>8} {'accuracy':>9} {'energy (nJ)':>12} {'ADC share':>10}")
for bits in (8, 6, 4, 3):
    variant = profile.derive(adc={"bits": bits})
    accs, energies, adc_shares = [], [], []
    for seed in range(3):
        chip = memsim.convert(model, variant, seed=seed, chip_seed=7)
        memsim.calibrate(chip, x_train[:256])
        accs.append(accuracy(chip))
        rep = memsim.cost_report(chip, x_test[:64])
        energies.append(rep.energy_J)
        adc_shares.append(rep.term("adc_J") / rep.energy_J)
    print(
        f"{bits:>8} {statistics.fmean(accs):>9.3f} {statistics.fmean(energies) * 1e9:>12.4f} "
        f"{statistics.fmean(adc_shares):>10.0%}"
    )
