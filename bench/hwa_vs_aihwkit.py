"""Hardware-aware training on MNIST: memsim noise in the loop vs aihwkit's AnalogSGD.

Run::

    .venv/bin/python bench/hwa_vs_aihwkit.py [--archs mlp lenet5] [--seeds 3]
        [--train-images 60000] [--epochs 1] [--test-images 10000] [--draws 3]
        [--program-every 1 2] [--record NAME]

For every architecture and seed, one float model is trained plainly (Adam, 1 epoch, as
``memsim compare`` trains its reference networks; cached under ``--out``) and then
fine-tuned for ``--epochs`` epochs on the same batches with the same optimizer settings
(SGD, ``--lr``, momentum 0.9) in three ways:

* ``digital``: plain torch (the control);
* ``memsim``: :class:`memsim.HardwareAwareTrainer` in the noise-in-the-loop regime on
  profile ``pcm_joshi2020`` aligned to aihwkit (:func:`memsim.backends.aihwkit.aligned_profile`,
  the profile ``memsim compare`` runs): every step programs the targets afresh with the
  PCM programming noise (and the 1/f read noise of the first read) and trains through
  the chip's forward pass; ``memsim/N`` (``--program-every N``) programs afresh every N
  steps instead, N - 1 of them reading the last programming;
* ``aihwkit``: ``convert_to_analog`` with the ``InferenceRPUConfig`` the same profile
  translates to (:func:`memsim.backends.aihwkit.translate`: ``PCMLikeNoiseModel``, 8-bit
  DAC/ADC, global drift compensation) plus aihwkit's own hardware-aware training noise,
  the ``PROG_NOISE`` weight modifier with the profile's programming-noise polynomial,
  trained with ``AnalogSGD``.

Each trained model is then deployed in *both* simulators by
:func:`memsim.backends.compare.compare` (the engine of ``memsim compare``: ``--draws``
programmings, drifted to 1 h, 1 d and 1 y) and its test accuracy printed as mean over
seeds (and draws) with the standard deviation over seeds, with the wall time per training
step at 1 torch thread.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import memsim
from lab.compare import reference_model
from lab.studies.published import add_record_option, report_or_record
from memsim.backends import aihwkit as ab
from memsim.backends.compare import compare
from models.data import load_npz

DRIFT = {"1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}
ROOT = Path(__file__).resolve().parents[1]


def _batches(n: int, batch: int, epochs: int, seed: int) -> list[Tensor]:
    """The index batches every route sees, in the same order."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        out += [order[i : i + batch] for i in range(0, n - batch + 1, batch)]
    return out


def _train_digital(model: nn.Module, data: tuple[Tensor, Tensor], batches, lr: float) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    model.train()
    t0 = time.perf_counter()
    for idx in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(data[0][idx]), data[1][idx]).backward()
        opt.step()
    return (time.perf_counter() - t0) / len(batches)


def _train_memsim(
    model: nn.Module,
    profile: Any,
    data: tuple[Tensor, Tensor],
    batches,
    lr: float,
    seed: int,
    program_every: int = 1,
) -> tuple[nn.Module, float]:
    chip = memsim.convert(model, profile, seed=seed)
    opt = torch.optim.SGD(chip.parameters(), lr=lr, momentum=0.9)
    trainer = memsim.HardwareAwareTrainer(
        chip, opt, "noise_in_the_loop", seed=seed, program_every=program_every
    )
    t0 = time.perf_counter()
    for idx in batches:
        trainer.step(data[0][idx], data[1][idx])
    per_step = (time.perf_counter() - t0) / len(batches)
    # the trained targets and biases back into the digital architecture
    digital = copy.deepcopy(model)
    state = digital.state_dict()
    for name, layer in memsim.analog_layers(chip):
        state[f"{name}.weight"] = layer.tiles.target.reshape(layer.weight_shape).clone()
        if layer.bias is not None:
            state[f"{name}.bias"] = layer.bias.detach().clone()
    digital.load_state_dict(state)
    return digital.eval(), per_step


