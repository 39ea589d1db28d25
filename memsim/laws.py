"""Registry of device laws: programming noise, drift and read noise, selected by name.

A profile section names its law (``"programming_noise": {"model": "polynomial", ...}``);
the law is a class registered under that name for its kind, with three small hooks
(aihwkit's ``BaseNoiseModel`` style): :meth:`ProgrammingLaw.program`,
:meth:`DriftLaw.exponents` / :meth:`DriftLaw.drift` and :meth:`ReadNoiseLaw.sigma` (or
:meth:`ReadNoiseLaw.device_sigma` for a state-dependent read noise).  memsim's own laws
are in :mod:`memsim.physics`; a user's law is registered from user code::

    @memsim.register_device_law
    class Telegraph(memsim.laws.ProgrammingLaw):
        name = "telegraph"
        class Params(pydantic.BaseModel):
            p: float
        def program(self, g_target, gen): ...

and selected in a profile with ``{"model": "telegraph", "params": {"p": 0.1}}``.  A
package may also register laws through the entry-point group ``memsim.device_laws``
(each entry point names a law class, or a function that registers some), loaded the
first time a name is not found.

Each law carries its aihwkit translation (:meth:`DeviceLaw.aihwkit`) or says why it has
none (:attr:`DeviceLaw.aihwkit_missing`); :mod:`memsim.backends.aihwkit` asks it.

Two flags make programming faster without changing a value, and are off unless a law
sets them: :attr:`DeviceLaw.elementwise` (the tiles program in cache-sized pieces) and
:attr:`DriftLaw.deferrable` (the drift exponents are drawn when first needed).

This module holds no physics and imports no profile: :mod:`memsim.profiles` uses it to
check the names and parameters of a profile's laws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor

if TYPE_CHECKING:
    from .profiles import DeviceProfile


@dataclass(frozen=True)
class AihwkitForm:
    """How aihwkit expresses a law: the knob of the translation report plus its payload.

    Attributes:
        value: The profile's value, as the report shows it.
        setting: The aihwkit setting it became.
        note: What differs, if anything.
        approximated: ``True`` when aihwkit's form differs in the way ``note`` says.
        payload: What the backend builds from: for programming noise ``coeffs`` (µS),
            ``ref`` (g_max of the fit, µS) and ``scale``; for drift ``build`` (a function
            of the PCM-like keyword arguments returning the noise model) and ``drifts``;
            for read noise ``w_noise``.

    """

    value: Any
    setting: str
    note: str = ""
    approximated: bool = False
    payload: dict[str, Any] = field(default_factory=dict)


KINDS = ("programming_noise", "drift", "read_noise", "device")
"""Law kinds: the profile section that selects them (``device``: a law that supplies
programming noise and drift together, such as an aihwkit noise model)."""

ENTRY_POINT_GROUP = "memsim.device_laws"

_REGISTRY: dict[str, dict[str, type[DeviceLaw]]] = {kind: {} for kind in KINDS}
_entry_points_loaded = False


def randn_like(like: Tensor, gen: torch.Generator) -> Tensor:
    """Standard normals of ``like``'s shape, dtype and device from ``gen``."""
    return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)


class DeviceLaw:
    """Base of every device law.

    Attributes:
        kind: The profile section that selects the law (one of :data:`KINDS`).
        name: The name the section's ``model`` field gives.
        Params: A pydantic model of the law's own parameters (the section's ``params``),
            or ``None`` when the law takes none.
        uses: The fields of its section the law reads (besides ``model`` and
            ``params``); the completeness test of the profile schema reads them.
        aihwkit_missing: Why the law has no aihwkit translation (``None``: it has one,
            see :meth:`aihwkit`).

    """

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel] | None] = None
    uses: ClassVar[tuple[str, ...]] = ()
    aihwkit_missing: ClassVar[str | None] = "the law does not say how aihwkit expresses it"
    elementwise: ClassVar[bool] = False
    """Whether the law treats each device on its own and draws its normals one per device
    in order, with torch's elementwise operations: then consecutive pieces of the devices
    (a multiple of 64 each) drawn from one generator get the values of one whole pass, and
    the tiles program in cache-sized pieces (:func:`memsim.tile_ops.program_in_pieces`)."""

    def __init__(self, profile: DeviceProfile) -> None:
        """Bind the law to ``profile`` (its window and its section)."""
        self.profile = profile
        self.g_min = profile.device.g_min_uS
        self.g_max = profile.device.g_max_uS
        section = getattr(profile, self.kind, None) if self.kind != "device" else None
        self.section = section
        raw = getattr(section, "params", None) or {}
        self.params: Any = self.Params.model_validate(raw) if self.Params is not None else None

    @classmethod
    def check(cls, profile: DeviceProfile, origin: str) -> None:
        """Check the whole profile beyond the parameters; none by default.

        Raise ``ValueError`` or ``ProfileError``.
        """

    def aihwkit(self) -> AihwkitForm | None:
        """The aihwkit form of the law; ``None`` when it has none.

        Its payload depends on the kind (see :class:`AihwkitForm`); a law without one says
        why in :attr:`aihwkit_missing`.
        """
        return None


