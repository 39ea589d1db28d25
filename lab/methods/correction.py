"""Digital corrections beside the analog layers, fitted on measured layer outputs.

The analog weights stay as programmed; a small digital block per analog layer corrects
what the layer outputs:

* **trim** (``trim_grad``): ``y -> gain * y + offset`` per output column after the ADC
  (:mod:`memsim.trim`, 2 numbers per column);
* **adapter** (``adapter_lora``): ``y -> y + B(A(x))``, a rank-``r`` digital branch on the
  layer's input (``A``: the layer's kernel into ``r`` channels, ``B``: 1 x 1 back to the
  outputs), LoRA-style with ``B = 0`` at the start.

:func:`fit_layerwise` fits them layer by layer: with the earlier layers' corrections in
place, the chip's measured output of layer ``L`` for a training batch is corrected and
compared (mean squared error) with the digital network's output of the same layer on the
same images; the correction's parameters take Adam steps on that loss.  The chip's analog
layers compute without autograd, so each layer is fitted on its own measurements.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from lab.fitness.digital import apply_trim, layer_io
from lab.fitness.finetune import with_genes
from lab.methods.base import RecoveryData
from lab.methods.chip import Chip
from lab.methods.training import split_steps

MEASURE_BATCHES = 4
"""Training batches measured per layer (the fit cycles over them)."""
BATCH = 128
CORRECTION_LR = 1e-2


class Adapter(nn.Module):
    """Rank-``r`` digital branch ``B(A(x))`` beside one ``Linear`` or ``Conv2d`` layer."""

    def __init__(self, layer: nn.Module, rank: int, generator: torch.Generator) -> None:
        """Shape the branch after the digital ``layer`` (``B`` starts at zero)."""
        super().__init__()
        if isinstance(layer, nn.Conv2d):
            self.down: nn.Module = nn.Conv2d(
                layer.in_channels,
                rank,
                layer.kernel_size,  # type: ignore[arg-type]
                layer.stride,  # type: ignore[arg-type]
                layer.padding,  # type: ignore[arg-type]
                layer.dilation,  # type: ignore[arg-type]
                bias=False,
            )
            self.up: nn.Module = nn.Conv2d(rank, layer.out_channels, 1, bias=False)
        elif isinstance(layer, nn.Linear):
            self.down = nn.Linear(layer.in_features, rank, bias=False)
            self.up = nn.Linear(rank, layer.out_features, bias=False)
        else:
            raise TypeError(f"adapters fit Linear and Conv2d layers, not {type(layer).__name__}")
        with torch.no_grad():
            w = self.down.weight
            fan_in = w[0].numel()
            w.copy_(torch.randn(w.shape, generator=generator) / fan_in**0.5)
            self.up.weight.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """The correction added to the layer's output."""
        return self.up(self.down(x))

    def params(self) -> int:
        """Digital parameters."""
        return sum(p.numel() for p in self.parameters())


def fit_layerwise(
    baseline: nn.Module,
    chip: Chip,
    data: RecoveryData,
    genes: Tensor,
    steps: int,
    kind: str,
    rank: int = 4,
) -> dict[str, Any]:
    """Program ``genes`` and fit a ``kind`` (``"trim"`` / ``"adapter"``) correction per layer.

    Returns:
        ``{"trim": {...}}`` or ``{"adapters": {...}}``, ready to deploy.

    """
    keys = list(data.genome.keys)
    gen = torch.Generator().manual_seed(int(data.seed))
    digital = with_genes(baseline, data.genome, genes)
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    chip.program_layers(data.genome.unflatten(genes), seed)
    batches = [
        data.train.images[torch.randint(0, len(data.train), (BATCH,), generator=gen)]
        for _ in range(MEASURE_BATCHES)
    ]
    targets = [layer_io(digital, keys, x) for x in batches]
    trims: dict[str, tuple[Tensor, Tensor]] = {}
    adapters: dict[str, nn.Module] = {}
    for key, n_steps in zip(keys, split_steps(steps, len(keys))):
        layer = digital.get_submodule(key.removesuffix(".weight"))
        measured = [chip.layer_io(x, [key], trim=trims, adapters=adapters)[key] for x in batches]
        bias = None if layer.bias is None else layer.bias.detach()
        # each column's error in units of its digital output std: every column counts,
        # and a trim's offset moves in those units (an Adam step is about lr in size)
        ref = torch.cat(
            [t[key][1].transpose(0, 1).reshape(layer.weight.shape[0], -1) for t in targets], dim=1
        )
        std = ref.std(dim=1).clamp(min=1e-6)
        shape = (1, -1) + (1,) * (targets[0][key][1].dim() - 2)
        if kind == "trim":
            out = layer.weight.shape[0]
            a, c = torch.zeros(out, requires_grad=True), torch.zeros(out, requires_grad=True)
            params: list[Tensor] = [a, c]

            def correct(x: Tensor, y: Tensor, a=a, c=c, s=std, b=bias) -> Tensor:
                return apply_trim(y, 1.0 + a, c * s, b)
        elif kind == "adapter":
            adapter = Adapter(layer, rank, gen)
            params = list(adapter.parameters())

            def correct(x: Tensor, y: Tensor, a=adapter) -> Tensor:
                return y + a(x)
        else:
            raise ValueError(f"kind must be 'trim' or 'adapter', got {kind!r}")
        opt = torch.optim.Adam(params, lr=CORRECTION_LR)
        for step in range(n_steps):
            i = step % len(batches)
            x_chip, y_chip = measured[i]
            err = (correct(x_chip, y_chip) - targets[i][key][1]) / std.reshape(shape)
            loss = err.square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            chip.counters.steps += 1
        if kind == "trim":
            trims[key] = ((1.0 + a).detach().clone(), (c * std).detach().clone())
        else:
            adapters[key] = copy.deepcopy(adapter).requires_grad_(False)
    return {"trim": trims} if kind == "trim" else {"adapters": adapters}


def digital_overhead(
    baseline: nn.Module,
    keys: list[str],
    image: Tensor,
    trim: dict[str, tuple[Tensor, Tensor]] | None = None,
    adapters: dict[str, nn.Module] | None = None,
) -> dict[str, int]:
    """Digital parameters and multiply-accumulates per inference of the corrections.

    A trim costs one MAC per output value of its layer; an adapter the MACs of its two
    convolutions (or matrix products) on the layer's input.
    """
    io = layer_io(copy.deepcopy(baseline).eval(), keys, image[:1])
    params = macs = 0
    for key, (gain, offset) in (trim or {}).items():
        params += gain.numel() + offset.numel()
        macs += io[key][1].numel()
    for key, adapter in (adapters or {}).items():
        params += adapter.params()
        x = io[key][0]
        mid = adapter.down(x)
        macs += mid.numel() * adapter.down.weight[0].numel()
        macs += adapter.up(mid).numel() * adapter.up.weight[0].numel()
    return {"digital_params": int(params), "digital_macs": int(macs)}


__all__ = ["Adapter", "digital_overhead", "fit_layerwise"]
