"""Models, datasets and noise-aware training for the memsim experiments.

* :mod:`models.data` - ``load_dataset`` (digits, mnist, fashion_mnist, cifar10, cifar100)
  and ``train_val_split``.
* :mod:`models.quant` - STE fake-quantization and weight-noise injection built on
  :mod:`memsim.quantization`; ``qat_forward`` and the generic ``qat_finetune`` loop.
* :mod:`models.protonet`, :mod:`models.mobilenet`, :mod:`models.micronet`,
  :mod:`models.vit` - the networks.
* :mod:`models.train` - classifier and episodic trainers.
* :mod:`models.evaluate` - accuracy on simulated chips (``evaluate_deployed``).
* :mod:`models.checkpoint` - the model registry (``register_architecture``) and
  self-describing checkpoints (``load_checkpoint``).
* :mod:`models.tasks` - how each kind of network is fine-tuned and scored.
* :mod:`models.baselines` - the paper's baselines (``train_baseline``).

The modules that need the simulator (``evaluate``, ``baselines``) are imported lazily, so
``import models`` never imports ``memsim``'s conversion code.
"""

from __future__ import annotations

import importlib
from typing import Any

from models.checkpoint import (
    build_model,
    load_checkpoint,
    load_model,
    register_architecture,
    save_checkpoint,
    save_model,
)
from models.data import (
    DATASETS,
    DatasetNotFoundError,
    ImageDataset,
    load_dataset,
    train_val_split,
)
from models.micronet import MicroNet, micronet
from models.mobilenet import MobileNetV2CIFAR, mobilenet_v2_cifar
from models.protonet import ProtoNet, prototypical_loss, sample_episode
from models.quant import fake_quant, perturbed_forward, perturbed_params, qat_finetune, qat_forward
from models.train import ClassifierConfig, EpisodeConfig, train_classifier, train_protonet
from models.vit import ViT, vit_cifar, vit_mnist

_LAZY = {
    "evaluate_deployed": "models.evaluate",
    "paper_profile": "models.evaluate",
    "DeployedAccuracy": "models.evaluate",
    "accuracies": "models.evaluate",
    "train_baseline": "models.baselines",
    "get_recipe": "models.baselines",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "ClassifierConfig",
    "DatasetNotFoundError",
    "DeployedAccuracy",
    "EpisodeConfig",
    "ImageDataset",
    "MicroNet",
    "MobileNetV2CIFAR",
    "ProtoNet",
    "ViT",
    "accuracies",
    "build_model",
    "load_model",
    "register_architecture",
    "save_model",
    "evaluate_deployed",
    "fake_quant",
    "get_recipe",
    "load_checkpoint",
    "load_dataset",
    "micronet",
    "mobilenet_v2_cifar",
    "paper_profile",
    "perturbed_forward",
    "perturbed_params",
    "prototypical_loss",
    "qat_finetune",
    "qat_forward",
    "sample_episode",
    "save_checkpoint",
    "train_baseline",
    "train_classifier",
    "train_protonet",
    "train_val_split",
    "vit_cifar",
    "vit_mnist",
]
