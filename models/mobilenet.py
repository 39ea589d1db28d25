"""MobileNetV2 (Sandler et al., 2018) adapted to 32x32 CIFAR images.

The ImageNet network downsamples by 32. For 32x32 inputs the usual CIFAR adaptation is
kept: the stem conv and the second stage (24 channels) use stride 1 instead of 2, so the
network downsamples by 8 and the last feature map is 4x4. Everything else (inverted
residual blocks with depthwise 3x3 convs, linear bottlenecks, ReLU6, the 1280-channel head)
is the standard architecture, built only from ``nn.Conv2d`` / ``nn.BatchNorm2d`` /
``nn.Linear`` so that :func:`memsim.convert` maps every conv, depthwise ones included.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

# (expansion t, channels c, repeats n, first stride s); s of the 24-channel stage is 1
# for CIFAR (ImageNet: 2)
CIFAR_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going more than 10 % below it."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_bn(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Return Conv2d (no bias, "same" padding) - BatchNorm2d - optional ReLU6."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """Expand (1x1) - depthwise 3x3 - project (1x1, linear), with a skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(conv_bn(in_ch, hidden, 1))
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, out_ch, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block (plus identity when the shapes allow)."""
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2CIFAR(nn.Module):
    """MobileNetV2 for 32x32 inputs.

    Args:
        num_classes: Output classes.
        width_mult: Channel multiplier (1.0 is the standard network).
        dropout: Dropout before the classifier.
        in_channels: Input image channels.

    """

    def __init__(
        self,
        num_classes: int = 10,
        width_mult: float = 1.0,
        dropout: float = 0.2,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width_mult = width_mult
        self.dropout = dropout
        self.in_channels = in_channels
        ch = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [conv_bn(in_channels, ch, 3, stride=1)]
        for t, c, n, s in CIFAR_SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(ch, out, s if i == 0 else 1, t))
                ch = out
        layers.append(conv_bn(ch, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(N, num_classes)`` for images ``(N, C, 32, 32)``."""
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)

    def init_kwargs(self) -> dict[str, float | int]:
        """Return the constructor arguments that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "width_mult": self.width_mult,
            "dropout": self.dropout,
            "in_channels": self.in_channels,
        }


def mobilenet_v2_cifar(num_classes: int = 10, width_mult: float = 1.0) -> MobileNetV2CIFAR:
    """Build MobileNetV2 for 32x32 images (stride 1 in the stem and the 24-channel stage).

    Args:
        num_classes: Output classes.
        width_mult: Channel multiplier; e.g. 0.25 or 0.5 for small/fast variants.

    Returns:
        The model (plain Conv2d/BatchNorm2d/Linear layers).

    """
    return MobileNetV2CIFAR(num_classes=num_classes, width_mult=width_mult)
