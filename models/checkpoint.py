"""Checkpoints that rebuild their own model.

A checkpoint is ``torch.save`` of a plain dict::

    {"format": 1, "arch": "protonet" | "mobilenet_v2_cifar" | "micronet",
     "model_kwargs": {...}, "state_dict": {...}, "meta": {...}}

``meta`` holds only JSON-like values (task, bits, noise, seed, dataset sha256, scale,
accuracy, ...), so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.micronet import MicroNet
from models.mobilenet import MobileNetV2CIFAR
from models.protonet import ProtoNet

CHECKPOINT_FORMAT = 1

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "protonet": ProtoNet,
    "mobilenet_v2_cifar": MobileNetV2CIFAR,
    "micronet": MicroNet,
}
"""Architecture name -> class; the class takes ``**model_kwargs``."""


def arch_name(model: nn.Module) -> str:
    """Return the registry name of ``model``'s architecture."""
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"{type(model).__name__} is not a registered architecture")


def build_model(arch: str, model_kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate a registered architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**model_kwargs)


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model`` (architecture, constructor kwargs, weights) and ``meta`` to ``path``.

    The model must provide ``init_kwargs()`` (all architectures of this package do).
    Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch_name(model),
        "model_kwargs": model.init_kwargs(),  # type: ignore[operator]
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a truncated checkpoint behind
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(model, meta)``; the model is on the CPU in eval mode.

    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {payload.get('format')!r}")
    model = build_model(payload["arch"], payload["model_kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload["meta"]
