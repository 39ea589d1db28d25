"""The one look of every memsim figure: sizes, colours per method, reference lines, save.

Every plotting function in :mod:`lab.plots` (and :mod:`lab.compare`) writes its PNG through
:func:`save`, so resolution, margins and closing the figure are decided here once.  Tests
capture figures by wrapping :func:`save` (``monkeypatch.setattr(style, "save", ...)``), which
is why callers use ``style.save(...)`` rather than importing the name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: runs write PNG files, they never open windows

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 120
"""Resolution of every PNG."""

SMALL = (6.0, 4.0)
"""One panel."""

WIDE = (10.0, 4.0)
"""Two panels side by side."""

LEGEND_SIZE = 8
TICK_SIZE = 7
GRID_ALPHA = 0.3

METHOD_COLORS: dict[str, str] = {
    "baseline": "tab:red",
    "ga": "tab:blue",
    "qat": "tab:orange",
    "progressive": "tab:purple",
    "ga_progressive": "tab:cyan",
    "ga_knobs": "tab:olive",
    "defect_aware_oracle": "tab:brown",
    "defect_aware_readback": "tab:pink",
    "memsim": "tab:blue",
    "aihwkit": "tab:orange",
    "digital": "0.3",
}
"""Fixed colours of the known methods and simulators, so a method looks alike everywhere."""

_CYCLE = ("tab:green", "tab:gray", "gold", "navy", "teal", "maroon")

REFERENCE = {"color": "tab:red", "ls": ":", "lw": 1.2}
"""Style of a baseline reference line (the model before any method)."""

DIGITAL = {"color": "0.3", "ls": "--", "lw": 1.2}
"""Style of the digital (no chip) accuracy line."""

BAR_COLOR = "tab:blue"

ERRORBAR = {"fmt": "o-", "capsize": 3, "ms": 4}
"""Keyword arguments of every line-with-error-bars."""


def color_for(label: str, index: int = 0) -> str:
    """The colour of a method: fixed for known names, else from a cycle by ``index``.

    A label such as ``"ga (chip=3)"`` takes the colour of its first word.
    """
    key = label.split(" ")[0].split("(")[0]
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return _CYCLE[index % len(_CYCLE)]


def integer_ticks(ax: Any, axis: str = "x") -> None:
    """Ticks only at whole numbers (generations, epochs): never at 0.25."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))


def finish(ax: Any, *, xlabel: str = "", ylabel: str = "", title: str = "") -> None:
    """Labels, a grid and a legend (when something is labelled) in the common sizes."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9 if "\n" in title or len(title) > 60 else None)
    ax.grid(alpha=GRID_ALPHA)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=LEGEND_SIZE)


def save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (parents created) at :data:`DPI`, trimmed, and close it.

    Args:
        fig: The matplotlib figure.
        path: PNG file to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)  # long sweeps draw hundreds of figures: free each one
    return path
