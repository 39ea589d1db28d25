"""``memsim ga``: config overrides, config errors, and resuming an interrupted run."""

import pytest
from cli_support import TINY_TOML, cli, read, run_folder, run_root
from conftest import SEED_OFFSET


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


@pytest.fixture
def root(tmp_path_factory):
    return run_root(tmp_path_factory)


def test_set_overrides_reach_the_run_and_its_folder(tiny, root, capsys):
    rc, out, err = cli(
        capsys,
        "ga",
        tiny,
        "--run-root",
        root,
        "--no-progress",
        "--set",
        "ga.population_size=4",
        "--set",
        "ga.generations=1",
        "--set",
        'experiment.name="override"',
        "--set",
        'recovery.methods=["ga"]',
    )
    assert rc == 0, err
    folder = run_folder(out)
    assert folder.name.startswith("override-")
    cfg = read(folder / "config.json")
    assert cfg["ga"]["population_size"] == 4 and cfg["ga"]["generations"] == 1
    assert cfg["fitness"]["finetune_steps"] == 1  # from the file
    res = read(folder / "results.json")
    assert res["budget"]["chip_evaluations"] == 4 * 2  # P x (G + 1) x 1 fitness draw
    rows = {r["method"]: r for r in res["methods"]}
    assert list(rows) == ["baseline", "ga"] and res["reference"] == "baseline"
    chip = str(0 + SEED_OFFSET)  # every seed of a run is shifted by the offset
    assert len(rows["ga"]["chips"][chip]["accuracies"]) == 5  # 5 draws x 1 support set
    assert len(read(folder / "recovery" / "ga" / "history.json")) == 2
    assert f"vs baseline {chip} (pp)" in out


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ga.populaton_size=4", "unknown key 'populaton_size' in [ga]"),
        ("gaa.population_size=4", "unknown section 'gaa'"),
        ("ga.crossover_probability=1.5", "ga.crossover_probability: Input should be less"),
        ("evaluation.draws=2", "evaluation.draws: Input should be greater than or equal to 5"),
        ("ga.population_size", "--set expects section.key=value"),
    ],
)
def test_bad_overrides_are_errors_naming_the_key(tiny, root, capsys, setting, message):
    rc, out, err = cli(capsys, "ga", tiny, "--run-root", root, "--set", setting)
    assert rc == 2
    assert message in err
    assert out == ""


def test_unknown_key_in_the_file_is_an_error(tmp_path, root, capsys):
    path = tmp_path / "typo.toml"
    path.write_text(TINY_TOML.replace("[ga]\n", "[ga]\nmutation_rate = 0.1\n"))
    rc, _, err = cli(capsys, "ga", path, "--run-root", root)
    assert rc == 2
    assert "ga.mutation_rate: unknown key" in err


def test_resume_finishes_an_interrupted_run_identically(tiny, root, capsys, monkeypatch):
    # the experiment evaluates its population through an executor's ParallelFitness
    from lab.fitness.parallel import ParallelFitness

    rc, out, err = cli(capsys, "ga", tiny, "--run-root", root, "--no-progress")
    assert rc == 0, err
    reference = run_folder(out)

    original = ParallelFitness.evaluate_population

    def interrupted(self, population, generation, rng):
        if generation == 2:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        return original(self, population, generation, rng)

    monkeypatch.setattr(ParallelFitness, "evaluate_population", interrupted)
    rc, _, err = cli(capsys, "ga", tiny, "--run-root", root, "--no-progress")
    assert rc == 130 and "interrupted" in err
    monkeypatch.undo()

    # a changed config is refused, naming the difference
    rc, _, err = cli(
        capsys, "ga", tiny, "--resume", "--run-root", root, "--set", "ga.generations=5"
    )
    assert rc == 2 and "ga.generations" in err

    rc, out, err = cli(capsys, "ga", tiny, "--resume", "--run-root", root, "--no-progress")
    assert rc == 0, err
    resumed = run_folder(out)
    assert resumed != reference
    assert "GA: resuming" in err
    run = read(resumed / "run.json")
    assert [s["resumed"] for s in run["sessions"]] == [False, True]

    def reproducible(folder):
        return [
            {k: v for k, v in r.items() if k != "wall_time_s"}
            for r in read(folder / "recovery" / "ga" / "history.json")
        ]

    def scores(folder):
        return {r["method"]: r["chips"] for r in read(folder / "results.json")["methods"]}

    assert reproducible(resumed) == reproducible(reference)
    assert list(scores(resumed)) == ["baseline", "qat", "ga"]
    assert scores(resumed) == scores(reference)

    # nothing left to resume by name; a finished folder can still be named explicitly
    # (its saved config is used) and re-runs no stage
    rc, _, err = cli(capsys, "ga", tiny, "--resume", "--run-root", root)
    assert rc == 2 and "no unfinished run folder" in err
    before = read(resumed / "results.json")
    files = ("recovery/qat.pt", "recovery/ga/checkpoint.pt", "weights/ga.pt")
    stamps = {f: (resumed / f).stat().st_mtime_ns for f in files}
    rc, out, err = cli(capsys, "ga", "--resume", resumed, "--run-root", root, "--no-progress")
    assert rc == 0, err
    assert run_folder(out) == resumed
    assert read(resumed / "results.json")["methods"] == before["methods"]
    assert "GA generation" not in err
    assert stamps == {f: (resumed / f).stat().st_mtime_ns for f in stamps}


def test_ga_without_config_or_resume_is_an_error(capsys):
    rc, _, err = cli(capsys, "ga")
    assert rc == 2 and "give a CONFIG.toml" in err


def test_run_folders_are_never_reused(tmp_path):
    from lab.run_folder import new_run_dir

    a, b = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert a != b and a.is_dir() and b.is_dir()


def test_chip_aware_ga_and_controls_on_a_faulty_chip(tiny, root, capsys):
    rc, out, err = cli(
        capsys,
        "ga",
        tiny,
        "--run-root",
        root,
        "--no-progress",
        "--set",
        'chip.profile="rram_1t1r_faulty_chen2015"',
        "--set",
        "chip.chip_seed=3",
        "--set",
        "ga.generations=1",
        "--set",
        "fitness.chip_aware=true",
        "--set",
        'recovery.methods=["qat", "ga", "defect_aware_oracle"]',
    )
    assert rc == 0, err
    folder = run_folder(out)
    for name in ("qat", "ga", "defect_aware_oracle"):
        assert (folder / "weights" / f"{name}.pt").is_file()
    chip = str(3 + SEED_OFFSET)
    rows = {r["method"]: r["chips"][chip] for r in read(folder / "results.json")["methods"]}
    assert list(rows) == ["baseline", "qat", "ga", "defect_aware_oracle"]
    assert rows["ga"]["paired_vs_reference"]["n"] == 5
    # the two controls differ only in what the fine-tune sees, and they train differently
    assert rows["qat"]["accuracies"] != rows["defect_aware_oracle"]["accuracies"]
    assert "defect_aware_oracle" in out and "upper reference" in out
