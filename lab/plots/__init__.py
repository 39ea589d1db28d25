"""Matplotlib figures of runs and sweeps (Agg backend: files only, no display).

Fitness curves are labelled as *validation fitness*; test accuracies are labelled
*test*.  The two are never mixed in one number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: runs write PNG files, they never open windows

import matplotlib.pyplot as plt  # noqa: E402

Curve = Sequence[tuple[float, float, float]]
"""Points ``(x, mean, std)``."""


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_history(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    *,
    baseline_fitness: float | None = None,
    test_curve: Curve = (),
    baseline_test: float | None = None,
    title: str = "",
) -> Path:
    """Accuracy vs generation: fitness best / mean / best-ever, baseline lines, test curve.

    Args:
        history: GA generation records (``generation``, ``best``, ``mean``, ``best_ever``)
            with accuracies as fractions.
        path: Output PNG.
        baseline_fitness: Baseline's validation accuracy on the fitness chip (fraction).
        test_curve: ``(generation, mean, std)`` test accuracy (%) of the best-ever solution.
        baseline_test: Baseline's test accuracy (%).
        title: Figure title.

    """
    gens = [r["generation"] for r in history]
    fig, axes = plt.subplots(1, 2 if test_curve else 1, figsize=(11 if test_curve else 6, 4))
    ax = axes[0] if test_curve else axes
    ax.plot(gens, [100 * r["best"] for r in history], "o-", label="best (generation)")
    ax.plot(gens, [100 * r["mean"] for r in history], "s-", label="mean (generation)")
    ax.plot(gens, [100 * r["best_ever"] for r in history], "k--", label="best-ever")
    if baseline_fitness is not None:
        ax.axhline(100 * baseline_fitness, color="tab:red", ls=":", label="baseline")
    ax.set_xlabel("generation")
    ax.set_ylabel("validation fitness (accuracy %)")
    ax.set_title("fitness on the training chip (validation split)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if test_curve:
        ax2 = axes[1]
        xs, ms, ss = zip(*test_curve)
        ax2.errorbar(xs, ms, yerr=ss, fmt="o-", capsize=3, label="GA best-ever (test)")
        if baseline_test is not None:
            ax2.axhline(baseline_test, color="tab:red", ls=":", label="baseline (test)")
        ax2.set_xlabel("generation")
        ax2.set_ylabel("test accuracy %")
        ax2.set_title("held-out test set, fresh programming draws")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_drift(series: Mapping[str, Curve], path: str | Path, *, title: str = "") -> Path:
    """Accuracy (%) vs drift time (s, log axis), one line per model."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in series.items():
        xs, ms, ss = zip(*pts)
        ax.errorbar(xs, ms, yerr=ss, fmt="o-", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy %")
    ax.set_title(title or "accuracy vs drift time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_tiles(report: Any, path: str | Path, *, title: str = "") -> Path:
    """Bar chart of tile utilization (%) per analog layer, tile counts on the bars."""
    layers = report.layers
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(layers) + 2), 4))
    xs = range(len(layers))
    bars = ax.bar(xs, [100 * r.utilization for r in layers], color="tab:blue")
    for bar, r in zip(bars, layers):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            str(r.tiles),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r.name for r in layers], rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("tile utilization % (number = tiles)")
    ax.set_ylim(0, 110)
    ax.set_title(
        title
        or f"{report.rows}x{report.cols} tiles: {report.total_tiles} in all, "
        f"{100 * report.utilization:.1f}% used"
    )
    return _save(fig, path)


