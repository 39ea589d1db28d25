"""Noise-aware, quantization-aware training (QAT) on plain ``nn.Module`` models.

The latent full-precision weights stay in the model, untouched by the forward pass.
Training runs the model *functionally* (``torch.func.functional_call``) with every
``nn.Conv2d`` / ``nn.Linear`` weight replaced by

    ``noisy(fake_quant(w))``,  ``fake_quant(w) = q(w) + (w - w.detach())``

where ``q`` is :func:`memsim.quantization.quantize_weight` (k-bit symmetric, or ternary
for ``bits == TERNARY``) and ``noisy`` is :func:`memsim.quantization.multiplicative_noise`
(``w * (1 + sigma * eps)``). These are the same functions the ``paper_*`` device profiles
use when a model is deployed with :func:`memsim.convert`, so "2-bit, 5 % noise" means the
same thing in training and in evaluation. Biases and BatchNorm stay full precision: they
are digital on the chip.

Because the model itself is a plain network, :func:`memsim.convert` maps it directly, and
the straight-through estimator (STE) passes the gradient of ``q`` through unchanged.

The generic loop :func:`qat_finetune` is what the baselines use and what the GA uses for
its short quantization-aware fine-tune.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from memsim.quantization import TERNARY, multiplicative_noise, quantize_weight

CROSSBAR_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""Layer types whose weights live on crossbars (what ``memsim.convert`` replaces)."""

Forward = Callable[[Tensor], Tensor]
"""A forward function ``x -> output`` (here: the model under perturbed weights)."""

LossFn = Callable[[Forward, Any], Tensor]
"""``loss_fn(forward, batch) -> scalar loss``: how one batch is scored."""


def fake_quant(w: Tensor, bits: int | None) -> Tensor:
    """Quantize ``w`` in the forward pass, identity in the backward pass (STE).

    Args:
        w: Latent weights.
        bits: 1..16 for k-bit symmetric, :data:`~memsim.quantization.TERNARY` (0) for
            ternary, ``None`` for no quantization.

    Returns:
        Exactly ``q(w)`` in value, with ``d/dw = 1``.

    """
    if bits is None:
        return w
    # q + (w - w.detach()) rather than w + (q - w).detach(): the added term is exactly 0,
    # so the forward value is bit-identical to q(w) (no rounding off the levels)
    return quantize_weight(w.detach(), bits) + (w - w.detach())


def perturb_weight(
    w: Tensor, bits: int | None, sigma: float, generator: torch.Generator | None = None
) -> Tensor:
    """Fake-quantize ``w`` and multiply by ``1 + sigma * N(0, 1)`` noise.

    The order (quantize, then noise) matches deployment: the quantized target is what is
    programmed, and programming adds the relative error.
    """
    return multiplicative_noise(fake_quant(w, bits), sigma, generator)


def crossbar_weights(model: nn.Module) -> dict[str, Tensor]:
    """Return ``{qualified name: weight}`` of every Conv2d/Linear layer of ``model``."""
    out: dict[str, Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, CROSSBAR_LAYERS):
            weight = module.weight
            assert isinstance(weight, Tensor)
            out[f"{name}.weight" if name else "weight"] = weight
    return out


WeightMap = Callable[[str, Tensor], Tensor]
"""``weight_map(name, w) -> w'``: what a particular chip makes of a training weight."""


def perturbed_params(
    model: nn.Module,
    bits: int | None,
    sigma: float,
    generator: torch.Generator | None = None,
    weight_map: WeightMap | None = None,
) -> dict[str, Tensor]:
    """Return fake-quantized, noise-multiplied copies of all crossbar weights.

    One independent noise draw per weight element per call, so calling this once per
    training step samples a fresh "chip" each step.

    Args:
        model: Any model; only Conv2d/Linear weights are perturbed.
        bits: Weight bits (1..16), ``TERNARY`` (0), or ``None`` for full precision.
        sigma: Relative noise std (0.05 for 5 %).
        generator: Source of the noise (for reproducibility).
        weight_map: Applied to each quantized weight before the noise, e.g. one chip's
            stuck-at faults and device gains (``memsim.defect_maps``); ``None``: none.

    Returns:
        Mapping from parameter name to the perturbed tensor, differentiable w.r.t. the
        latent weights through the STE; suitable for ``functional_call``.

    """
    if weight_map is None:
        return {
            name: perturb_weight(w, bits, sigma, generator)
            for name, w in crossbar_weights(model).items()
        }
    return {
        name: multiplicative_noise(weight_map(name, fake_quant(w, bits)), sigma, generator)
        for name, w in crossbar_weights(model).items()
    }


