"""Properties of the figures (error bars, ticks, reference lines, aspect) on synthetic data.

Each figure is caught where it is saved (:func:`lab.plots.style.save`) and its matplotlib
objects are checked; no pixels are compared.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from matplotlib.container import ErrorbarContainer
from torch import nn

import memsim
from lab import plots
from lab.plots import inspect as inspect_plots
from lab.plots import style, tiles


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure saved through style.save during the test (and still written to disk)."""
    caught: list[Any] = []
    real = style.save

    def spy(fig: Any, path: str | Path) -> Path:
        caught.append(fig)
        return real(fig, path)

    monkeypatch.setattr(style, "save", spy)
    return caught


def _half_widths(container: ErrorbarContainer) -> list[float]:
    """Half the length of each vertical error bar of a container."""
    (bars,) = container.lines[2]
    return [abs(seg[1][1] - seg[0][1]) / 2 for seg in bars.get_segments()]


def _grid_state(seeds: int) -> dict[str, Any]:
    runs = []
    for s in range(seeds):
        for i, x in enumerate([4, 8]):
            runs.append(
                {
                    "status": "complete",
                    "cell": i,
                    "seed_index": s,
                    "ga_seed": s,
                    "values": {"adc.bits": x},
                    "headline": {"ga_pct": 80.0 + i + 2 * s, "ga_std_pct": 2.0 + i},
                }
            )
    return {"axes": [{"key": "adc.bits", "values": [4, 8]}], "runs": runs}


def test_grid_one_seed_draws_per_draw_std_bars(tmp_path: Path, figures: list[Any]) -> None:
    from lab.studies.grid_report import write_plots

    write_plots(_grid_state(1), tmp_path)
    ax = figures[0].axes[0]
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert _half_widths(container) == pytest.approx([2.0, 3.0])
    assert "std over programming draws" in ax.get_title()
    assert list(ax.get_xticks()) == [4, 8]


def test_grid_seeds_draw_95_percent_intervals(tmp_path: Path, figures: list[Any]) -> None:
    from scipy.stats import t

    from lab.studies.grid_report import write_plots

    write_plots(_grid_state(3), tmp_path)
    ax = figures[0].axes[0]
    (container,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    # the three seeds give 80, 82, 84 (sd 2): half-width t(0.975, 2) * 2 / sqrt(3)
    half = float(t.ppf(0.975, 2)) * 2.0 / math.sqrt(3)
    assert _half_widths(container) == pytest.approx([half, half])
    assert "95 % interval over seeds" in ax.get_title()


def _chip() -> nn.Module:
    torch.manual_seed(0)
    # 200 inputs on 128 x 8 tiles: tall, narrow tiles, the case that used to be stretched
    return memsim.convert(nn.Linear(200, 6), "rram_1t1r_yao2020", seed=0)


def test_fault_map_has_ticks_and_equal_aspect(tmp_path: Path, figures: list[Any]) -> None:
    chip = _chip()
    (name, layer), *_ = memsim.analog_layers(chip)
    inspect_plots.plot_fault_map(layer, name or "weight", tmp_path / "f.png")
    shown = [ax for ax in figures[0].axes if ax.get_images()]
    assert shown
    for ax in shown:
        assert ax.get_aspect() == 1.0
        rows, cols = ax.get_images()[0].get_array().shape
        assert (rows, cols) == (128, 8)
        assert len(ax.get_yticks()) >= 2 and len(ax.get_xticks()) >= 2
        assert all(float(v).is_integer() for v in ax.get_xticks())
    assert shown[0].get_ylabel() == "row"
    assert shown[-1].get_xlabel() == "column"


def test_drift_plot_digital_line_and_t0_apart(tmp_path: Path, figures: list[Any]) -> None:
    pts = [(None, 90.0, 2.0), (0.0, 90.5, 2.0), (60.0, 89.0, 2.0), (86400.0, 85.0, 2.5)]
    plots.plot_drift({"rram": pts}, tmp_path / "d.png", digital=91.5)
    t0_ax, log_ax = figures[0].axes
    assert log_ax.get_xscale() == "log"
    assert t0_ax.get_xscale() == "linear"
    assert "t0" in t0_ax.get_xticklabels()[0].get_text()
    # no programming-time point on the log axis: its smallest time is the first real one
    (container,) = [c for c in log_ax.containers if isinstance(c, ErrorbarContainer)]
    assert min(container.lines[0].get_xdata()) == 60.0
    for ax in (t0_ax, log_ax):
        flat = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [91.5, 91.5]]
        assert flat, "no digital reference line"
    assert any(t.get_text() == "digital (no chip)" for t in log_ax.get_legend().get_texts())


