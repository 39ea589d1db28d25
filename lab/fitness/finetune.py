"""The one QAT fine-tune of gene weights, used by the GA's fitness and by the control.

:func:`qat_tune` fine-tunes the weights a genome holds (with a task's ``batch`` and
``loss``, see :mod:`models.tasks`); :func:`with_genes` builds the network that holds a
genome's weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ga.genome import Genome
from models.quant import LossFn, WeightMap, qat_finetune


def qat_tune(
    work: nn.Module,
    genome: Genome,
    genes: Tensor,
    base_state: dict[str, Tensor],
    loss: LossFn,
    draw_batch: Callable[[torch.Generator], Any],
    *,
    steps: int,
    bits: int,
    sigma: float,
    lr: float,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    weight_map: WeightMap | None = None,
    train_mode: bool = True,
) -> Tensor:
    """QAT fine-tune of the gene weights only; return the tuned genes.

    The one fine-tune of the GA's fitness (:class:`lab.fitness.chip.ChipFitness`) and of the
    extra-QAT control.  ``work`` is reset to ``base_state`` and loaded with ``genes``;
    only the gene weights are trained (Adam), since biases and BatchNorm are not genes
    and the chip keeps the baseline's.  One generator seeded with ``seed`` draws both the
    batches (``draw_batch(gen)``, scored by ``loss``) and the QAT noise.  ``weight_map``
    makes the forward passes see one chip's defects (see
    :func:`models.quant.perturbed_params`).  ``train_mode=False`` runs the fine-tune in
    eval mode: the baseline's running BatchNorm statistics, as the chip deploys them, and
    no dropout (``fitness.finetune_mode = "eval"``).
    """
    work.load_state_dict(base_state)
    genome.load_into(work, genes)
    if steps == 0:
        return genes.clone()
    gen = torch.Generator().manual_seed(int(seed))
    params = dict(work.named_parameters())
    opt = torch.optim.Adam([params[k] for k in genome.keys], lr=lr)
    qat_finetune(
        work,
        loss,
        lambda _step: draw_batch(gen),
        steps=steps,
        bits=bits,
        sigma=sigma,
        generator=gen,
        optimizer=opt,
        on_step=on_step,
        weight_map=weight_map,
        train_mode=train_mode,
    )
    return genome.from_module(work).to(genes.dtype)


def with_genes(model: nn.Module, genome: Genome, genes: Tensor) -> nn.Module:
    """Return a copy of ``model`` (baseline biases / BN) holding ``genes`` as its weights."""
    net = copy.deepcopy(model)
    genome.load_into(net, genes)
    net.eval()
    return net
