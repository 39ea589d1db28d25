"""The outputs of a grid study (:mod:`lab.studies.sweep_grid`): ``grid.csv`` and its plots.

One CSV row per (cell, seed) with every scored model's test accuracy (and energy where the
cost model applies); one plot of accuracy against each swept key, and accuracy against
energy per inference when it was measured.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any


def energy_of(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Energy per inference (nJ) and TOPS/W of each model, where the cost model applies."""
    models = results.get("cost", {}).get("models", {})
    return {
        m: {"energy_nJ": 1e9 * c["energy_J"], "tops_per_w": c["tops_per_w"]}
        for m, c in models.items()
        if c.get("available")
    }


def _methods(state: dict[str, Any]) -> list[str]:
    """The scored models (baseline first, then the methods), in the order the runs list them."""
    seen: dict[str, None] = {}
    for run in state["runs"]:
        for key in run.get("headline", {}):
            if key.endswith("_pct") and not key.endswith("_std_pct"):
                seen[key.removesuffix("_pct")] = None
    return list(seen)


def write_csv(state: dict[str, Any], path: Path) -> Path:
    """The tidy table: one row per (cell, seed); every method's test accuracy (%)."""
    keys = [a["key"] for a in state["axes"]]
    methods = _methods(state)
    costed = [m for m in methods if any(m in r.get("energy", {}) for r in state["runs"])]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "cell",
                *keys,
                "seed",
                *(c for m in methods for c in (f"{m}_test_pct", f"{m}_test_std_pct")),
                *(c for m in costed for c in (f"{m}_energy_nJ", f"{m}_tops_per_w")),
                "status",
                "run_dir",
            ]
        )
        for run in state["runs"]:
            h = run.get("headline", {})
            w.writerow(
                [
                    run["cell"],
                    *(run["values"][k] for k in keys),
                    run["ga_seed"],
                    *(h.get(c, "") for m in methods for c in (f"{m}_pct", f"{m}_std_pct")),
                    *(
                        run.get("energy", {}).get(m, {}).get(c, "")
                        for m in costed
                        for c in ("energy_nJ", "tops_per_w")
                    ),
                    run["status"],
                    run.get("run_dir", ""),
                ]
            )
    return path


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


def _point(accs: list[float], draw_stds: list[float]) -> tuple[float, float, str]:
    """Mean and error-bar half-width of one plotted point, and what the bar is.

    Several seeds: the 95 % t-interval over them (the replicate spread).  One seed: its std
    over the programming draws, the only spread there is (0 only if no draw varied).
    """
    from lab.studies.replicates import t_interval

    if not accs:
        return float("nan"), 0.0, "none"
    if len(accs) > 1:
        ci = t_interval(accs)
        return ci["mean_pp"], ci["ci95_high_pp"] - ci["mean_pp"], "ci"
    return accs[0], draw_stds[0] if draw_stds else 0.0, "draws"


_BAR_NOTE = {
    frozenset({"ci"}): "bars: 95 % interval over seeds",
    frozenset({"draws"}): "bars: std over programming draws",
    frozenset({"ci", "draws"}): "bars: 95 % interval over seeds, std over draws where 1 seed",
}


def write_plots(state: dict[str, Any], folder: Path) -> list[Path]:
    """``grid-<key>.png`` per axis: each method's test accuracy against the swept value.

    Points are the mean over the seeds with a 95 % interval, or with one seed its std over
    the programming draws (the title says which); with more than one axis, one line per
    method and combination of the other axes' values.
    """
    from lab import plots

    complete = [r for r in state["runs"] if r["status"] == "complete"]
    if not complete:
        return []
    methods = _methods(state)
    axes = state["axes"]
    paths = []
    for a in axes:
        others = [b["key"] for b in axes if b["key"] != a["key"]]
        combos = sorted({json.dumps([r["values"][k] for k in others]) for r in complete})
        series: dict[str, list[tuple[float, float]]] = {}
        kinds: set[str] = set()
        xs = list(a["values"])
        for m in methods:
            for combo in combos:
                label = (
                    m
                    if not others
                    else f"{m} ({', '.join(f'{k}={v}' for k, v in zip(others, json.loads(combo)))})"
                )
                pts = []
                for x in xs:
                    runs = [
                        r
                        for r in complete
                        if r["values"][a["key"]] == x
                        and json.dumps([r["values"][k] for k in others]) == combo
                        and f"{m}_pct" in r["headline"]
                    ]
                    mean, err, kind = _point(
                        [r["headline"][f"{m}_pct"] for r in runs],
                        [r["headline"].get(f"{m}_std_pct", 0.0) for r in runs],
                    )
                    kinds.add(kind)
                    pts.append((mean, err))
                series[label] = pts
        path = folder / f"grid-{_slug(a['key'])}.png"
        n = max(r["seed_index"] for r in state["runs"]) + 1
        note = _BAR_NOTE.get(frozenset(kinds - {"none"}), "no points")
        plots.plot_line(
            xs,
            series,
            path,
            xlabel=a["key"],
            title=f"test accuracy vs {a['key']}\n(mean of {n} seed{'s' if n > 1 else ''}; {note})",
        )
        paths.append(path)
    tradeoff = _plot_tradeoff(state, complete, methods, folder)
    return paths + ([tradeoff] if tradeoff else [])


def _plot_tradeoff(
    state: dict[str, Any], complete: list[dict[str, Any]], methods: list[str], folder: Path
) -> Path | None:
    """``grid-accuracy-vs-energy.png``: accuracy against energy per inference per method.

    One point per cell (mean over seeds), labelled with the swept values.
    """
    from lab import plots

    if not any(r.get("energy") for r in complete):
        return None
    series: dict[str, list[tuple[float, float, str]]] = {}
    for m in methods:
        by_cell: dict[int, list[dict[str, Any]]] = {}
        for r in complete:
            if m in r.get("energy", {}) and f"{m}_pct" in r["headline"]:
                by_cell.setdefault(r["cell"], []).append(r)
        pts = []
        for runs in by_cell.values():
            note = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in runs[0]["values"].items())
            energy = statistics.fmean(r["energy"][m]["energy_nJ"] for r in runs)
            acc = statistics.fmean(r["headline"][f"{m}_pct"] for r in runs)
            pts.append((energy, acc, note))
        if pts:
            series[m] = pts
    keys = ", ".join(a["key"] for a in state["axes"])
    return plots.plot_tradeoff(
        series,
        folder / "grid-accuracy-vs-energy.png",
        xlabel="energy per inference (nJ, memsim.cost_report)",
        title=f"test accuracy vs energy, swept {keys}",
    )
