"""memsim vs IBM aihwkit: inference speed (and, with ``--accuracy``, the accuracy table).

Run::

    .venv/bin/python bench/vs_aihwkit.py [--repeats N] [--batch B] [--threads T]
    .venv/bin/python bench/vs_aihwkit.py --accuracy [--draws 10] [--drift 1h 1d]
    .venv/bin/python bench/vs_aihwkit.py --physics

Speed: the same MLP (784-256-256-10) and LeNet-5 are deployed with the same profile
(``pcm_joshi2020`` aligned to aihwkit: 256x256 tiles, 8-bit DAC/ADC, PCM programming noise,
drift and global drift compensation) through memsim and through aihwkit's
``InferenceRPUConfig`` (its C++ CPU tiles), programmed and drifted to 1 day, and one
batch is timed through each; printed is the median over repeats and the ratio
aihwkit / memsim (the target is >= 3x on CPU).

Accuracy: both networks are trained on MNIST (2 epochs, cached under
``runs/aihwkit_compare/``) and :func:`lab.compare.compare` runs them through both
simulators (10 draws, full test set); the tables and JSON/PNG go to ``runs/aihwkit_compare``.

Physics: moments of the programming error and of G(t)/G(t0) of one 1024x1024 layer
(2,097,152 devices) on the PCM profile, memsim's device model vs aihwkit's
``PCMLikeNoiseModel`` (the same draws as ``tests/test_aihwkit_physics.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import memsim
from lab.compare import compare, duration_label, parse_duration, reference_model
from memsim.backends import aihwkit as ab
from models.data import load_dataset, resolve_data_root
from models.small import lenet5, mlp


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
    train, test = load_dataset("mnist", root=resolve_data_root(args.data), download=False)
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


def physics(args: argparse.Namespace) -> None:
    """Moments of programming error and drift factor: memsim vs aihwkit's PCMLikeNoiseModel."""
    from memsim import mapping
    from memsim.physics import device_model

    p = memsim.load_profile("pcm_joshi2020")
    w = torch.rand(1024, 1024, generator=torch.Generator().manual_seed(0)) * 2 - 1
    g_t = mapping.to_conductances(w, p)
    phys, noise = device_model(p), ab.translate(p).rpu_config.noise_model
    gen = torch.Generator().manual_seed(1)  # one stream, as in AnalogLayer.program
    g_m = phys.program(g_t, gen)
    nu_m = phys.drift_exponents(g_t, gen)
    torch.manual_seed(2)
    g_a = torch.stack([noise.apply_programming_noise_to_conductance(g) for g in g_t])
    nu_a = torch.stack([noise.generate_drift_coefficients(g) for g in g_t])
    print(f"pcm_joshi2020, one 1024x1024 layer = {g_t.numel():,} devices (uniform weights)")
    print(f"{'quantity':<34} {'memsim':>10} {'aihwkit':>10} {'rel diff':>9}")

    def row(name: str, a: float, b: float) -> None:
        print(f"{name:<34} {a:>10.5f} {b:>10.5f} {abs(a - b) / abs(b):>8.2%}")

    e_m, e_a = g_m - g_t, g_a - g_t
    row("prog. error mean (uS), all", e_m.mean().item(), e_a.mean().item())
    row("prog. error std (uS), all", e_m.std().item(), e_a.std().item())
    on = g_t > 0
    row("prog. error std (uS), G_target>0", e_m[on].std().item(), e_a[on].std().item())
    row("drift exponent nu mean", nu_m.mean().item(), nu_a.mean().item())
    row("drift exponent nu std", nu_m.std().item(), nu_a.std().item())
    for label in ("1h", "1d", "1y"):
        t = parse_duration(label)
        gd_m = phys.drift(g_m, nu_m, t, torch.Generator().manual_seed(3))
        torch.manual_seed(4)
        gd_a = torch.stack(
            [noise.apply_drift_noise_to_conductance(g, n, t) for g, n in zip(g_a, nu_a)]
        )
        sm, sa = (g_t > 1.0) & (g_m > 0.5), (g_t > 1.0) & (g_a > 0.5)
        rm, ra = gd_m[sm] / g_m[sm], gd_a[sa] / g_a[sa]
        row(f"G({label})/G(t0) mean", rm.mean().item(), ra.mean().item())
        row(f"G({label})/G(t0) std", rm.std().item(), ra.std().item())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", default="pcm_joshi2020")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--at", default="1d", help="drift time of the timed chips")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--accuracy", action="store_true", help="run the MNIST accuracy comparison")
    ap.add_argument("--physics", action="store_true", help="print the PCM physics moments")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--drift", nargs="+", default=["1h", "1d"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="first N test images only")
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument(
        "--data",
        default=None,
        help="folder with mnist.npz (default: $MEMSIM_DATA, shared/data, cache; as memsim)",
    )
    ap.add_argument("--out", default="runs/aihwkit_compare")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy(args)
    elif args.physics:
        physics(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
