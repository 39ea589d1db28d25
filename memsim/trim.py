"""Digital per-column gain and offset after the ADC (output trim).

Chips digitize every column and then scale it digitally; a per-column gain and offset in
that digital path is a cheap knob a user can set after programming (for example by a
search with the chip in the loop).  :func:`set_output_trim` sets it per analog layer:
output ``j`` of the layer becomes ``gain[j] * y[j] + offset[j]`` (before the digital
bias), in the layer's output units.  The trim is not part of the programmed state: it
survives :func:`memsim.program` and is not saved in ``state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .layers import analog_layers


def set_output_trim(model: nn.Module, trim: Mapping[str, tuple[Tensor, Tensor]]) -> None:
    """Set ``{"<layer>.weight": (gain, offset)}`` (each of shape ``(out,)``) on ``model``.

    Layers not named keep their trim.

    Raises:
        ValueError: An unknown layer name or a wrong shape.

    """
    layers = {(f"{n}.weight" if n else "weight"): m for n, m in analog_layers(model)}
    for name, (gain, offset) in trim.items():
        if name not in layers:
            raise ValueError(f"set_output_trim: no analog layer {name!r}; have {sorted(layers)}")
        layer = layers[name]
        out = layer.layout.out
        for what, v in (("gain", gain), ("offset", offset)):
            if tuple(v.shape) != (out,):
                raise ValueError(
                    f"set_output_trim: {name} {what} must have shape ({out},), got {tuple(v.shape)}"
                )
        layer.trim = (
            gain.detach().to(layer.tiles.w_norm).clone(),
            offset.detach().to(layer.tiles.w_norm).clone(),
        )


def clear_output_trim(model: nn.Module) -> None:
    """Remove every layer's output trim (gain 1, offset 0)."""
    for _, layer in analog_layers(model):
        layer.trim = None


def output_trim(model: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
    """The trim currently set, per layer (layers without one are left out)."""
    return {
        (f"{n}.weight" if n else "weight"): (m.trim[0].clone(), m.trim[1].clone())
        for n, m in analog_layers(model)
        if m.trim is not None
    }


__all__ = ["clear_output_trim", "output_trim", "set_output_trim"]
