"""memsim vs IBM aihwkit: inference speed (and, with ``--accuracy``, the accuracy table).

Run::

    .venv/bin/python bench/vs_aihwkit.py [--repeats N] [--batch B] [--threads T]
    .venv/bin/python bench/vs_aihwkit.py --accuracy [--draws 10] [--drift 1h 1d]

Speed: the same MLP (784-256-256-10) and LeNet-5 are deployed with the same profile
(``pcm_joshi2020`` aligned to aihwkit: 256x256 tiles, 8-bit DAC/ADC, PCM programming noise,
drift and global drift compensation) through memsim and through aihwkit's
``InferenceRPUConfig`` (its C++ CPU tiles), programmed and drifted to 1 day, and one
batch is timed through each; printed is the median over repeats and the ratio
aihwkit / memsim (the target is >= 3x on CPU).

Accuracy: both networks are trained on MNIST (2 epochs, cached under
``runs/aihwkit_compare/``) and :func:`memsim.compare.compare` runs them through both
simulators (10 draws, full test set); the tables and JSON/PNG go to ``runs/aihwkit_compare``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

import memsim
from memsim.backends import aihwkit as ab
from memsim.compare import compare, duration_label, parse_duration, reference_model
from models.small import lenet5, mlp

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def speed(args: argparse.Namespace) -> None:
    profile, aligned = ab.aligned_profile(args.profile)
    t_s = parse_duration(args.at)
    print(
        f"profile {profile.name}: tiles {profile.tile.rows}x{profile.tile.cols}, "
        f"DAC {profile.dac.bits} bit ({profile.dac.mode.value}), ADC {profile.adc.bits} bit "
        f"({profile.adc.mode.value}); drifted to {duration_label(t_s)}; "
        f"torch threads {torch.get_num_threads()}; median of {args.repeats}"
    )
    print(
        f"{'model':<20} {'batch':>5} {'digital ms':>11} {'memsim ms':>10} {'aihwkit ms':>11} "
        f"{'aihwkit/memsim':>15} {'prog+drift memsim/aihwkit ms':>29}"
    )
    torch.manual_seed(0)
    for name, model in (("MLP 784-256-256-10", mlp()), ("LeNet-5", lenet5())):
        _bench_one(name, model.eval(), profile, t_s, args)


def _bench_one(name: str, model, profile, t_s: float, args: argparse.Namespace) -> None:
    x = torch.randn(args.batch, 1, 28, 28)
    chip = memsim.convert(model, profile, seed=0)
    dep = ab.convert(model, profile, seed=0)
    with torch.no_grad():
        t_prog_m = _time(lambda: (memsim.program(chip, seed=1), memsim.drift(chip, t_s)), 3)
        t_prog_a = _time(lambda: (dep.program(1), dep.drift(t_s)), 3)
        t_dig = _time(lambda: model(x), args.repeats)
        t_mem = _time(lambda: chip(x), args.repeats)
        t_aih = _time(lambda: dep.model(x), args.repeats)
    print(
        f"{name:<20} {args.batch:>5} {t_dig * 1e3:>11.2f} {t_mem * 1e3:>10.2f} "
        f"{t_aih * 1e3:>11.2f} {t_aih / t_mem:>14.1f}x "
        f"{t_prog_m * 1e3:>14.1f} / {t_prog_a * 1e3:<12.1f}"
    )


def accuracy(args: argparse.Namespace) -> None:
    from models.data import load_dataset

    train, test = load_dataset("mnist", root=args.data, download=False)
    out = Path(args.out)
    for arch in ("mlp", "lenet5"):
        model, path = reference_model(
            arch, (train.images, train.labels), cache_dir=out, epochs=args.epochs, seed=0
        )
        print(f"\n== {arch} ({path}) ==")
        compare(
            path,
            args.profile,
            args.drift,
            args.draws,
            (test.images, test.labels),
            out / f"{arch}_{args.profile}",
            batch_size=args.eval_batch,
            limit=args.limit,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", default="pcm_joshi2020")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--at", default="1d", help="drift time of the timed chips")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--accuracy", action="store_true", help="run the MNIST accuracy comparison")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--drift", nargs="+", default=["1h", "1d"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N test images only")
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument("--data", default=os.environ.get("MEMSIM_DATA", str(DATA)))
    ap.add_argument("--out", default="runs/aihwkit_compare")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
