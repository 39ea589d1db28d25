"""The one tile-utilization figure, drawn by runs (``tiles.png``) and ``memsim inspect``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lab.plots import style


def plot_tiles(
    report: Any,
    path: str | Path,
    *,
    per_tile: Sequence[Sequence[float]] | None = None,
    title: str = "",
) -> Path:
    """Bar per analog layer: its tile utilization (%), tile count written above the bar.

    Args:
        report: A :class:`memsim.TileReport` (``layers`` with ``name``, ``utilization``,
            ``tiles``; ``rows``, ``cols``, ``total_tiles``, ``utilization``).
        path: Output PNG.
        per_tile: Optional utilization (fractions) of each tile of each layer, drawn as
            dots over the layer's bar (``memsim inspect`` has the chip and passes them).
        title: Figure title (default: tile size, count and overall utilization).

    Returns:
        ``path``.

    """
    import matplotlib.pyplot as plt

    layers = report.layers
    fig, ax = plt.subplots(figsize=(max(style.SMALL[0], 0.45 * len(layers) + 2), style.SMALL[1]))
    xs = np.arange(len(layers))
    bars = ax.bar(
        xs,
        [100 * r.utilization for r in layers],
        color=style.BAR_COLOR,
        alpha=0.6,
        label="layer" if per_tile is not None else None,  # a legend only beside the dots
    )
    for bar, r in zip(bars, layers):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            101,
            str(r.tiles),
            ha="center",
            va="bottom",
            fontsize=style.TICK_SIZE,
        )
    if per_tile is not None:
        for i, values in enumerate(per_tile):
            # spread the dots of one layer across its bar, so that equal tiles stay visible
            spread = np.linspace(-0.3, 0.3, len(values)) if len(values) > 1 else np.zeros(1)
            ax.plot(
                i + spread,
                100 * np.asarray(values, dtype=float),
                "k.",
                ms=3,
                label="tiles" if i == 0 else None,
            )
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r.name for r in layers], rotation=60, ha="right", fontsize=style.TICK_SIZE)
    ax.set_ylim(0, 112)
    style.finish(
        ax,
        ylabel="tile utilization % (number above bar: tiles)",
        title=title
        or f"{report.rows}x{report.cols} tiles: {report.total_tiles} in all, "
        f"{100 * report.utilization:.1f}% used",
    )
    ax.grid(False)
    ax.grid(axis="y", alpha=style.GRID_ALPHA)
    return style.save(fig, path)
