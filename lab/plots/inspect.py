"""Device-level figures of one chip (``memsim inspect``).

* ``conductances.png``: per layer, the histogram of target and programmed conductances
  (both devices of every weight cell);
* ``faults_<layer>.png``: per layer, a map of each tile (up to ``max_tiles``): working,
  stuck at g_min, stuck at g_max, unused cells;
* ``drift.png``: G(t) of sample devices of the first layer at the chosen times, and the
  mean conductance of each layer relative to t = 0;
* ``tiles.png``: utilization of each layer's tiles.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch import nn  # noqa: E402

import memsim  # noqa: E402
from lab.plots import style, tiles  # noqa: E402
from memsim.export import layer_arrays  # noqa: E402


def _named(chip: nn.Module) -> list[tuple[str, memsim.AnalogLayer]]:
    return [(f"{n}.weight" if n else "weight", m) for n, m in memsim.analog_layers(chip)]


def plot_conductance_histograms(chip: nn.Module, path: Path) -> Path:
    """Target against programmed conductances, one panel per layer."""
    layers = _named(chip)
    n = len(layers)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (name, layer) in zip(axes.flat, layers):
        d = layer.profile.device
        target = layer_arrays(layer, "target")
        used = target["used"]
        tg = np.concatenate([target["g_plus_uS"][used], target["g_minus_uS"][used]])
        pg = layer.tiles.g_prog.detach().cpu().numpy().reshape(-1)
        edges = np.linspace(min(d.g_min_uS, pg.min()), max(d.g_max_uS, pg.max()), 61)
        ax.hist(tg, bins=edges, alpha=0.5, label="target", color="tab:blue")
        ax.hist(pg, bins=edges, histtype="step", label="programmed", color="tab:red")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("G (µS)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"conductances, profile {layers[0][1].profile.name}")
    return style.save(fig, path)


_FAULT_CMAP = ListedColormap(["#dddddd", "#2ca02c", "#1f77b4", "#d62728"])
"""Unused, working, stuck at g_min, stuck at g_max."""


def plot_fault_map(layer: memsim.AnalogLayer, name: str, path: Path, max_tiles: int = 16) -> Path:
    """Each tile's cells: unused, working, or stuck (either device of the pair)."""
    arr = layer_arrays(layer, "target")
    code = np.maximum(arr["fault_plus"], arr["fault_minus"]).astype(int) + 1
    code[~arr["used"]] = 0
    n = min(layer.layout.n_tiles, max_tiles)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    t_rows, t_cols = code.shape[1], code.shape[2]
    # equal aspect: a 128 x 8 tile is drawn tall and narrow, as it is; the panel size follows
    # the tile shape (within limits) so that narrow tiles do not leave empty figure space
    ratio = t_cols / t_rows
    if ratio < 1:  # tall tile: full height, width as the tile's (plus room for tick labels)
        panel_w, panel_h = max(1.6, 3.4 * ratio + 0.9), 3.4
    else:
        panel_w, panel_h = 3.2, max(1.6, 3.2 / ratio + 0.9)
    fig, axes = plt.subplots(
        rows, cols, figsize=(panel_w * cols + 0.6, panel_h * rows + 0.6), squeeze=False
    )
    for t, ax in enumerate(axes.flat):
        if t >= n:
            ax.axis("off")
            continue
        ax.imshow(
            code[t], cmap=_FAULT_CMAP, vmin=0, vmax=3, interpolation="nearest", aspect="equal"
        )
        lo, hi = int((code[t] == 2).sum()), int((code[t] == 3).sum())
        ax.set_title(f"tile {t}: {lo} @g_min,\n{hi} @g_max", fontsize=style.TICK_SIZE + 1)
        if ratio < 0.25:  # a narrow tile has room for its first and last column only
            ax.set_xticks([0, t_cols - 1])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.tick_params(labelsize=style.TICK_SIZE)
        if t % cols == 0:
            ax.set_ylabel("row", fontsize=style.TICK_SIZE + 1)
        if t >= n - cols:
            ax.set_xlabel("column", fontsize=style.TICK_SIZE + 1)
    more = f" (first {n} of {layer.layout.n_tiles} tiles)" if n < layer.layout.n_tiles else ""
    fig.suptitle(
        f"{name}: grey unused, green working, blue stuck at g_min, red stuck at g_max{more}",
        fontsize=9,
    )
    return style.save(fig, path)


