"""``memsim sweep grid``: profile and config axes, the tidy CSV, resume after a kill."""

import csv
import json
from pathlib import Path

import pytest
from cli_support import TINY_TOML, cli, read

import memsim
from lab.studies.sweep_grid import GridError, cells, parse_axis, write_cell_profile

GRID_TOML = TINY_TOML.replace("generations = 2", "generations = 1")


def test_axes_parse_and_multiply():
    a = parse_axis("faults.stuck_at_gmax_rate=0,0.02,0.1")
    b = parse_axis("ga.generations=5,10")
    assert a.values == (0, 0.02, 0.1) and a.on_profile
    assert b.values == (5, 10) and not b.on_profile
    grid = cells([a, b])
    assert len(grid) == 6
    assert grid[0] == {"faults.stuck_at_gmax_rate": 0, "ga.generations": 5}
    assert grid[1] == {"faults.stuck_at_gmax_rate": 0, "ga.generations": 10}
    for bad, match in [
        ("ga.generations", "expects section.key=v1"),
        ("ga.generations=", "expects section.key=v1"),
        ("nosuch.key=1,2", "neither an experiment-config section"),
        ("ga.seed=1,1", "repeated value"),
    ]:
        with pytest.raises(GridError, match=match):
            parse_axis(bad)


def test_cell_profile_extends_the_base_and_validates(tmp_path):
    base = memsim.load_profile("rram_1t1r_yao2020")
    path = write_cell_profile(
        base,
        {"faults.stuck_at_gmax_rate": 0.05, "read_noise.sigma": 0.01},
        tmp_path / "c.json",
        "c",
    )
    data = json.loads(path.read_text())
    assert data["extends"] == "rram_1t1r_yao2020"  # only the overrides are written
    cell = memsim.load_profile(path)
    assert cell.faults.stuck_at_gmax_rate == 0.05 and cell.read_noise.sigma == 0.01
    # everything else is the base profile's
    assert cell.faults.stuck_at_gmin_rate == base.faults.stuck_at_gmin_rate
    assert cell.device == base.device and cell.programming_noise == base.programming_noise
    assert "faults.stuck_at_gmax_rate" in cell.source
    with pytest.raises(memsim.ProfileError, match="faults.stuck_at_gmax_rate"):
        write_cell_profile(base, {"faults.stuck_at_gmax_rate": 2.0}, tmp_path / "bad.json", "b")


def test_grid_runs_cells_writes_tidy_csv_and_resumes_skipping_finished(
    tmp_path, capsys, monkeypatch
):
    from lab.experiment.runner import Experiment

    config = tmp_path / "tiny.toml"
    config.write_text(GRID_TOML)
    argv = [
        "sweep",
        "grid",
        config,
        "--grid",
        "faults.stuck_at_gmax_rate=0,0.1",
        "--seeds",
        "1",
        "--run-root",
        tmp_path / "runs",
        "--out",
        tmp_path / "out",
        "--no-progress",
    ]
    started = []
    original = Experiment.run

    def killed_in_second_run(self):
        started.append(self.run_dir)
        if len(started) == 2:
            raise KeyboardInterrupt  # the kill lands in the second run
        return original(self)

    monkeypatch.setattr(Experiment, "run", killed_in_second_run)
    rc, _, err = cli(capsys, *argv)
    assert rc == 130 and "interrupted" in err
    (folder,) = (tmp_path / "out").iterdir()
    state = read(folder / "grid.json")
    assert [r["status"] for r in state["runs"]] == ["complete", "pending"]
    assert all(Path(r["run_dir"]).is_dir() for r in state["runs"])
    first_results = Path(state["runs"][0]["run_dir"]) / "results.json"
    stamp = first_results.stat().st_mtime_ns

    started.clear()
    monkeypatch.setattr(
        Experiment, "run", lambda self: started.append(self.run_dir) or original(self)
    )
    rc, out, err = cli(capsys, *argv[:-3], "--resume", folder, "--no-progress")
    assert rc == 0, err
    assert "1 of 2 runs already complete, skipped" in err
    assert started == [Path(state["runs"][1]["run_dir"])]  # only the unfinished run ran
    assert first_results.stat().st_mtime_ns == stamp

    rows = list(csv.DictReader(open(folder / "grid.csv")))
    assert [float(r["faults.stuck_at_gmax_rate"]) for r in rows] == [0.0, 0.1]
    assert [r["status"] for r in rows] == ["complete", "complete"]
    for r in rows:
        for m in ("baseline", "qat", "ga"):
            assert 0 < float(r[f"{m}_test_pct"]) <= 100
        # the CSV holds the run's own results, as written in its folder
        h = read(Path(r["run_dir"]) / "results.json")["headline"]
        assert float(r["ga_test_pct"]) == pytest.approx(h["ga_pct"], abs=1e-9)
    # the profile axis reached the chip: the second cell ran on a faulty derived profile
    run1 = read(Path(rows[1]["run_dir"]) / "run.json")
    assert run1["profile"]["faults"]["stuck_at_gmax_rate"] == 0.1
    assert (
        read(Path(rows[0]["run_dir"]) / "run.json")["profile"]["faults"]["stuck_at_gmax_rate"] == 0
    )
    assert (folder / "grid-faults.stuck_at_gmax_rate.png").stat().st_size > 1000
    assert str(folder / "grid.csv") in out

    # a different grid is not resumed into this folder
    rc, _, err = cli(
        capsys, "sweep", "grid", config, "--grid", "faults.stuck_at_gmax_rate=0,0.2",
        "--run-root", tmp_path / "runs", "--resume", folder,
    )  # fmt: skip
    assert rc == 2 and "its grid differs in axes" in err