def qat_forward(
    model: nn.Module,
    x: Tensor,
    bits: int | None,
    sigma: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run ``model(x)`` with perturbed crossbar weights (see :func:`perturbed_params`)."""
    return functional_call(model, perturbed_params(model, bits, sigma, generator), (x,))


def perturbed_forward(
    model: nn.Module,
    bits: int | None,
    sigma: float,
    generator: torch.Generator | None = None,
    weight_map: WeightMap | None = None,
) -> Forward:
    """Draw one perturbation and return ``x -> model(x)`` under it.

    Unlike :func:`qat_forward`, every call of the returned function uses the *same* noisy
    weights, i.e. the same simulated chip; ProtoNet needs this so that support and query
    images are embedded by one network.
    """
    params = perturbed_params(model, bits, sigma, generator, weight_map)

    def forward(x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    return forward


def quantized_state_dict(model: nn.Module, bits: int | None) -> dict[str, Tensor]:
    """Return a state dict whose crossbar weights are quantized (no noise).

    Handy to look at what a deployment would program before noise; the model is not
    modified.
    """
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if bits is not None:
        for name, w in crossbar_weights(model).items():
            state[name] = quantize_weight(w.detach(), bits)
    return state


def _batch_stream(batches: Iterable[Any] | Callable[[int], Any]) -> Iterator[Any]:
    if callable(batches):
        return (batches(step) for step in itertools.count())
    return itertools.cycle(batches)


def qat_finetune(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[Any] | Callable[[int], Any],
    *,
    steps: int,
    bits: int | None,
    sigma: float,
    generator: torch.Generator | None = None,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    on_step: Callable[[int, float], None] | None = None,
    train_mode: bool = True,
    weight_map: WeightMap | None = None,
) -> list[float]:
    """Train ``model`` in place with quantization- and noise-aware forward passes.

    Each step draws one fresh perturbation of all crossbar weights, evaluates
    ``loss_fn(forward, batch)`` with ``forward`` from :func:`perturbed_forward` (all calls
    within a step share the perturbation), and takes one optimizer step on the latent
    weights.

    Example (classifier; the GA's short fine-tune looks the same)::

        def ce(forward, batch):
            x, y = batch
            return F.cross_entropy(forward(x), y)

        qat_finetune(model, ce, loader, steps=200, bits=2, sigma=0.05, lr=1e-4,
                     generator=torch.Generator().manual_seed(0))

    Args:
        model: Model to train (modified in place).
        loss_fn: ``loss_fn(forward, batch) -> scalar tensor``.
        batches: An iterable (cycled if shorter than ``steps``) or a callable
            ``step -> batch``.
        steps: Number of optimizer steps.
        bits: Weight bits, ``TERNARY`` or ``None`` (see :func:`perturbed_params`).
        sigma: Relative weight-noise std during training.
        generator: Noise source.
        lr: Learning rate of the default Adam optimizer (ignored if ``optimizer`` is given).
        optimizer: Optimizer over ``model``'s parameters; default ``Adam(lr)``.
        scheduler: Stepped once per step, if given.
        grad_clip: Max global gradient norm, if given.
        on_step: Called as ``on_step(step, loss)`` after every step (logging).
        train_mode: Put the model in train mode (BatchNorm uses and updates batch
            statistics, dropout is on). ``False`` uses eval mode, i.e. frozen BatchNorm
            statistics, which suits a short fine-tune of an already trained network.
        weight_map: See :func:`perturbed_params` (train through one chip's defects).

    Returns:
        The loss of every step.

    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    opt = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=lr)
    model.train(train_mode)
    losses: list[float] = []
    stream = _batch_stream(batches)
    for step in range(steps):
        batch = next(stream)
        loss = loss_fn(perturbed_forward(model, bits, sigma, generator, weight_map), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    return losses


__all__ = [
    "CROSSBAR_LAYERS",
    "TERNARY",
    "WeightMap",
    "crossbar_weights",
    "fake_quant",
    "perturb_weight",
    "perturbed_forward",
    "perturbed_params",
    "qat_finetune",
    "qat_forward",
    "quantized_state_dict",
]
