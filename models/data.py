"""Image-classification datasets as normalized float tensors.

``load_dataset(name)`` returns ``(train, test)`` :class:`ImageDataset` objects (a
:class:`torch.utils.data.TensorDataset` of ``(images, labels)`` with ``images`` float32
``(N, C, H, W)`` and ``labels`` int64 ``(N,)``) plus metadata: ``classes``, ``sha256``,
``mean``/``std`` (the per-channel statistics used to normalize) and ``source``.

Where the data comes from, in order:

1. ``root=`` given explicitly: ``<root>/<name>.npz``.
2. The ``MEMSIM_DATA`` environment variable: ``$MEMSIM_DATA/<name>.npz``.
3. The cache folder (``$MEMSIM_CACHE`` or ``~/.cache/memsim``): ``<cache>/<name>.npz``, which
   is written the first time by torchvision's own download (online users only).

The ``.npz`` layout is the one of ``shared/data/README.md``: uint8 ``x_train``/``x_test``
(``(N, 28, 28)`` grey or ``(N, 32, 32, 3)`` HWC RGB), uint8 ``y_train``/``y_test`` and a
unicode ``classes`` array. ``digits`` needs no file: it is scikit-learn's bundled 8x8 digits
with a fixed, seeded, stratified 1437/360 split.

Normalization uses the mean and standard deviation of the *training* split (per channel),
so both splits are normalized identically and no constant can drift from the data actually
loaded.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100")
"""Names accepted by :func:`load_dataset`."""

DIGITS_TEST_SIZE = 360
"""Size of the fixed digits test split (1797 images in all, so 1437 train)."""

DIGITS_SPLIT_SEED = 0
"""Seed of the stratified digits train/test split; changing it changes every digits result."""

_TORCHVISION_CLASSES = {
    "mnist": "MNIST",
    "fashion_mnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is in none of the places searched and cannot be downloaded."""


class DatasetFileError(ValueError):
    """A dataset file exists but cannot be read: corrupt, truncated or missing arrays."""


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")
"""Arrays of a dataset ``.npz`` archive."""


class ImageDataset(TensorDataset):
    """A ``TensorDataset`` of ``(images, labels)`` that knows where it came from.

    Attributes:
        images: Float32 tensor ``(N, C, H, W)``, normalized.
        labels: Int64 tensor ``(N,)`` of class indices.
        classes: Class names; ``classes[i]`` is the name of label ``i``.
        sha256: Hex digest of the source file (for ``digits``: of the raw arrays).
        name: Dataset name, e.g. ``"mnist"``.
        mean: Per-channel mean that was subtracted (in [0, 1] pixel units).
        std: Per-channel standard deviation that was divided by.
        source: Human-readable origin (a path or ``"sklearn"``).

    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        classes: Sequence[str],
        sha256: str,
        name: str,
        mean: Sequence[float],
        std: Sequence[float],
        source: str,
    ) -> None:
        super().__init__(images, labels)
        self.classes = list(classes)
        self.sha256 = sha256
        self.name = name
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.source = source

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same dataset with images and labels on ``device`` (``self`` if already there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self
        out = copy.copy(self)
        out.tensors = (self.images.to(device), self.labels.to(device))
        return out

    @property
    def images(self) -> Tensor:
        """The normalized images ``(N, C, H, W)``."""
        return self.tensors[0]

    @property
    def labels(self) -> Tensor:
        """The labels ``(N,)``."""
        return self.tensors[1]

    def subset(self, indices: Tensor) -> ImageDataset:
        """Return a new dataset holding only ``indices`` (metadata is kept)."""
        return ImageDataset(
            self.images[indices],
            self.labels[indices],
            classes=self.classes,
            sha256=self.sha256,
            name=self.name,
            mean=self.mean,
            std=self.std,
            source=self.source,
        )


def default_cache_dir() -> Path:
    """Return the download cache folder: ``$MEMSIM_CACHE`` or ``~/.cache/memsim``."""
    env = os.environ.get("MEMSIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "memsim"


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _to_nchw(x: np.ndarray) -> Tensor:
    """Convert uint8 HW / HWC images to float32 NCHW (values still 0..255)."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return t.contiguous().to(torch.float32)


