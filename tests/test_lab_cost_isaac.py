"""Counting of the cost model against ISAAC's published per-IMA component numbers."""

from __future__ import annotations

import pytest

from lab.cost_isaac import format_comparison, isaac_comparison


def test_isaac_ima_converters_and_shift_add_match_the_published_breakdown():
    rows, report = isaac_comparison(seed=0)
    by = {r.component: r for r in rows}
    # 8 ADCs each converting 128 columns per 100 ns cycle: ISAAC's 16 mW
    assert by["ADC"].power_ratio == pytest.approx(1.0, rel=1e-9)
    # 1024 row DACs at 3.9 uW each (ISAAC's 4 mW rounds 3.906 uW)
    assert by["DAC"].power_ratio == pytest.approx(3.9 / (4000 / 1024), rel=1e-9)
    # one shift-add per ADC result, plus one accumulate per output per 15-bit MVM; the
    # profile rounds ISAAC's 0.2 mW / (8 x 1.28 GS/s) = 0.01953125 pJ to 0.0195 pJ
    assert by["S+A"].power_ratio == pytest.approx(16 / 15 * 0.0195 / 0.01953125, rel=1e-9)
    for comp in ("ADC", "DAC", "S+A"):
        assert by[comp].area_ratio == pytest.approx(1.0, rel=1e-9)
    # a differential pair per weight: twice ISAAC's cells
    assert by["array"].area_ratio == pytest.approx(2.0, rel=1e-9)
    assert by["array"].memsim_mW > 0 and by["S+H"].memsim_mW is None
    assert "tile (12 IMAs" in format_comparison(rows, report)
