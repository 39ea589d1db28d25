"""Tests of the classifier and episodic trainers."""

from __future__ import annotations

import torch
from torch import nn

from models.data import load_dataset
from models.protonet import ProtoNet, protonet_accuracy
from models.quant import qat_forward, quantized_state_dict
from models.train import (
    ClassifierConfig,
    EpisodeConfig,
    random_crop_flip,
    train_classifier,
    train_protonet,
)


def test_random_crop_flip_shifts_and_mirrors_without_inventing_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    out = random_crop_flip(x, gen, pad=2)
    assert out.shape == x.shape
    for i in range(2):
        # every output pixel is either padding (0) or a pixel of the same image and channel
        for c in range(3):
            vals = set(out[i, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[i, c].flatten().tolist())
        # the crop is a shift: some window of the padded (maybe flipped) image equals it
        padded = nn.functional.pad(x[i], (2, 2, 2, 2))
        found = any(
            torch.equal(out[i], cand[:, dy : dy + 6, dx : dx + 6])
            for cand in (padded, padded.flip(-1))
            for dy in range(5)
            for dx in range(5)
        )
        assert found
    # pad 0 leaves only flips
    plain = random_crop_flip(x, torch.Generator().manual_seed(1), pad=0)
    for i in range(2):
        assert torch.equal(plain[i], x[i]) or torch.equal(plain[i], x[i].flip(-1))


def test_train_classifier_learns_digits_with_2bit_noisy_qat() -> None:
    train, test = load_dataset("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    steps: list[int] = []
    cfg = ClassifierConfig(
        epochs=8, batch_size=64, lr=0.1, epoch_fraction=0.5, augment=False, bits=2, sigma=0.05
    )
    losses = train_classifier(model, train, cfg, seed=0, on_epoch=lambda e, _: steps.append(e))
    assert steps == list(range(8)) and len(losses) == 8
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        acc = (qat_forward(model.eval(), test.images, 2, 0.0).argmax(1) == test.labels).float()
    assert float(acc.mean()) > 0.8


def test_train_protonet_improves_nearest_prototype_accuracy() -> None:
    train, test = load_dataset("digits")
    torch.manual_seed(0)
    model = ProtoNet(in_channels=1, hidden=32)

    def quantized_accuracy() -> float:
        # judge the network the chip would hold: 2-bit weights, no noise
        q = ProtoNet(in_channels=1, hidden=32)
        q.load_state_dict(quantized_state_dict(model, 2))
        accs = protonet_accuracy(q, train.images, train.labels, test.images, test.labels, draws=3)
        return sum(accs) / len(accs)

    before = quantized_accuracy()
    losses = train_protonet(model, train, EpisodeConfig(episodes=60, bits=2, sigma=0.05), seed=0)
    assert len(losses) == 60
    after = quantized_accuracy()
    assert after > before + 0.05
    assert after > 0.85
