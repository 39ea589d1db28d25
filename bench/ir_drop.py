"""IR drop: transfer-matrix build time, forward time, fast-model accuracy, MNIST accuracy.

Run: ``.venv/bin/python bench/ir_drop.py [--threads 1] [--device cpu|cuda] [--epochs 3]``

Prints three tables from one run:

(a) per tile size (64², 128², 256² weight cells, G+ and G- interleaved, so 2x as many
    bit lines): the time to build the transfer matrix of one tile with the exact and
    the fast model (median over a batch of tiles solved together), the time of an
    independent scipy sparse nodal solve of one tile for comparison (``--scipy``
    sizes), and the forward time of a one-tile ``Linear`` with IR drop exact, fast and
    off (batch 1024, median);
(b) the fast model's share of the wire-induced deviation (``memsim.irdrop.deviation_share``:
    ``1 - ||I_fast - I_exact|| / ||I_exact - I_ideal||``, over a trained MNIST layer's
    tiles driven by test images), the first-order model's share for reference, and
    the fast output's error relative to the exact output, at r_wire 0.5, 1, 2.5, 5 ohm;
(c) MNIST test accuracy of a 784-256-256-10 MLP on Wan-like 256x256 tiles with noise
    off, for the same r_wire, with the exact and the fast model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch
from torch import nn

import memsim
from memsim.irdrop import deviation_share, transfer_matrices
from models.data import calibration_images, load_dataset, resolve_data_root
from models.small import mlp
from models.train import ClassifierConfig, train_classifier

R_WIRES = (0.5, 1.0, 2.5, 5.0)


def _median_time(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def scipy_transfer(g_uS: np.ndarray, r_wire: float) -> np.ndarray:
    """Sense currents per driver volt of one tile by a scipy sparse nodal solve (µS)."""
    r, n = g_uS.shape
    g, gw = g_uS * 1e-6, 1.0 / r_wire
    wl = np.arange(r * n).reshape(r, n)
    bl = wl + r * n
    ii, jj, vv = [], [], []

    def branch(a, b, c):
        ii.extend([a, b, a, b])
        jj.extend([a, b, b, a])
        vv.extend([c, c, -c, -c])

    branch(wl.ravel(), bl.ravel(), g.ravel())
    branch(wl[:, :-1].ravel(), wl[:, 1:].ravel(), np.full(r * (n - 1), gw))
    branch(bl[:-1].ravel(), bl[1:].ravel(), np.full((r - 1) * n, gw))
    ends = np.concatenate([wl[:, 0], bl[-1]])
    ii.append(ends)
    jj.append(ends)
    vv.append(np.full(ends.size, gw))
    a = sp.csc_matrix(
        (
            np.concatenate([np.ravel(v) for v in vv]),
            (np.concatenate([np.ravel(v) for v in ii]), np.concatenate([np.ravel(v) for v in jj])),
        ),
        shape=(2 * r * n, 2 * r * n),
    )
    rhs = np.zeros((2 * r * n, r))
    rhs[wl[:, 0], np.arange(r)] = gw
    x = spl.splu(a).solve(rhs)
    return gw * x[bl[-1]] * 1e6


def wan_like(rows: int, r_wire: float | None, model: str = "exact") -> memsim.DeviceProfile:
    """rram_wan2022 with noise off and square ``rows`` tiles; IR drop off for ``None``."""
    over: dict = {
        "programming_noise": {"model": "none"},
        "read_noise": {"model": "none", "sigma": 0.0},
        "tile": {"rows": rows, "cols": rows},
    }
    if r_wire is not None:
        over["ir_drop"] = {"enabled": True, "model": model, "r_wire_ohm": r_wire}
    return memsim.load_profile("rram_wan2022").derive(over, name=f"wan-like-{rows}")


def table_a(device: str, repeats: int, scipy_sizes: set[int]) -> None:
    print("(a) one tile: build T (s) and forward of a one-tile Linear, batch 1024 (ms)")
    print(
        f"{'tile':>8} {'bit lines':>9} {'scipy s':>8} {'exact s':>8} {'fast s':>8} "
        f"{'fwd off':>8} {'fwd exact':>9} {'fwd fast':>9} {'fast/off':>8}"
    )
    gen = torch.Generator().manual_seed(0)
    for c in (64, 128, 256):
        tiles = 4 if c < 256 else 2
        g = (1.0 + 6.0 * torch.rand(tiles, c, 2 * c, generator=gen, dtype=torch.float64)).to(device)

        def build(model: str, g: Tensor = g) -> None:
            transfer_matrices(g, 1.0, model)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        t_exact = _median_time(lambda: build("exact"), 1 if c == 256 else 3) / tiles
        t_fast = _median_time(lambda: build("fast"), repeats) / tiles
        t_scipy = float("nan")
        if c in scipy_sizes:
            g0 = g[0].cpu().numpy()
            t0 = time.perf_counter()
            scipy_transfer(g0, 1.0)
            t_scipy = time.perf_counter() - t0
        torch.manual_seed(1)
        lin = nn.Sequential(nn.Linear(c, c))
        x = torch.rand(1024, c, generator=gen).to(device)
        fwd = {}
        for label, r_wire, model in (
            ("off", None, "exact"),
            ("exact", 1.0, "exact"),
            ("fast", 1.0, "fast"),
        ):
            chip = memsim.convert(lin, wan_like(c, r_wire, model), seed=0).to(device)
            memsim.calibrate(chip, x[:256])

            def forward(chip: nn.Module = chip, x: Tensor = x) -> None:
                with torch.no_grad():
                    chip(x)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            fwd[label] = _median_time(forward, 4 * repeats) * 1e3
        print(
            f"{c:>4}x{c:<3} {2 * c:>9} {t_scipy:>8.3f} {t_exact:>8.3f} {t_fast:>8.4f} "
            f"{fwd['off']:>8.2f} {fwd['exact']:>9.2f} {fwd['fast']:>9.2f} "
            f"{fwd['fast'] / fwd['off']:>7.2f}x"
        )


Tensor = torch.Tensor


def _first_order_weights(layer) -> Tensor:
    """The model memsim had before: each device sees r_wire x (its distance to both ends)."""
    ir = layer.profile.ir_drop
    _, row, col = layer.layout.positions()
    # interleaved: G+ on bit line 2 col, G- on 2 col + 1
    seg = torch.stack([2 * col + 1, 2 * col + 2]) + (layer.layout.rows - row)
    g = layer.tiles.g_now.double()
    g_eff = g / (1.0 + g * 1e-6 * (ir.r_access_ohm + ir.r_wire_ohm * seg))
    return (g_eff[0] - g_eff[1]) / layer.profile.g_range_uS


def table_b(model: nn.Module, x: Tensor) -> None:
    print("\n(b) share of the wire-induced deviation, MNIST MLP layer 1 (784-256) on test images")
    print(
        f"{'tile':>8} {'r_wire':>7} {'|I_ex-I_id|/|I_id|':>19} {'fast':>7} {'first order':>12} "
        f"{'|I_fa-I_ex|/|I_ex|':>19}"
    )
    lin = nn.Sequential(model[1])
    for c in (64, 128, 256):
        ideal_chip = memsim.convert(lin, wan_like(c, 0.0), seed=0)
        w_ideal = memsim.analog_layers(ideal_chip)[0][1].tiles.w_norm.double()
        for r_wire in R_WIRES:
            layers = {}
            for m in ("exact", "fast"):
                chip = memsim.convert(lin, wan_like(c, r_wire, m), seed=0)
                layers[m] = memsim.analog_layers(chip)[0][1]
            i_id = x @ w_ideal.T
            i_ex = x @ layers["exact"].tiles.w_norm.double().T
            i_fa = x @ layers["fast"].tiles.w_norm.double().T
            i_fo = x @ _first_order_weights(layers["exact"]).T
            dev = float((i_ex - i_id).norm() / i_id.norm())
            print(
                f"{c:>4}x{c:<3} {r_wire:>7.1f} {dev:>19.3f} "
                f"{deviation_share(i_fa, i_ex, i_id):>7.3f} "
                f"{deviation_share(i_fo, i_ex, i_id):>12.3f} "
                f"{float((i_fa - i_ex).norm() / i_ex.norm()):>19.3f}"
            )


def _accuracy(chip: nn.Module, test, batch: int = 1000) -> float:
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test.labels), batch):
            pred = chip(test.images[i : i + batch]).argmax(1)
            correct += int((pred == test.labels[i : i + batch]).sum())
    return 100.0 * correct / len(test.labels)


def table_c(model: nn.Module, train, test) -> None:
    cal = calibration_images(train, seed=0)
    digital = _accuracy(model.eval(), test)
    off = memsim.convert(model, wan_like(256, None), seed=0)
    memsim.calibrate(off, cal)
    print("\n(c) MNIST MLP 784-256-256-10, Wan-like 256x256 tiles, noise off: test accuracy (%)")
    print(f"digital {digital:.2f}   IR drop off {_accuracy(off, test):.2f}")
    print(f"{'r_wire':>7} {'exact':>7} {'fast':>7} {'build exact s':>14} {'build fast s':>13}")
    for r_wire in R_WIRES:
        acc, build = {}, {}
        for m in ("exact", "fast"):
            t0 = time.perf_counter()
            chip = memsim.convert(model, wan_like(256, r_wire, m), seed=0)
            build[m] = time.perf_counter() - t0
            memsim.calibrate(chip, cal)
            acc[m] = _accuracy(chip, test)
        print(
            f"{r_wire:>7.1f} {acc['exact']:>7.2f} {acc['fast']:>7.2f} "
            f"{build['exact']:>14.2f} {build['fast']:>13.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="device for table (a)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--data-root",
        default=None,
        help="folder with mnist.npz (default: $MEMSIM_DATA, shared/data, cache; as memsim)",
    )
    ap.add_argument("--scipy", default="64,128,256", help="tile sizes to time the scipy solve at")
    ap.add_argument("--skip", default="", help="tables to skip, e.g. 'c'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; device {args.device}")
    if "a" not in args.skip:
        scipy_sizes = {int(s) for s in args.scipy.split(",") if s}
        table_a(args.device, args.repeats, scipy_sizes)
    if "b" in args.skip and "c" in args.skip:
        return
    train, test = load_dataset("mnist", root=resolve_data_root(args.data_root), download=False)
    torch.manual_seed(0)
    model = mlp()
    cfg = ClassifierConfig(epochs=args.epochs, batch_size=128, lr=0.05, augment=False)
    train_classifier(model, train, cfg, seed=0)
    model.eval()
    if "b" not in args.skip:
        x = test.images[:512].flatten(1).double()
        table_b(model, x / x.abs().max())
    if "c" not in args.skip:
        table_c(model, train, test)


if __name__ == "__main__":
    main()
