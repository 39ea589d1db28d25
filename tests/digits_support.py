"""Shared helpers of the GA tests on the bundled digits (imported, not collected)."""

from __future__ import annotations

import torch
from torch import nn

from models.data import ImageDataset


def trained_digits_mlp(train: ImageDataset) -> nn.Module:
    """A 64-32-10 MLP trained for 300 seeded Adam steps on ``train`` (about 1 s).

    Seeded with ``$MEMSIM_SEED_OFFSET``, so the tests that build on it hold for other seeds.
    """
    from conftest import SEED_OFFSET

    torch.manual_seed(SEED_OFFSET)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    gen = torch.Generator().manual_seed(SEED_OFFSET)
    for _ in range(300):
        idx = torch.randint(0, len(train), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
