"""Initial populations of the paper: ``origin`` and ``large``.

``origin``: every member is the baseline solution.

``large`` (the reading implemented): member 0 is the baseline; every other
member is drawn "within the ranges of the two reference models" as the
baseline plus per-gene noise scaled by the references' per-gene gap::

    x_ij = b_j + u_ij * |ref_a_j - ref_b_j|,   u_ij ~ U(-1, 1)

so gene ``j`` of any member stays within ``b_j +- gap_j``.  With the 5 % / 10 %
references, ``gap_j`` is about ``|Q(b_j)| * |0.10 e2 - 0.05 e1|``: a member is
the baseline perturbed by a relative noise of the order of the chip's own
programming noise, while the baseline itself is kept so the GA can never start
worse than it.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def origin_population(baseline: Tensor, size: int) -> Tensor:
    """Return ``(size, n_genes)`` copies of ``baseline``."""
    return baseline.unsqueeze(0).repeat(size, 1)


@torch.no_grad()
def large_population(
    baseline: Tensor,
    size: int,
    ref_a: Tensor,
    ref_b: Tensor,
    generator: torch.Generator,
) -> Tensor:
    """Return the ``large`` population: baseline first, then ``baseline + U(-1, 1) * gap``.

    Args:
        baseline: ``(n_genes,)``.
        size: Population size P.
        ref_a: First reference model genes ``(n_genes,)``.
        ref_b: Second reference model genes ``(n_genes,)``.
        generator: Random stream.

    Returns:
        ``(size, n_genes)``.

    """
    gap = (ref_a - ref_b).abs().to(baseline.dtype)
    u = torch.rand((size - 1, baseline.numel()), generator=generator, dtype=baseline.dtype)
    others = baseline + (2.0 * u - 1.0) * gap
    return torch.cat((baseline.unsqueeze(0), others))


def initial_population(
    mode: str,
    baseline: Tensor,
    size: int,
    generator: torch.Generator,
    references: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Dispatch on ``mode`` (``"origin"`` or ``"large"``; ``large`` needs ``references``)."""
    if mode == "origin":
        return origin_population(baseline, size)
    if mode == "large":
        if references is None:
            raise ValueError("init='large' needs the two reference models")
        return large_population(baseline, size, *references, generator=generator)
    raise ValueError(f"unknown init mode {mode!r}")
