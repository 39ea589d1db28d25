"""MicroNet M0/M1 for 32x32 images.

Li et al., "MicroNet: Improving Image Recognition with Extremely Low FLOPs", ICCV 2021.
The architecture follows the authors' released configurations (``msnx_dy6_exp4_4M_221``
for M0, ``msnx_dy6_exp6_6M_221`` for M1) and their three block types:

* **Micro-factorized depthwise conv**: a ``k x 1`` depthwise conv followed by a ``1 x k``
  depthwise conv (each with BatchNorm), optionally multiplying channels (``c1``, ``c2``).
* **Micro-factorized pointwise conv**: grouped 1x1 convs (``groups = g``) separated by
  channel shuffles so information crosses groups.
* **Dynamic Shift-Max** activation: per channel, ``max_j(a_j * x_i + b_j * x_shift(i))``
  with ``J = 2`` branches (or a single linear branch), where ``x_shift`` is the channel
  circularly shifted by one within and across groups and the coefficients ``a, b`` are
  produced from the globally pooled input by a small two-layer MLP (a hyper-function, as
  in SE).

Changes for 32x32 inputs (ImageNet models downsample by 32, which would leave a 1x1 map):
the stem and the first block use stride 1, so the network downsamples by 8 and the last
map is 4x4. Every conv and every Linear (including those of the Dynamic Shift-Max MLPs)
is a plain ``nn.Conv2d``/``nn.Linear`` so :func:`memsim.convert` maps all of them onto
crossbars; the grouped 1x1 convs keep their groups, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# One row per block:
# stride, repeats, out channels, kernel, depthwise expansions (c1, c2), groups of the first
# pointwise conv (g1) and of its shift-max (g2), block output channels (c3), groups of the
# second pointwise conv (g3) and of its shift-max (g4), activation kinds (y1, y2, y3: 0 ReLU6,
# 1 single-branch shift-max, 2 two-branch shift-max) and the squeeze-ratio factor r.
_M0 = (
    (2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1),
    (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1),
    (2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
    (1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1),
    (2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1),
    (1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2),
    (1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2),
)
_M1 = (
    (2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1),
    (2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1),
    (2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1),
    (1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1),
    (2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1),
    (1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
    (1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2),
)

_REDUCTION = 8
"""Base squeeze ratio of the shift-max MLPs (times the per-block factor ``r``)."""
_ACT_MAX = 2.0
"""The MLP outputs ``(h_sigmoid - 0.5) * 2 * _ACT_MAX``, i.e. coefficients in [-2, 2]."""


@dataclass(frozen=True)
class MicroNetVariant:
    """Stem and head sizes of one variant plus its block table."""

    blocks: tuple[tuple[int, ...], ...]
    stem_channels: int
    stem_groups: tuple[int, int]
    head_channels: int
    dropout: float = 0.05


VARIANTS: dict[str, MicroNetVariant] = {
    "m0": MicroNetVariant(_M0, stem_channels=4, stem_groups=(2, 2), head_channels=640),
    "m1": MicroNetVariant(_M1, stem_channels=6, stem_groups=(3, 2), head_channels=960),
}


def _divisible(v: float, divisor: int) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def h_sigmoid(x: Tensor) -> Tensor:
    """Hard sigmoid ``relu6(x + 3) / 6``."""
    return F.relu6(x + 3.0) / 6.0


class HSwish(nn.Module):
    """Hard swish ``x * h_sigmoid(x)``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply hard swish."""
        return x * h_sigmoid(x)


class ChannelShuffle(nn.Module):
    """Interleave ``groups`` channel groups (ShuffleNet's shuffle)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        """Permute channels ``(g, c/g) -> (c/g, g)``."""
        b, c, h, w = x.shape
        if self.groups <= 1 or c % self.groups:
            return x
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class DynamicShiftMax(nn.Module):
    """Dynamic Shift-Max: ``max_j (a_j(x) * x_i + b_j(x) * x_{shift(i)})``.

    Args:
        channels: Input (= output) channels.
        groups: Channel groups of the circular shift; channel ``i`` of group ``k`` is
            mixed with channel ``i + 1`` of group ``k + 1`` (both modulo).
        branches: ``J``: 2 (max of two linear mixes) or 1 (a dynamic linear mix).
        reduction: Squeeze ratio of the coefficient MLP.

    """

    shift: Tensor

    def __init__(self, channels: int, groups: int, branches: int, reduction: int) -> None:
        super().__init__()
        if branches not in (1, 2):
            raise ValueError("branches must be 1 or 2")
        if groups < 1 or channels % groups:
            raise ValueError(f"{channels} channels cannot form {groups} shift groups")
        self.channels = channels
        self.branches = branches
        squeeze = max(4, _divisible(channels // reduction, 4))
        self.fc = nn.Sequential(
            nn.Linear(channels, squeeze),
            nn.ReLU(inplace=True),
            nn.Linear(squeeze, 2 * branches * channels),
        )
        idx = torch.arange(channels).view(groups, channels // groups)
        # not persistent: it is a pure function of the architecture, not a learned state
        self.register_buffer("shift", idx.roll(-1, 0).roll(-1, 1).flatten(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Mix every channel with its shifted partner using input-dependent coefficients."""
        coeff = (h_sigmoid(self.fc(x.mean(dim=(2, 3)))) - 0.5) * (2 * _ACT_MAX)
        coeff = coeff[:, :, None, None]
        shifted = x[:, self.shift]
        c = self.channels
        # a_j starts around 1 and b_j around 0, so the layer starts close to identity
        out = x * (1.0 + coeff[:, :c]) + shifted * coeff[:, c : 2 * c]
        if self.branches == 2:
            out2 = x * (1.0 + coeff[:, 2 * c : 3 * c]) + shifted * coeff[:, 3 * c :]
            out = torch.maximum(out, out2)
        return out


def _act(channels: int, kind: int, shift_groups: int, reduction: int) -> nn.Module:
    if kind == 0:
        return nn.ReLU6(inplace=True)
    return DynamicShiftMax(channels, shift_groups, branches=kind, reduction=reduction)


def _group_conv(in_ch: int, out_ch: int, groups: int) -> nn.Sequential:
    """Micro-factorized pointwise conv: grouped 1x1 conv + BN."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 1, bias=False, groups=groups), nn.BatchNorm2d(out_ch)
    )


def _depth_sep(in_ch: int, c1: int, c2: int, kernel: int, stride: int) -> nn.Sequential:
    """Micro-factorized depthwise conv: ``k x 1`` then ``1 x k`` depthwise convs (+BN)."""
    mid, out = in_ch * c1, in_ch * c1 * c2
    p = kernel // 2
    return nn.Sequential(
        nn.Conv2d(in_ch, mid, (kernel, 1), (stride, 1), (p, 0), bias=False, groups=in_ch),
        nn.BatchNorm2d(mid),
        nn.Conv2d(mid, out, (1, kernel), (1, stride), (0, p), bias=False, groups=mid),
        nn.BatchNorm2d(out),
    )


def _maybe(flag: bool, module: nn.Module) -> list[nn.Module]:
    return [module] if flag else []


class MicroBlock(nn.Module):
    """One MicroNet block (the three micro-factorized layouts of the released code).

    * ``g1 == 0``: depthwise-first block (early stages): micro depthwise conv that expands
      channels, shift-max, shuffle, grouped pointwise conv down to ``out_ch``.
    * ``g4 == 0``: pointwise-only block (last stage): grouped pointwise expansion.
    * otherwise: grouped pointwise expansion, shift-max, shuffle, micro depthwise conv,
      shift-max, shuffle, grouped pointwise projection, shift-max, shuffle.

    A residual connection is added when stride is 1 and ``in_ch == out_ch``.
    """

    def __init__(self, in_ch: int, row: tuple[int, ...], stride: int) -> None:
        super().__init__()
        _, _, out_ch, k, c1, c2, g1, g2, _, g3, g4, y1, y2, y3, r = row
        red = _REDUCTION * r
        hidden = in_ch * c1 * c2
        layers: list[nn.Module] = []
        if g1 == 0:
            layers += [
                _depth_sep(in_ch, c1, c2, k, stride),
                _act(hidden, y2, g2, red),
                ChannelShuffle(g2),
                *_maybe(y2 != 0, ChannelShuffle(hidden // 2)),
                _group_conv(hidden, out_ch, g3),
                *_maybe(y3 > 0, _act(out_ch, y3, g4, red // 2)),
                ChannelShuffle(g4),
                *_maybe(out_ch % 2 == 0 and y3 != 0, ChannelShuffle(out_ch // 2)),
            ]
        elif g4 == 0:
            out_ch = hidden
            layers += [_group_conv(in_ch, hidden, g1), *_maybe(y3 > 0, _act(hidden, y3, g2, red))]
        else:
            layers += [
                _group_conv(in_ch, hidden, g1),
                _act(hidden, y1, g2, red),
                ChannelShuffle(g2),
                _depth_sep(hidden, 1, 1, k, stride),
                # the second shift-max shifts across hidden // g2 groups of g2 channels
                _act(hidden, y2, hidden // g2 if g2 != 1 else 1, red),
                *_maybe(y1 != 0 or y2 != 0, ChannelShuffle(hidden // (4 if y1 and y2 else 2))),
                _group_conv(hidden, out_ch, g3),
                *_maybe(y3 > 0, _act(out_ch, y3, g4, red // 2 if out_ch < hidden else red)),
                ChannelShuffle(g4),
                *_maybe(y3 != 0, ChannelShuffle(out_ch // 2)),
            ]
        self.out_channels = out_ch
        self.identity = stride == 1 and in_ch == out_ch
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block (plus identity when the shapes allow)."""
        out = self.layers(x)
        return out + x if self.identity else out


class MicroNet(nn.Module):
    """MicroNet for 32x32 images.

    Args:
        num_classes: Output classes.
        variant: ``"m0"`` or ``"m1"``.
        in_channels: Image channels.

    """

    def __init__(self, num_classes: int = 100, variant: str = "m0", in_channels: int = 3) -> None:
        super().__init__()
        key = variant.lower()
        if key not in VARIANTS:
            raise ValueError(f"unknown MicroNet variant {variant!r}; choose from {list(VARIANTS)}")
        spec = VARIANTS[key]
        self.num_classes = num_classes
        self.variant = key
        self.in_channels = in_channels
        sg1, sg2 = spec.stem_groups
        # stem: micro-factorized 3x3 conv (3x1 full conv, then 1x3 depthwise), stride 1 here
        stem = nn.Sequential(
            nn.Conv2d(in_channels, sg1, (3, 1), 1, (1, 0), bias=False),
            nn.BatchNorm2d(sg1),
            nn.Conv2d(sg1, sg1 * sg2, (1, 3), 1, (0, 1), bias=False, groups=sg1),
            nn.BatchNorm2d(sg1 * sg2),
            ChannelShuffle(sg1),
            nn.ReLU6(inplace=True),
        )
        layers: list[nn.Module] = [stem]
        ch = spec.stem_channels
        for i, row in enumerate(spec.blocks):
            stride, repeats = row[0], row[1]
            if i == 0:
                stride = 1  # CIFAR: keep 32x32 through the first block
            for j in range(repeats):
                block = MicroBlock(ch, row, stride if j == 0 else 1)
                layers.append(block)
                ch = block.out_channels
        self.features = nn.Sequential(*layers)
        head = spec.head_channels
        self.classifier = nn.Sequential(
            nn.Linear(ch, head),
            nn.BatchNorm1d(head),
            HSwish(),
            nn.Dropout(spec.dropout),
            nn.Linear(head, num_classes),
            nn.BatchNorm1d(num_classes),
            HSwish(),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits ``(N, num_classes)`` for images ``(N, C, 32, 32)``."""
        x = self.features(x)
        x = F.hardswish(F.relu6(x).mean(dim=(2, 3)))
        return self.classifier(x)

    def init_kwargs(self) -> dict[str, int | str]:
        """Return the constructor arguments that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "variant": self.variant,
            "in_channels": self.in_channels,
        }


def micronet(num_classes: int = 100, variant: str = "m0") -> MicroNet:
    """Build MicroNet ``variant`` ("m0" or "m1") for 32x32 images.

    Args:
        num_classes: Output classes.
        variant: ``"m0"`` (stem 4 ch, head 640) or ``"m1"`` (stem 6 ch, head 960).

    Returns:
        The model (plain Conv2d/Linear/BatchNorm layers plus parameter-free shuffles).

    """
    return MicroNet(num_classes=num_classes, variant=variant)
