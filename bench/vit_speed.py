"""Forward time of a small ViT on simulated tiles against its digital forward, on CPU.

Builds :class:`models.vit.ViT` (4 blocks, dim 64, 4 heads) at MNIST or CIFAR size with
random weights, converts it on a profile (``rram_wan2022`` by default: read noise,
quantizing DAC and ADC, calibrated once on the batch), and times ``model(x)`` and
``chip(x)`` interleaved under ``torch.no_grad`` in evaluation mode.  Prints the median
times and their ratio (chip / digital) measured in this one run; the goal is at most 3x.
Writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

import memsim
from models.vit import vit_cifar, vit_mnist


def _time(fn: Callable[[], Tensor]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--size",
        choices=("mnist", "cifar"),
        default="mnist",
        help="input size: 1x28x28 (7x7 patches) or 3x32x32 (4x4 patches)",
    )
    parser.add_argument("--batch", type=int, default=64, help="images per forward")
    parser.add_argument("--repeats", type=int, default=20, help="timed forwards of each")
    parser.add_argument("--profile", default="rram_wan2022", help="device profile")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--sampler",
        choices=("exact", "bank"),
        default="exact",
        help="read-noise sampler of the chip",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = (vit_mnist() if args.size == "mnist" else vit_cifar()).eval()
    x = torch.randn(args.batch, model.in_channels, model.image_size, model.image_size)
    chip = memsim.convert(model, args.profile, seed=0, noise_sampler=args.sampler)
    memsim.calibrate(chip, x)
    tiles = memsim.tile_report(chip)
    digital_t, chip_t = [], []
    with torch.no_grad():
        for _ in range(3):  # warm-up: allocations, caches, scratch buffers
            model(x)
            chip(x)
        for _ in range(args.repeats):
            digital_t.append(_time(lambda: model(x)))
            chip_t.append(_time(lambda: chip(x)))
        err = float((chip(x) - model(x)).abs().max() / model(x).abs().max())
    d, c = statistics.median(digital_t), statistics.median(chip_t)
    print(
        f"ViT {args.size} batch {args.batch}, {len(tiles.layers)} analog layers on "
        f"{tiles.total_tiles} tiles, profile {args.profile}, {args.threads} thread(s), "
        f"{args.repeats} repeats"
    )
    print(f"digital forward {d * 1e3:.2f} ms, chip forward {c * 1e3:.2f} ms (medians)")
    print(f"ratio chip/digital {c / d:.2f}x (goal <= 3x); chip output max rel. dev. {err:.3g}")


if __name__ == "__main__":
    main()
