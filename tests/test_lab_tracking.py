"""``--track tensorboard:DIR``: GA generations and training epochs read back from event files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from ga import GAConfig, GATrainer, Genome  # noqa: E402
from lab.tracking import TensorBoardTracker, parse_track  # noqa: E402
from memsim.tracking import Tracker, active_tracker, tracking  # noqa: E402
from models.data import ImageDataset  # noqa: E402
from models.train import ClassifierConfig, train_classifier  # noqa: E402

GENOME = Genome([("w", (3, 4))])


class Quadratic:
    """exp(-mean((x - t)^2)): a fitness the GA can climb, with no data and no chip."""

    def evaluate_population(self, pop, generation, rng):
        target = torch.linspace(-1, 1, GENOME.n_genes)
        return torch.exp(-((pop.double() - target) ** 2).mean(dim=1)), None


def _ga(generations: int = 3, **kw: object):
    cfg = GAConfig(population_size=4, generations=generations, progress=False)
    base = torch.full((GENOME.n_genes,), 0.3)
    return GATrainer(cfg, Quadratic(), base, genome=GENOME, **kw).run()  # type: ignore[arg-type]


def _data() -> ImageDataset:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 4
    images = torch.randn(64, 1, 4, 4, generator=gen) + labels[:, None, None, None].float()
    return ImageDataset(
        images,
        labels,
        classes=list("abcd"),
        sha256="synthetic",
        name="synthetic",
        mean=(0.0,),
        std=(1.0,),
        source="test",
    )


def _train(**kw: object) -> list[float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    cfg = ClassifierConfig(epochs=3, batch_size=16, lr=0.05, augment=False)
    return train_classifier(model, _data(), cfg, seed=0, **kw)  # type: ignore[arg-type]


def _scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_tracker_is_a_tracker() -> None:
    assert isinstance(TensorBoardTracker("unused"), Tracker)


def test_ga_generations_are_read_back(tmp_path: Path) -> None:
    with TensorBoardTracker(tmp_path) as tb:
        result = _ga(tracker=tb)
    assert tb.run_dirs == [tmp_path / "run-00"]
    for key in ("best", "mean", "best_ever"):
        got = _scalars(tmp_path / "run-00", f"ga/{key}")
        want = [(r.generation, getattr(r, key)) for r in result.history]
        assert [s for s, _ in got] == [0, 1, 2, 3]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def test_training_epochs_are_read_back(tmp_path: Path) -> None:
    with TensorBoardTracker(tmp_path) as tb:
        losses = _train(tracker=tb)
    got = _scalars(tmp_path / "run-00", "train/loss")
    assert [s for s, _ in got] == [0, 1, 2]
    assert [v for _, v in got] == pytest.approx(losses, rel=1e-6)
    assert [s for s, _ in _scalars(tmp_path / "run-00", "train/lr")] == [0, 1, 2]


def test_the_active_tracker_reaches_loops_built_without_one(tmp_path: Path) -> None:
    # the experiment pipeline builds its GATrainer without a tracker: the CLI activates one
    tb = TensorBoardTracker(tmp_path)
    with tracking(tb):
        assert active_tracker() is tb
        losses = _train()
        result = _ga(generations=2)
    tb.close()
    assert active_tracker() is None
    # training then GA in one run: each series counts from 0, all in run-00
    assert [v for _, v in _scalars(tmp_path / "run-00", "train/loss")] == pytest.approx(losses)
    assert [s for s, _ in _scalars(tmp_path / "run-00", "ga/best")] == [0, 1, 2]
    assert len(result.history) == 3


def test_a_series_that_starts_again_opens_a_new_run(tmp_path: Path) -> None:
    with TensorBoardTracker(tmp_path) as tb:
        _ga(generations=2, tracker=tb)  # replicate 0
        _ga(generations=2, tracker=tb)  # replicate 1: its generation 0 must not overwrite
    assert tb.run_dirs == [tmp_path / "run-00", tmp_path / "run-01"]
    for run in tb.run_dirs:
        assert [s for s, _ in _scalars(run, "ga/best")] == [0, 1, 2]
    # a second command into the same folder adds runs after the existing ones
    with TensorBoardTracker(tmp_path) as again:
        _ga(generations=1, tracker=again)
    assert again.run_dirs == [tmp_path / "run-02"]


def test_off_by_default_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.utils.tensorboard

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("a SummaryWriter was opened with tracking off")

    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", forbidden)
    monkeypatch.chdir(tmp_path)  # SummaryWriter's default folder would be ./runs
    assert active_tracker() is None
    _ga(generations=1)
    _train()
    assert list(tmp_path.iterdir()) == []
    # a tracker that is given nothing to log writes nothing either
    with TensorBoardTracker(tmp_path / "tb") as tb:
        pass
    assert tb.run_dirs == [] and not (tmp_path / "tb").exists()


def test_parse_track() -> None:
    assert parse_track("tensorboard:runs/tb") == ("tensorboard", Path("runs/tb"))
    for bad in ("tensorboard", "tensorboard:", "wandb:x"):
        with pytest.raises(argparse.ArgumentTypeError, match="KIND:DIR"):
            parse_track(bad)


def test_cli_train_baseline_tracks_episodes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cli_support import cli

    tb = tmp_path / "tb"
    rc, out, err = cli(
        capsys,
        "train-baseline",
        "protonet-digits",
        "--out",
        tmp_path / "ckpt",
        "--set",
        "episodes=12",
        "--track",
        f"tensorboard:{tb}",
    )
    assert rc == 0, err
    assert json.loads(out)["checkpoint"]  # stdout stays the metrics JSON
    assert f"tracking: {tb / 'run-00'}" in err
    assert [s for s, _ in _scalars(tb / "run-00", "train/loss")] == list(range(12))


def test_cli_rejects_a_bad_track(capsys: pytest.CaptureFixture) -> None:
    from cli_support import cli

    rc, _, err = cli(capsys, "ga", "--track", "tensorboard")
    assert rc == 2 and "KIND:DIR" in err