@torch.no_grad()
def plot_drift_curves(
    chip: nn.Module, path: Path, times: Sequence[float], devices: int = 8
) -> Path:
    """G(t) of sample devices of the first layer, and each layer's mean G(t) / G(0)."""
    aged = copy.deepcopy(chip)
    layers = _named(aged)
    first = layers[0][1]
    g0 = first.tiles.g_now[0].reshape(-1).cpu()
    ok = (first.tiles.fault[0].reshape(-1) == 0).cpu() & (g0 > first.profile.device.g_min_uS)
    idx = torch.nonzero(ok).reshape(-1)
    if len(idx) == 0:
        idx = torch.arange(len(g0))
    order = idx[torch.argsort(g0[idx])]
    pick = order[torch.linspace(0, len(order) - 1, min(devices, len(order))).long()]
    ts = sorted({0.0, *map(float, times)})
    curves, means = [], {name: [] for name, _ in layers}
    for t in ts:
        memsim.drift(aged, t)
        curves.append(first.tiles.g_now[0].reshape(-1)[pick].cpu().numpy())
        for name, layer in layers:
            means[name].append(float(layer.tiles.g_now.mean()))
    curves_a = np.array(curves)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    tplot = [
        max(t, min(x for x in ts if x > 0) / 10 if any(x > 0 for x in ts) else 1.0) for t in ts
    ]
    for j in range(curves_a.shape[1]):
        a.plot(tplot, curves_a[:, j], "o-", ms=3)
    a.set_xscale("log")
    a.set_xlabel("t after programming (s); t = 0 drawn at the left edge")
    a.set_ylabel("G+ (µS)")
    a.set_title(f"{layers[0][0]}: {len(pick)} devices", fontsize=9)
    for name, vals in means.items():
        v = np.array(vals)
        b.plot(tplot, v / v[0], "o-", ms=3, label=name)
    b.set_xscale("log")
    b.set_xlabel("t after programming (s)")
    b.set_ylabel("mean G(t) / G(0)")
    b.legend(fontsize=7)
    fig.suptitle(f"drift, profile {first.profile.name} ({first.profile.drift.model.value})")
    return style.save(fig, path)


def plot_tile_utilization(chip: nn.Module, path: Path) -> Path:
    """Per layer: the utilization of the layer (bar) and of each of its tiles (dots).

    The same figure as a run's ``tiles.png`` (:func:`lab.plots.tiles.plot_tiles`), with the
    per-tile dots that only the chip itself can give.
    """
    per_tile = []
    for _, layer in _named(chip):
        used = layer_arrays(layer, "target")["used"]
        per_tile.append(used.reshape(used.shape[0], -1).mean(1).tolist())
    return tiles.plot_tiles(memsim.tile_report(chip), path, per_tile=per_tile)


def inspect_chip(
    chip: nn.Module,
    out_dir: str | Path,
    *,
    times: Sequence[float] = (1.0, 60.0, 3600.0, 86400.0, 2592000.0),
    max_tiles: int = 16,
) -> list[Path]:
    """Write every inspection figure of ``chip`` into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [plot_conductance_histograms(chip, out / "conductances.png")]
    for name, layer in _named(chip):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        paths.append(plot_fault_map(layer, name, out / f"faults_{safe}.png", max_tiles))
    paths.append(plot_drift_curves(chip, out / "drift.png", times))
    paths.append(plot_tile_utilization(chip, out / "tiles.png"))
    return paths
