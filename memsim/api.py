"""Public operations on whole models: convert, program, drift, calibrate, inspect."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import AnalogConv2d, AnalogLayer, AnalogLinear, analog_layers
from .profiles import DeviceProfile, RangeMode, load_profile
from .sampling import NoiseSampler


def _fresh_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


def convert(
    model: nn.Module,
    profile: DeviceProfile | str,
    *,
    seed: int | None = None,
    chip_seed: int | None = None,
    noise_sampler: NoiseSampler | str = NoiseSampler.exact,
) -> nn.Module:
    """Return a deep copy of ``model`` with every Linear and Conv2d on analog tiles.

    The copy is programmed at once (time 0 after programming).  The original model is
    untouched.

    Args:
        model: Any module; its ``nn.Linear`` and ``nn.Conv2d`` become analog.
        profile: A :class:`DeviceProfile` or a shipped name / JSON path.
        seed: Seed of the programming-noise and read-noise streams (random if ``None``).
        chip_seed: Seed of the chip instance: stuck-at faults and device-to-device
            variation.  Defaults to ``seed``.  The same chip seed always gives the same
            defective devices.
        noise_sampler: ``"exact"`` (fresh normals every MVM) or ``"bank"`` (a reused
            pool at random offsets; faster on CPU, see :mod:`memsim.sampling`).

    """
    prof = load_profile(profile)
    seed = _fresh_seed() if seed is None else int(seed)
    chip_seed = seed if chip_seed is None else int(chip_seed)
    analog = copy.deepcopy(model)
    targets = [(n, m) for n, m in analog.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not targets:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to map onto tiles")
    for index, (name, module) in enumerate(targets):
        cls = AnalogLinear if isinstance(module, nn.Linear) else AnalogConv2d
        layer = cls(module, prof, index)  # type: ignore[arg-type]
        layer.train(module.training)
        layer.noise_sampler = NoiseSampler(noise_sampler)
        layer.make_chip(chip_seed)
        layer.program(seed)
        if name:
            analog.set_submodule(name, layer)
        else:
            analog = layer
    analog.memsim_chip_seed = chip_seed  # type: ignore[assignment]
    analog.memsim_profile = prof  # type: ignore[assignment]
    return analog


def _layers(model: nn.Module) -> list[tuple[str, AnalogLayer]]:
    layers = analog_layers(model)
    if not layers:
        raise ValueError("the model has no analog layer; convert it with memsim.convert first")
    return layers


@torch.no_grad()
def program(
    model: nn.Module,
    weights: Mapping[str, Tensor] | None = None,
    *,
    seed: int | None = None,
) -> nn.Module:
    """Re-program the analog layers, with fresh programming noise, on the same chip.

    Args:
        model: A model returned by :func:`convert`.
        weights: New target weights keyed ``"<module>.weight"`` like ``state_dict``;
            layers not named keep their current targets.  ``None`` re-programs the
            current targets.
        seed: Seed of the new programming/read-noise draws (random if ``None``).

    Returns:
        ``model`` (modified in place).

    """
    layers = _layers(model)
    seed = _fresh_seed() if seed is None else int(seed)
    if weights is not None:
        known = {f"{n}.weight" if n else "weight": m for n, m in layers}
        unknown = sorted(set(weights) - set(known))
        if unknown:
            raise KeyError(f"unknown analog weight names {unknown}; known: {sorted(known)}")
        for key, w in weights.items():
            layer = known[key]
            if tuple(w.shape) != layer.weight_shape:
                raise ValueError(
                    f"{key}: shape {tuple(w.shape)} does not match the layer {layer.weight_shape}"
                )
            layer.target.copy_(w.detach().reshape(layer.target.shape))
    for _, layer in layers:
        layer.program(seed)
    return model


@torch.no_grad()
def drift(model: nn.Module, t_seconds: float) -> nn.Module:
    """Age every tile to ``t_seconds`` after programming (absolute, not incremental)."""
    for _, layer in _layers(model):
        layer.drift_to(t_seconds)
    return model


def effective_weights(model: nn.Module) -> dict[str, Tensor]:
    """The weights the chip holds now, in weight units, keyed like ``state_dict``.

    They include quantization, programming noise, faults, variation, drift, IR drop and
    drift compensation, but not per-MVM read noise or DAC/ADC effects.
    """
    return {
        (f"{n}.weight" if n else "weight"): layer.effective_weight() for n, layer in _layers(model)
    }


def conductances(model: nn.Module) -> dict[str, Tensor]:
    """Device conductances now (µS), ``(2, out, K)`` per layer: ``[G+, G-]``.

    Logical layout (outputs x inputs per group); see ``layout.positions()`` of each
    layer for the physical tile, row and column.  IR drop is not included.
    """
    return {(f"{n}.weight" if n else "weight"): layer.g_now.clone() for n, layer in _layers(model)}


def target_weights(model: nn.Module) -> dict[str, Tensor]:
    """The target weights that were programmed, keyed like ``state_dict``."""
    return {
        (f"{n}.weight" if n else "weight"): layer.target.reshape(layer.weight_shape).clone()
        for n, layer in _layers(model)
    }


@torch.no_grad()
def calibrate(model: nn.Module, batches: Tensor | Iterable[Tensor]) -> nn.Module:
    """Set the calibrated DAC/ADC ranges from one batch or an iterable of batches.

    Without this call, a layer in a ``calibrated`` mode calibrates itself on the first
    batch it sees after programming.
    """
    layers = _layers(model)
    for _, layer in layers:
        layer.calibrate_begin()
    was_training = model.training
    model.eval()
    try:
        for batch in [batches] if isinstance(batches, Tensor) else batches:
            model(batch)
    finally:
        for _, layer in layers:
            layer.calibrate_end()
        model.train(was_training)
    return model


def needs_calibration(model: nn.Module) -> bool:
    """Whether any analog layer of ``model`` has a quantizing DAC or ADC in ``calibrated`` mode.

    Such a chip sets its converter ranges from data after every programming; see
    :func:`calibrate`.
    """
    for _, layer in _layers(model):
        for conv in (layer.profile.dac, layer.profile.adc):
            if conv.bits is not None and conv.mode == RangeMode.calibrated:
                return True
    return False


@dataclass(frozen=True)
class LayerTiles:
    """Tiling of one analog layer."""

    name: str
    kind: str
    matrix: tuple[int, int]
    """(outputs, inputs per group)."""
    groups: int
    tiles: int
    grid: tuple[int, int]
    groups_per_tile: int
    utilization: float
    devices: int
    """Physical devices holding weights (two per weight)."""


@dataclass(frozen=True)
class TileReport:
    """Per-layer tile usage of a converted model."""

    layers: list[LayerTiles]
    rows: int
    cols: int

    @property
    def total_tiles(self) -> int:
        """Tiles of all layers."""
        return sum(layer.tiles for layer in self.layers)

    @property
    def utilization(self) -> float:
        """Fraction of all allocated cells that hold a weight."""
        used = sum(layer.devices // 2 for layer in self.layers)
        return used / max(1, self.total_tiles * self.rows * self.cols)

    def __str__(self) -> str:
        """Format as a fixed-width table."""
        head = f"{'layer':<32} {'kind':<7} {'matrix':>12} {'groups':>6} {'tiles':>6} "
        head += f"{'grid':>9} {'util':>6}"
        lines = [f"tiles {self.rows}x{self.cols}", head]
        for r in self.layers:
            grid = f"{r.grid[0]}x{r.grid[1]}"
            mat = f"{r.matrix[0]}x{r.matrix[1]}"
            lines.append(
                f"{r.name:<32} {r.kind:<7} {mat:>12} {r.groups:>6} {r.tiles:>6} "
                f"{grid:>9} {r.utilization:>6.1%}"
            )
        lines.append(f"total tiles {self.total_tiles}, utilization {self.utilization:.1%}")
        return "\n".join(lines)


def tile_report(model: nn.Module) -> TileReport:
    """Return the tile count, grid and utilization of every analog layer."""
    rows = []
    layers = _layers(model)
    for name, layer in layers:
        lay = layer.layout
        rows.append(
            LayerTiles(
                name=name,
                kind="linear" if isinstance(layer, AnalogLinear) else "conv2d",
                matrix=(lay.out, lay.k),
                groups=lay.groups,
                tiles=lay.n_tiles,
                grid=lay.grid,
                groups_per_tile=lay.groups_per_tile,
                utilization=lay.utilization,
                devices=2 * lay.out * lay.k,
            )
        )
    tile = layers[0][1].profile.tile
    return TileReport(rows, tile.rows, tile.cols)