class ProgrammingLaw(DeviceLaw):
    """Programming noise: the conductance a device reaches when programmed to a target."""

    kind = "programming_noise"

    def sigma(self, g_target: Tensor) -> Tensor | float:
        """Std (µS) of the programming error at each target, where the law has one."""
        raise NotImplementedError(f"programming law {self.name!r} has no separate std")

    def program(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """The programmed conductances (µS) for targets ``g_target`` (µS), from ``gen``.

        The default adds Gaussian noise of :meth:`sigma` and clips at 0.
        """
        sig = self.sigma(g_target)
        if isinstance(sig, float) and sig == 0.0:
            return g_target.clone()
        # N sig + g, clipped at 0, in place on the fresh normals (the same values)
        return randn_like(g_target, gen).mul_(sig).add_(g_target).clamp_(min=0.0)


class DriftLaw(DeviceLaw):
    """Conductance drift from per-device exponents drawn at programming time."""

    kind = "drift"
    deferrable: ClassVar[bool] = False
    """Whether the tiles may draw the exponents later than the programming noise: set by a
    law whose :meth:`exponents` always returns a tensor and whose :meth:`drift` at
    ``t_s = 0`` ignores ``nu``.  Programming then skips the draw until a drifted state,
    the state dict or ``tiles.nu`` needs it (the values are the same: the generator's
    state is kept): a training step, which programs and reads at t = 0, never draws them."""

    def exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor | None:
        """Per-device drift exponents (``None``: the devices do not drift)."""
        return None

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """Conductances ``t_s`` seconds after programming; ``g_prog`` by default."""
        return g_prog


class ReadNoiseLaw(DeviceLaw):
    """Per-MVM read noise of each device, drawn independently for every read.

    A state-independent law gives one std (:meth:`sigma`); a state-dependent one sets
    :attr:`state_dependent` and gives each device's std from its conductance
    (:meth:`device_sigma`).  Either way the forward pass draws one normal per output,
    exact in distribution (see :mod:`memsim.layers`).
    """

    kind = "read_noise"
    state_dependent: ClassVar[bool] = False

    def sigma(self) -> float:
        """Std of one device read as a fraction of g_max - g_min (state-independent)."""
        return 0.0

    def device_sigma(self, g: Tensor) -> Tensor:
        """Std of one read of each device (fraction of the window) at conductances ``g``."""
        return torch.full_like(g, self.sigma())

    def active(self) -> bool:
        """Whether the law adds any noise."""
        return self.state_dependent or self.sigma() > 0.0


def register_device_law(cls: type[DeviceLaw], *, replace: bool = False) -> type[DeviceLaw]:
    """Register a law class under ``cls.kind`` / ``cls.name`` (usable as a decorator).

    Raises:
        ValueError: No kind or name, an unknown kind, or a name already taken (unless
            ``replace``).

    """
    if not (isinstance(cls, type) and issubclass(cls, DeviceLaw)):
        raise TypeError(f"register_device_law: {cls!r} is not a DeviceLaw subclass")
    if cls.kind not in KINDS:
        raise ValueError(f"register_device_law: {cls.__name__}.kind must be one of {KINDS}")
    if not cls.name:
        raise ValueError(f"register_device_law: {cls.__name__}.name is empty")
    known = _REGISTRY[cls.kind]
    if cls.name in known and known[cls.name] is not cls and not replace:
        raise ValueError(
            f"register_device_law: a {cls.kind} law named {cls.name!r} is already registered "
            f"({known[cls.name].__module__}.{known[cls.name].__qualname__}); pass replace=True"
        )
    known[cls.name] = cls
    return cls


def unregister_device_law(kind: str, name: str) -> None:
    """Remove a registered law (tests, interactive work)."""
    _REGISTRY[kind].pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    # memsim's own laws first (the profile sections' defaults are checked while
    # memsim.profiles is still being imported, before anything imported memsim.physics)
    import_module("memsim.physics")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, DeviceLaw):
            register_device_law(obj)
        elif callable(obj):
            obj()


def names(kind: str) -> list[str]:
    """Registered law names of ``kind``, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY[kind])


def law_class(kind: str, name: str) -> type[DeviceLaw]:
    """The law class registered as ``name`` for ``kind``.

    Raises:
        ValueError: Naming the registered laws when ``name`` is unknown.

    """
    known = _REGISTRY[kind]
    if name not in known:
        _load_entry_points()
        known = _REGISTRY[kind]
    if name not in known:
        raise ValueError(
            f"unknown {kind} model {name!r}; registered: {', '.join(names(kind))} (register "
            "your own with memsim.register_device_law)"
        )
    return known[name]


def check_section(kind: str, section: Any) -> None:
    """Check the law name and the ``params`` of one profile section (``ValueError``)."""
    cls = law_class(kind, str(section.model))
    params = getattr(section, "params", None) or {}
    if cls.Params is None:
        if params:
            raise ValueError(f"{kind} model {cls.name!r} takes no params, got {sorted(params)}")
        return
    try:
        cls.Params.model_validate(params)
    except ValidationError as exc:
        bad = "; ".join(
            f"params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{kind} model {cls.name!r}: {bad}") from None


def build(kind: str, profile: DeviceProfile) -> Any:
    """The law of ``kind`` that ``profile`` selects, bound to it."""
    section = getattr(profile, kind)
    return law_class(kind, str(section.model))(profile)


def selected(profile: DeviceProfile) -> list[type[DeviceLaw]]:
    """The law classes ``profile`` selects (a ``device`` law for an aihwkit section)."""
    out = [law_class(kind, str(getattr(profile, kind).model)) for kind in KINDS[:3]]
    if profile.aihwkit_noise_model is not None:
        out.append(law_class("device", "aihwkit_noise_model"))
    return out


def check_profile(profile: DeviceProfile, origin: str) -> None:
    """Run the profile-level checks of every law ``profile`` selects.

    Raises:
        ProfileError: From a law's :meth:`DeviceLaw.check`; a ``ValueError`` it raises is
            reported as a bad value of its section.

    """
    from .profiles import ProfileError

    for cls in selected(profile):
        try:
            cls.check(profile, origin)
        except ProfileError:
            raise
        except ValueError as exc:
            raise ProfileError(f"{origin}: invalid profile:\n  field '{cls.kind}': {exc}") from None
