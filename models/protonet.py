"""Prototypical networks (Snell et al., 2017): Conv-4 embedding, episodes, prototypes.

Training is episodic: an episode picks ``n_way`` random classes and, per class, ``k_shot``
support and ``n_query`` query images (disjoint). Support embeddings are averaged into one
prototype per class and queries are classified by the softmax over negative squared
Euclidean distances to the prototypes.

Testing (the paper's protocol): prototypes of **all** classes of the dataset (10 for the
MNISTs) are built from ``k_shot`` support images per class drawn at random from the
**training** split (default ``K = DEFAULT_TEST_SHOT = 5``); every test image is assigned
to its nearest prototype. Because the result depends on which support images were drawn,
accuracy is averaged over several support draws (:func:`protonet_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_TEST_SHOT = 5
"""Support images per class used to build the test-time prototypes."""


class PoolIfLarge(nn.Module):
    """2x2 max-pool, skipped when the feature map is already smaller than 2x2.

    Conv-4 pools four times, which takes 28x28 to 1x1 but would take 8x8 digits to 0x0;
    skipping the pool once the map is 1 pixel wide keeps the network valid on small inputs
    (8x8 -> 4 -> 2 -> 1 -> 1) while leaving the standard sizes unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Pool by 2 if both spatial sizes are at least 2."""
        if min(x.shape[-2:]) >= 2:
            return F.max_pool2d(x, 2)
        return x


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Return conv3x3 - BatchNorm - ReLU - (max-pool 2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        PoolIfLarge(),
    )


class ProtoNet(nn.Module):
    """Conv-4 embedding network: 4 blocks of conv3x3(64)-BN-ReLU-maxpool2, flattened.

    The embedding has ``hidden * H' * W'`` features where ``H' x W'`` is the final map
    (1x1 for 28x28 and 8x8 inputs, so 64 features).

    Args:
        in_channels: Image channels (1 for the MNISTs and digits).
        hidden: Channels of every block (64 in the paper).
        blocks: Number of conv blocks (4 in the paper).

    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.hidden = hidden
        chans = [in_channels] + [hidden] * blocks
        self.encoder = nn.Sequential(*(conv_block(a, b) for a, b in zip(chans, chans[1:])))

    def forward(self, x: Tensor) -> Tensor:
        """Embed images ``(N, C, H, W)`` into ``(N, D)``."""
        return self.encoder(x).flatten(1)

    def init_kwargs(self) -> dict[str, int]:
        """Return the constructor arguments that rebuild this architecture."""
        return {"in_channels": self.in_channels, "hidden": self.hidden, "blocks": len(self.encoder)}


@dataclass(frozen=True)
class Episode:
    """Indices of one N-way K-shot episode into a dataset.

    Attributes:
        classes: ``(n_way,)`` original labels of the episode's classes.
        support: ``(n_way, k_shot)`` dataset indices; row ``i`` belongs to ``classes[i]``.
        query: ``(n_way, n_query)`` dataset indices, disjoint from ``support``.

    """

    classes: Tensor
    support: Tensor
    query: Tensor

    @property
    def query_targets(self) -> Tensor:
        """``(n_way * n_query,)`` episode-local targets 0..n_way-1 of the flattened query."""
        n_way, n_query = self.query.shape
        return torch.arange(n_way).repeat_interleave(n_query)


def sample_episode(
    labels: Tensor,
    n_way: int,
    k_shot: int,
    n_query: int,
    generator: torch.Generator | None = None,
) -> Episode:
    """Sample an episode: ``n_way`` distinct classes, ``k_shot + n_query`` images each.

    Images are drawn without replacement within a class, so support and query never share
    an image.

    Args:
        labels: ``(N,)`` integer labels of the dataset.
        n_way: Classes per episode.
        k_shot: Support images per class.
        n_query: Query images per class (0 allowed).
        generator: Randomness source.

    Returns:
        The :class:`Episode` (index tensors, not images).

    Raises:
        ValueError: Fewer classes than ``n_way`` or a class with too few images.

    """
    uniq = torch.unique(labels)
    if n_way > len(uniq):
        raise ValueError(f"n_way={n_way} but only {len(uniq)} classes")
    classes = uniq[torch.randperm(len(uniq), generator=generator)[:n_way]]
    need = k_shot + n_query
    rows = []
    for c in classes.tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < need:
            raise ValueError(f"class {c} has {len(idx)} images, episode needs {need}")
        rows.append(idx[torch.randperm(len(idx), generator=generator)[:need]])
    picked = torch.stack(rows)
    return Episode(classes=classes, support=picked[:, :k_shot], query=picked[:, k_shot:])


