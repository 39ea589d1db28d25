"""The programmed state of a layer's tiles, the operations on it, and a read-only view.

:class:`TileArray` owns the tile state of one analog layer: the target weights, the
conductances at programming and now, the chip's defects (stuck-at faults, per-device
gains), the drift exponents, the weight scales, the normalized weights (IR-drop transfer
included) and the drift-compensation gains.  It programs, drifts and loads measured
conductances; the pure functions of :mod:`memsim.tile_ops` do the arithmetic.  The state
lives in buffers (they are the layer's state dict) and is changed only here.

Everything outside reads it through :class:`TileView` (``layer.tiles``): export,
read-back, cost, trim, defect maps and the lab.  No getter has a side effect on the
state's values (``nu`` may draw exponents a programming deferred: the same values).

The conductances are ``(2, out, K)`` in µS (``[G+, G-]``, logical layout); see
:meth:`memsim.tiling.TileLayout.positions` for the physical tile, row and column.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
from torch import Tensor, nn

from . import mapping
from .physics import DeviceModel, device_model
from .placement import device_index, identity_placement, is_identity
from .profiles import DeviceProfile, DriftCompensation
from .seeds import device_seed
from .tile_ops import (
    apply_defects,
    draw_defects,
    generator,
    normalized_weights,
    program_in_pieces,
    target_conductances,
    tile_index,
    tile_mean_abs,
)
from .tiling import TileLayout, make_layout

STREAM_CHIP, STREAM_PROG, STREAM_READ, STREAM_DRIFT = 1, 2, 3, 4
"""Seed streams of a layer: chip instance, programming, read noise, drift."""

# fields added to the profile after version 1 of the chip state (left out of the digest
# at their defaults, so that older state dicts still load)
_DIGEST_NEW_FIELDS = (
    ("programming_noise", "params"),
    ("read_noise", "params"),
    ("drift", "params"),
    ("adc", "offset"),
)


# -- the state ---------------------------------------------------------------------------
class TileArray(nn.Module):
    """The tile state of one analog layer and the operations that change it.

    The analog layers (:mod:`memsim.layers`) derive from it and add the periphery and
    the forward pass; they are told of every change through :meth:`_state_changed`.
    """

    def __init__(
        self, weight: Tensor, profile: DeviceProfile, groups: int, layer_index: int
    ) -> None:
        """Set up devices for ``weight`` (any shape with outputs first)."""
        super().__init__()
        self.profile = profile
        self.physics: DeviceModel = device_model(profile)
        self.weight_shape = tuple(weight.shape)
        out = weight.shape[0]
        k = weight[0].numel()
        kernel_elems = int(math.prod(weight.shape[2:])) if weight.dim() > 2 else 1
        self.layout: TileLayout = make_layout(
            out, k, groups, profile.tile.rows, profile.tile.cols, kernel_elems
        )
        self.layer_index = layer_index
        # the digital target weights are a Parameter: training through the chip
        # (memsim.through_chip, memsim.train) updates them, and programming reads them;
        # the state-dict key "target" is the one of the buffer it was before
        self.target = nn.Parameter(weight.detach().reshape(out, k).clone())
        f32 = dict(dtype=weight.dtype, device=weight.device)
        self.register_buffer("scale", torch.ones(out, self.layout.row_tiles, **f32))
        self.register_buffer("comp_gain", torch.ones(out, self.layout.row_tiles, **f32))
        self.register_buffer("g_prog", torch.zeros(2, out, k, **f32))
        self.register_buffer("w_norm", torch.zeros(out, k, **f32))
        self.register_buffer("w_eff", torch.zeros(out, k, **f32))
        self.register_buffer(
            "fault", torch.zeros(2, out, k, dtype=torch.int8, device=weight.device)
        )
        self.register_buffer("gain", torch.ones(2, out, k, **f32))
        self.register_buffer("nu", torch.zeros(2, out, k, **f32))
        self.register_buffer("comp_ref", torch.ones(self.layout.n_tiles, **f32))
        # the calibrated converter ranges (memsim.periphery) are kept here, so that the
        # state dict keeps its layout
        self.register_buffer("adc_range", torch.ones(self.layout.n_tiles, **f32))
        self.register_buffer("dac_range", torch.ones((), **f32))
        self.register_buffer("tile_of_partial", self.layout.tile_of_partial(weight.device))
        self.register_buffer("g_now", torch.zeros(2, out, k, **f32), persistent=False)
        # where each tile's logical rows and columns sit physically (memsim.placement)
        rows, cols = identity_placement(self.layout, weight.device)
        self.register_buffer("row_perm", rows)
        self.register_buffer("col_perm", cols)
        self._has_drift = False
        self.measured = False
        self.t_s = 0.0
        self.seed = 0
        # the drift exponents a programming deferred: (g_target, generator state)
        self._nu_pending: tuple[Tensor, Tensor] | None = None
        # (any stuck device, all gains 1), identity placement: None = recompute when needed
        self._defect_flags: tuple[bool, bool] | None = (False, True)
        self._identity: bool | None = True

    @property
    def tiles(self) -> TileView:
        """The read-only view of this state."""
        return TileView(self)

    def _generator(self, seed: int, device: torch.device | str = "cpu") -> torch.Generator:
        """The generator of one draw (a hook: tests record where chips draw from)."""
        return generator(seed, device)

    def _state_changed(self) -> None:
        """Called after every change of the conductances (the forward caches rebuild)."""

    def _programmed(self) -> None:
        """Called after programming or loading measured conductances (periphery resets)."""

    # -- chip instance and programming ------------------------------------------------
    def make_chip(self, chip_seed: int) -> None:
        """Draw this layer's fixed defects (stuck-at faults, device-to-device gain)."""
        gen = self._generator(device_seed(chip_seed, STREAM_CHIP, self.layer_index))
        fault, gain = draw_defects(tuple(self.g_prog.shape), self.profile, gen)
        self.fault.copy_(fault.to(self.fault.device))
        self.gain.copy_(gain.to(self.gain.device))
        self._defect_flags = None

    @torch.no_grad()
    def set_defects(self, fault: Tensor, gain: Tensor) -> None:
        """Replace the chip's defect map (``(2, out, K)`` each); takes effect at programming.

        For a twin of a chip built from a read-back estimate (:func:`memsim.read_back_twin`).
        """
        self.fault.copy_(fault.to(self.fault))
        self.gain.copy_(gain.to(self.gain))
        self._defect_flags = None

    @torch.no_grad()
    def set_targets(self, weight: Tensor) -> None:
        """Replace the target weights (any shape with the layer's number of elements)."""
        self.target.copy_(weight.detach().reshape(self.target.shape))

    @torch.no_grad()
    def program(self, seed: int) -> None:
        """Program the current targets with fresh programming noise from ``seed``."""
        self.seed = int(seed)
        # a CPU layer reuses one tensor for its target conductances (fresh memory is
        # page-faulted in at every programming); a deferred exponent draw reads it
        cpu, scratch = self.target.device.type == "cpu", self.__dict__.get("_g_scratch")
        if cpu and (scratch is None or scratch.dtype != self.target.dtype):
            scratch = self.__dict__["_g_scratch"] = torch.empty_like(self.g_prog, device="cpu")
        g_target, scale = target_conductances(
            self.target, self.layout, self.profile, self.tile_of_partial, scratch if cpu else None
        )
        self.scale.copy_(scale)
        # Noise is drawn on the CPU so that a seed gives the same chip on any device.
        g_target = g_target.cpu()
        gen = self._generator(device_seed(seed, STREAM_PROG, self.layer_index))
        phys = self.physics
        self.measured = False
        in_pieces = phys.programs_in_pieces and self.g_prog.device.type == "cpu"
        read_now = in_pieces and phys.defers_exponents  # the read at t = 0 goes with them
        if in_pieces:  # the values of the whole-layer steps below, in cache-sized pieces
            defects = self._defects_to_apply()
            program_in_pieces(
                g_target,
                phys,
                gen,
                self._drift_generator(0.0) if read_now else None,
                None if defects is None else (defects[0].reshape(-1), defects[1].reshape(-1)),
                self.g_prog,
                self.g_now if read_now else None,
            )
        else:
            g = phys.program(g_target, gen).to(self.g_prog.device)
            self.g_prog.copy_(self._apply_chip(g, with_gain=True))
        if phys.defers_exponents:
            # drawn from this generator state when first needed (the same values): a
            # training step programs and reads at t = 0, where they play no part
            self._has_drift = True
            self._nu_pending = (g_target, gen.get_state())
        else:
            nu = phys.drift_exponents(g_target, gen)
            self._has_drift = nu is not None
            self._nu_pending = None
            self.nu.copy_(nu.to(self.nu.device) if nu is not None else torch.zeros_like(self.nu))
        self._programmed()
        self._drift(0.0, reference=True, now_ready=read_now)

    @torch.no_grad()
    def load_measured(
        self, g: Tensor, fault: Tensor | None = None, gain: Tensor | None = None
    ) -> None:
        """Hold measured conductances ``(2, out, K)`` (µS) as the programmed state.

        The targets, scales and drift exponents stay; ``fault`` / ``gain`` (if given)
        replace the chip's defect map.  At ``t = 0`` the chip reads exactly ``g``: the
        measurement already contains the faults and the noise of that read.
        """
        if fault is not None:
            self.fault.copy_(fault.to(self.fault))
        if gain is not None:
            self.gain.copy_(gain.to(self.gain))
        self._defect_flags = None
        self.g_prog.copy_(g.to(self.g_prog))
        self.measured = True
        self._programmed()
        self._drift(0.0, reference=True)

    @torch.no_grad()
    def target_conductances(self) -> Tensor:
        """Target conductances ``(2, out, K)`` (µS) of the current targets (no side effect)."""
        return target_conductances(self.target, self.layout, self.profile)[0]

    def _defects_to_apply(self, with_gain: bool = True) -> tuple[Tensor, Tensor] | None:
        """The placed ``(fault, gain)``, or ``None`` where applying them changes nothing."""
        if self._defect_flags is None:
            self._defect_flags = (bool(self.fault.any()), bool((self.gain == 1.0).all()))
        any_fault, unit_gain = self._defect_flags
        if not any_fault and (not with_gain or (unit_gain and self.physics.g_min == 0.0)):
            # nothing stuck and g_min + (g - g_min) * 1 is exactly g for g_min = 0
            return None
        return self.placed(self.fault), self.placed(self.gain)

    def _apply_chip(self, g: Tensor, with_gain: bool) -> Tensor:
        defects = self._defects_to_apply(with_gain)
        if defects is None:
            return g
        return apply_defects(g, *defects, self.physics.g_min, self.physics.g_max, with_gain)

    def placed(self, per_device: Tensor) -> Tensor:
        """A ``(2, out, K)`` per-device tensor as seen by each weight under the placement."""
        placement = (self.row_perm, self.col_perm)
        if self._identity is None:
            self._identity = is_identity(placement)
        if self._identity:
            return per_device
        idx = device_index(self.layout, placement)
        return per_device.reshape(2, -1)[:, idx].reshape(per_device.shape)

    @torch.no_grad()
    def set_placement(self, row_perm: Tensor, col_perm: Tensor) -> bool:
        """Set the placement (:mod:`memsim.placement`) for the next programming.

        Returns:
            Whether it changed (the caller programs again to apply it now).

        """
        device_index(self.layout, (row_perm.cpu(), col_perm.cpu()))  # validates
        rows, cols = row_perm.to(self.row_perm), col_perm.to(self.col_perm)
        changed = not (torch.equal(rows, self.row_perm) and torch.equal(cols, self.col_perm))
        self.row_perm.copy_(rows)
        self.col_perm.copy_(cols)
        self._identity = None
        return changed

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # a state saved before placements existed holds the identity placement
        rows, cols = identity_placement(self.layout, self.row_perm.device)
        state_dict.setdefault(prefix + "row_perm", rows)
        state_dict.setdefault(prefix + "col_perm", cols)
        # the loaded buffers replace every derived flag and a deferred exponent draw
        self._nu_pending, self._defect_flags, self._identity = None, None, None
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _save_to_state_dict(
        self, destination: dict[str, Any], prefix: str, keep_vars: bool
    ) -> None:
        self._draw_deferred_exponents()  # the saved state holds the exponents
        super()._save_to_state_dict(destination, prefix, keep_vars)

    @torch.no_grad()
    def _draw_deferred_exponents(self) -> None:
        """Draw the drift exponents a programming deferred (the values it would have drawn)."""
        if self._nu_pending is None:
            return
        (g_target, state), self._nu_pending = self._nu_pending, None
        nu = self.physics.drift_exponents(g_target, torch.Generator().set_state(state))
        assert nu is not None  # a deferrable drift law always draws exponents
        self.nu.copy_(nu.to(self.nu.device))

    @torch.no_grad()
    def drift_to(self, t_s: float) -> None:
        """Age the devices to ``t_s`` seconds after programming (from the programmed state)."""
        if not math.isfinite(t_s) or t_s < 0:
            raise ValueError(f"t_seconds must be a finite number >= 0, got {t_s}")
        self._drift(float(t_s), reference=False)

    def _conductances_at(self, t_s: float) -> Tensor:
        g = self.g_prog
        if t_s > 0.0:
            self._draw_deferred_exponents()  # at t = 0 a deferrable law does not read them
        if self._has_drift and not (self.measured and t_s == 0.0):
            gen = self._drift_generator(t_s)
            g = self.physics.drift(g.cpu(), self.nu.cpu(), t_s, gen).to(g.device)
            g = self._apply_chip(g, with_gain=False)  # stuck devices do not drift
        return g

    def _drift_generator(self, t_s: float) -> torch.Generator:
        return self._generator(
            device_seed(self.seed, STREAM_DRIFT, self.layer_index, round(t_s * 1e3))
        )

    def _tile_index(self) -> tuple[Tensor, Tensor]:
        """:func:`tile_index` of this layer on its device, computed once per device."""
        device = self.w_norm.device
        cache = self.__dict__.setdefault("_tile_index_cache", {})
        if device not in cache:
            cache.clear()
            cache[device] = tile_index(self.layout, device)
        return cache[device]

    def _drift(self, t_s: float, reference: bool, now_ready: bool = False) -> None:
        """Set the state at ``t_s`` (``now_ready``: ``g_now`` already holds it)."""
        self.t_s = t_s
        if now_ready:
            g = self.g_now
        else:
            g = self._conductances_at(t_s)
            self.g_now.copy_(g)
        p = self.profile
        normalized_weights(g, self.layout, p, out=self.w_norm)
        tiles_abs = tile_mean_abs(self.w_norm, self.layout, self._tile_index())
        if reference:
            self.comp_ref.copy_(tiles_abs)
        if p.drift.compensation == DriftCompensation.globally:
            gain = self.comp_ref / tiles_abs.clamp(min=1e-12)
            self.comp_gain.copy_(gain[self.tile_of_partial])
        torch.mul(
            self.w_norm,
            mapping.expand_partial(self.scale * self.comp_gain, self.layout),
            out=self.w_eff,
        )
        self._state_changed()

    def _restore_now(self, t_s: float) -> None:
        """Recompute the conductances now from loaded buffers (state-dict loading)."""
        self.t_s = t_s
        self.g_now.copy_(self._conductances_at(t_s))
        self._state_changed()

    def effective_weight(self) -> Tensor:
        """The weight the chip holds now, in weight units, in the original layer shape."""
        return self.w_eff.reshape(self.weight_shape).clone()

    def profile_digest(self) -> str:
        """A digest of the profile's numbers: a renamed or re-cited copy is the same chip."""
        exclude: dict[str, Any] = {k: True for k in ("name", "description", "extends", "source")}
        for section, name in _DIGEST_NEW_FIELDS:
            info = type(getattr(self.profile, section)).model_fields[name]
            if getattr(getattr(self.profile, section), name) == info.get_default(
                call_default_factory=True
            ):
                # a field at its default leaves the digest of a chip saved before it existed
                exclude.setdefault(section, set()).add(name)
        text = self.profile.model_dump_json(exclude=exclude)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class TileView:
    """Read-only view of a layer's tile state (``layer.tiles``).

    The tensors are the live state: read them, clone what you keep, never write them
    (change the state through the layer: ``program``, ``set_targets``, ``drift_to``,
    ``load_measured``).
    """

    __slots__ = ("_t",)

    def __init__(self, tiles: TileArray) -> None:
        """View ``tiles``."""
        self._t = tiles

    @property
    def layout(self) -> TileLayout:
        """Tiling of the layer."""
        return self._t.layout

    @property
    def profile(self) -> DeviceProfile:
        """The chip's profile."""
        return self._t.profile

    @property
    def physics(self) -> DeviceModel:
        """The device laws of the chip."""
        return self._t.physics

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Shape of the layer's weight."""
        return self._t.weight_shape

    @property
    def target(self) -> Tensor:
        """Target weights ``(out, K)`` (detached from the trainable parameter)."""
        return self._t.target.detach()

    @property
    def g_prog(self) -> Tensor:
        """Conductances at programming ``(2, out, K)`` (µS), defects included."""
        return self._t.g_prog

    @property
    def g_now(self) -> Tensor:
        """Conductances now ``(2, out, K)`` (µS), drift included, IR drop not."""
        return self._t.g_now

    @property
    def fault(self) -> Tensor:
        """Stuck-at map ``(2, out, K)``: 0 ok, 1 stuck at g_min, 2 stuck at g_max."""
        return self._t.fault

    @property
    def gain(self) -> Tensor:
        """Per-device gain on ``G - g_min`` ``(2, out, K)``."""
        return self._t.gain

    @property
    def nu(self) -> Tensor:
        """Drift exponents ``(2, out, K)`` (zeros without drift).

        A programming may defer their draw (``DriftLaw.deferrable``); reading them here
        draws them then, with the values the programming would have drawn.
        """
        self._t._draw_deferred_exponents()
        return self._t.nu

    @property
    def scale(self) -> Tensor:
        """Weight scale per (output, row tile)."""
        return self._t.scale

    @property
    def comp_gain(self) -> Tensor:
        """Drift-compensation gain per (output, row tile)."""
        return self._t.comp_gain

    @property
    def w_norm(self) -> Tensor:
        """Normalized weights ``(out, K)`` the tiles compute with (IR drop included)."""
        return self._t.w_norm

    @property
    def w_eff(self) -> Tensor:
        """Effective weights ``(out, K)`` in weight units."""
        return self._t.w_eff

    @property
    def tile_of_partial(self) -> Tensor:
        """Tile index of each (output, row tile)."""
        return self._t.tile_of_partial

    @property
    def adc_range(self) -> Tensor:
        """Calibrated per-tile ADC ranges (normalized units)."""
        return self._t.adc_range

    @property
    def dac_range(self) -> Tensor:
        """Calibrated DAC range (activation units)."""
        return self._t.dac_range

    @property
    def t_s(self) -> float:
        """Seconds since programming."""
        return self._t.t_s

    def target_conductances(self) -> Tensor:
        """Target conductances ``(2, out, K)`` (µS) of the current targets."""
        return self._t.target_conductances()

    def apply_defects(self, g: Tensor, with_gain: bool = True) -> Tensor:
        """``g`` (µS) with this chip's gains (if ``with_gain``) and stuck devices.

        Under a placement, each weight's entry sees the device it is placed on.
        """
        return self._t._apply_chip(g, with_gain)

    @property
    def placement(self) -> tuple[Tensor, Tensor]:
        """``(row_perm, col_perm)`` of every tile (:mod:`memsim.placement`)."""
        return self._t.row_perm, self._t.col_perm

    def placed(self, per_device: Tensor) -> Tensor:
        """``(2, out, K)`` per-device values (``fault``, ``gain``) under each weight."""
        return self._t.placed(per_device)
