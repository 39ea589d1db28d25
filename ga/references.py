"""The two reference models and the per-gene quantities derived from them.

The paper bounds its ``large`` initialisation and its ``maxmin`` mutation with
two reference models: the baseline quantized to the chip's bit width with 5 %
and with 10 % multiplicative noise.  Both use ``memsim.quantization``, the one
definition of "k-bit weights with x % noise" shared with training and the
device profiles.  Per-layer quantities are computed once, here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ga.genome import Genome
from memsim.quantization import TERNARY, multiplicative_noise, quantize_weight, ternary_threshold


@torch.no_grad()
def make_references(
    genome: Genome,
    baseline: Tensor,
    bits: int,
    sigmas: tuple[float, float],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Return the two reference gene vectors: ``Q_bits(w) * (1 + sigma_k * N(0, 1))``.

    Quantization is per layer (its scale is the layer's ``max|w|``, or the TWN
    scale for ternary), exactly as ``memsim.quantization.quantize_weight``.

    Args:
        genome: Layout of ``baseline``.
        baseline: ``(n_genes,)`` baseline weights.
        bits: Bit width, or ``memsim.quantization.TERNARY`` (0).
        sigmas: Noise of the first and second reference (paper: 0.05, 0.10).
        generator: Random stream of the noise.

    Returns:
        ``(ref_a, ref_b)``, each ``(n_genes,)``.

    """
    quantized = genome.flatten(
        {k: quantize_weight(w, bits) for k, w in genome.unflatten(baseline).items()}
    )
    return tuple(multiplicative_noise(quantized, s, generator=generator) for s in sigmas)  # type: ignore[return-value]


@torch.no_grad()
def maxmin_bounds(genome: Genome, ref_a: Tensor, ref_b: Tensor) -> tuple[Tensor, Tensor]:
    """Per-gene ``maxmin`` bounds: the layer's ``min``/``max`` over both references.

    Returns:
        ``(low, high)``, each ``(n_genes,)``: ``low_j = min(Amin_l, Bmin_l)`` and
        ``high_j = max(Amax_l, Bmax_l)`` for the layer ``l`` of gene ``j``.

    """
    both = torch.stack((ref_a, ref_b))
    low, high = genome.layer_ranges(both)
    return genome.expand(low), genome.expand(high)


@torch.no_grad()
def level_steps(genome: Genome, baseline: Tensor, bits: int) -> Tensor:
    """Per-gene spacing of the layer's quantizer levels at ``bits``.

    ``2 * max|w_l| / (2**bits - 1)`` for a ``bits``-bit symmetric layer, the TWN
    scale ``a_l`` for ternary.

    Returns:
        ``(n_genes,)``.

    """
    if bits == TERNARY:
        per_layer = torch.stack(
            [ternary_threshold(w)[1] for w in genome.unflatten(baseline).values()]
        )
    else:
        per_layer = 2.0 * genome.layer_reduce(baseline.abs(), "amax") / (2**bits - 1)
    return genome.expand(per_layer.to(baseline.dtype))
