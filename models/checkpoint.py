"""The model registry and checkpoints that rebuild their own model.

A checkpoint is ``torch.save`` of a plain dict::

    {"format": 1, "arch": "protonet" | "mobilenet_v2_cifar" | "micronet" | "mlp" | "vit" | ...,
     "model_kwargs": {...}, "state_dict": {...}, "meta": {...}}

``meta`` holds only JSON-like values (task, bits, noise, seed, dataset sha256, scale,
accuracy, ...), so the file loads with ``torch.load(weights_only=True)``.

Every command that reads a checkpoint (``evaluate``, ``compare``, the experiments) builds
the model through this one registry.  A user's own network is added with
:func:`register_architecture`::

    models.register_architecture("mynet", MyNet)   # MyNet(**model_kwargs)
    models.save_checkpoint("mynet.pt", net, {"dataset": "mnist"}, model_kwargs={...})
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from memsim.atomic_io import atomic_torch_save
from models.micronet import MicroNet
from models.mobilenet import MobileNetV2CIFAR
from models.protonet import ProtoNet
from models.small import lenet5, mlp
from models.vit import ViT

CHECKPOINT_FORMAT = 1

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "protonet": ProtoNet,
    "mobilenet_v2_cifar": MobileNetV2CIFAR,
    "micronet": MicroNet,
    "mlp": mlp,
    "lenet5": lenet5,
    "vit": ViT,
}
"""Architecture name -> class or factory; it is called with ``**model_kwargs``."""


class CheckpointError(ValueError):
    """A file is not a readable model checkpoint of this format."""


def register_architecture(
    name: str, factory: Callable[..., nn.Module], *, replace: bool = False
) -> None:
    """Register a network so that checkpoints of it can be saved and loaded by name.

    Args:
        name: Registry name written into checkpoints.
        factory: A class or function returning the module from ``**model_kwargs``.
        replace: Allow overriding an existing name.

    Raises:
        ValueError: If ``name`` is taken and ``replace`` is false.

    """
    if name in ARCHITECTURES and not replace and ARCHITECTURES[name] is not factory:
        raise ValueError(f"architecture {name!r} is already registered")
    ARCHITECTURES[name] = factory


def arch_name(model: nn.Module) -> str:
    """Return the registry name of ``model``'s architecture (registered classes only)."""
    for name, cls in ARCHITECTURES.items():
        if isinstance(cls, type) and type(model) is cls:
            return name
    raise TypeError(
        f"{type(model).__name__} is not a registered architecture class; pass arch= "
        f"(known: {sorted(ARCHITECTURES)}) or register it with "
        "models.register_architecture(name, cls)"
    )


def build_model(arch: str, model_kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate a registered architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}; a network of "
            "your own is registered with models.register_architecture in your module (on "
            "the memsim command line: --import MODULE)"
        )
    return ARCHITECTURES[arch](**model_kwargs)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    meta: dict[str, Any],
    *,
    arch: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (architecture, constructor kwargs, weights) and ``meta`` to ``path``.

    Args:
        path: Destination; parent folders are created, and the write is atomic.
        model: The network.
        meta: JSON-like metadata (task, dataset, bits, ...).
        arch: Registry name; default: looked up from ``type(model)``.
        model_kwargs: Constructor kwargs; default: ``model.init_kwargs()`` when the model
            has it (all classes of this package do), else ``{}``.

    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if model_kwargs is None:
        init_kwargs = getattr(model, "init_kwargs", None)
        model_kwargs = init_kwargs() if callable(init_kwargs) else {}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch or arch_name(model),
        "model_kwargs": model_kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    atomic_torch_save(payload, path)
    return path


def save_model(
    path: str | os.PathLike[str],
    arch: str,
    model: nn.Module,
    meta: dict[str, Any],
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """:func:`save_checkpoint` with the architecture named first (for factory networks)."""
    return save_checkpoint(path, model, meta, arch=arch, model_kwargs=model_kwargs or {})


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(model, meta)``; the model is on the CPU in eval mode.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        IsADirectoryError: If ``path`` is a folder.
        CheckpointError: If it is not a checkpoint of this format, or its weights do not
            fit its model (a corrupt or edited file).

    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; expected a checkpoint file (.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if first.startswith("Weights only load failed"):
            first = "not a torch file of plain tensors and values"
        raise CheckpointError(
            f"{path}: not a readable checkpoint, corrupt or truncated ({first})"
        ) from None
    if not isinstance(payload, dict) or "arch" not in payload or "state_dict" not in payload:
        raise CheckpointError(
            f"{path}: not a memsim checkpoint (a dict with 'arch' and 'state_dict')"
        )
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {payload.get('format')!r}")
    meta = payload.get("meta") or {}
    kwargs = payload.get("model_kwargs") or {}
    if not isinstance(meta, dict) or not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: 'meta' and 'model_kwargs' must be dicts")
    if not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{path}: 'state_dict' must be a dict of tensors")
    try:
        model = build_model(payload["arch"], kwargs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild its model ({exc})") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: its weights do not fit its {payload['arch']!r} model ({first})"
        ) from None
    model.eval()
    return model, meta


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """The model of a checkpoint, in eval mode (:func:`load_checkpoint` without meta)."""
    return load_checkpoint(path)[0]
