"""Small reference networks used by tests, benchmarks and the aihwkit comparison."""

from __future__ import annotations

from torch import nn


def mlp(
    in_features: int = 784, hidden: tuple[int, ...] = (256, 256), classes: int = 10
) -> nn.Module:
    """A ReLU multilayer perceptron that flattens its input (784-256-256-10 by default)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def lenet5(in_channels: int = 1, classes: int = 10, image_size: int = 28) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, for 28x28 or 32x32 inputs."""
    pad = 2 if image_size == 28 else 0
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, classes),
    )
