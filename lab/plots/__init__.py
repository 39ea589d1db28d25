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

from lab.plots import style  # noqa: E402
from lab.plots.tiles import plot_tiles  # noqa: E402

__all__ = [
    "plot_bars",
    "plot_drift",
    "plot_gains",
    "plot_price",
    "plot_heatmap",
    "plot_history",
    "plot_line",
    "plot_tiles",
    "plot_tradeoff",
]

Curve = Sequence[tuple[float | None, float, float]]
"""Points ``(x, mean, std)``."""


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

    Returns:
        ``path``.

    """
    gens = [r["generation"] for r in history]
    fig, axes = plt.subplots(
        1, 2 if test_curve else 1, figsize=style.WIDE if test_curve else style.SMALL
    )
    ax = axes[0] if test_curve else axes
    ga = style.color_for("ga")
    ax.plot(gens, [100 * r["best"] for r in history], "o-", color=ga, label="best (generation)")
    ax.plot(
        gens,
        [100 * r["mean"] for r in history],
        "s-",
        color=ga,
        alpha=0.5,
        label="mean (generation)",
    )
    ax.plot(gens, [100 * r["best_ever"] for r in history], "k--", label="best-ever")
    if baseline_fitness is not None:
        ax.axhline(100 * baseline_fitness, **style.REFERENCE, label="baseline")
    style.integer_ticks(ax)
    style.finish(
        ax,
        xlabel="generation",
        ylabel="validation fitness (accuracy %)",
        title="fitness on the training chip (validation split)",
    )
    if test_curve:
        ax2 = axes[1]
        xs, ms, ss = zip(*test_curve)
        ax2.errorbar(xs, ms, yerr=ss, color=ga, **style.ERRORBAR, label="GA best-ever (test)")
        if baseline_test is not None:
            ax2.axhline(baseline_test, **style.REFERENCE, label="baseline (test)")
        style.integer_ticks(ax2)
        style.finish(
            ax2,
            xlabel="generation",
            ylabel="test accuracy % (bars: std over draws)",
            title="held-out test set, fresh programming draws",
        )
    if title:
        fig.suptitle(title)
    return style.save(fig, path)


def _at_programming(x: float | None) -> bool:
    return x is None or x <= 0


def plot_drift(
    series: Mapping[str, Curve],
    path: str | Path,
    *,
    title: str = "",
    digital: float | None = None,
) -> Path:
    """Accuracy (%) vs drift time (s, log axis), one line per model, bars = std over draws.

    A point at ``x`` None or ``<= 0`` is the accuracy right after programming (t0).  It has
    no place on a log axis, so it goes to a narrow panel of its own on the left instead of
    being drawn at a made-up time.

    Args:
        series: ``label -> [(t_s or None, mean %, std %), ...]``.
        path: Output PNG.
        title: Figure title.
        digital: The digital (no chip) accuracy (%), drawn as a reference line.

    Returns:
        ``path``.

    """
    has_t0 = any(_at_programming(x) for pts in series.values() for x, _, _ in pts)
    has_t = any(not _at_programming(x) for pts in series.values() for x, _, _ in pts)
    if has_t0 and has_t:
        fig, (a0, ax) = plt.subplots(
            1, 2, figsize=style.SMALL, sharey=True, gridspec_kw={"width_ratios": [1, 5]}
        )
    else:
        fig, ax = plt.subplots(figsize=style.SMALL)
        a0 = ax if has_t0 else None
    n = max(len(series), 1)
    for i, (label, pts) in enumerate(series.items()):
        color = style.color_for(label, i)
        timed = sorted((x, m, s) for x, m, s in pts if not _at_programming(x))
        if timed:
            xs, ms, ss = zip(*timed)
            ax.errorbar(xs, ms, yerr=ss, color=color, **style.ERRORBAR, label=label)
        if a0 is not None:
            t0 = [(m, s) for x, m, s in pts if _at_programming(x)]
            for m, s in t0:
                # models side by side at t0, so that their error bars do not overlap
                a0.errorbar(
                    [(i - (n - 1) / 2) * 0.15],
                    [m],
                    yerr=[s],
                    fmt="D",
                    capsize=3,
                    color=color,
                    label=label if not timed else None,
                )
    axes = [ax] if a0 is None or a0 is ax else [a0, ax]
    for a in axes:
        if digital is not None:
            a.axhline(digital, **style.DIGITAL, label="digital (no chip)" if a is ax else None)
    if has_t:
        ax.set_xscale("log")
        ax.grid(alpha=style.GRID_ALPHA, which="both")
    if a0 is not None:
        a0.set_xlim(-0.5, 0.5)
        a0.set_xticks([0.0])
        a0.set_xticklabels(["t0\n(programming)"], fontsize=style.TICK_SIZE)
    style.finish(
        ax,
        xlabel="time after programming (s)" if has_t else "",
        ylabel="test accuracy % (bars: std over draws)" if a0 is None or a0 is ax else "",
        title=title or "accuracy vs drift time",
    )
    if a0 is not None and a0 is not ax:
        a0.set_ylabel("test accuracy % (bars: std over draws)")
        a0.grid(alpha=style.GRID_ALPHA)
    return style.save(fig, path)


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
    """Line plot with error bars: ``series[label] = [(mean, err), ...]`` over ``xs``.

    ``err`` is the half-width of the bar; the caller says in ``ylabel`` or ``title`` what
    it is (a 95 % interval over seeds, or a std over programming draws).
    """
    fig, ax = plt.subplots(figsize=style.SMALL)
    for i, (label, pts) in enumerate(series.items()):
        ax.errorbar(
            xs,
            [m for m, _ in pts],
            yerr=[s for _, s in pts],
            color=style.color_for(label, i),
            **style.ERRORBAR,
            label=label,
        )
    if hline is not None:
        ax.axhline(hline[1], **style.REFERENCE, label=hline[0])
    if len(xs) <= 12:
        ax.set_xticks(list(xs))  # ticks at the swept values only, never at 4.5 bits
    style.finish(ax, xlabel=xlabel, ylabel=ylabel, title=title)
    return style.save(fig, path)


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
    fig, ax = plt.subplots(figsize=style.SMALL)
    for i, (label, pts) in enumerate(series.items()):
        pts = sorted(pts)
        ax.plot(
            [x for x, _, _ in pts],
            [y for _, y, _ in pts],
            "o-",
            color=style.color_for(label, i),
            label=label,
        )
        for x, y, note in pts:
            ax.annotate(
                note, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=style.TICK_SIZE
            )
    style.finish(ax, xlabel=xlabel, ylabel=ylabel, title=title)
    return style.save(fig, path)


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
    style.finish(ax, xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(False)  # a grid over cells hides the numbers
    fig.colorbar(im, ax=ax, label=cbar)
    return style.save(fig, path)


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
    ax.bar(
        xs, [m for m, _ in points], yerr=[s for _, s in points], capsize=3, color=style.BAR_COLOR
    )
    if hline is not None:
        ax.axhline(hline[1], **style.REFERENCE, label=hline[0])
    lo = min(m - s for m, s in points)
    ax.set_ylim(max(0.0, lo - 5), min(100.0, max(m + s for m, s in points) + 2))
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=style.LEGEND_SIZE)
    style.finish(ax, ylabel=ylabel, title=title)
    return style.save(fig, path)


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
            ax.scatter([x] * len(v["replicate_pp"]), v["replicate_pp"], s=8, color="0.6", zorder=2)
        color = f"C{k}"
        ax.errorbar(xs, means, yerr=[lows, highs], fmt="none", ecolor=color, capsize=3, zorder=3)
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
    ax.legend(fontsize=style.LEGEND_SIZE, loc="best")
    ax.grid(axis="y", alpha=style.GRID_ALPHA)
    return style.save(fig, path)


def plot_price(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Gain over the reference on the fitness chip against energy per inference, per method.

    What each method wins back and what it costs in one picture: the point is the mean of
    the replicates' paired gains with its 95 % interval (filled = significant), at the
    method's energy per inference (:mod:`lab.experiment.price`: the arrays it programs and
    its digital work).  ``None`` (nothing drawn) when the results carry no price.
    """
    rows = [r for r in results["methods"] if r.get("price")]
    if not rows:
        return None
    ref, chip = results["reference"], str(results["fitness_chip"])
    fig, ax = plt.subplots(figsize=style.SMALL)
    for i, row in enumerate(rows):
        v = row["chips"][chip].get("vs_reference")
        x = row["price"]["energy_nJ"]
        mean = v["mean_pp"] if v else 0.0
        lo = v["ci95_low_pp"] if v and v["ci95_low_pp"] is not None else mean
        hi = v["ci95_high_pp"] if v and v["ci95_high_pp"] is not None else mean
        color = style.color_for(row["method"], i)
        ax.errorbar([x], [mean], yerr=[[mean - lo], [hi - mean]], color=color, capsize=3)
        filled = bool(v and v["significant"])
        ax.scatter([x], [mean], s=36, zorder=3, edgecolors=color,
                   facecolors=color if filled else "white")  # fmt: skip
        ax.annotate(row["method"], (x, mean), textcoords="offset points", xytext=(5, 3),
                    fontsize=7)  # fmt: skip
    ax.axhline(0.0, **style.REFERENCE, label=ref)
    ax.set_xlabel("energy per inference on the fitness chip (nJ)")
    ax.set_ylabel(f"test accuracy gain over {ref} (pp)")
    ax.set_title(
        f"{results['name']}: chip {chip}, {results['replicates']} replicates\n"
        "mean and 95 % interval; filled = significant",
        fontsize=9,
    )
    ax.grid(alpha=style.GRID_ALPHA)
    ax.legend(fontsize=style.LEGEND_SIZE, loc="best")
    return style.save(fig, path)
