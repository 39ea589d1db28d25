"""Task adapters: how a network is fine-tuned and scored, per kind of network.

The GA's fitness, the extra-QAT control and the final scoring must treat a network the
same way, so the three task-specific pieces live here, once:

* ``batch(train, gen)`` and ``loss(forward, batch)``: one QAT fine-tune step.  A
  classifier takes a random batch and cross-entropy; a ProtoNet takes an N-way K-shot
  episode and the prototypical loss (as in its baseline training).
* ``accuracies(chip, queries, support, gen, draws)``: accuracy of a programmed chip.
  A classifier is scored top-1; a ProtoNet embeds the queries once and classifies them
  by the nearest prototype of every class, with ``draws`` support sets of ``k_shot``
  images per class drawn from ``support`` (a training split) by ``gen``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from models.data import ImageDataset
from models.evaluate import classifier_accuracy
from models.protonet import ProtoNet, embed, episode_tensors, nearest_prototype_accuracy
from models.protonet import sample_episode as _sample_episode
from models.quant import Forward
from models.train import cross_entropy_loss, protonet_loss


class Task:
    """Fine-tune batches, loss and chip accuracy of one kind of network."""

    is_protonet = False

    def batch(self, train: ImageDataset, gen: torch.Generator) -> Any:
        """Return one fine-tune batch drawn from ``train`` with ``gen``."""
        raise NotImplementedError

    def loss(self, forward: Forward, batch: Any) -> Tensor:
        """Return the scalar loss of ``batch`` under ``forward``."""
        raise NotImplementedError

    def accuracies(
        self,
        chip: nn.Module,
        queries: ImageDataset,
        support: ImageDataset | None,
        gen: torch.Generator,
        draws: int,
    ) -> list[float]:
        """Return the accuracy of the programmed ``chip`` on ``queries`` (one or ``draws``)."""
        raise NotImplementedError


@dataclass
class ClassifierTask(Task):
    """A network that outputs logits: random batches, cross-entropy, top-1 accuracy."""

    batch_size: int = 64

    def batch(self, train: ImageDataset, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``batch_size`` images uniformly with replacement (as ``ChipFitness`` does)."""
        idx = torch.randint(0, len(train), (self.batch_size,), generator=gen)
        return train.images[idx], train.labels[idx]

    def loss(self, forward: Forward, batch: Any) -> Tensor:
        """Cross-entropy."""
        return cross_entropy_loss(forward, batch)

    def accuracies(
        self,
        chip: nn.Module,
        queries: ImageDataset,
        support: ImageDataset | None,
        gen: torch.Generator,
        draws: int,
    ) -> list[float]:
        """Top-1 accuracy; one value (no support set is involved)."""
        return [classifier_accuracy(chip, queries)]


@dataclass
class ProtoNetTask(Task):
    """A ProtoNet embedding: episodic prototypical loss, nearest-prototype accuracy."""

    n_way: int = 5
    k_shot: int = 5
    n_query: int = 15

    is_protonet = True

    def batch(self, train: ImageDataset, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Draw one ``n_way``-way ``k_shot``-shot episode with ``n_query`` queries per class."""
        episode = _sample_episode(train.labels, self.n_way, self.k_shot, self.n_query, gen)
        return episode_tensors(train.images, episode)

    def loss(self, forward: Forward, batch: Any) -> Tensor:
        """Prototypical loss of the episode (support and query in one forward call)."""
        return protonet_loss(forward, batch)

    def accuracies(
        self,
        chip: nn.Module,
        queries: ImageDataset,
        support: ImageDataset | None,
        gen: torch.Generator,
        draws: int,
    ) -> list[float]:
        """Nearest-prototype accuracy over all classes, one value per support draw."""
        if support is None:
            raise ValueError("ProtoNet accuracy needs a support (training) split")
        # queries are embedded first: a calibrated chip that the caller did not calibrate
        # (memsim.calibrate) takes its ranges from the first batch after programming, and
        # that batch is then the same for every support draw
        query_emb = embed(chip, queries.images)
        return nearest_prototype_accuracy(
            chip,
            support.images,
            support.labels,
            query_emb,
            queries.labels,
            self.k_shot,
            draws,
            gen,
        )


def make_task(
    model: nn.Module, *, batch_size: int = 64, n_way: int = 5, k_shot: int = 5, n_query: int = 15
) -> Task:
    """Return the task adapter of ``model`` (ProtoNet or classifier)."""
    if isinstance(model, ProtoNet):
        return ProtoNetTask(n_way=n_way, k_shot=k_shot, n_query=n_query)
    return ClassifierTask(batch_size=batch_size)


def baseline_state(model: nn.Module) -> dict[str, Tensor]:
    """Detached copy of ``model``'s state dict (the digital biases / BN every member shares)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
