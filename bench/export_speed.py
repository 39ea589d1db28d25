"""Time export_chip / import_conductances on MobileNetV2-CIFAR (2.2 M weights), both formats.

Prints one line: weights, seconds per step, and file sizes.  Writes to a temp folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import memsim
from models.mobilenet import MobileNetV2CIFAR


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    torch.set_num_threads(1)
    model = MobileNetV2CIFAR()
    chip = memsim.convert(model, "rram_wan2022", seed=0)
    other = memsim.convert(model, "rram_wan2022", seed=1)
    n = sum(layer.tiles.target.numel() for _, layer in memsim.analog_layers(chip))
    with tempfile.TemporaryDirectory() as tmp:
        npz, csv = Path(tmp) / "chip.npz", Path(tmp) / "chip.csv"
        times = []
        for step in (
            lambda: memsim.export_chip(chip, npz),
            lambda: memsim.export_chip(chip, csv),
            lambda: memsim.import_conductances(other, npz),
            lambda: memsim.import_conductances(other, csv),
        ):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
        mb = (npz.stat().st_size / 1e6, csv.stat().st_size / 1e6)
    print(
        f"{n} weights: export npz {times[0]:.1f} s ({mb[0]:.0f} MB), csv {times[1]:.1f} s "
        f"({mb[1]:.0f} MB); import npz {times[2]:.1f} s, csv {times[3]:.1f} s"
    )


if __name__ == "__main__":
    main()
