"""Wall time of one training step through the chip vs one digital training step.

Run::

    .venv/bin/python bench/hwa_step.py [--threads 1 2] [--repeats 5] [--profile pcm_joshi2020]
        [--record NAME]

For an MLP (784-256-256-10), LeNet-5 and MobileNetV2 (CIFAR, width 1.0) it times, at each
torch thread count, the median of ``--repeats`` SGD steps (forward, backward, optimizer
step) of

* the digital model,
* the converted chip in the chip-in-the-loop regime without reprogramming (the forward
  and backward pass through the chip alone: ``program_every`` larger than the run),
* the chip in the noise-in-the-loop regime (a fresh programming of the targets from the
  profile's physics before every step, then the same forward and backward pass),

and prints the ratios to the digital step, all measured in this one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import memsim
from lab.studies.published import add_record_option, report_or_record
from models.mobilenet import mobilenet_v2_cifar
from models.small import lenet5, mlp


def _median_time(step: Callable[[], object], repeats: int) -> float:
    step()  # warm-up: scratch buffers, calibration on the first batch
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _digital_step(model: nn.Module, x: Tensor, y: Tensor) -> Callable[[], object]:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def _chip_step(
    model: nn.Module, profile: str, regime: str, x: Tensor, y: Tensor
) -> Callable[[], object]:
    chip = memsim.convert(model, profile, seed=0)
    opt = torch.optim.SGD(chip.parameters(), lr=1e-3)
    # chip in the loop without reprogramming: the step is the forward and backward pass
    extra = {"program_every": 10**9} if regime == "chip_in_the_loop" else {}
    trainer = memsim.HardwareAwareTrainer(chip, opt, regime, seed=1, **extra)
    return lambda: trainer.step(x, y)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--batch", type=int, default=32, help="batch of the MLP and LeNet-5")
    parser.add_argument("--mbv2-batch", type=int, default=8, help="batch of MobileNetV2")
    parser.add_argument("--profile", default="pcm_joshi2020")
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5", "mobilenetv2"])
    add_record_option(parser)
    args = parser.parse_args(argv)
    report_or_record(args.record, lambda: _report(args), "bench/hwa_step.py", argv)


def _report(args: argparse.Namespace) -> None:
    """Time the steps and print the table (what ``main`` runs, recorded or not)."""

    torch.manual_seed(0)
    cases = {
        "mlp": ("MLP 784-256-256-10", mlp(), (args.batch, 1, 28, 28)),
        "lenet5": ("LeNet-5", lenet5(), (args.batch, 1, 28, 28)),
        "mobilenetv2": (
            "MobileNetV2 (CIFAR)",
            mobilenet_v2_cifar(10),
            (args.mbv2_batch, 3, 32, 32),
        ),
    }
    print(f"profile {args.profile}; SGD steps, median of {args.repeats}; times in ms")
    head = (
        f"{'model':<20} {'batch':>5} {'thr':>3} {'digital':>9} {'chip':>9} {'noise-loop':>11} "
        f"{'chip/dig':>9} {'noise/dig':>10}"
    )
    print(head)
    for key in args.models:
        name, model, shape = cases[key]
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        y = torch.randint(0, 10, (shape[0],), generator=torch.Generator().manual_seed(2))
        for threads in args.threads:
            torch.set_num_threads(threads)
            digital = model.train()
            t_dig = _median_time(_digital_step(digital, x, y), args.repeats)
            t_chip = _median_time(
                _chip_step(model, args.profile, "chip_in_the_loop", x, y), args.repeats
            )
            t_noise = _median_time(
                _chip_step(model, args.profile, "noise_in_the_loop", x, y), args.repeats
            )
            print(
                f"{name:<20} {shape[0]:>5} {threads:>3} {t_dig * 1e3:>9.1f} "
                f"{t_chip * 1e3:>9.1f} {t_noise * 1e3:>11.1f} {t_chip / t_dig:>9.1f} "
                f"{t_noise / t_dig:>10.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
