"""Deploying a model on aihwkit with a memsim profile: layer mapping, programming, drift.

Part of :mod:`memsim.backends.aihwkit` (which re-exports everything here); the profile
translation is there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

# aihwkit itself is imported (with the install hint when missing) by memsim.backends.aihwkit
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.simulator.configs import InferenceRPUConfig
from torch import nn

from .. import mapping as ms_mapping
from ..overrides import LayerProfiles, resolve_layer_profiles
from ..periphery import ADC, DAC
from ..profiles import (
    DeviceProfile,
    RangeMode,
    WeightQuant,
    WeightScaling,
    load_profile,
)
from ..seeds import device_seed
from ..tiling import make_layout
from ..transformer import restructure
from .aihwkit import (
    _STREAM_AIHWKIT_DRIFT,
    _STREAM_AIHWKIT_PROG,
    APPROXIMATED,
    Knob,
    Translation,
    md_cell,
    translate,
)


# -- model conversion ----------------------------------------------------------------------
@dataclass(frozen=True)
class LayerMapping:
    """Where one Linear / Conv2d layer runs in memsim and in aihwkit.

    Attributes:
        name: Qualified module name.
        kind: ``"linear"`` or ``"conv2d"``.
        aihwkit: ``"analog"`` or ``"digital"`` (kept as the torch layer).
        memsim_rows: Rows used by each memsim row tile (inputs per partial sum).
        aihwkit_rows: Inputs of each aihwkit tile (empty when digital).
        memsim_tiles: memsim tiles of the layer.
        aihwkit_tiles: aihwkit tiles of the layer (0 when digital).
        note: Why a layer is digital, or how the tilings differ.
        memsim: ``"analog"`` or ``"digital"`` on memsim's side (a comparison keeps a
            layer digital on both sides when aihwkit cannot map it).

    """

    name: str
    kind: str
    aihwkit: str
    memsim_rows: tuple[int, ...]
    aihwkit_rows: tuple[int, ...]
    memsim_tiles: int
    aihwkit_tiles: int
    note: str = ""
    memsim: str = "analog"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _split_sizes(size: int, max_size: int) -> tuple[int, ...]:
    # aihwkit.simulator.tiles.array.TileModuleArray.get_split_sizes: equal parts.
    if max_size <= 0 or size <= max_size:
        return (size,)
    n = (size + max_size - 1) // max_size
    base, extra = divmod(size, n)
    return tuple(base + (i < extra) for i in range(n))


def _memsim_rows(k: int, span: int) -> tuple[int, ...]:
    n = math.ceil(k / span)
    return tuple(min(span, k - i * span) for i in range(n))


def _mapped_names(model: nn.Module) -> list[str]:
    """Module names of the layers that map onto tiles, in ``named_modules`` order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _plan_layers(
    model: nn.Module, profile: DeviceProfile, per_layer: Mapping[str, DeviceProfile] | None = None
) -> list[LayerMapping]:
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        prof = (per_layer or {}).get(name, profile)
        rows, cols = prof.tile.rows, prof.tile.cols
        w = m.weight
        groups = m.groups if isinstance(m, nn.Conv2d) else 1
        kernel = int(math.prod(w.shape[2:])) if w.dim() > 2 else 1
        lay = make_layout(w.shape[0], w[0].numel(), groups, rows, cols, kernel)
        ms_rows = _memsim_rows(lay.k, lay.row_span)
        kind = "linear" if isinstance(m, nn.Linear) else "conv2d"
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            what = "depthwise" if m.groups == m.in_channels == m.out_channels else "grouped"
            out.append(
                LayerMapping(
                    name,
                    kind,
                    "digital",
                    ms_rows,
                    (),
                    lay.n_tiles,
                    0,
                    f"{what} conv (groups={m.groups}): aihwkit supports one group only, so it "
                    "stays digital (exact) on the aihwkit side; memsim maps it onto tiles",
                )
            )
            continue
        in_size, out_size = w[0].numel(), w.shape[0]
        a_rows = _split_sizes(in_size, rows)
        a_cols = _split_sizes(out_size, cols)
        note = (
            ""
            if a_rows == ms_rows
            else (f"row tiles differ: memsim {list(ms_rows)}, aihwkit {list(a_rows)}")
        )
        out.append(
            LayerMapping(
                name, kind, "analog", ms_rows, a_rows, lay.n_tiles, len(a_rows) * len(a_cols), note
            )
        )
    return out


