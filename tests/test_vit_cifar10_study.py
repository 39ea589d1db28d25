"""``lab.studies.vit_cifar10`` at a tiny scale: its row, its intervals and its text."""

from __future__ import annotations

import math
import statistics

import pytest
from conftest import DATA


@pytest.mark.skipif(not (DATA / "cifar10.npz").is_file(), reason="needs shared/data/cifar10.npz")
def test_the_study_scores_every_replicate_in_every_column_and_summarizes_them():
    from lab.studies.vit_cifar10 import COLUMNS, render_text, run

    results = run(
        replicates=2, train_size=100, test_size=50, epochs=1, draws=2, data_root=str(DATA),
        aihwkit=False, echo=lambda _s: None,
    )  # fmt: skip
    assert results["kind"] == "bench" and results["scale"]["test_images"] == 50
    reps = results["replicates"]
    assert [r["seed"] for r in reps] == [0, 1]
    for r in reps:
        assert len(r["accuracy"]["digital"]) == 1
        for c in COLUMNS[1:]:
            assert len(r["accuracy"][c]) == 2  # one accuracy per chip
        for values in r["accuracy"].values():
            # each accuracy is a whole number of the 50 test images (2 % each)
            assert all(0.0 <= v <= 100.0 and math.isclose(v / 2, round(v / 2)) for v in values)
    assert "energy" in reps[0] and "energy" not in reps[1]  # replicate 0 only
    for c in COLUMNS:
        s = results["summary"][c]
        means = [statistics.fmean(r["accuracy"][c]) for r in reps]
        assert s["mean_pp"] == pytest.approx(statistics.fmean(means))
        assert s["ci95_low_pp"] <= s["mean_pp"] <= s["ci95_high_pp"]
    text = render_text(results)
    assert results["text"] == text
    assert all(c in text for c in COLUMNS) and "pJ/token" in text
