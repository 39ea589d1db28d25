"""``memsim reproduce table1`` and ``memsim sweep figures`` on tiny settings."""

import csv
from pathlib import Path

import pytest
from cli_support import TINY_TOML, cli, read, run_root

from lab.experiment.config import load_config
from lab.studies.sweeps import load_sweep

REPO = Path(__file__).resolve().parents[1]
TINY_SETS = ["--set", "ga.generations=1", "--set", "ga.population_size=3"]


@pytest.fixture
def root(tmp_path_factory):
    return run_root(tmp_path_factory)


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_every_shipped_config_validates(scale):
    configs = sorted((REPO / "experiments").rglob("*.toml"))
    experiments = [p for p in configs if "sweeps" not in p.parts]
    assert len(experiments) >= 6
    for path in experiments:
        cfg = load_config(path, scale=scale)
        assert cfg.experiment.scale == scale
        assert cfg.evaluation.draws >= 5
    rows = sorted((REPO / "experiments" / "table1").glob("*.toml"))
    table1 = [load_config(p, scale="paper") for p in rows]
    for cfg in table1:  # the paper's GA settings
        g = cfg.ga
        assert (g.population_size, g.generations, g.selection.value, g.crossover.value) == (
            10,
            25,
            "sigmoid_rws",
            "two_points",
        )
        assert (g.crossover_probability, g.mutation.value, g.mutation_probability) == (
            0.8,
            "maxmin",
            0.01,
        )
        assert cfg.experiment.paper_baseline and cfg.experiment.paper_ga
        if cfg.experiment.task.startswith("protonet"):
            assert g.init.value == "origin"
    for path in sorted((REPO / "experiments/sweeps").glob("*.toml")):
        spec, base = load_sweep(path, scale)
        assert base.is_file()
        load_config(base, scale=scale, overrides=spec.set)


def test_table1_runs_rows_and_skips_unavailable_data(tmp_path, root, capsys):
    configs = tmp_path / "rows"
    configs.mkdir()
    (tmp_path / "empty").mkdir()  # a --data-root with no datasets (a missing one is refused)
    (configs / "protonet_digits.toml").write_text(
        TINY_TOML.replace(
            "[experiment]\n", "[experiment]\npaper_baseline = 70.0\npaper_ga = 80.0\n"
        )
    )
    # a row whose dataset is nowhere: reported as skipped, with the reason
    (configs / "micronet_cifar100.toml").write_text(
        (REPO / "experiments/table1/micronet_cifar100.toml").read_text()
    )
    rc, out, err = cli(
        capsys,
        "reproduce",
        "table1",
        "--scale",
        "quick",
        "--configs",
        configs,
        "--run-root",
        root,
        "--data-root",
        tmp_path / "empty",
        "--no-progress",
        "--set",
        "data.download=false",
        *TINY_SETS,
    )
    assert rc == 0, err
    folder = Path(out.strip().splitlines()[-1].split("wrote ")[1].split(" and ")[0]).parent
    table = read(folder / "table1.json")
    digits = table["rows"]["protonet_digits"]
    assert digits["status"] == "complete"
    r = digits["results"]
    assert 50 < r["baseline_pct"] <= 100 and 50 < r["ga_pct"] <= 100 and "qat_pct" in r
    assert r["ga_minus_qat_pp"] == pytest.approx(r["ga_pct"] - r["qat_pct"], abs=1e-9)
    cifar = table["rows"]["micronet_cifar100"]
    assert cifar["status"] == "skipped" and "cifar100" in cifar["reason"]
    md = (folder / "table1.md").read_text()
    assert md in out  # printed as well
    assert "| ProtoNet | digits (8x8) | 2-bit | 5% | 70.00 | 80.00 |" in md
    assert "| MicroNet | CIFAR-100 | ternary | 5% | 73.90 | 76.19 | skipped:" in md
    assert f"| {r['baseline_pct']:.2f} ± {r['baseline_std_pct']:.2f} |" in md

    # resuming keeps the finished row, retries the skipped one and runs a new row, here
    # in a `memsim ga --resume` subprocess (--jobs 2)
    (configs / "second.toml").write_text(TINY_TOML.replace('name = "tiny"', 'name = "second"'))
    rc, out, err = cli(
        capsys,
        "--threads",
        "1",
        "reproduce",
        "table1",
        "--scale",
        "quick",
        "--configs",
        configs,
        "--run-root",
        root,
        "--data-root",
        tmp_path / "empty",
        "--resume",
        folder,
        "--no-progress",
        "--jobs",
        "2",
        "--set",
        "data.download=false",
        *TINY_SETS,
    )
    assert rc == 0, err
    assert "protonet_digits: already complete" in err
    table = read(folder / "table1.json")
    assert table["rows"]["protonet_digits"] == digits
    second = table["rows"]["second"]
    assert second["status"] == "complete", second
    assert (Path(second["run_dir"]) / "log.txt").is_file()
    # same config and seeds as the first row, so the same numbers, in or out of process
    assert second["results"]["baseline_pct"] == r["baseline_pct"]


def test_sweep_figures_write_png_and_csv(tmp_path, root, capsys):
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    base = tmp_path / "tiny.toml"
    base.write_text(TINY_TOML)
    (sweeps / "figA_pop.toml").write_text(
        '[sweep]\nname = "figA"\ntitle = "population"\nbase = "../tiny.toml"\n'
        'set = [\'recovery.methods=["ga"]\', "ga.generations=1"]\n'
        'axes = [{key = "ga.population_size", values = [3, 4]}]\n'
    )
    (sweeps / "figB_gen.toml").write_text(
        '[sweep]\nname = "figB"\ntitle = "generations"\nkind = "generations"\n'
        'base = "../tiny.toml"\n'
        'set = [\'recovery.methods=["ga"]\', "evaluation.test_every=1", "ga.generations=2"]\n'
    )
    rc, out, err = cli(
        capsys,
        "sweep",
        "figures",
        "--scale",
        "quick",
        "--sweeps",
        sweeps,
        "--run-root",
        root,
        "--no-progress",
    )
    assert rc == 0, err
    folder = Path(out.strip().splitlines()[-1].split("sweep folder: ")[1].split("  (")[0])
    rows = list(csv.DictReader(open(folder / "figA" / "figA.csv")))
    assert [int(r["ga.population_size"]) for r in rows] == [3, 4]
    assert all(50 < float(r["ga_pct"]) <= 100 for r in rows)
    assert rows[0]["baseline_pct"] == rows[1]["baseline_pct"]  # one baseline, shared
    gens = list(csv.DictReader(open(folder / "figB" / "figB.csv")))
    assert [int(r["generation"]) for r in gens] == [0, 1, 2]
    assert all(r["test_best_ever_mean_pct"] for r in gens)  # scored every generation
    for name in ("figA", "figB"):
        assert (folder / name / f"{name}.png").stat().st_size > 1000


def test_sweep_config_errors_name_the_key(tmp_path, capsys):
    sweeps = tmp_path / "s"
    sweeps.mkdir()
    (sweeps / "bad.toml").write_text('[sweep]\nname = "b"\nbase = "x.toml"\naxis = []\n')
    rc, _, err = cli(capsys, "sweep", "figures", "--sweeps", sweeps, "--run-root", tmp_path)
    assert rc == 2 and "axis: unknown key" in err
