"""Tests of the ProtoNet embedding, episode sampling and nearest-prototype classification."""

from __future__ import annotations

import pytest
import torch

from models.protonet import (
    PoolIfLarge,
    ProtoNet,
    episode_tensors,
    nearest_prototype_accuracy,
    prototypes,
    prototypical_loss,
    sample_episode,
    sample_support,
)


def _labels(n_classes: int = 10, per_class: int = 30) -> torch.Tensor:
    # shuffled so that class membership is not contiguous
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def test_episode_has_documented_shapes_and_disjoint_support_query() -> None:
    labels = _labels()
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        ep = sample_episode(labels, n_way=5, k_shot=5, n_query=15, generator=gen)
        assert ep.classes.shape == (5,)
        assert ep.support.shape == (5, 5)
        assert ep.query.shape == (5, 15)
        assert len(torch.unique(ep.classes)) == 5
        support, query = set(ep.support.flatten().tolist()), set(ep.query.flatten().tolist())
        assert not support & query
        assert len(support) == 25 and len(query) == 75  # no repeats either
        for row, c in enumerate(ep.classes.tolist()):
            assert bool((labels[ep.support[row]] == c).all())
            assert bool((labels[ep.query[row]] == c).all())
        assert ep.query_targets.tolist() == [i for i in range(5) for _ in range(15)]


def test_episodes_are_seeded_and_vary() -> None:
    labels = _labels()
    a = sample_episode(labels, 5, 5, 15, torch.Generator().manual_seed(2))
    b = sample_episode(labels, 5, 5, 15, torch.Generator().manual_seed(2))
    c = sample_episode(labels, 5, 5, 15, torch.Generator().manual_seed(3))
    assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
    assert not torch.equal(a.support, c.support)


def test_episode_sampling_rejects_impossible_requests() -> None:
    labels = _labels(n_classes=4, per_class=10)
    with pytest.raises(ValueError, match="n_way"):
        sample_episode(labels, 5, 1, 1)
    with pytest.raises(ValueError, match="needs 20"):
        sample_episode(labels, 2, 5, 15)


def test_episode_tensors_gathers_class_ordered_images() -> None:
    labels = _labels()
    images = labels.float().view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    ep = sample_episode(labels, 5, 2, 3, torch.Generator().manual_seed(4))
    support, query, targets = episode_tensors(images, ep)
    assert support.shape == (10, 1, 8, 8) and query.shape == (15, 1, 8, 8)
    assert support[:, 0, 0, 0].tolist() == ep.classes.repeat_interleave(2).float().tolist()
    assert query[:, 0, 0, 0].tolist() == ep.classes[targets].float().tolist()


def test_prototypical_loss_on_separable_embeddings() -> None:
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    gen = torch.Generator().manual_seed(5)
    support = centers.repeat_interleave(4, 0) + 0.1 * torch.randn(12, 2, generator=gen)
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    query = centers[targets] + 0.1 * torch.randn(6, 2, generator=gen)
    torch.testing.assert_close(prototypes(support, 3), centers, atol=0.2, rtol=0)
    loss, acc = prototypical_loss(support, query, targets, 3)
    assert float(acc) == 1.0
    assert float(loss) < 1e-3
    # permuting the targets makes it wrong and expensive
    loss_bad, acc_bad = prototypical_loss(support, query, (targets + 1) % 3, 3)
    assert float(acc_bad) == 0.0 and float(loss_bad) > 10


@pytest.mark.parametrize(
    ("shape", "features"),
    [((2, 1, 28, 28), 64), ((2, 1, 8, 8), 64), ((2, 3, 32, 32), 256)],
)
def test_protonet_embedding_shapes(shape: tuple[int, ...], features: int) -> None:
    torch.manual_seed(0)
    net = ProtoNet(in_channels=shape[1])
    assert net(torch.randn(shape)).shape == (2, features)


def test_pool_is_skipped_only_for_maps_below_2x2() -> None:
    pool = PoolIfLarge()
    assert pool(torch.randn(1, 1, 8, 8)).shape[-2:] == (4, 4)
    assert pool(torch.randn(1, 1, 3, 3)).shape[-2:] == (1, 1)
    assert pool(torch.randn(1, 1, 1, 1)).shape[-2:] == (1, 1)


def test_support_sampling_covers_every_class() -> None:
    labels = _labels()
    idx, classes = sample_support(labels, 5, torch.Generator().manual_seed(6))
    assert idx.shape == (10, 5)
    assert classes.tolist() == list(range(10))
    for row in range(10):
        assert bool((labels[idx[row]] == row).all())
        assert len(set(idx[row].tolist())) == 5


def test_nearest_prototype_accuracy_with_identity_embedding() -> None:
    # class c lives around the point (3c, -3c); an identity "network" classifies perfectly
    gen = torch.Generator().manual_seed(7)
    labels = _labels(n_classes=4, per_class=20)
    centers = torch.stack([torch.arange(4) * 3.0, -torch.arange(4) * 3.0], 1)
    images = centers[labels] + 0.2 * torch.randn(len(labels), 2, generator=gen)
    accs = nearest_prototype_accuracy(
        torch.nn.Identity(), images, labels, images, labels, k_shot=3, draws=4, generator=gen
    )
    assert accs == [1.0] * 4
