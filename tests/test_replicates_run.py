"""A study of replicates: same numbers on every executor, and a failed replicate resumes."""

import pytest
import torch
from cli_support import read, run_root
from recovery_support import recovery_config


def _cfg():
    return recovery_config(
        ["qat", "defect_aware_oracle"],
        experiment={"replicates": 2},
        chip={"transfer_chip_seeds": []},
        data={"test_size": 60},
        ga={"generations": 0},
        fitness={"finetune_steps": 3},
    )


def _ctx(root, executor=None):
    from lab.experiment.context import RunContext

    return RunContext(run_root=root, progress=False, echo=lambda s: None, executor=executor)


def _numbers(results):
    return [(r["method"], r["chips"]) for r in results["methods"]]


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    from lab.studies.replicates import run_study

    torch.set_num_threads(1)
    return run_study(_cfg(), _ctx(run_root(tmp_path_factory)))


def test_a_study_holds_one_run_folder_per_replicate_and_their_aggregate(serial):
    results, folder = serial
    assert results["replicates"] == 2
    study = read(folder / "study.json")
    assert study["replicate_dirs"] == ["rep-00", "rep-01"]
    reps = [read(folder / d / "results.json") for d in study["replicate_dirs"]]
    assert [r["seeds"]["baseline"] - reps[0]["seeds"]["baseline"] for r in reps] == [0, 1]
    oracle = next(r for r in results["methods"] if r["method"] == "defect_aware_oracle")
    chip = str(results["fitness_chip"])
    want = [
        next(m for m in r["methods"] if m["method"] == "defect_aware_oracle")["chips"][chip]
        for r in reps
    ]
    v = oracle["chips"][chip]["vs_reference"]
    assert v["replicate_pp"] == [w["paired_vs_reference"]["mean_pp"] for w in want]
    assert oracle["chips"][chip]["replicate_means_pct"] == [w["mean_pct"] for w in want]


def test_replicates_on_worker_processes_give_the_same_numbers(serial, tmp_path_factory):
    from lab.executors import ExecutorSpec
    from lab.studies.replicates import run_study

    spec = ExecutorSpec(kind="process", workers=2)
    results, folder = run_study(_cfg(), _ctx(run_root(tmp_path_factory), spec))
    assert _numbers(results) == _numbers(serial[0])
    assert (folder / "rep-01" / "log.txt").is_file()  # each worker logs to its folder


def test_a_failed_replicate_is_resumed_and_the_others_are_kept(
    serial, tmp_path_factory, monkeypatch
):
    import lab.studies.replicates
    from lab.experiment.runner import ExperimentError
    from lab.studies.replicates import run_study

    root = run_root(tmp_path_factory)
    original = lab.studies.replicates.run_experiment
    calls = []

    def second_fails(config, ctx, **kwargs):
        calls.append(config.experiment.name)
        if len(calls) == 2:
            raise ExperimentError("simulated crash")
        return original(config, ctx, **kwargs)

    monkeypatch.setattr(lab.studies.replicates, "run_experiment", second_fails)
    with pytest.raises(ExperimentError, match="simulated crash"):
        run_study(_cfg(), _ctx(root), folder=root / "studies")
    monkeypatch.undo()
    (folder,) = (root / "studies").iterdir()
    assert (folder / "rep-00" / "results.json").is_file()
    assert not (folder / "rep-01" / "results.json").exists()
    stamp = (folder / "rep-00" / "results.json").stat().st_mtime_ns
    results, again = run_study(_cfg(), _ctx(root), resume_dir=folder)
    assert again == folder and _numbers(results) == _numbers(serial[0])
    assert (folder / "rep-00" / "results.json").stat().st_mtime_ns == stamp  # not rerun