def test_grid_over_adc_bits_reports_energy_and_plots_accuracy_against_it(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(GRID_TOML.replace("[ga]", '[chip]\nprofile = "rram_1t1r_yao2020"\n\n[ga]'))
    rc, out, err = cli(
        capsys,
        "sweep",
        "grid",
        config,
        "--grid",
        "adc.bits=4,8",
        "--seeds",
        "1",
        "--run-root",
        tmp_path / "runs",
        "--out",
        tmp_path / "out",
        "--no-progress",
    )
    assert rc == 0, err
    (folder,) = (tmp_path / "out").iterdir()
    rows = list(csv.DictReader(open(folder / "grid.csv")))
    assert [int(r["adc.bits"]) for r in rows] == [4, 8]
    for r in rows:
        cost = read(Path(r["run_dir"]) / "results.json")["cost"]["models"]
        for m in ("baseline", "qat", "ga"):
            assert float(r[f"{m}_energy_nJ"]) == pytest.approx(1e9 * cost[m]["energy_J"])
            assert float(r[f"{m}_tops_per_w"]) == pytest.approx(cost[m]["tops_per_w"])
    # only the ADC term changes with its bits, and it grows as 2**bits (memsim.cost)
    low, high = (
        read(Path(r["run_dir"]) / "results.json")["cost"]["models"]["baseline"] for r in rows
    )
    assert high["adc_J"] == pytest.approx(low["adc_J"] * 2 ** (8 - 4), rel=1e-9)
    assert float(rows[1]["baseline_energy_nJ"]) > float(rows[0]["baseline_energy_nJ"])
    assert (folder / "grid-accuracy-vs-energy.png").stat().st_size > 1000


def test_grid_over_a_config_with_recovery_methods(tmp_path, capsys):
    config = tmp_path / "rec.toml"
    config.write_text(
        GRID_TOML.replace("[ga]", '[chip]\nprofile = "rram_1t1r_faulty_chen2015"\n\n[ga]')
        + '\n[recovery]\nmethods = ["qat", "defect_aware_readback"]\n'
    )
    rc, out, err = cli(
        capsys, "sweep", "grid", config, "--grid", "faults.stuck_at_gmax_rate=0.02,0.1",
        "--run-root", tmp_path / "runs", "--out", tmp_path / "out", "--no-progress",
    )  # fmt: skip
    assert rc == 0, err
    (folder,) = (tmp_path / "out").iterdir()
    rows = list(csv.DictReader(open(folder / "grid.csv")))
    assert [r["status"] for r in rows] == ["complete", "complete"]
    for r in rows:
        res = read(Path(r["run_dir"]) / "results.json")
        assert [m["method"] for m in res["methods"]] == ["baseline", "qat", "defect_aware_readback"]
        for m in ("baseline", "qat", "defect_aware_readback"):
            assert float(r[f"{m}_test_pct"]) == pytest.approx(res["headline"][f"{m}_pct"])
        assert "ga_test_pct" not in r


def test_the_device_of_the_run_context_reaches_every_method(monkeypatch, tmp_path):
    from recovery_support import recovery_config

    import lab.experiment.inputs
    import lab.experiment.pipeline as stage
    from lab.experiment.context import RunContext
    from lab.experiment.runner import run_experiment

    seen = []
    original = lab.experiment.inputs.prepare_inputs

    def spy(cfg, ctx):
        seen.append(("inputs", ctx.device))
        return original(cfg, ctx)

    run_method = stage._run_method

    def spy_method(exp, inputs, data, name, budget):
        seen.append((name, exp.ctx.device, str(next(inputs.baseline.parameters()).device)))
        return run_method(exp, inputs, data, name, budget)

    monkeypatch.setattr(lab.experiment.inputs, "prepare_inputs", spy)
    monkeypatch.setattr(stage, "_run_method", spy_method)
    cfg = recovery_config(
        ["qat", "progressive"], ga={"generations": 0}, fitness={"finetune_steps": 1}
    )
    ctx = RunContext(run_root=tmp_path, progress=False, echo=lambda s: None, device="cpu")
    run_experiment(cfg, ctx)
    assert seen == [("inputs", "cpu"), ("qat", "cpu", "cpu"), ("progressive", "cpu", "cpu")]


@pytest.mark.parametrize("vary_chips", [False, True])
def test_grid_replicates_are_independent_like_replicates_of_one_experiment(tmp_path, vary_chips):
    # a cell's replicates differ in every seed (baseline training, methods, test draws),
    # not only in the GA's: the spread between training seeds is the one that dominates
    from lab.experiment.context import CHIP_STRIDE
    from lab.studies.sweep_grid import cell_config

    config = tmp_path / "tiny.toml"
    config.write_text(GRID_TOML)
    cell = {"ga.generations": 1}
    first, second = (
        cell_config(config, None, (), cell, 0, r, tmp_path, vary_chips) for r in (0, 1)
    )
    assert second.experiment.seed == first.experiment.seed + 1
    assert second.ga.seed == first.ga.seed + 1
    assert second.evaluation.seed == first.evaluation.seed + 1
    chips = CHIP_STRIDE if vary_chips else 0
    assert second.chip.chip_seed == first.chip.chip_seed + chips
    assert (first.experiment.name, second.experiment.name) == ("tiny-c000-s0", "tiny-c000-s1")
