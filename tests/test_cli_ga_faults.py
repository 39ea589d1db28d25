"""``memsim ga`` run folders under faults: failed starts, moved working directory, damaged
GA checkpoint, finished runs.  Nothing a refusal touches may change on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cli_support import TINY_TOML, cli, read, run_folder, run_root
from conftest import SEED_OFFSET

SMALL = (
    "--no-progress",
    "--set",
    "ga.population_size=2",  # the legal minimum, with the default sigmoid_rws selection
    "--set",
    "ga.generations=2",
    "--set",
    'recovery.methods=["ga"]',
)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(root))] = (digest, p.stat().st_mtime_ns)
    return out


def test_a_start_that_fails_in_setup_is_marked_and_never_resumed(tmp_path, capsys, monkeypatch):
    import lab.experiment.inputs
    from models.data import DatasetFileError

    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    root = tmp_path / "rr"

    def broken(*_a, **_k):
        raise DatasetFileError("data/digits.npz: corrupt or truncated dataset file")

    monkeypatch.setattr(lab.experiment.inputs, "prepare_inputs", broken)
    rc, out, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", root, *SMALL)
    assert rc == 2 and out == ""
    assert err.strip() == ("memsim ga: error: data/digits.npz: corrupt or truncated dataset file")
    monkeypatch.undo()
    (folder,) = (root / "ga").iterdir()
    run = read(folder / "run.json")
    assert run["status"] == "failed"
    assert run["error"] == "DatasetFileError: data/digits.npz: corrupt or truncated dataset file"
    before = snapshot(root)

    rc, _, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--resume", "--run-root", root, *SMALL)
    assert rc == 2
    assert err.strip() == f"memsim ga: error: no unfinished run folder {root}/ga/tiny-* to resume"
    rc, _, err = cli(capsys, "ga", "--resume", folder, "--no-progress")
    assert rc == 2
    assert err.strip() == (
        f"memsim ga: error: {folder}: its start failed (DatasetFileError: data/digits.npz: "
        "corrupt or truncated dataset file), so it is never resumed; fix the cause and start a "
        "new run"
    )
    assert snapshot(root) == before


def test_resume_uses_the_folders_own_root_refuses_a_damaged_checkpoint_and_leaves_a_finished_run(
    tmp_path, capsys, monkeypatch
):

    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    (start / "tiny.toml").write_text(TINY_TOML)
    monkeypatch.chdir(start)

    # the experiment evaluates its population through an executor's ParallelFitness
    from lab.fitness.parallel import ParallelFitness

    original = ParallelFitness.evaluate_population

    def interrupted(self, population, generation, rng):
        if generation == 2:
            raise KeyboardInterrupt
        return original(self, population, generation, rng)

    monkeypatch.setattr(ParallelFitness, "evaluate_population", interrupted)
    # a relative run root: the resume below runs from another directory
    rc, _, err = cli(capsys, "ga", "tiny.toml", "--run-root", "rr", *SMALL)
    assert rc == 130, err
    monkeypatch.setattr(ParallelFitness, "evaluate_population", original)
    root = (start / "rr").resolve()
    (folder,) = (root / "ga").iterdir()
    baseline = root / "baselines" / f"protonet-digits-quick-seed{SEED_OFFSET}-holdout300.pt"
    assert baseline.is_file()

    monkeypatch.chdir(elsewhere)
    checkpoint = folder / "recovery" / "ga" / "checkpoint.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 3])
    before = snapshot(root)
    rc, out, err = cli(capsys, "ga", "--resume", folder, "--no-progress")
    assert rc == 2 and out == ""
    assert err.strip().startswith(
        f"memsim ga: error: {checkpoint}: corrupt or truncated GA checkpoint ("
    )
    assert err.strip().endswith("); restore it from a backup, or start a new run")
    assert snapshot(root) == before
    assert list(elsewhere.iterdir()) == []

    checkpoint.write_bytes(good)
    rc, out, err = cli(capsys, "ga", "--resume", folder, "--no-progress")
    assert rc == 0, err
    assert run_folder(out) == folder
    assert f"baseline: reusing {baseline}" in err  # not a new baseline in ./runs
    assert "GA: resuming" in err
    assert list(elsewhere.iterdir()) == []
    assert read(folder / "run.json")["status"] == "complete"

    # a finished run: said so, and not one byte or mtime changes
    before = snapshot(root)
    rc, out, err = cli(capsys, "ga", "--resume", folder, "--no-progress")
    assert rc == 0, err
    assert (
        f"{folder} is finished (run.json status 'complete'); nothing was rerun or rewritten" in err
    )
    assert run_folder(out) == folder
    assert snapshot(root) == before


def test_a_baseline_of_another_recipe_is_refused_and_kept(tmp_path, tmp_path_factory, capsys):
    import torch

    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    shared = run_root(tmp_path_factory)  # trains the session's digits baseline if needed
    rc, _, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", shared, *SMALL)
    assert rc == 0, err
    name = f"protonet-digits-quick-seed{SEED_OFFSET}-holdout300.pt"
    payload = torch.load(shared / "baselines" / name, weights_only=False)
    assert payload["meta"]["recipe"]["train"]["episodes"] == 200  # the current quick recipe

    # the same file name, trained by an older version whose quick recipe had 150 episodes
    root = tmp_path / "rr"
    stale = root / "baselines" / name
    stale.parent.mkdir(parents=True)
    payload["meta"]["recipe"]["train"]["episodes"] = 150
    torch.save(payload, stale)
    before = stale.read_bytes()
    rc, out, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", root, *SMALL)
    assert rc == 2 and out == ""
    assert err.strip() == (
        f"memsim ga: error: {stale}: the baseline was trained with another quick recipe "
        "(train.episodes: 150 in the checkpoint, 200 now); it is kept; move it away, or use "
        "another --run-root, to train the current quick recipe of protonet-digits"
    )
    assert stale.read_bytes() == before

    # a checkpoint that records no recipe cannot be checked, so it is not reused either
    del payload["meta"]["recipe"]
    torch.save(payload, stale)
    rc, out, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", root, *SMALL)
    assert rc == 2 and out == ""
    assert "the baseline checkpoint records no recipe" in err
    assert not list((root / "ga").glob("*/recovery/ga/checkpoint.pt"))  # no GA started

    # moved away: the current recipe is trained there and reused from then on
    stale.unlink()
    rc, _, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", root, *SMALL)
    assert rc == 0, err
    assert f"-> {stale}" in err
    rc, _, err = cli(capsys, "ga", tmp_path / "tiny.toml", "--run-root", root, *SMALL)
    assert rc == 0 and f"baseline: reusing {stale}" in err
