"""Tests of models.data: .npz loading, digits, resolution order and the missing-data error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA as SHARED_DATA

import models.data as data
from models.data import (
    DatasetNotFoundError,
    load_dataset,
    load_npz,
    train_val_split,
)

# sha256 of the archives as documented in shared/data/README.md
SHARED_SHA256 = {
    "mnist": "1a9fb53be6f83d6098d96fa99748e157b118a436c2c6818a7bb2a9cb7fd0514e",
    "fashion_mnist": "e705ed08ad9c39078e085a3c510950cb2edb6b244a55dc18cf4fe7f8ed487f02",
    "cifar10": "61040feefc0f145d17cb154db606f9d3a602b461f4328a3cf10bd8eab431944e",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no test may see the developer's MEMSIM_DATA or write into ~/.cache
    monkeypatch.delenv("MEMSIM_DATA", raising=False)
    monkeypatch.setenv("MEMSIM_CACHE", str(tmp_path / "cache"))


def _write_npz(path: Path, rgb: bool, n_train: int = 40, n_test: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (32, 32, 3) if rgb else (28, 28)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 4).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 4).astype(np.uint8),
    }
    np.savez_compressed(path, classes=np.array(["a", "b", "c", "d"]), **arrays)
    return arrays


@pytest.mark.parametrize("rgb", [False, True])
def test_npz_loads_normalized_nchw_with_metadata(tmp_path: Path, rgb: bool) -> None:
    path = tmp_path / "toy.npz"
    arrays = _write_npz(path, rgb)
    train, test = load_npz(path)
    channels = 3 if rgb else 1
    size = 32 if rgb else 28
    assert train.images.shape == (40, channels, size, size)
    assert test.images.shape == (20, channels, size, size)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert train.labels.tolist() == arrays["y_train"].tolist()
    assert train.classes == ["a", "b", "c", "d"] == test.classes
    assert train.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == test.sha256
    # normalized with the train statistics: per channel mean 0, std 1 on train
    per_channel = train.images.transpose(0, 1).reshape(channels, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(channels), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(channels), atol=1e-4, rtol=0)
    # the transform is the documented one: (x / 255 - mean) / std, channels last -> first
    raw = arrays["x_test"][0].astype(np.float32) / 255.0
    raw = raw[None] if not rgb else raw.transpose(2, 0, 1)
    mean = np.array(train.mean, dtype=np.float32)[:, None, None]
    std = np.array(train.std, dtype=np.float32)[:, None, None]
    np.testing.assert_allclose(test.images[0].numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5)


def test_root_then_env_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, env = tmp_path / "root", tmp_path / "env"
    root.mkdir()
    env.mkdir()
    _write_npz(root / "mnist.npz", rgb=False, n_train=12)
    _write_npz(env / "mnist.npz", rgb=False, n_train=16)
    monkeypatch.setenv("MEMSIM_DATA", str(env))
    assert len(load_dataset("mnist", root=root, download=False)[0]) == 12
    assert len(load_dataset("mnist", download=False)[0]) == 16
    # an explicit root without the file falls through to MEMSIM_DATA
    assert len(load_dataset("mnist", root=tmp_path, download=False)[0]) == 16


def test_cache_folder_is_searched_last(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    _write_npz(cache / "cifar10.npz", rgb=True, n_train=8)
    train, _ = load_dataset("cifar-10".replace("-", ""), download=False)
    assert len(train) == 8 and train.images.shape[1] == 3


def test_missing_dataset_error_lists_every_place_and_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    monkeypatch.setenv("MEMSIM_DATA", str(env))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion_mnist", root=tmp_path / "nowhere", download=False)
    msg = str(info.value)
    for place in (tmp_path / "nowhere", env, tmp_path / "cache"):
        assert str(place / "fashion_mnist.npz") in msg
    assert "MEMSIM_DATA" in msg and "root=" in msg and "download disabled" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_offline_download_failure_becomes_the_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def offline(name: str, cache: Path) -> Path:
        raise OSError("Name or service not known")

    monkeypatch.setattr(data, "_download_to_npz", offline)
    with pytest.raises(DatasetNotFoundError, match="torchvision download failed.*not known"):
        load_dataset("cifar100")


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


def test_digits_fixed_stratified_split() -> None:
    train, test = load_dataset("digits")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.classes == [str(i) for i in range(10)]
    assert train.source == "sklearn" and len(train.sha256) == 64
    counts = torch.bincount(test.labels, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified: 360 / 10
    torch.testing.assert_close(train.images.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    # fixed: a second load is identical
    train2, test2 = load_dataset("digits")
    assert torch.equal(train.images, train2.images) and torch.equal(test.labels, test2.labels)
    assert train.sha256 == train2.sha256


def test_train_val_split_is_stratified_disjoint_and_seeded() -> None:
    train, _ = load_dataset("digits")
    part, val = train_val_split(train, 0.2, seed=3)
    assert len(part) + len(val) == len(train)
    assert abs(len(val) - 0.2 * len(train)) <= 10
    counts = torch.bincount(val.labels, minlength=10).float()
    expected = 0.2 * torch.bincount(train.labels, minlength=10).float()
    assert bool(((counts - expected).abs() <= 1).all())
    # disjoint: no image of val is in part (digits has a few duplicates, so compare rows)
    joined = torch.cat([part.images, val.images]).flatten(1)
    assert (
        torch.unique(joined, dim=0).shape[0]
        == torch.unique(train.images.flatten(1), dim=0).shape[0]
    )
    again = train_val_split(train, 0.2, seed=3)[1]
    assert torch.equal(again.images, val.images)
    other = train_val_split(train, 0.2, seed=4)[1]
    assert not torch.equal(other.images, val.images)
    assert val.classes == train.classes and val.sha256 == train.sha256
    with pytest.raises(ValueError):
        train_val_split(train, 1.0, seed=0)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared dataset folder {SHARED_DATA} absent")
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shared_mnists(name: str) -> None:
    if not (SHARED_DATA / f"{name}.npz").is_file():
        pytest.skip(f"{name}.npz not in {SHARED_DATA}")
    train, test = load_dataset(name, root=SHARED_DATA)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.sha256 == SHARED_SHA256[name]
    assert len(train.classes) == 10
    assert torch.bincount(test.labels).tolist()[:2] == (
        [980, 1135] if name == "mnist" else [1000, 1000]
    )
    assert abs(float(train.images.mean())) < 1e-4


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared dataset folder {SHARED_DATA} absent")
def test_shared_cifar10() -> None:
    if not (SHARED_DATA / "cifar10.npz").is_file():
        pytest.skip(f"cifar10.npz not in {SHARED_DATA}")
    train, test = load_dataset("cifar10", root=SHARED_DATA)
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert train.sha256 == SHARED_SHA256["cifar10"]
    assert train.classes[3] == "cat" and int(test.labels[0]) == 3  # README: first test image
    np.testing.assert_allclose(train.mean, (0.4913, 0.4821, 0.4465), atol=2e-4)
