"""Simulator speed: simulated / digital inference time on the same batch.

Run: ``.venv/bin/python bench/simulator.py [--repeats N] [--threads T] [--device cpu|cuda]``

Prints, per model, the median over repeats of the digital and simulated time and
their ratio, with the ``rram_1t1r_yao2020`` profile (8-bit DAC/ADC, read noise,
faults, drift compensation), and the peak resident memory of the process.

A second table (``--physics``) times programming, drifting to one day and one forward
pass with device physics from memsim's own ``pcm_joshi2020`` model, from aihwkit's
``PCMLikeNoiseModel`` object (``pcm_joshi2020_aihwkit``, the same formulas) and from
aihwkit's ``ReRamCMONoiseModel`` (``rram_cmo_aihwkit``); ratios are to the native row.
The aihwkit rows need the ``aihwkit`` extra and are skipped without it.
"""

from __future__ import annotations

import argparse
import importlib.util
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


def _physics_table(cases, names: list[str], repeats: int, dev: torch.device) -> None:
    """Program, drift (1 day) and forward cost of each profile's device physics."""
    if importlib.util.find_spec("aihwkit") is None:
        names = [n for n in names if "aihwkit" not in n]
    print(f"device physics: program / drift to 1 day / forward; ratio to {names[0]}")
    print(
        f"{'model':<22} {'profile':<22} {'program ms':>10} {'drift ms':>9} {'fwd ms':>8}"
        f" {'program':>8} {'drift':>7} {'fwd':>6}"
    )
    for name, model, shape in cases:
        model = model.to(dev).eval()
        x = torch.randn(*shape, device=dev)
        base = None
        for prof_name in names:
            analog = memsim.convert(model, prof_name, seed=0).to(dev).eval()
            with torch.no_grad():
                memsim.calibrate(analog, x)
                t_prog = _time(lambda a=analog: memsim.program(a, seed=1), repeats)
                t_drift = _time(lambda a=analog: memsim.drift(a, 86400.0), repeats)
                t_fwd = _time(lambda a=analog, x=x: a(x), repeats)
            row = (t_prog, t_drift, t_fwd)
            base = base or row
            ratios = " ".join(f"{r / b:>6.2f}x" for r, b in zip(row, base))
            print(
                f"{name:<22} {prof_name:<22} {t_prog * 1e3:>10.1f} {t_drift * 1e3:>9.1f} "
                f"{t_fwd * 1e3:>8.1f} {ratios}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", default="rram_1t1r_yao2020")
    ap.add_argument("--samplers", default="exact,bank", help="read-noise samplers to time")
    ap.add_argument(
        "--physics",
        default="pcm_joshi2020,pcm_joshi2020_aihwkit,rram_cmo_aihwkit",
        help="profiles of the program/drift table, the first one native (empty: skip)",
    )
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
    if args.physics:
        _physics_table(cases, args.physics.split(","), args.repeats, dev)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    if dev.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
