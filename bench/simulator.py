"""Simulator speed: simulated / digital inference time on the same batch.

Run: ``.venv/bin/python bench/simulator.py [--repeats N] [--threads T] [--device cpu|cuda]``

Prints, per model, the median over repeats of the digital and simulated time and
their ratio, with the ``rram_1t1r_yao2020`` profile (8-bit DAC/ADC, read noise,
faults, drift compensation), and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

import memsim
from models.mobilenet import mobilenet_v2_cifar
from models.small import lenet5, mlp


def _sync() -> None:
    # CUDA kernels run asynchronously: wait for them, or the clock measures the launch only
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (and ADC calibration on the first batch)
    _sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", default="rram_1t1r_yao2020")
    ap.add_argument("--samplers", default="exact,bank", help="read-noise samplers to time")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cases = [
        ("MLP 784-256-256-10", mlp(), (256, 1, 28, 28)),
        ("LeNet-5", lenet5(), (256, 1, 28, 28)),
        ("MobileNetV2-CIFAR", mobilenet_v2_cifar(num_classes=10, width_mult=1.0), (128, 3, 32, 32)),
    ]
    profile = memsim.load_profile(args.profile)
    print(
        f"profile {profile.name}: tiles {profile.tile.rows}x{profile.tile.cols}, "
        f"DAC {profile.dac.bits} bit, ADC {profile.adc.bits} bit; "
        f"threads {args.threads}; device {dev}; median of {args.repeats}"
    )
    print(
        f"{'model':<22} {'batch':>5} {'noise':>6} {'digital ms':>11} {'memsim ms':>10} {'ratio':>7}"
    )
    for name, model, shape in cases:
        model = model.to(dev).eval()
        x = torch.randn(*shape, device=dev)
        for sampler in args.samplers.split(","):
            analog = memsim.convert(model, profile, seed=0, noise_sampler=sampler).to(dev).eval()
            with torch.no_grad():
                memsim.calibrate(analog, x)
                t_dig = _time(lambda m=model, x=x: m(x), args.repeats)
                t_sim = _time(lambda a=analog, x=x: a(x), args.repeats)
            print(
                f"{name:<22} {shape[0]:>5} {sampler:>6} {t_dig * 1e3:>11.1f} "
                f"{t_sim * 1e3:>10.1f} {t_sim / t_dig:>6.2f}x"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    if dev.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