def _normalize_(t: Tensor, scale: float, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """In place per channel: ``(t / scale - mean) / std`` (no second full-size tensor)."""
    for c, (m, s) in enumerate(zip(mean, std)):
        t[:, c].mul_(1.0 / (scale * s)).sub_(m / s)
    return t


def _from_arrays(
    name: str,
    arrays: dict[str, np.ndarray],
    classes: Sequence[str],
    sha256: str,
    source: str,
    scale: float,
) -> tuple[ImageDataset, ImageDataset]:
    x_train, x_test = _to_nchw(arrays["x_train"]), _to_nchw(arrays["x_test"])
    mean: list[float] = []
    std: list[float] = []
    for c in range(x_train.shape[1]):
        # torch's cascaded float32 reductions are exact to ~1e-7 relative on 0..255 values
        var, mu = torch.var_mean(x_train[:, c])
        mean.append(float(mu) / scale)
        std.append(float(var) ** 0.5 / scale)
    _normalize_(x_train, scale, mean, std)
    _normalize_(x_test, scale, mean, std)
    y_train = torch.as_tensor(arrays["y_train"].astype(np.int64))
    y_test = torch.as_tensor(arrays["y_test"].astype(np.int64))

    def make(x: Tensor, y: Tensor) -> ImageDataset:
        return ImageDataset(
            x, y, classes=classes, sha256=sha256, name=name, mean=mean, std=std, source=source
        )

    return make(x_train, y_train), make(x_test, y_test)


def load_npz(
    path: str | os.PathLike[str], name: str | None = None
) -> tuple[ImageDataset, ImageDataset]:
    """Load one ``<name>.npz`` archive in the ``shared/data`` format.

    Args:
        path: The archive.
        name: Dataset name to record; defaults to the file stem.

    Returns:
        ``(train, test)`` normalized datasets.

    Raises:
        FileNotFoundError: No such file.
        IsADirectoryError: ``path`` is a folder.
        DatasetFileError: The file is not a readable archive of the expected arrays.

    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected a dataset .npz file")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file")
    expected = "an .npz archive with " + ", ".join(NPZ_KEYS)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetFileError(f"{path}: a single array, not {expected}")
        with loaded as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise DatasetFileError(f"{path}: missing array(s) {missing}; expected {expected}")
            arrays = {k: npz[k] for k in NPZ_KEYS[:4]}
            classes = [str(c) for c in npz["classes"]]
    except DatasetFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types on a bad file
        raise DatasetFileError(
            f"{path}: corrupt or truncated dataset file ({type(exc).__name__}: {exc}); "
            f"expected {expected}; delete it or fetch it again"
        ) from exc
    for key in ("x_train", "x_test"):
        if arrays[key].dtype != np.uint8 or arrays[key].ndim not in (3, 4):
            raise DatasetFileError(f"{path}: {key} must be uint8 (N,H,W) or (N,H,W,C)")
    for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
        if arrays[y].ndim != 1 or len(arrays[y]) != len(arrays[x]):
            raise DatasetFileError(
                f"{path}: {y} must be 1-D with one label per image of {x} "
                f"({len(arrays[x])}), got shape {arrays[y].shape}"
            )
    return _from_arrays(
        name or path.stem, arrays, classes, file_sha256(path), str(path), scale=255.0
    )


def load_digits_dataset() -> tuple[ImageDataset, ImageDataset]:
    """Load scikit-learn's 8x8 digits with the fixed stratified 1437/360 split.

    Pixels (0..16) are scaled to [0, 1] and then normalized with the train statistics. No
    file and no network are involved.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # the raw values are integers 0..16
    target = digits.target.astype(np.uint8)
    idx_train, idx_test = train_test_split(
        np.arange(len(target)),
        test_size=DIGITS_TEST_SIZE,
        random_state=DIGITS_SPLIT_SEED,
        stratify=target,
    )
    digest = hashlib.sha256(images.tobytes() + target.tobytes()).hexdigest()
    arrays = {
        "x_train": images[idx_train],
        "y_train": target[idx_train],
        "x_test": images[idx_test],
        "y_test": target[idx_test],
    }
    classes = [str(c) for c in digits.target_names]
    return _from_arrays("digits", arrays, classes, digest, "sklearn", scale=16.0)


def _download_to_npz(name: str, cache: Path) -> Path:
    """Download ``name`` with torchvision and store it as ``<cache>/<name>.npz``."""
    import torchvision

    cls = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
    raw = cache / "torchvision"
    splits = [cls(root=str(raw), train=train, download=True) for train in (True, False)]
    arrays = {}
    for split, ds in zip(("train", "test"), splits):
        data = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
        arrays[f"x_{split}"] = data.astype(np.uint8)
        arrays[f"y_{split}"] = np.asarray(ds.targets, dtype=np.uint8)
    out = cache / f"{name}.npz"
    tmp = cache / f".{name}.tmp.npz"
    np.savez_compressed(tmp, classes=np.asarray(splits[0].classes), **arrays)  # type: ignore[arg-type]
    tmp.replace(out)  # atomic, so an interrupted download never leaves a half file
    return out


def _candidates(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    places = []
    if root is not None:
        places.append(Path(root).expanduser() / f"{name}.npz")
    env = os.environ.get("MEMSIM_DATA")
    if env:
        places.append(Path(env).expanduser() / f"{name}.npz")
    places.append(default_cache_dir() / f"{name}.npz")
    return places


def find_dataset_file(
    name: str, *, root: str | os.PathLike[str] | None = None, download: bool = True
) -> Path:
    """Return the ``.npz`` path for ``name``, downloading it into the cache if allowed.

    Raises:
        DatasetNotFoundError: Not found anywhere and the download failed or was disabled.

    """
    places = _candidates(name, root)
    for path in places:
        if path.is_file():
            return path
    reason = "download disabled"
    if download:
        cache = default_cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            return _download_to_npz(name, cache)
        except Exception as exc:  # noqa: BLE001 - any failure means "not available offline"
            reason = f"torchvision download failed: {type(exc).__name__}: {exc}"
    looked = "\n".join(f"  - {p}" for p in places)
    raise DatasetNotFoundError(
        f"dataset {name!r} not found. Looked in:\n{looked}\n"
        f"and {reason}.\n"
        f"Provide it by one of:\n"
        f"  * passing root=DIR (or --data-root DIR) where DIR/{name}.npz exists,\n"
        f"  * setting MEMSIM_DATA=DIR,\n"
        f"  * running once online so torchvision downloads it into {default_cache_dir()}.\n"
        f"The .npz format (x_train, y_train, x_test, y_test, classes; uint8) is described in "
        f"shared/data/README.md. 'digits' needs no file."
    )


def load_dataset(
    name: str, *, root: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[ImageDataset, ImageDataset]:
    """Load a dataset as normalized ``(train, test)`` tensors.

    Args:
        name: One of :data:`DATASETS` (``-`` is accepted for ``_``).
        root: Folder holding ``<name>.npz``; searched first.
        download: Whether to try torchvision's download into the cache as a last resort.

    Returns:
        ``(train, test)`` :class:`ImageDataset` objects.

    Raises:
        ValueError: Unknown name.
        DatasetNotFoundError: The data is nowhere to be found (see :func:`find_dataset_file`).

    """
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if key == "digits":
        return load_digits_dataset()
    train, test = load_npz(find_dataset_file(key, root=root, download=download), name=key)
    return train, test


def train_val_split(
    dataset: ImageDataset, val_fraction: float, seed: int
) -> tuple[ImageDataset, ImageDataset]:
    """Split ``dataset`` into stratified, disjoint train and validation parts.

    Each class contributes ``round(val_fraction * n_class)`` images to validation, picked by a
    generator seeded with ``seed``, so the split is reproducible and class-balanced.

    Args:
        dataset: Usually the train split of :func:`load_dataset`.
        val_fraction: Fraction in ``(0, 1)`` that goes to validation.
        seed: Seed of the split.

    Returns:
        ``(train_part, val_part)``, both keeping the metadata of ``dataset``.

    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    gen = torch.Generator().manual_seed(seed)
    labels = dataset.labels
    val_parts = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        val_parts.append(idx[: int(round(val_fraction * len(idx)))])
    val_idx = torch.sort(torch.cat(val_parts)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val_idx] = False
    train_idx = torch.nonzero(mask).flatten()
    return dataset.subset(train_idx), dataset.subset(val_idx)


CALIBRATION_SIZE = 256
"""Training images used to set a chip's calibrated DAC/ADC ranges after programming."""


def calibration_images(
    dataset: ImageDataset, size: int = CALIBRATION_SIZE, seed: int = 0
) -> Tensor:
    """A fixed random batch of ``size`` images of ``dataset`` (all if it is smaller).

    A chip with ``calibrated`` converters sets its ranges from these (``memsim.calibrate``)
    rather than from the first batch it happens to see, which in an evaluation would be
    validation or test images.
    """
    if size < 1:
        raise ValueError(f"calibration size must be >= 1, got {size}")
    if size >= len(dataset):
        return dataset.images
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=gen)[:size]
    return dataset.images[torch.sort(idx).values]


def stratified_fraction(data: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    """A class-balanced random ``fraction`` of ``data`` (all of it if ``fraction >= 1``).

    The validation part of a stratified :func:`train_val_split`, so subsets drawn with the
    same seed agree with the splits.
    """
    if fraction >= 1.0:
        return data
    return train_val_split(data, fraction, seed)[1]


def stratified_subset(data: ImageDataset, size: int, seed: int) -> ImageDataset:
    """A class-balanced random subset of about ``size`` images (all if ``size >= len``)."""
    if size >= len(data):
        return data
    return stratified_fraction(data, size / len(data), seed)


REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or install) root; ``shared/data`` beside it is found automatically."""


def resolve_data_root(explicit: str | os.PathLike[str] | None) -> str | None:
    """Folder to read ``<dataset>.npz`` from: the one rule every command uses.

    Order: ``explicit``; ``$MEMSIM_DATA`` (handled by :func:`load_dataset`);
    ``<repo>/shared/data`` or ``<repo>/../shared/data`` if present; else None (cache).
    """
    if explicit:
        return str(explicit)
    if os.environ.get("MEMSIM_DATA"):
        return None
    for candidate in (REPO_ROOT / "shared" / "data", REPO_ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return str(candidate)
    return None