def test_drift_plot_without_t0_has_one_log_axis(tmp_path: Path, figures: list[Any]) -> None:
    plots.plot_drift({"ga": [(1.0, 88.0, 1.0), (3600.0, 86.0, 1.0)]}, tmp_path / "d.png")
    (ax,) = figures[0].axes
    assert ax.get_xscale() == "log"


def test_history_generation_ticks_are_integers(tmp_path: Path, figures: list[Any]) -> None:
    history = [{"generation": g, "best": 0.8, "mean": 0.7, "best_ever": 0.8} for g in range(3)]
    plots.plot_history(history, tmp_path / "h.png", test_curve=[(0, 80.0, 1.0), (2, 81.0, 1.0)])
    for ax in figures[0].axes:
        ticks = [v for v in ax.get_xticks() if ax.get_xlim()[0] <= v <= ax.get_xlim()[1]]
        assert ticks and all(float(v).is_integer() for v in ticks), ticks


def test_one_tile_figure_for_runs_and_inspect(
    tmp_path: Path, figures: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert plots.plot_tiles is tiles.plot_tiles
    calls: list[dict[str, Any]] = []
    real = tiles.plot_tiles

    def spy(report: Any, path: Any, **kw: Any) -> Path:
        calls.append(kw)
        return real(report, path, **kw)

    monkeypatch.setattr(tiles, "plot_tiles", spy)
    chip = _chip()
    inspect_plots.plot_tile_utilization(chip, tmp_path / "inspect.png")
    plots.plot_tiles(memsim.tile_report(chip), tmp_path / "run.png")
    assert len(calls) == 1 and calls[0]["per_tile"]  # inspect went through the one function
    inspect_ax, run_ax = (f.axes[0] for f in figures)
    assert inspect_ax.get_ylabel() == run_ax.get_ylabel()
    assert [p.get_height() for p in inspect_ax.patches] == [p.get_height() for p in run_ax.patches]
    assert inspect_ax.patches[0].get_facecolor() == run_ax.patches[0].get_facecolor()


def _compare_result(times: list[tuple[float, str]]) -> dict[str, Any]:
    sim = {"acc_mean": 88.0, "acc_std": 1.5, "rel_err_mean": 0.1, "rel_err_std": 0.01}
    return {
        "times": [{"t_s": t, "label": lab, "memsim": sim, "aihwkit": sim} for t, lab in times],
        "digital_accuracy": 91.0,
        "draws": 3,
        "model": "m",
        "profile": "p",
    }


def test_compare_one_time_is_not_a_log_axis(tmp_path: Path, figures: list[Any]) -> None:
    from lab.compare import plot

    plot(_compare_result([(3600.0, "1h")]), tmp_path / "one.png")
    plot(_compare_result([(0.0, "t0"), (3600.0, "1h")]), tmp_path / "two.png")
    one, two = figures
    for ax in one.axes:
        assert ax.get_xscale() == "linear"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["memsim", "aihwkit"]
        assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2
    assert all(ax.get_xscale() == "log" for ax in two.axes)
    assert any(list(ln.get_ydata()) == [91.0, 91.0] for ln in one.axes[0].get_lines())


def test_every_figure_is_saved_through_style() -> None:
    """No plotting module saves by itself: resolution and margins come from style.save."""
    root = Path(plots.__file__).parent
    sources = [p for p in root.glob("*.py") if p.name != "style.py"]
    sources.append(root.parent / "compare.py")
    offenders = [p.name for p in sources if "savefig(" in p.read_text(encoding="utf-8")]
    assert offenders == []
    drawing = [p for p in sources if "subplots(" in p.read_text(encoding="utf-8")]
    assert len(drawing) >= 5
    assert all("style.save(" in p.read_text(encoding="utf-8") for p in drawing)


def _priced_study(with_price: bool = True) -> dict[str, Any]:
    def row(name: str, energy: float, gain: float | None) -> dict[str, Any]:
        vs = None if gain is None else {
            "mean_pp": gain, "ci95_low_pp": gain - 2.0, "ci95_high_pp": gain + 3.0,
            "significant": gain - 2.0 > 0,
        }  # fmt: skip
        price = {"energy_nJ": energy, "area_mm2": 0.1, "latency_us": 1.0}
        return {"method": name, "price": price if with_price else None,
                "chips": {"11": {"mean_pct": 80.0, "vs_reference": vs}}}  # fmt: skip

    return {"name": "s", "reference": "qat", "fitness_chip": 11, "replicates": 5,
            "methods": [row("qat", 420.0, None), row("ga_mapping", 420.0, 10.0),
                        row("committee", 1260.0, 7.0)]}  # fmt: skip


def test_the_price_plot_puts_each_methods_gain_at_its_energy(figures, tmp_path):
    assert plots.plot_price(_priced_study(), tmp_path / "price.png").is_file()
    ax = figures[-1].axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    points = sorted((float(c.lines[0].get_xdata()[0]), float(c.lines[0].get_ydata()[0]))
                    for c in bars)  # fmt: skip
    assert points == [(420.0, 0.0), (420.0, 10.0), (1260.0, 7.0)]
    gain = next(c for c in bars if float(c.lines[0].get_ydata()[0]) == 10.0)
    ((_, low), (_, high)) = gain.lines[2][0].get_segments()[0]
    assert sorted([low, high]) == [8.0, 13.0]  # the 95 % interval, asymmetric, not a std
    assert "energy per inference" in ax.get_xlabel()
    assert plots.plot_price(_priced_study(with_price=False), tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_energy_per_token_plot_splits_a_vits_energy_by_part_and_term(figures, tmp_path):
    from lab.plots.cost import plot_energy_per_token
    from lab.studies.vit_cifar10 import energy
    from models.vit import ViT

    torch.manual_seed(0)
    vit = ViT(image_size=8, patch_size=4, in_channels=1, dim=16, depth=1, heads=2, mlp_dim=32)
    e = energy(vit.eval(), torch.rand(4, 1, 8, 8), tokens=5)
    terms = e["terms_per_image_J"]
    parts = e["parts_per_image_J"]
    assert terms["attention_J"] > 0 and parts["attention QK/AV (digital)"] == terms["attention_J"]
    assert set(parts) >= {"patch embedding", "q/k/v projections", "out projection", "MLP", "head"}
    split = sum(terms[k] for k in ("array_J", "dac_J", "adc_J", "digital_periphery_J",
                                   "attention_J"))  # fmt: skip
    assert math.isclose(split, e["per_image_J"], rel_tol=1e-9)
    assert math.isclose(sum(parts.values()), e["per_image_J"], rel_tol=1e-9)
    assert plot_energy_per_token(e, tmp_path / "energy.png").is_file()
    left, right = figures[-1].axes
    widths = [p.get_width() for p in left.patches]
    assert widths == pytest.approx([v * 1e9 for v in parts.values()])  # nJ per image
    top = max(p.get_y() + p.get_height() for p in right.patches)
    assert top == pytest.approx(e["per_image_J"] / 5 * 1e12)  # pJ per token, stacked
    assert "per token" in right.get_ylabel() and "per image" in left.get_xlabel()
