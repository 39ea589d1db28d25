"""Plots of :class:`memsim.CostReport` (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lab.plots import style  # noqa: E402
from memsim.cost import CostReport  # noqa: E402

TERMS = (("array_J", "array"), ("dac_J", "DAC"), ("adc_J", "ADC"), ("digital_J", "digital"))
"""Energy terms of a report, in stacking order, with their legend labels."""


def plot_energy_breakdown(report: CostReport, path: str | Path, title: str | None = None) -> Path:
    """Stacked bars of each layer's energy per inference (nJ), one colour per term.

    Args:
        report: The report to draw.
        path: PNG file to write (parent folders are created).
        title: Figure title (default: the profile name).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    names = [r.name or "(model)" for r in report.layers]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2.5), 3.6))
    bottom = [0.0] * len(names)
    for attr, label in TERMS:
        vals = [getattr(r, attr) * 1e9 for r in report.layers]
        ax.bar(range(len(names)), vals, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 6 else 0, ha="right")
    ax.set_ylabel("energy per inference (nJ)")
    ax.set_xlabel("layer")
    ax.set_title(title or f"{report.profile}: {report.energy_J * 1e9:.3g} nJ/inference, "
                 f"{report.tops_per_w:.3g} TOPS/W", fontsize=9)
    ax.legend(fontsize=style.LEGEND_SIZE)
    return style.save(fig, path)


def plot_accuracy_vs_energy(
    energy_nJ: Sequence[float],
    accuracy_pct: Sequence[float],
    labels: Sequence[str],
    path: str | Path,
    title: str,
    accuracy_std: Sequence[float] | None = None,
) -> Path:
    """Accuracy against energy per inference, one labelled point per design."""
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.errorbar(energy_nJ, accuracy_pct, yerr=accuracy_std, marker="o", capsize=3)
    for e, a, lab in zip(energy_nJ, accuracy_pct, labels):
        ax.annotate(lab, (e, a), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xlabel("energy per inference (nJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=style.GRID_ALPHA)
    return style.save(fig, path)
