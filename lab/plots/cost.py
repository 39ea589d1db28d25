"""Plots of :class:`memsim.CostReport` (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    ax.set_title(
        title
        or f"{report.profile}: {report.energy_J * 1e9:.3g} nJ/inference, "
        f"{report.tops_per_w:.3g} TOPS/W",
        fontsize=9,
    )
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


ENERGY_TERMS = (
    ("array_J", "array"),
    ("dac_J", "DAC"),
    ("adc_J", "ADC"),
    ("digital_periphery_J", "digital periphery"),
    ("attention_J", "attention QK/AV (digital)"),
)
"""Terms of :func:`plot_energy_per_token`'s right panel, in stacking order."""


def plot_energy_per_token(energy: dict[str, Any], path: str | Path) -> Path:
    """Where a transformer's energy goes: per image by part, per token by term.

    Args:
        energy: ``per_image_J``, ``tokens``, ``profile``, ``parts_per_image_J`` (energy per
            image of each part of the network) and ``terms_per_image_J`` (the keys of
            :data:`ENERGY_TERMS`), as :func:`lab.studies.vit_cifar10.energy` returns.
        path: PNG file to write (parent folders are created).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    tokens = int(energy["tokens"])
    fig, (left, right) = plt.subplots(1, 2, figsize=style.WIDE)
    parts = energy["parts_per_image_J"]
    names = list(parts)
    left.barh(range(len(names)), [parts[n] * 1e9 for n in names], color="tab:blue")
    left.set_yticks(range(len(names)), names, fontsize=style.TICK_SIZE)
    left.invert_yaxis()
    left.set_xlabel("energy per image (nJ)")
    left.set_title(f"per image: {energy['per_image_J'] * 1e9:.3g} nJ", fontsize=9)
    left.grid(axis="x", alpha=style.GRID_ALPHA)
    terms = energy["terms_per_image_J"]
    bottom = 0.0
    for key, label in ENERGY_TERMS:
        v = terms[key] / tokens * 1e12
        right.bar(
            [0],
            [v],
            bottom=bottom,
            label=f"{label} ({100 * terms[key] / energy['per_image_J']:.0f} %)",
        )
        bottom += v
    right.set_xticks([0], [f"one token (of {tokens})"])
    right.set_ylabel("energy per token (pJ)")
    right.set_xlim(-1, 2.5)
    right.set_title(f"per token: {energy['per_image_J'] / tokens * 1e12:.3g} pJ", fontsize=9)
    right.legend(fontsize=style.LEGEND_SIZE, loc="upper right")
    fig.suptitle(f"where the energy goes on {energy['profile']}", fontsize=10)
    return style.save(fig, path)