def _train_aihwkit(
    model: nn.Module, profile: Any, data: tuple[Tensor, Tensor], batches, lr: float
) -> tuple[nn.Module, float]:
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.parameters.enums import WeightModifierType

    cfg = copy.deepcopy(ab.translate(profile).rpu_config)
    # aihwkit's hardware-aware training noise: programming noise on the weights of each
    # forward pass, the profile's polynomial in G / g_max (normalized by g_max)
    law = profile.programming_noise
    g_max = profile.device.g_max_uS
    cfg.modifier.type = WeightModifierType.PROG_NOISE
    cfg.modifier.g_max = g_max
    cfg.modifier.coeffs = [c / law.coeffs_g_max_ref_uS for c in law.coeffs_uS]
    analog = convert_to_analog(copy.deepcopy(model), cfg)
    opt = AnalogSGD(analog.parameters(), lr=lr, momentum=0.9)
    opt.regroup_param_groups(analog)
    analog.train()
    t0 = time.perf_counter()
    for idx in batches:
        opt.zero_grad()
        F.cross_entropy(analog(data[0][idx]), data[1][idx]).backward()
        opt.step()
    per_step = (time.perf_counter() - t0) / len(batches)
    digital = copy.deepcopy(model)
    state = digital.state_dict()
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for name in names:
        w, b = analog.get_submodule(name).get_weights()
        state[f"{name}.weight"] = w.reshape(state[f"{name}.weight"].shape)
        if b is not None:
            state[f"{name}.bias"] = b
    digital.load_state_dict(state)
    return digital.eval(), per_step


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, train, deploy and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--archs", nargs="+", default=["mlp"], choices=["mlp", "lenet5"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=60000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=1, help="hardware-aware epochs")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--draws", type=int, default=3, help="programmings per evaluation")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist.npz"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench" / "hwa_vs_aihwkit"))
    parser.add_argument(
        "--program-every",
        type=int,
        nargs="+",
        default=[1],
        help="memsim routes: program the targets afresh every N steps (one route per N; "
        "1 is the route 'memsim', N > 1 'memsim/N')",
    )
    add_record_option(parser)
    args = parser.parse_args(argv)
    report_or_record(args.record, lambda: _report(args), "bench/hwa_vs_aihwkit.py", argv)


def _report(args: argparse.Namespace) -> None:
    """Train, deploy and print the tables (what ``main`` runs, recorded or not)."""
    torch.set_num_threads(1)
    train, test = load_npz(args.data)
    n = min(args.train_images, len(train.labels))
    data = (train.images[:n], train.labels[:n])
    x_test, y_test = test.images[: args.test_images], test.labels[: args.test_images]
    profile, _ = ab.aligned_profile("pcm_joshi2020")
    print(
        f"MNIST: {n} training images, {len(y_test)} test images; {args.epochs} hardware-aware "
        f"epoch(s), batch {args.batch}, SGD lr {args.lr} momentum 0.9; {args.seeds} seeds, "
        f"{args.draws} programmings each; profile {profile.name} (aligned); 1 torch thread"
    )
    memsim_routes = {("memsim" if n == 1 else f"memsim/{n}"): n for n in args.program_every}
    routes = ["none", "digital", *memsim_routes, "aihwkit"]
    for arch in args.archs:
        acc: dict[tuple[str, str, str], list[float]] = {}
        step_s: dict[str, list[float]] = {r: [] for r in routes if r != "none"}
        for seed in range(args.seeds):
            base, _ = reference_model(
                arch, data, cache_dir=args.out, epochs=1, seed=seed, tag="mnist"
            )
            batches = _batches(n, args.batch, args.epochs, seed)
            trained: dict[str, nn.Module] = {"none": base}
            digital = copy.deepcopy(base)
            step_s["digital"].append(_train_digital(digital, data, batches, args.lr))
            trained["digital"] = digital.eval()
            for route, every in memsim_routes.items():
                trained[route], s = _train_memsim(
                    base, profile, data, batches, args.lr, seed, every
                )
                step_s[route].append(s)
            trained["aihwkit"], s = _train_aihwkit(base, profile, data, batches, args.lr)
            step_s["aihwkit"].append(s)
            for route, model in trained.items():
                res = compare(
                    model,
                    profile,
                    x_test,
                    y_test,
                    drift_times=list(DRIFT.values()),
                    draws=args.draws,
                    seed=1000 + seed,
                    align=False,  # the profile is already the aligned one
                    verbose=False,
                )
                for row in res["times"]:
                    for sim in ("memsim", "aihwkit"):
                        acc.setdefault((route, sim, row["label"]), []).append(row[sim]["acc_mean"])
            print(f"{arch} seed {seed} done", file=sys.stderr, flush=True)
        print(
            f"\n{arch}: test accuracy % (mean over seeds of the mean over draws; +- std over seeds)"
        )
        labels = list(dict.fromkeys(k[2] for k in acc))
        head = f"{'trained by':<12} {'evaluated in':<13}" + "".join(f"{lb:>16}" for lb in labels)
        print(head)
        for route in routes:
            for sim in ("memsim", "aihwkit"):
                cells = []
                for lb in labels:
                    v = acc[(route, sim, lb)]
                    sd = statistics.stdev(v) if len(v) > 1 else 0.0
                    cells.append(f"{statistics.fmean(v):>9.2f} +-{sd:>4.2f}")
                print(f"{route:<12} {sim:<13}" + "".join(f"{c:>16}" for c in cells))
        print("wall time per training step (ms, 1 thread, mean over seeds):")
        for route, v in step_s.items():
            print(f"  {route:<8} {1e3 * statistics.fmean(v):8.1f}")


if __name__ == "__main__":
    main()
