"""The one definition of "k-bit weights with x% noise".

The seed paper's perturbation model is used in two places: noise-aware training
(``models.quant``) and the ``paper_*`` device profiles that deploy such a model.
Both import these functions, so a model trained at 2-bit / 5% sees exactly the
perturbation it is deployed with.

* ``k``-bit weights are uniform and symmetric with ``2**k`` levels and no zero
  level for ``k >= 1``: ``{-a, ..., -a/(2**k-1), +a/(2**k-1), ..., +a}`` where ``a``
  is the per-layer scale ``max|w|``.  For ``k = 1`` this is binary ``{-a, +a}``.
* Ternary weights are ``{-a, 0, +a}`` with the threshold ``delta = 0.7 * mean|w|``
  and ``a = mean(|w| for |w| > delta)`` (the TWN rule that EC2T starts from).
* ``x%`` noise is multiplicative: ``w * (1 + sigma * eps)`` with
  ``eps ~ N(0, 1)`` drawn independently per weight and ``sigma = x / 100``.
"""

from __future__ import annotations

import torch
from torch import Tensor

TERNARY = 0
"""Sentinel bit width meaning ternary quantization."""


def symmetric_levels(bits: int, scale: float | Tensor = 1.0) -> Tensor:
    """Return the ``2**bits`` levels of the symmetric uniform quantizer.

    Args:
        bits: Bit width, 1..16.
        scale: Largest level ``a``.

    Returns:
        1-D tensor of the sorted levels.

    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    n = 2**bits
    idx = torch.arange(n, dtype=torch.float64)
    return ((2 * idx - (n - 1)) / (n - 1) * float(scale)).float()


def quantize_symmetric(w: Tensor, bits: int, scale: Tensor | None = None) -> Tensor:
    """Round ``w`` to the nearest of ``2**bits`` symmetric uniform levels.

    Args:
        w: Weights of any shape.
        bits: Bit width, 1..16.
        scale: Largest level; defaults to ``max|w|`` (a 0-dim tensor).

    Returns:
        The quantized weights (same shape and dtype). No gradient handling.

    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    a = w.detach().abs().amax() if scale is None else scale
    a = torch.clamp(torch.as_tensor(a, dtype=w.dtype, device=w.device), min=1e-12)
    n = 2**bits
    # map [-a, a] onto the level index 0..n-1 and round
    idx = torch.round((w / a + 1.0) * (n - 1) / 2.0).clamp(0, n - 1)
    return (2.0 * idx - (n - 1)) / (n - 1) * a


def ternary_threshold(w: Tensor) -> tuple[Tensor, Tensor]:
    """Return the ternary threshold ``delta`` and scale ``a`` for ``w``."""
    aw = w.detach().abs()
    delta = 0.7 * aw.mean()
    mask = aw > delta
    a = aw[mask].mean() if bool(mask.any()) else aw.amax()
    return delta, torch.clamp(a, min=1e-12)


def quantize_ternary(w: Tensor) -> Tensor:
    """Quantize ``w`` to ``{-a, 0, +a}`` (TWN/EC2T-style threshold)."""
    delta, a = ternary_threshold(w)
    return torch.where(w.abs() > delta, torch.sign(w) * a, torch.zeros_like(w))


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Quantize with ``bits`` (1..16) or ternary when ``bits == TERNARY``."""
    if bits == TERNARY:
        return quantize_ternary(w)
    return quantize_symmetric(w, bits)


def multiplicative_noise(
    w: Tensor, sigma: float, generator: torch.Generator | None = None
) -> Tensor:
    """Return ``w * (1 + sigma * eps)`` with ``eps ~ N(0, 1)`` per element."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return w
    # drawn where the generator lives (a seeded CPU generator gives the same noise for
    # weights on any device), then moved to the weights
    where = generator.device if generator is not None else w.device
    eps = torch.randn(w.shape, generator=generator, device=where, dtype=w.dtype).to(w.device)
    return w * (1.0 + sigma * eps)
