"""Digital corrections on a chip's analog layers at run time: output trims and adapters.

A correction is a forward hook on an analog layer: a per-column trim ``gain * y + offset``
(before the digital bias, as :mod:`memsim.trim` applies it) or an additive digital branch
``y + adapter(x)`` on the layer's input.  The analog state is never touched: the hooks
only change what the digital side does with the layer's output.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def apply_trim(y: Tensor, gain: Tensor, offset: Tensor, bias: Tensor | None) -> Tensor:
    """The layer's output with its trim: ``gain * (y - bias) + offset + bias`` per column."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    b = 0.0 if bias is None else bias.reshape(shape)
    return gain.reshape(shape) * (y - b) + offset.reshape(shape) + b


def add_corrections(
    model: nn.Module,
    trim: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    adapters: Mapping[str, nn.Module] | None = None,
) -> list[RemovableHandle]:
    """Hook digital trims / adapters onto the named layers of ``model``; return the handles."""
    hooks = []
    for key, (gain, offset) in (trim or {}).items():
        mod = model.get_submodule(key.removesuffix(".weight"))

        def trim_hook(m: nn.Module, _i: Any, out: Tensor, g: Tensor = gain, o: Tensor = offset):
            return apply_trim(out, g, o, m.bias)

        hooks.append(mod.register_forward_hook(trim_hook))
    for key, adapter in (adapters or {}).items():
        mod = model.get_submodule(key.removesuffix(".weight"))

        def adapter_hook(_m: nn.Module, inp: tuple[Tensor, ...], out: Tensor, a=adapter):
            return out + a(inp[0])

        hooks.append(mod.register_forward_hook(adapter_hook))
    return hooks


@contextmanager
def corrected(
    model: nn.Module,
    trim: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    adapters: Mapping[str, nn.Module] | None = None,
) -> Iterator[None]:
    """Run ``model`` (a chip) with digital trims / adapters on its named layers."""
    hooks = add_corrections(model, trim, adapters)
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def layer_io(net: nn.Module, keys: list[str], x: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Inputs and outputs of the named layers of ``net`` for the batch ``x``."""
    seen: dict[str, tuple[Tensor, Tensor]] = {}
    hooks = []
    for key in keys:
        mod = net.get_submodule(key.removesuffix(".weight"))

        def hook(_m: nn.Module, inp: tuple[Tensor, ...], out: Tensor, key: str = key) -> None:
            seen[key] = (inp[0].detach(), out.detach())

        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


class Committee(nn.Module):
    """``k`` copies of a network whose outputs are averaged (a committee of arrays).

    Converted with :func:`memsim.convert`, every copy's layers are analog layers of
    their own (their own layer indices), so each copy sits on arrays with independent
    stuck devices and gains, programming and read noise: ``k`` chips' worth of arrays
    computing the same weights.  ``k = 1`` is the network itself on the same arrays.
    """

    def __init__(self, net: nn.Module, k: int) -> None:
        """``k`` deep copies of ``net``."""
        super().__init__()
        if k < 1:
            raise ValueError(f"a committee needs k >= 1 members, got {k}")
        self.members = nn.ModuleList(copy.deepcopy(net) for _ in range(k))

    def forward(self, x: Tensor) -> Tensor:
        """Mean of the members' outputs."""
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out / len(self.members)


class LayerEnsemble(nn.Module):
    """``k`` copies of one layer on their own arrays, mixed per output column.

    Output column ``j`` is ``sum_c mix[c, j] * y_c[j]`` over the copies ``c`` (each
    column's weights sum to 1): a copy whose column is damaged can be left out of that
    column only.
    """

    def __init__(self, layer: nn.Module, k: int, mix: Tensor | None = None) -> None:
        """``k`` deep copies of ``layer``; ``mix`` ``(k, out)`` defaults to the mean."""
        super().__init__()
        self.copies = nn.ModuleList(copy.deepcopy(layer) for _ in range(k))
        out = layer.weight.shape[0]
        self.register_buffer("mix", torch.full((k, out), 1.0 / k) if mix is None else mix)

    def forward(self, x: Tensor) -> Tensor:
        """The mixed output."""
        outs = torch.stack([c(x) for c in self.copies])
        shape = (outs.shape[0], 1, -1) + (1,) * (outs.dim() - 3)
        return (outs * self.mix.to(outs).reshape(shape)).sum(0)


def ensemble_network(
    net: nn.Module, keys: list[str], k: int, mixes: Mapping[str, Tensor] | None = None
) -> nn.Module:
    """A copy of ``net`` whose ``keys`` layers are :class:`LayerEnsemble` of ``k`` copies."""
    out = copy.deepcopy(net)
    for key in keys:
        name = key.removesuffix(".weight")
        mix = None if mixes is None else mixes[key]
        out.set_submodule(name, LayerEnsemble(out.get_submodule(name), k, mix))
    return out


def copy_key(key: str, c: int) -> str:
    """The weight name of copy ``c`` of layer ``key`` in an :func:`ensemble_network`."""
    return f"{key.removesuffix('.weight')}.copies.{c}.weight"


__all__ = [
    "Committee",
    "LayerEnsemble",
    "add_corrections",
    "apply_trim",
    "copy_key",
    "corrected",
    "ensemble_network",
    "layer_io",
]