def aihwkit_digital_layers(model: nn.Module, profile: DeviceProfile | str) -> list[LayerMapping]:
    """The ``nn.Linear`` / ``nn.Conv2d`` layers aihwkit keeps digital (grouped convs).

    :func:`convert` leaves them as torch layers; a like-for-like comparison keeps them
    digital on memsim's side too (``memsim.convert(..., digital=[r.name for r in ...])``).
    """
    return [r for r in _plan_layers(model, load_profile(profile)) if r.aihwkit == "digital"]


def _layer_table(layers: list[LayerMapping]) -> str:
    lines = [
        "| layer | kind | aihwkit | memsim tiles (rows) | aihwkit tiles (rows) | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in layers:
        a_rows = (
            f"{r.aihwkit_tiles} ({'+'.join(map(str, r.aihwkit_rows))})" if r.aihwkit_rows else "-"
        )
        m_rows = (
            "digital"
            if r.memsim == "digital"
            else f"{r.memsim_tiles} ({'+'.join(map(str, r.memsim_rows))})"
        )
        lines.append(
            f"| `{r.name}` | {r.kind} | {r.aihwkit} | {m_rows} | {a_rows} | {md_cell(r.note)} |"
        )
    return "\n".join(lines)


@torch.no_grad()
def program_weights(model: nn.Module, seed: int) -> None:
    """``model.program_analog_weights()`` with the torch RNG seeded from ``seed``.

    aihwkit draws its noise from torch's global generator; it is forked so that the
    caller's RNG state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(device_seed(seed, _STREAM_AIHWKIT_PROG))
        model.program_analog_weights()


@torch.no_grad()
def drift_weights(model: nn.Module, t_s: float, seed: int) -> None:
    """``model.drift_analog_weights(t_s)`` with a seeded torch RNG (see :func:`program_weights`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(device_seed(seed, _STREAM_AIHWKIT_DRIFT, round(t_s * 1e3)))
        model.drift_analog_weights(t_s)


@dataclass
class Deployment:
    """A model converted to aihwkit with a memsim profile's settings.

    Attributes:
        model: The aihwkit model (eval mode).
        translation: The profile translation (knob report).
        layers: The layer-by-layer mapping report.
        layer_translations: Per-layer translations where they differ from ``translation``
            (a layer's own profile, calibrated DAC ranges), keyed by module name.

    """

    model: nn.Module
    translation: Translation
    layers: list[LayerMapping]
    layer_translations: dict[str, Translation] = field(default_factory=dict)
    seed: int = 0

    def program(self, seed: int) -> None:
        """Program all tiles with fresh programming noise (aihwkit ``program_analog_weights``)."""
        self.seed = int(seed)
        program_weights(self.model, self.seed)

    def drift(self, t_s: float) -> None:
        """Age the programmed weights to ``t_s`` s (``drift_analog_weights``; absolute time).

        For a profile without drift the programmed weights are kept, as in memsim.
        """
        if not math.isfinite(t_s) or t_s < 0:
            raise ValueError(f"t_s must be a finite number >= 0, got {t_s}")
        if self.translation.drifts or any(t.drifts for t in self.layer_translations.values()):
            drift_weights(self.model, float(t_s), self.seed)

    def layer_table(self) -> str:
        """Markdown table of where each layer runs."""
        return _layer_table(self.layers)

    @property
    def digital_layers(self) -> list[str]:
        """Layers that stay digital on the aihwkit side."""
        return [r.name for r in self.layers if r.aihwkit == "digital"]


def convert(
    model: nn.Module,
    profile: DeviceProfile | str,
    *,
    seed: int = 0,
    dac_ranges: Mapping[str, float] | None = None,
    layer_profiles: LayerProfiles | None = None,
) -> Deployment:
    """Convert ``model`` to aihwkit with the profile's settings and program it.

    The model is copied; its ``nn.Linear`` and ``nn.Conv2d`` layers become aihwkit analog
    layers (``convert_to_analog``), except grouped / depthwise convolutions, which stay
    digital.  Attention and transformer layers are rebuilt first as in
    :func:`memsim.convert` (:func:`memsim.transformer.restructure`), so that their
    projections are analog on both sides.  Digital weight quantization of the profile is
    applied to the copy first.

    Args:
        model: Trained PyTorch model.
        profile: memsim profile (or name / path).
        seed: Seed of the first programming (see :meth:`Deployment.program`).
        dac_ranges: Calibrated DAC range per layer name (``dac.mode = calibrated``).
        layer_profiles: Per-layer profiles, as for :func:`memsim.convert` (module name,
            prefix or pattern -> overrides or a profile): each layer gets the aihwkit
            ``rpu_config`` of its own profile, as aihwkit users give per-layer configs.

    Returns:
        The programmed :class:`Deployment` (time 0 after programming).

    """
    prof = load_profile(profile)
    base = translate(prof)
    # attention rebuilt around nn.Linear projections, as memsim.convert does: aihwkit maps
    # q/k/v/out, and no fused transformer fast path reads their weights as tensors
    rebuilt = restructure(model)
    digital = (copy.deepcopy(model) if rebuilt is model else rebuilt).eval()
    names = _mapped_names(digital)
    profiles = dict(zip(names, resolve_layer_profiles(prof, names, layer_profiles), strict=True))
    with torch.no_grad():
        for name, m in digital.named_modules():
            if name in profiles and profiles[name].mapping.weight_quant != WeightQuant.none:
                m.weight.copy_(ms_mapping.digital_quantize(m.weight, profiles[name]))
    layers = _plan_layers(digital, prof, profiles)
    if not layers:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer to map onto tiles")
    exclude = [r.name for r in layers if r.aihwkit == "digital"]
    per_layer: dict[str, Translation] = {}
    ranges = dict(dac_ranges or {})
    for name in names:
        own, rng = profiles[name], ranges.get(name)
        if not DAC(own.dac).needs_calibration:
            rng = None
        if own is not prof or rng is not None:
            per_layer[name] = translate(own, dac_range=rng)

    def layer_config(name: str, _module: nn.Module, cfg: InferenceRPUConfig) -> Any:
        return copy.deepcopy(per_layer[name].rpu_config) if name in per_layer else cfg

    analog = convert_to_analog(
        digital, base.rpu_config, specific_rpu_config_fun=layer_config, exclude_modules=exclude
    )
    analog.eval()
    dep = Deployment(analog, base, layers, per_layer)
    if any(r.aihwkit == "analog" for r in layers):
        dep.program(seed)
    return dep


def aligned_profile(profile: DeviceProfile | str) -> tuple[DeviceProfile, list[Knob]]:
    """The profile restricted to what aihwkit can express (for like-for-like runs).

    memsim runs this derived profile in a comparison, so that both codes model the same
    physics; the returned knobs list every change (``aihwkit`` column: the new value).

    * ``per_layer`` weight scaling becomes ``per_tile`` (aihwkit scales each tile).
    * A calibrated or dynamic ADC becomes a fixed one at ``adc.bound`` (aihwkit's one
      ``out_bound``).
    * Stuck-at faults, device-to-device variation, conductance levels and IR drop are
      switched off (aihwkit does not model them at inference).

    Args:
        profile: The profile (or name / path).

    Returns:
        ``(derived profile, changes)``; the profile is unchanged when nothing is needed.

    """
    p = load_profile(profile)
    changes: list[Knob] = []
    upd: dict[str, Any] = {}

    def change(section: str, fields: dict[str, Any], what: str, why: str) -> None:
        upd[section] = {k: getattr(v, "value", v) for k, v in fields.items()}
        changes.append(
            Knob(
                f"{section}.{'/'.join(fields)}",
                what,
                APPROXIMATED,
                ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in fields.items()),
                why,
            )
        )

    if p.mapping.weight_scaling == WeightScaling.per_layer:
        change(
            "mapping",
            {"weight_scaling": WeightScaling.per_tile},
            "per_layer",
            "aihwkit has no weight scale shared across tiles",
        )
    if ADC(p.adc).range_from_data:
        change(
            "adc",
            {"mode": RangeMode.fixed},
            f"{p.adc.mode.value} (bound {p.adc.bound:g})",
            "aihwkit has one fixed out_bound, no per-tile ADC calibration",
        )
    fl = p.faults
    if fl.stuck_at_gmin_rate or fl.stuck_at_gmax_rate or fl.d2d_sigma:
        change(
            "faults",
            {"stuck_at_gmin_rate": 0.0, "stuck_at_gmax_rate": 0.0, "d2d_sigma": 0.0},
            f"{fl.stuck_at_gmin_rate:g}/{fl.stuck_at_gmax_rate:g}/{fl.d2d_sigma:g}",
            "aihwkit has no stuck-at faults or device-to-device gain at inference",
        )
    if p.device.levels is not None:
        change(
            "device",
            {"levels": None},
            str(p.device.levels),
            "aihwkit programs continuous conductances",
        )
    if p.ir_drop.enabled:
        change("ir_drop", {"enabled": False}, "enabled", "aihwkit's IR-drop model differs")
    if not upd:
        return p, changes
    derived = p.derive(
        upd,
        name=f"{p.name}+aihwkit_aligned",
        description=f"{p.name} restricted to what aihwkit 1.1.0 can express",
    )
    return derived, changes