def episode_tensors(images: Tensor, episode: Episode) -> tuple[Tensor, Tensor, Tensor]:
    """Gather an episode's images.

    Returns:
        ``support`` ``(n_way * k_shot, C, H, W)`` ordered class by class, ``query``
        ``(n_way * n_query, C, H, W)`` likewise, and ``query_targets`` ``(n_way * n_query,)``.

    """
    return (
        images[episode.support.flatten()],
        images[episode.query.flatten()],
        episode.query_targets,
    )


def prototypes(support_emb: Tensor, n_way: int) -> Tensor:
    """Average ``(n_way * k_shot, D)`` class-ordered support embeddings into ``(n_way, D)``."""
    return support_emb.view(n_way, -1, support_emb.shape[-1]).mean(dim=1)


def proto_logits(query_emb: Tensor, protos: Tensor) -> Tensor:
    """Return ``-||q - p||^2`` logits ``(Q, n_way)``."""
    return -torch.cdist(query_emb, protos).pow(2)


def prototypical_loss(
    support_emb: Tensor, query_emb: Tensor, query_targets: Tensor, n_way: int
) -> tuple[Tensor, Tensor]:
    """Cross-entropy of the nearest-prototype softmax, and the episode accuracy.

    Args:
        support_emb: ``(n_way * k_shot, D)`` class-ordered support embeddings.
        query_emb: ``(Q, D)`` query embeddings.
        query_targets: ``(Q,)`` episode-local targets in ``0..n_way-1``.
        n_way: Classes in the episode.

    Returns:
        ``(loss, accuracy)`` as 0-dim tensors (the accuracy is detached).

    """
    logits = proto_logits(query_emb, prototypes(support_emb, n_way))
    loss = F.cross_entropy(logits, query_targets)
    acc = (logits.argmax(dim=1) == query_targets).float().mean().detach()
    return loss, acc


def sample_support(
    labels: Tensor, k_shot: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw ``k_shot`` images of **every** class (test-time support set).

    Returns:
        ``(indices, classes)``: indices ``(n_classes, k_shot)`` into the dataset, row ``i``
        for ``classes[i]`` (sorted labels).

    """
    classes = torch.unique(labels)
    rows = []
    for c in classes.tolist():
        idx = torch.nonzero(labels == c).flatten()
        rows.append(idx[torch.randperm(len(idx), generator=generator)[:k_shot]])
    return torch.stack(rows), classes


@torch.no_grad()
def embed(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Embed ``images`` in eval mode, batch by batch."""
    model.eval()
    return torch.cat([model(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def nearest_prototype_accuracy(
    model: nn.Module,
    support_images: Tensor,
    support_labels: Tensor,
    query_emb: Tensor,
    query_labels: Tensor,
    k_shot: int,
    draws: int,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Accuracy of nearest-prototype classification for several support draws.

    The queries are embedded once by the caller (``query_emb``); for every draw, ``k_shot``
    support images per class are sampled from ``support_images`` (the training split),
    embedded by ``model`` and averaged into prototypes.

    Returns:
        One accuracy (fraction) per support draw.

    """
    accs = []
    for _ in range(draws):
        idx, classes = sample_support(support_labels, k_shot, generator)
        protos = prototypes(embed(model, support_images[idx.flatten()]), len(classes))
        pred = classes[proto_logits(query_emb, protos).argmax(dim=1)]
        accs.append(float((pred == query_labels).float().mean()))
    return accs


def protonet_accuracy(
    model: nn.Module,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    k_shot: int = DEFAULT_TEST_SHOT,
    draws: int = 5,
    seed: int = 0,
) -> list[float]:
    """Test accuracy of the paper's protocol for ``draws`` support draws (no device model).

    Use :func:`models.evaluate.evaluate_deployed` for accuracy on a simulated chip.
    """
    gen = torch.Generator().manual_seed(seed)
    query_emb = embed(model, test_images)
    return nearest_prototype_accuracy(
        model, train_images, train_labels, query_emb, test_labels, k_shot, draws, gen
    )
