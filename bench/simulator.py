"""Simulator speed: simulated / digital inference time on the same batch.

Run: ``.venv/bin/python bench/simulator.py [--repeats N] [--threads T] [--device cpu|cuda]``

Prints, per model, the median over repeats (in alternating blocks) of the digital and simulated
time and their ratio, with the ``rram_1t1r_yao2020`` profile (8-bit DAC/ADC, read noise,
faults, drift compensation), and the peak resident memory of the process.  The floor is
the digital time plus drawing one standard normal per partial sum (the read noise an
exact simulation cannot avoid); ``/floor`` is the simulated time over it.

``--before REF`` (a git commit, e.g. ``main``) also times memsim as it was at ``REF``: the
tree is exported to a temporary folder and each model is timed there (a subprocess
running this script with that memsim), alternating with the current tree, so that both
columns see the same machine load.

A second table (``--physics``) times programming, drifting to one day and one forward
pass with device physics from memsim's own ``pcm_joshi2020`` model, from aihwkit's
``PCMLikeNoiseModel`` object (``pcm_joshi2020_aihwkit``, the same formulas) and from
aihwkit's ``ReRamCMONoiseModel`` (``rram_cmo_aihwkit``); ratios are to the native row.
The aihwkit rows need the ``aihwkit`` extra and are skipped without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

import memsim
from models.mobilenet import mobilenet_v2_cifar
from models.small import lenet5, mlp


def _sync() -> None:
    # CUDA kernels run asynchronously: wait for them, or the clock measures the launch only
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _time(fn, repeats: int) -> float:
    return _time_interleaved([fn], repeats)[0]


def _time_interleaved(fns, repeats: int, min_seconds: float = 1.0, block: int = 4) -> list[float]:
    """Median time of each of ``fns``, timed in alternating blocks.

    Each round runs every function ``block + 1`` times in a row and keeps the last
    ``block`` times (the first refills the caches the other functions evicted, as in a
    loop of that function alone); alternating rounds give every function the same
    machine load.  A fast case runs rounds until they have taken ``min_seconds`` (at
    most 50 rounds), since seven samples of a 3 ms call leave its median at the mercy of
    one busy moment.
    """
    samples: list[list[float]] = [[] for _ in fns]

    def one_round() -> float:
        total = 0.0
        for fn, out in zip(fns, samples):
            for i in range(block + 1):
                t0 = time.perf_counter()
                fn()
                _sync()
                if i:
                    out.append(time.perf_counter() - t0)
                    total += out[-1]
        return total

    for fn in fns:  # warm-up (and ADC calibration on the first batch)
        fn()
        _sync()
    first = one_round()
    rounds = max(-(-repeats // block), min(50, int(min_seconds / max(first, 1e-9)) + 1))
    for out in samples:
        out.clear()
    for _ in range(rounds):
        one_round()
    return [statistics.median(out) for out in samples]


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


def _cases(names: str | None = None):
    cases = [
        ("MLP 784-256-256-10", mlp, (256, 1, 28, 28)),
        ("LeNet-5", lenet5, (256, 1, 28, 28)),
        (
            "MobileNetV2-CIFAR",
            lambda: mobilenet_v2_cifar(num_classes=10, width_mult=1.0),
            (128, 3, 32, 32),
        ),
    ]
    return [c for c in cases if names is None or c[0] in names.split(";")]


def _measure(name, make, shape, profile, sampler: str, repeats: int, dev) -> dict[str, float]:
    """Digital, simulated and floor time (s) of one model."""
    torch.manual_seed(0)
    model = make().to(dev).eval()
    x = torch.randn(*shape, device=dev)
    analog = memsim.convert(model, profile, seed=0, noise_sampler=sampler).to(dev).eval()
    partials = []

    def count(layer, _inp, out):
        partials.append(out.numel() * layer.layout.row_tiles)

    with torch.no_grad():
        memsim.calibrate(analog, x)
        hooks = [m.register_forward_hook(count) for _, m in memsim.analog_layers(analog)]
        analog(x)
        for h in hooks:
            h.remove()
        n = sum(partials)
        t_dig, t_sim, t_rng = _time_interleaved(
            [lambda: model(x), lambda: analog(x), lambda: torch.randn(n, device=dev)], repeats
        )
    return {"digital": t_dig, "memsim": t_sim, "floor": t_dig + t_rng}


def _before(ref: str, root: Path, args, case: str, sampler: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--json",
        "--cases",
        case,
        "--samplers",
        sampler,
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--profile",
        args.profile,
        "--physics",
        "",
    ]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(cmd, env=env, cwd=root, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])[0]


def _export(ref: str, dest: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--profile", default="rram_1t1r_yao2020")
    ap.add_argument("--samplers", default="exact,bank", help="read-noise samplers to time")
    ap.add_argument("--cases", default=None, help="models to time, ';'-separated names")
    ap.add_argument("--before", default=None, help="git ref to time as 'before' as well")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--record",
        metavar="NAME",
        default=None,
        help="also write the printed tables, the command, commit, machine, threads and wall "
        "time to results/NAME.json, from which docs/results.md is rendered",
    )
    ap.add_argument(
        "--physics",
        default="pcm_joshi2020,pcm_joshi2020_aihwkit,rram_cmo_aihwkit",
        help="profiles of the program/drift table, the first one native (empty: skip)",
    )
    args = ap.parse_args()
    if args.record is None or args.json:
        _report(args)
        return
    from lab.studies.published import record_printed

    command = "python bench/simulator.py " + shlex.join(sys.argv[1:])
    path = record_printed(args.record, lambda: _report(args), command)
    print(f"recorded: {path}")


def _report(args: argparse.Namespace) -> None:
    """Time every case and print the tables (what ``main`` runs, recorded or not)."""
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cases = _cases(args.cases)
    profile = memsim.load_profile(args.profile)
    if args.json:  # one 'before' measurement, for the parent process
        rows = [
            _measure(n, mk, sh, profile, s, args.repeats, dev)
            for n, mk, sh in cases
            for s in args.samplers.split(",")
        ]
        print(json.dumps(rows))
        return
    print(
        f"profile {profile.name}: tiles {profile.tile.rows}x{profile.tile.cols}, "
        f"DAC {profile.dac.bits} bit, ADC {profile.adc.bits} bit; "
        f"threads {args.threads}; device {dev}; median of at least {args.repeats} "
        "repeats in alternating blocks (more for fast cases: 1 s of rounds)"
        + (f"; before = {args.before}" if args.before else "")
    )
    head = f"{'model':<22} {'batch':>5} {'noise':>6} {'digital ms':>11} {'floor ms':>9}"
    if args.before:
        head += f" {'before ms':>10} {'/digital':>8} {'/floor':>7}"
    print(head + f" {'memsim ms':>10} {'/digital':>8} {'/floor':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            _export(args.before, Path(tmp))
        for name, make, shape in cases:
            for sampler in args.samplers.split(","):
                row = f"{name:<22} {shape[0]:>5} {sampler:>6}"
                now = _measure(name, make, shape, profile, sampler, args.repeats, dev)
                row += f" {now['digital'] * 1e3:>11.1f} {now['floor'] * 1e3:>9.1f}"
                if args.before:
                    old = _before(args.before, Path(tmp), args, name, sampler)
                    row += (
                        f" {old['memsim'] * 1e3:>10.1f} {old['memsim'] / old['digital']:>7.2f}x"
                        f" {old['memsim'] / old['floor']:>6.2f}x"
                    )
                row += (
                    f" {now['memsim'] * 1e3:>10.1f} {now['memsim'] / now['digital']:>7.2f}x"
                    f" {now['memsim'] / now['floor']:>6.2f}x"
                )
                print(row, flush=True)
    if args.physics:
        models = [(n, mk().to(dev).eval(), sh) for n, mk, sh in cases]
        _physics_table(models, args.physics.split(","), args.repeats, dev)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")
    if dev.type == "cuda":
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
