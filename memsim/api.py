"""Public operations on whole models: convert, program, drift, calibrate, inspect."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .layers import AnalogConv2d, AnalogLayer, AnalogLinear, analog_layers
from .overrides import LayerProfiles, resolve_layer_profiles
from .profiles import DeviceProfile, load_profile
from .resources import check_memory, check_setup_time, layer_memory, module_layout
from .sampling import NoiseSampler
from .transformer import restructure


def _fresh_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


# Layers that compute matrix-vector products but that memsim cannot map onto tiles;
# leaving them digital silently would make a "chip" accuracy partly digital.
_UNMAPPABLE: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.Bilinear,
    # the exact classes are rebuilt (memsim.transformer); a subclass may have changed the
    # forward, which reads in_proj_weight, linear1.weight etc. as tensors
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)


def _matches(name: str, entry: str) -> bool:
    return name == entry or name.startswith(entry + ".")


def _unmappable_reason(module: nn.Module) -> str | None:
    if isinstance(module, _UNMAPPABLE):
        return type(module).__name__
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            return f"Conv2d with padding_mode={module.padding_mode!r}"
        if isinstance(module.padding, str):
            return f"Conv2d with padding={module.padding!r}"
    return None


def _entries(digital: Iterable[str]) -> list[str]:
    entries = [digital] if isinstance(digital, str) else list(digital)
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise ValueError(
                f"memsim.convert: digital entries must be non-empty module names, got {entry!r}"
            )
    return entries


def _plan(model: nn.Module, entries: list[str]) -> list[tuple[str, nn.Module]]:
    """The modules to put on tiles; refuse unmappable ones the user did not keep digital."""
    # an entry is valid if it names any module, also one inside a refused or digital one
    used = {e for e in entries for n, _ in model.named_modules() if n and _matches(n, e)}
    skip: list[str] = []  # subtrees already decided (digital, unmappable or analog)
    targets: list[tuple[str, nn.Module]] = []
    refused: list[str] = []
    for name, module in model.named_modules():
        if any(_matches(name, s) for s in skip):
            continue
        if any(_matches(name, e) for e in entries):
            skip.append(name)
            continue
        reason = _unmappable_reason(module)
        if reason is not None:
            refused.append(f"{name or '(root)'!r} ({reason})")
            skip.append(name)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            targets.append((name, module))
            skip.append(name)
    unused = [e for e in entries if e not in used]
    if unused:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(repr(n) for n in names[:30]) + (", ..." if len(names) > 30 else "")
        raise ValueError(
            f"memsim.convert: digital={unused} matches no module of the model (an entry "
            f"matches a module name or a prefix of it up to a dot); modules: {shown}"
        )
    if refused:
        keep = [r.split(" (")[0].strip("'") for r in refused]
        raise ValueError(
            f"memsim.convert: {len(refused)} layer(s) cannot be mapped onto tiles (only "
            f"nn.Linear and nn.Conv2d with zero padding are analog): {', '.join(refused)}; "
            f"keep them digital with convert(..., digital={keep})"
        )
    return targets


def _check_finite(what: str, w: Tensor) -> None:
    bad = int((~torch.isfinite(w)).sum())
    if bad:
        raise ValueError(
            f"{what}: {bad} non-finite weight(s) (NaN or +-inf) of {w.numel()}; a chip "
            "cannot hold them"
        )


def convert(
    model: nn.Module,
    profile: DeviceProfile | str,
    *,
    seed: int | None = None,
    chip_seed: int | None = None,
    noise_sampler: NoiseSampler | str = NoiseSampler.exact,
    digital: Iterable[str] = (),
    layer_profiles: LayerProfiles | None = None,
) -> nn.Module:
    """Return a deep copy of ``model`` with every Linear and Conv2d on analog tiles.

    The copy is programmed at once (time 0 after programming).  The original model is
    untouched.  ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` /
    ``nn.TransformerDecoderLayer`` are rebuilt first (:mod:`memsim.transformer`): their
    query, key, value, output and feed-forward projections go onto tiles as
    ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``, ``linear1``, ``linear2``, and the
    products of activations (``Q K^T``, ``softmax(.) V``) stay digital.  Layers that
    compute a matrix product memsim cannot map (Conv1d, Conv3d, transposed convs,
    RNN/LSTM/GRU and their cells, Bilinear, subclasses of the attention and transformer
    layers, Conv2d with non-zero or string padding) are refused unless ``digital`` names
    them; :func:`tile_report` lists every layer with parameters that stayed digital.

    Args:
        model: Any module; its ``nn.Linear`` and ``nn.Conv2d`` become analog.
        profile: A :class:`DeviceProfile` or a shipped name / JSON path.
        seed: Seed of the programming-noise and read-noise streams (random if ``None``).
        chip_seed: Seed of the chip instance: stuck-at faults and device-to-device
            variation.  Defaults to ``seed``.  The same chip seed always gives the same
            defective devices.
        noise_sampler: ``"exact"`` (fresh normals every MVM) or ``"bank"`` (a reused
            pool at random offsets; faster on CPU, see :mod:`memsim.sampling`).
        digital: Modules to keep digital, by name as in ``model.named_modules()``.  An
            entry matches the module of that name and everything under it
            (``"encoder"`` matches ``"encoder"`` and ``"encoder.0.fc"``, not
            ``"encoder2"``); the projections of a rebuilt attention are named too
            (``"enc.self_attn.q_proj"``).  An entry that matches no module is an error.
        layer_profiles: Per-layer profiles by module name, prefix or ``fnmatch`` pattern:
            a dict of fields derives from the profile (``{"features.0": {"adc": {"bits":
            8}}}``), a profile (object, name or path) replaces it; see
            :mod:`memsim.overrides`.

    Raises:
        ValueError: An unmappable layer not named in ``digital``, a ``digital`` entry
            that matches nothing, a non-finite weight, or no layer to map.
        memsim.ChipMemoryError: The chip would need more memory than is available
            (checked before anything is allocated, :mod:`memsim.resources`).
        memsim.ChipTimeError: The chip's IR-drop solves would run beyond the time limit
            (``MEMSIM_MAX_SETUP_SECONDS``, default 600 s; checked next).

    """
    prof = load_profile(profile)
    seed = _fresh_seed() if seed is None else int(seed)
    chip_seed = seed if chip_seed is None else int(chip_seed)
    entries = _entries(digital)
    # attention and transformer layers rebuilt around nn.Linear projections (a copy)
    source = restructure(model, entries)
    planned = _plan(source, entries)
    if not planned:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to map onto tiles")
    for name, module in planned:
        _check_finite(f"memsim.convert: layer {name or '(root)'!r}", module.weight)
    profiles = resolve_layer_profiles(prof, [n for n, _ in planned], layer_profiles)
    # before anything is allocated: a chip beyond the machine's memory, or one whose
    # IR-drop solves would run for hours, is refused at once
    layouts = [
        (n, module_layout(m, p), p)  # type: ignore[arg-type]
        for (n, m), p in zip(planned, profiles, strict=True)
    ]
    device = planned[0][1].weight.device
    check_memory([layer_memory(n, lay, p) for n, lay, p in layouts], device)
    check_setup_time(layouts, device)
    analog = copy.deepcopy(model) if source is model else source
    targets = [(n, analog.get_submodule(n)) for n, _ in planned]
    for index, (name, module) in enumerate(targets):
        cls = AnalogLinear if isinstance(module, nn.Linear) else AnalogConv2d
        layer = cls(module, profiles[index], index)  # type: ignore[arg-type]
        layer.qualified_name = name
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
        weights: New target weights keyed ``"<module>.weight"`` like ``state_dict``,
            as tensors (any float dtype and device); layers not named keep their
            current targets.  ``None`` re-programs the current targets.
        seed: Seed of the new programming/read-noise draws (random if ``None``).

    Returns:
        ``model`` (modified in place).

    Raises:
        TypeError: ``weights`` is not a mapping, or a value is not a tensor (a nested
            list or an array is refused, not guessed).
        KeyError: A name that is not an analog layer's weight.
        ValueError: A shape that does not fit its layer, or a non-finite weight.  A
            refused call changes nothing.

    """
    layers = _layers(model)
    seed = _fresh_seed() if seed is None else int(seed)
    if weights is not None and not isinstance(weights, Mapping):
        raise TypeError(
            "memsim.program: weights must be a mapping of '<module>.weight' names to tensors "
            f"(like a state_dict), got {type(weights).__name__}"
        )
    if weights is not None:
        known = {f"{n}.weight" if n else "weight": m for n, m in layers}
        unknown = sorted(set(weights) - set(known))
        if unknown:
            raise KeyError(f"unknown analog weight names {unknown}; known: {sorted(known)}")
        checked = {}
        # every weight is checked before any is copied: a refused call changes nothing
        for key, w in weights.items():
            layer = known[key]
            if not isinstance(w, Tensor):
                raise TypeError(
                    f"memsim.program: weights[{key!r}] must be a torch.Tensor, got "
                    f"{type(w).__name__}; convert it first, e.g. torch.as_tensor(value)"
                )
            tgt = layer.tiles.target
            w = torch.as_tensor(w, dtype=tgt.dtype, device=tgt.device)
            if tuple(w.shape) != layer.weight_shape:
                raise ValueError(
                    f"{key}: shape {tuple(w.shape)} does not match the layer {layer.weight_shape}"
                )
            _check_finite(f"memsim.program: {key!r}", w)
            checked[key] = w
        for key, w in checked.items():
            layer = known[key]
            layer.set_targets(w)
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
    return {
        (f"{n}.weight" if n else "weight"): layer.tiles.g_now.clone() for n, layer in _layers(model)
    }


def target_weights(model: nn.Module) -> dict[str, Tensor]:
    """The target weights that were programmed, keyed like ``state_dict``."""
    return {
        (f"{n}.weight" if n else "weight"): layer.tiles.target.reshape(layer.weight_shape).clone()
        for n, layer in _layers(model)
    }


def _batch_input(batch: object) -> object:
    """The model input of one batch: a tensor, or the first item of an ``(x, y)`` batch."""
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    return batch


def _check_calibration_batch(x: object, index: int | None) -> None:
    if isinstance(x, Tensor) and x.numel() == 0:
        which = "the calibration batch" if index is None else f"calibration batch {index}"
        raise ValueError(
            f"memsim.calibrate: {which} is empty (shape {tuple(x.shape)}); calibration needs "
            "at least one input; the chip keeps its previous ranges"
        )


@torch.no_grad()
def calibrate(model: nn.Module, batches: Tensor | Iterable[Tensor | Sequence[Tensor]]) -> nn.Module:
    """Set the calibrated DAC/ADC ranges from one batch or an iterable of batches.

    Without this call, a layer in a ``calibrated`` mode calibrates itself on the first
    batch it sees after programming.  A batch may be a tensor or an ``(x, y, ...)``
    tuple or list as a ``DataLoader`` yields it (``x`` is used).  NaN and +-inf
    values are ignored when the ranges are set (a warning is logged), so later clean
    batches stay finite.

    Raises:
        ValueError: ``batches`` yielded no batch, or an empty one (no input rows).  The
            ranges and the calibrated state are then left as they were, as they are
            when a batch raises.

    """
    layers = _layers(model)
    if isinstance(batches, Tensor):
        _check_calibration_batch(batches, None)
    saved = [m.calibration_state() for _, m in layers]
    for _, layer in layers:
        layer.calibrate_begin()
    was_training = model.training
    model.eval()
    done = False
    try:
        n = 0
        for batch in [batches] if isinstance(batches, Tensor) else batches:
            x = _batch_input(batch)
            _check_calibration_batch(x, n)
            model(x)
            n += 1
        if n == 0:
            raise ValueError(
                "memsim.calibrate: no calibration batch (the iterable is empty); the chip "
                "keeps its previous ranges"
            )
        done = True
    finally:
        for (_, layer), state in zip(layers, saved, strict=True):
            layer.calibrate_end()
            if not done:
                layer.restore_calibration(state)
        model.train(was_training)
    return model


def needs_calibration(model: nn.Module) -> bool:
    """Whether any analog layer of ``model`` has a quantizing DAC or ADC in ``calibrated`` mode.

    Such a chip sets its converter ranges from data after every programming; see
    :func:`calibrate`.
    """
    layers = _layers(model)
    return any(m.dac.needs_calibration or m.adc.needs_calibration for _, m in layers)


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
class DigitalLayer:
    """A module with parameters of its own that is not on tiles (it computes digitally)."""

    name: str
    kind: str
    """Class name, e.g. ``"BatchNorm2d"`` or ``"LSTM"``."""
    parameters: int
    """Number of its own parameters (not those of submodules)."""


@dataclass(frozen=True)
class TileReport:
    """Per-layer tile usage of a converted model."""

    layers: list[LayerTiles]
    rows: int
    cols: int
    digital: list[DigitalLayer] = field(default_factory=list)
    """Modules with parameters that stayed digital (biases of analog layers excepted)."""

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
        if not self.digital:
            lines.append("digital (not on tiles): none")
            return "\n".join(lines)
        n_par = sum(d.parameters for d in self.digital)
        n_lay = len(self.digital)
        lines.append(
            f"digital (not on tiles): {n_lay} layer{'s' if n_lay > 1 else ''}, {n_par} parameters"
        )
        for d in self.digital:
            lines.append(f"  {d.name:<30} {d.kind:<20} {d.parameters:>10} parameters")
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
    digital = [
        DigitalLayer(name or "(root)", type(m).__name__, sum(p.numel() for p in own))
        for name, m in model.named_modules()
        if not isinstance(m, AnalogLayer) and (own := list(m.parameters(recurse=False)))
    ]
    tile = layers[0][1].profile.tile
    return TileReport(rows, tile.rows, tile.cols, digital)
