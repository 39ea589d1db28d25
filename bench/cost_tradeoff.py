"""Accuracy against energy per inference: ADC bits 4..8 on the Yao profile, MNIST MLP.

Trains a 784-256-10 MLP on MNIST for one epoch (seeded), then for each ADC resolution
programs three chips of ``rram_1t1r_yao2020`` with that resolution, calibrates them on
256 training images, and scores the test split; the energy per inference comes from
:func:`memsim.cost_report` on 256 test images.  Writes ``cost_tradeoff.png`` and the 8-bit
energy breakdown ``cost_energy_yao_mlp.png`` into ``--out`` (default
``runs/bench/cost_tradeoff``; ``--out docs`` regenerates the figures the docs show).

Run: .venv/bin/python bench/cost_tradeoff.py [--data-root DIR] [--test-size N] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

# lab/ is not an installed package yet: import it from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import memsim
from lab.plots.cost import plot_accuracy_vs_energy, plot_energy_breakdown
from models.data import calibration_images, load_dataset, resolve_data_root

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def train_mlp(train, epochs: int = 1) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(train), generator=gen).split(128):
            loss = nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    hits = 0
    for xb, yb in zip(images.split(500), labels.split(500)):
        hits += int((model(xb).argmax(1) == yb).sum())
    return 100.0 * hits / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-root",
        default=None,
        help="folder with mnist.npz (default: $MEMSIM_DATA, shared/data, cache; as memsim)",
    )
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument(
        "--out",
        default=str(ROOT / "runs" / "bench" / "cost_tradeoff"),
        help="folder for the two PNG files (default: %(default)s; docs/ holds the published ones)",
    )
    args = ap.parse_args()
    train, test = load_dataset("mnist", root=resolve_data_root(args.data_root))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    model = train_mlp(train)
    x_test, y_test = test.images[: args.test_size], test.labels[: args.test_size]
    print(
        f"digital MLP test accuracy ({len(y_test)} images): {accuracy(model, x_test, y_test):.2f} %"
    )
    cal = calibration_images(train)
    base = memsim.load_profile("rram_1t1r_yao2020")
    energies, accs, stds, labels = [], [], [], []
    print(f"{'ADC bits':>8} {'accuracy %':>14} {'nJ/inf':>8} {'ADC nJ':>8} {'TOPS/W':>7}")
    for bits in range(4, 9):
        prof = base.derive(adc={"bits": bits})
        runs, report = [], None
        for draw in range(args.draws):
            chip = memsim.convert(model, prof, seed=draw)
            memsim.calibrate(chip, cal)
            runs.append(accuracy(chip, x_test, y_test))
            if draw == 0:
                report = memsim.cost_report(chip, x_test[:256])
                if bits == 8:
                    plot_energy_breakdown(report, Path(args.out) / "cost_energy_yao_mlp.png")
        assert report is not None
        mean, std = statistics.fmean(runs), statistics.stdev(runs) if len(runs) > 1 else 0.0
        energies.append(report.energy_J * 1e9)
        accs.append(mean)
        stds.append(std)
        labels.append(f"{bits} b")
        print(
            f"{bits:>8} {mean:>8.2f} ± {std:4.2f} {report.energy_J * 1e9:>8.3f} "
            f"{report.term('adc_J') * 1e9:>8.3f} {report.tops_per_w:>7.3f}"
        )
    path = plot_accuracy_vs_energy(
        energies,
        accs,
        labels,
        Path(args.out) / "cost_tradeoff.png",
        f"MNIST MLP 784-256-10 on rram_1t1r_yao2020\nADC 4-8 bits, {args.draws} chips each",
        accuracy_std=stds,
    )
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