def plot_line(
    xs: Sequence[float],
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str = "test accuracy %",
    title: str = "",
    hline: tuple[str, float] | None = None,
) -> Path:
    """Line plot with error bars: ``series[label] = [(mean, std), ...]`` over ``xs``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in series.items():
        ax.errorbar(
            xs, [m for m, _ in pts], yerr=[s for _, s in pts], fmt="o-", capsize=3, label=label
        )
    if hline is not None:
        ax.axhline(hline[1], color="tab:red", ls=":", label=hline[0])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_tradeoff(
    series: Mapping[str, Sequence[tuple[float, float, str]]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str = "test accuracy %",
    title: str = "",
) -> Path:
    """Points ``series[label] = [(x, y, note), ...]`` joined in ``x`` order, each annotated.

    The accuracy-against-energy picture of a sweep: every point is one swept value.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in series.items():
        pts = sorted(pts)
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-", label=label)
        for x, y, note in pts:
            ax.annotate(note, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_heatmap(
    xs: Sequence[Any],
    ys: Sequence[Any],
    values: Sequence[Sequence[float]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    cbar: str = "test accuracy %",
) -> Path:
    """Heatmap ``values[i][j]`` at ``(ys[i], xs[j])`` with the numbers written in."""
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 2.5, 0.8 * len(ys) + 2))
    flat = [v for row in values for v in row]
    # at least a 1-point colour range, so equal cells do not get an arbitrary scale
    mid, half = (max(flat) + min(flat)) / 2, max(0.5, (max(flat) - min(flat)) / 2)
    im = ax.imshow(values, cmap="viridis", aspect="auto", vmin=mid - half, vmax=mid + half)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([str(x) for x in xs])
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([str(y) for y in ys])
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=cbar)
    return _save(fig, path)


def plot_bars(
    labels: Sequence[str],
    points: Sequence[tuple[float, float]],
    path: str | Path,
    *,
    ylabel: str = "test accuracy %",
    title: str = "",
    hline: tuple[str, float] | None = None,
) -> Path:
    """Bar chart with error bars, one bar per label."""
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.5))
    xs = range(len(labels))
    ax.bar(xs, [m for m, _ in points], yerr=[s for _, s in points], capsize=3, color="tab:blue")
    if hline is not None:
        ax.axhline(hline[1], color="tab:red", ls=":", label=hline[0])
        ax.legend(fontsize=8)
    lo = min(m - s for m, s in points)
    ax.set_ylim(max(0.0, lo - 5), min(100.0, max(m + s for m, s in points) + 2))
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def plot_gains(results: Mapping[str, Any], path: str | Path) -> Path:
    """Gain over the reference per method and chip, with 95 % intervals over replicates.

    ``results`` is a study's results dict (:func:`lab.studies.replicates.aggregate`).  Each dot is
    the mean of the replicates' paired gains; the bar is the t-interval; small grey dots
    are the replicates; a filled dot marks a significant difference.
    """
    ref = results["reference"]
    rows = [r for r in results["methods"] if r["method"] != ref]
    chips = list(rows[0]["chips"]) if rows else []
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * max(len(rows), 1), 3.8))
    width = 0.8 / max(len(chips), 1)
    for k, chip in enumerate(chips):
        role = "fitness chip" if k == 0 else "transfer chip"
        xs, means, lows, highs, filled = [], [], [], [], []
        for i, row in enumerate(rows):
            v = row["chips"][chip]["vs_reference"]
            x = i + (k - (len(chips) - 1) / 2) * width
            xs.append(x)
            means.append(v["mean_pp"])
            lo = v["ci95_low_pp"] if v["ci95_low_pp"] is not None else v["mean_pp"]
            hi = v["ci95_high_pp"] if v["ci95_high_pp"] is not None else v["mean_pp"]
            lows.append(v["mean_pp"] - lo)
            highs.append(hi - v["mean_pp"])
            filled.append(bool(v["significant"]))
            ax.scatter(
                [x] * len(v["replicate_pp"]), v["replicate_pp"], s=8, color="0.6", zorder=2
            )
        color = f"C{k}"
        ax.errorbar(
            xs, means, yerr=[lows, highs], fmt="none", ecolor=color, capsize=3, zorder=3
        )
        ax.scatter(
            xs,
            means,
            s=36,
            zorder=4,
            facecolors=[color if f else "white" for f in filled],
            edgecolors=color,
            label=f"chip {chip} ({role})",
        )
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["method"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel(f"test accuracy gain over {ref} (pp)")
    n = results["replicates"]
    ax.set_title(
        f"{results['name']}: {results['profile']}, {n} replicates\n"
        "mean and 95 % interval; filled = significant",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
