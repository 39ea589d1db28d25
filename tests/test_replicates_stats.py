"""The statistics of replicates: t-intervals and the aggregation of replicate results."""

import math
import statistics

import pytest


def test_t_interval_matches_a_hand_computation():
    from lab.studies.replicates import t_interval

    values = [1.0, 2.0, 4.0]
    mean = 7 / 3
    sd = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    # t quantile 0.975 with 2 degrees of freedom, from a printed table: 4.302653
    half = 4.302653 * sd / math.sqrt(3)
    out = t_interval(values)
    assert out["mean_pp"] == pytest.approx(mean)
    assert out["ci95_low_pp"] == pytest.approx(mean - half, rel=1e-6)
    assert out["ci95_high_pp"] == pytest.approx(mean + half, rel=1e-6)
    assert out["n_replicates"] == 3
    assert out["significant"] is False  # the interval [-1.5, 6.1] holds 0


def test_significance_needs_the_interval_to_exclude_zero():
    from lab.studies.replicates import t_interval

    assert t_interval([5.0, 5.5, 6.0])["significant"] is True
    assert t_interval([-5.0, -5.5, -6.0])["significant"] is True
    assert t_interval([-1.0, 1.0, 0.5])["significant"] is False
    one = t_interval([3.0])
    assert one["ci95_low_pp"] is None and one["significant"] is False


def _run(qat, ga, oracle, base=80.0):
    """A replicate's results dict with the given paired gains (pp) of ga and oracle."""

    def entry(mean, gain):
        e = {"mean_pct": mean, "std_pct": 1.0}
        if gain is not None:
            e["paired_vs_reference"] = {"mean_pp": gain, "sem_pp": 0.5, "n": 5}
        return e

    def row(name, mean, gain):
        return {
            "method": name,
            "needs": "-",
            "label": "",
            "wall_time_s": 1.0,
            "info": {},
            "chips": {"11": entry(mean, gain), "12": entry(mean - 1, gain)},
        }

    return {
        "task": "t",
        "scale": "quick",
        "profile": "p",
        "reference": "qat",
        "fitness_chip": 11,
        "transfer_chips": [12],
        "budget": {"steps": 1, "chip_evaluations": 1},
        "protocol": "x",
        "drift_time": "t0",
        "methods": [
            row("baseline", base, base - qat),
            row("qat", qat, None),
            row("ga", qat + ga, ga),
            row("defect_aware_oracle", qat + oracle, oracle),
        ],
    }


def test_aggregate_reports_the_interval_over_replicates_not_over_draws():
    from lab.experiment.table import format_study
    from lab.studies.replicates import aggregate

    runs = [_run(70.0, g, o) for g, o in ((-1.0, 10.0), (2.0, 11.0), (0.5, 12.0))]
    study = {"name": "s", "vary_chips": False, "seed_offset": 0, "replicate_dirs": ["a"] * 3}
    res = aggregate(runs, study)
    rows = {r["method"]: r for r in res["methods"]}
    ga = rows["ga"]["chips"]["11"]["vs_reference"]
    assert ga["mean_pp"] == pytest.approx(0.5) and ga["replicate_pp"] == [-1.0, 2.0, 0.5]
    sd = statistics.stdev([-1.0, 2.0, 0.5])
    assert ga["ci95_high_pp"] - ga["mean_pp"] == pytest.approx(4.302653 * sd / math.sqrt(3))
    assert ga["significant"] is False
    assert rows["defect_aware_oracle"]["chips"]["11"]["vs_reference"]["significant"] is True
    assert "vs_reference" not in rows["qat"]["chips"]["11"]
    # the untouched baseline is compared too: here it is 10 pp above blind QAT
    want = {"above": ["baseline", "defect_aware_oracle"], "below": []}
    assert res["significant_on_fitness_chip"] == want
    text = format_study(res)
    assert "significantly above qat on chip 11: baseline, defect_aware_oracle" in text
    assert "significantly below qat on chip 11: none" in text
    assert "+11.00 [" in text and "]*" in text


def test_replicate_seeds_are_independent_and_the_offset_shifts_every_seed():
    from recovery_support import recovery_config

    from lab.experiment.context import replicate_config, shift_seeds

    cfg = recovery_config(["qat"])
    r2 = replicate_config(cfg, 2, vary_chips=False)
    assert (r2.experiment.seed, r2.ga.seed) == (cfg.experiment.seed + 2, cfg.ga.seed + 2)
    assert r2.evaluation.seed == cfg.evaluation.seed + 2
    assert (r2.chip.chip_seed, r2.chip.transfer_chip_seeds) == (11, [12])
    v2 = replicate_config(cfg, 2, vary_chips=True)
    assert (v2.chip.chip_seed, v2.chip.transfer_chip_seeds) == (2011, [2012])
    s = shift_seeds(cfg, 1000)
    assert (s.experiment.seed, s.ga.seed, s.chip.chip_seed) == (1000, 1000, 1011)
    assert s.evaluation.seed == cfg.evaluation.seed + 1000


def test_a_bad_seed_offset_is_one_line_naming_the_variable(monkeypatch):
    from lab.experiment.context import seed_offset

    monkeypatch.setenv("MEMSIM_SEED_OFFSET", "ten")
    with pytest.raises(ValueError, match="MEMSIM_SEED_OFFSET='ten': expected a non-negative"):
        seed_offset()
    monkeypatch.setenv("MEMSIM_SEED_OFFSET", "7")
    assert seed_offset() == 7
