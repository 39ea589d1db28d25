"""A small Vision Transformer (Dosovitskiy et al., ICLR 2021) for MNIST and CIFAR sizes.

Built from torch's own layers (a ``Conv2d`` patch embedding, ``nn.TransformerEncoder``
of pre-norm ``nn.TransformerEncoderLayer`` with GELU, a ``Linear`` head), so that
:func:`memsim.convert` maps it with no changes: the patch embedding, the query, key,
value and output projections and both feed-forward layers of every block go onto tiles;
the class token, position embedding, layer norms and the attention products stay
digital.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ViT(nn.Module):
    """Patch embedding, class token, ``depth`` encoder blocks and a linear head.

    Args:
        image_size: Side of the square input image (28 for MNIST, 32 for CIFAR).
        patch_size: Side of a square patch; ``image_size`` must be a multiple of it.
        in_channels: Input channels (1 for MNIST, 3 for CIFAR).
        classes: Output classes.
        dim: Token width.
        depth: Encoder blocks.
        heads: Attention heads (``dim`` must be a multiple of it).
        mlp_dim: Hidden width of each block's feed-forward layer.
        dropout: Dropout of the encoder blocks (training only).

    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 7,
        in_channels: int = 1,
        classes: int = 10,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_dim: int = 128,
        dropout: float = 0.0,
    ) -> None:
        """Build the network with random weights."""
        super().__init__()
        if image_size % patch_size:
            raise ValueError(
                f"ViT: image_size {image_size} is not a multiple of patch_size {patch_size}"
            )
        if dim % heads:
            raise ValueError(f"ViT: dim {dim} is not a multiple of heads {heads}")
        n_patches = (image_size // patch_size) ** 2
        self.image_size, self.in_channels = image_size, in_channels
        self._init_kwargs: dict[str, int | float] = {
            "image_size": image_size,
            "patch_size": patch_size,
            "in_channels": in_channels,
            "classes": classes,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_dim": mlp_dim,
            "dropout": dropout,
        }
        # a strided convolution: one MVM of the same weights per patch, zero padding
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, dim) * 0.02)
        block = nn.TransformerEncoderLayer(
            dim,
            heads,
            mlp_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # nested tensors need post-norm layers; saying so avoids torch's warning
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def init_kwargs(self) -> dict[str, int | float]:
        """Return the constructor arguments that rebuild this architecture (checkpoints)."""
        return dict(self._init_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits of images ``(N, C, H, W)``."""
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens))[:, 0])


def vit_mnist(**kwargs: int | float) -> ViT:
    """The 28x28 one-channel ViT: 7x7 patches (16 tokens and the class token)."""
    return ViT(**{"image_size": 28, "patch_size": 7, "in_channels": 1, **kwargs})  # type: ignore[arg-type]


def vit_cifar(**kwargs: int | float) -> ViT:
    """The 32x32 three-channel ViT: 4x4 patches (64 tokens and the class token)."""
    return ViT(**{"image_size": 32, "patch_size": 4, "in_channels": 3, **kwargs})  # type: ignore[arg-type]
