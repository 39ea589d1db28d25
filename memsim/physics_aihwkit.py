"""Device physics from any IBM aihwkit noise model, inside memsim's tiles.

A profile section ``aihwkit_noise_model`` names a class (one of ``aihwkit.inference``, e.g.
``ReRamCMONoiseModel``, or the dotted path of a user's own ``BaseNoiseModel`` subclass) and
its constructor arguments::

    "aihwkit_noise_model": {"class": "ReRamCMONoiseModel",
                            "kwargs": {"g_max": 88.2, "g_min": 9.0, "acceptance_range": 2}}

:class:`AihwkitDeviceModel` then takes programming noise, drift coefficients, drift and the
accumulated read noise from the object's three hooks
(``apply_programming_noise_to_conductance``, ``generate_drift_coefficients``,
``apply_drift_noise_to_conductance``), applied to memsim's own tile conductances (both
devices of every pair).  Everything else stays memsim's: mapping, levels, stuck-at faults,
device-to-device variation, per-MVM read noise (``read_noise``), DAC/ADC, drift
compensation and IR drop.

Units: with ``conductance_map = identity`` the hooks see memsim's µS, and the model's
``g_max`` (and ``g_min`` where the model has one) must equal the profile's window; with
``linear`` the window ``[g_min_uS, g_max_uS]`` is mapped linearly onto the model's
``[g_min, g_max]`` before each hook and back after it.  Drift coefficients are opaque:
they are stored as the model returns them and handed back to its drift hook.

Seeds: aihwkit draws from torch's global RNG.  Each hook runs under
``torch.random.fork_rng`` with the global generator seeded from memsim's derived
programming/drift stream, so a seed gives the same chip and the caller's global RNG
state is left as it was.  (A user's model that draws from numpy's RNG is not seeded.)

Known aihwkit 1.1.0 pitfalls handled here (see :func:`_fix_pitfalls`):

* ``PCMLikeNoiseModel`` never stores a ``prog_coeff_g_max_reference`` that is passed (with
  ``prog_coeff`` it is missing, programming fails; without, it is overwritten by 25 µS).
* ``ReRamWan2022NoiseModel`` never stores a passed ``coeff_g_max_reference``, and with its
  default coefficients it stores the 40 µS reference under a name its polynomial never
  reads, so the Wan coefficients are not rescaled to a g_max other than 40 µS.
* ``ReRamCMONoiseModel`` silently replaces an ``acceptance_range`` that is not a key of
  ``coeff_dict`` by the smallest key (its own default ``2e-2`` selects the 0.2 % fit); memsim
  refuses it.  Its keys are percent: 0.2 and 2.
* JSON object keys are strings; the time/acceptance-keyed ``coeff_dic`` / ``coeff_dict``
  need float keys, so numeric keys are converted.
* ``CustomDriftPCMLikeNoiseModel`` clips its input in place, so every hook gets a copy.
* ``ReRamWan2022NoiseModel``'s drift hook accepts only its fitted times (1 s, 1 d, 2 d); at
  t = 0 memsim keeps the programmed state, any other time is refused with the allowed list.
* ``ReRamCMONoiseModel``'s read noise takes ``log10(G)``, NaN for G <= 0; a hook result that
  is not finite is refused rather than propagated.
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .laws import DeviceLaw, register_device_law
from .physics import DeviceModel
from .profile_sections import ConductanceMap, DriftModel, ProfileError, ProgNoiseModel

if TYPE_CHECKING:
    from .profiles import DeviceProfile

INSTALL_HINT = "pip install 'memsim[aihwkit]'"
_FIELD = "aihwkit_noise_model"
# Constructor arguments of aihwkit 1.1.0 models that are dicts keyed by numbers.
_NUMERIC_KEY_ARGS = ("coeff_dic", "coeff_dict")
_WINDOW_RTOL = 1e-6


def _error(origin: str, field: str, msg: str) -> ProfileError:
    return ProfileError(f"{origin}: invalid profile:\n  field '{field}': {msg}")


def _aihwkit_inference(origin: str) -> Any:
    try:
        return importlib.import_module("aihwkit.inference")
    except ImportError as exc:
        raise _error(
            origin,
            _FIELD,
            f"needs IBM aihwkit, which is not installed ({exc}); install it with {INSTALL_HINT}",
        ) from exc


def resolve_class(name: str, origin: str = "<profile>") -> type:
    """Return the ``BaseNoiseModel`` subclass named ``name``.

    Args:
        name: A class of ``aihwkit.inference`` or a dotted path ``module.Class``.
        origin: Profile file or name, for error messages.

    Raises:
        ProfileError: Naming ``aihwkit_noise_model.class`` when the class is not found or
            is not a ``BaseNoiseModel``; naming the section when aihwkit is missing.

    """
    inference = _aihwkit_inference(origin)
    field = f"{_FIELD}.class"
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise _error(origin, field, f"cannot import module {module_name!r}: {exc}") from exc
        cls = getattr(module, attr, None)
        if cls is None:
            raise _error(origin, field, f"module {module_name!r} has no attribute {attr!r}")
    else:
        cls = getattr(inference, name, None)
        if cls is None:
            known = sorted(
                n
                for n in dir(inference)
                if isinstance(getattr(inference, n), type)
                and issubclass(getattr(inference, n), inference.BaseNoiseModel)
                and n != "BaseNoiseModel"
            )
            raise _error(
                origin,
                field,
                f"aihwkit.inference has no class {name!r}; known noise models: "
                f"{', '.join(known)} (or a dotted path to your own BaseNoiseModel subclass)",
            )
    if not (isinstance(cls, type) and issubclass(cls, inference.BaseNoiseModel)):
        raise _error(origin, field, f"{name!r} is not a subclass of aihwkit BaseNoiseModel")
    if cls is inference.BaseNoiseModel:
        raise _error(origin, field, "BaseNoiseModel is abstract; name a subclass")
    return cls


def _json_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = dict(kwargs)
    for key in _NUMERIC_KEY_ARGS:
        val = out.get(key)
        if isinstance(val, dict):
            try:
                out[key] = {float(k): v for k, v in val.items()}
            except ValueError:
                pass  # not numeric: leave it for the class to judge
    return out


def _fix_pitfalls(model: Any, kwargs: dict[str, Any], origin: str) -> None:
    """Correct or refuse the aihwkit 1.1.0 behaviours listed in the module docstring."""
    from aihwkit.inference import PCMLikeNoiseModel, ReRamCMONoiseModel, ReRamWan2022NoiseModel

    if isinstance(model, PCMLikeNoiseModel) and kwargs.get("prog_coeff_g_max_reference"):
        # aihwkit 1.1.0 only sets prog_coeff_g_max_reference when it is *not* passed.
        model.prog_coeff_g_max_reference = float(kwargs["prog_coeff_g_max_reference"])
    if isinstance(model, ReRamWan2022NoiseModel):
        if kwargs.get("coeff_g_max_reference"):
            # Same pitfall: a passed coeff_g_max_reference is never stored.
            model.coeff_g_max_reference = float(kwargs["coeff_g_max_reference"])
        elif "coeff_dic" not in kwargs:
            # The default Wan 2022 fit is in µS at g_max = 40 µS, but aihwkit stores that
            # reference as prog_coeff_g_max_reference, which _apply_poly never reads.
            model.coeff_g_max_reference = 40.0
    if isinstance(model, ReRamCMONoiseModel):
        keys = sorted(model.coeff_dict)
        given = kwargs.get("acceptance_range")
        if given is None or given not in model.coeff_dict:
            raise _error(
                origin,
                f"{_FIELD}.kwargs.acceptance_range",
                f"must be one of {keys} (percent of the target, keys of coeff_dict), got "
                f"{given!r}; aihwkit 1.1.0 would silently use the {keys[0]} % fit",
            )


def build_noise_model(profile: DeviceProfile, origin: str | None = None) -> Any:
    """Construct the aihwkit noise model of ``profile.aihwkit_noise_model``.

    Raises:
        ProfileError: Naming the field when the class is unknown, the kwargs do not
            construct it, or aihwkit is not installed.

    """
    spec = profile.aihwkit_noise_model
    origin = origin or profile.name
    if spec is None:
        raise _error(origin, _FIELD, "is not set")
    cls = resolve_class(spec.class_name, origin)
    kwargs = _json_kwargs(spec.kwargs)
    try:
        model = cls(**kwargs)
    except Exception as exc:  # any constructor error is the profile's kwargs' fault
        raise _error(
            origin,
            f"{_FIELD}.kwargs",
            f"{spec.class_name}(**kwargs) failed: {type(exc).__name__}: {exc}",
        ) from exc
    _fix_pitfalls(model, kwargs, origin)
    return model


def model_window(model: Any) -> tuple[float | None, float | None]:
    """The model's ``(g_min, g_max)`` in its units (``None`` where it has none).

    ``g_max`` is the model's own attribute or its converter's; ``g_min`` is only the model's
    own attribute (PCM-like models use the converter's ``g_min`` for mapping weights, which
    memsim does itself, not for the physics).
    """
    g_max = getattr(model, "g_max", None)
    if g_max is None:
        g_max = getattr(getattr(model, "g_converter", None), "g_max", None)
    g_min = getattr(model, "g_min", None)
    return (
        None if g_min is None else float(g_min),
        None if g_max is None else float(g_max),
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_WINDOW_RTOL, abs_tol=1e-9)


def check_profile(profile: DeviceProfile, origin: str | None = None) -> Any:
    """Validate the ``aihwkit_noise_model`` section of ``profile``; return the model.

    Raises:
        ProfileError: Naming the field: the class, its kwargs, the window agreement, or a
            memsim physics section that would double-count (it must be ``none``).

    """
    origin = origin or profile.name
    if profile.programming_noise.model != ProgNoiseModel.none:
        raise _error(
            origin,
            "programming_noise.model",
            f"must be 'none' when {_FIELD} is set (the aihwkit model supplies it), got "
            f"{profile.programming_noise.model.value!r}",
        )
    if profile.drift.model != DriftModel.none:
        raise _error(
            origin,
            "drift.model",
            f"must be 'none' when {_FIELD} is set (the aihwkit model supplies it), got "
            f"{profile.drift.model.value!r}",
        )
    model = build_noise_model(profile, origin)
    g_min, g_max = model_window(model)
    dev = profile.device
    cmap = profile.aihwkit_noise_model.conductance_map  # type: ignore[union-attr]
    if cmap == ConductanceMap.identity:
        if g_max is not None and not _close(g_max, dev.g_max_uS):
            raise _error(
                origin,
                "device.g_max_uS",
                f"{dev.g_max_uS:g} µS differs from the aihwkit model's g_max {g_max:g}; make "
                f"them equal or set {_FIELD}.conductance_map to 'linear'",
            )
        if g_min is not None and not _close(g_min, dev.g_min_uS):
            raise _error(
                origin,
                "device.g_min_uS",
                f"{dev.g_min_uS:g} µS differs from the aihwkit model's g_min {g_min:g}; make "
                f"them equal or set {_FIELD}.conductance_map to 'linear'",
            )
    elif g_max is None:
        raise _error(
            origin,
            f"{_FIELD}.conductance_map",
            "'linear' needs the model's g_max (attribute g_max or g_converter.g_max); "
            "this model has none, use 'identity'",
        )
    elif (g_min or 0.0) >= g_max:
        raise _error(origin, f"{_FIELD}.kwargs", f"model g_min {g_min} >= g_max {g_max}")
    return model


def torch_seed(gen: torch.Generator) -> int:
    """Draw the seed of torch's global RNG for one hook call from memsim's stream."""
    return int(torch.randint(0, 2**62, (1,), generator=gen).item())


def _check_finite(out: Tensor, hook: str, name: str) -> Tensor:
    if not torch.isfinite(out).all():
        bad = int((~torch.isfinite(out)).sum())
        raise ValueError(
            f"aihwkit noise model {name}.{hook} returned {bad} non-finite conductances "
            "(e.g. log of a conductance <= 0); check the profile's window against the model"
        )
    return out


@register_device_law
class AihwkitDeviceModel(DeviceModel, DeviceLaw):
    """Device physics from the profile's aihwkit noise model (see the module docstring).

    The registered ``device`` law ``aihwkit_noise_model``: it supplies programming noise
    and drift; read noise stays the profile's ``read_noise`` law.
    """

    kind = "device"
    name = "aihwkit_noise_model"
    aihwkit_missing = None  # it is an aihwkit object: the backend uses it as it is

    @classmethod
    def check(cls, profile: DeviceProfile, origin: str) -> None:
        """Validate the ``aihwkit_noise_model`` section (:func:`check_profile`)."""
        check_profile(profile, origin)

    def __init__(self, profile: DeviceProfile) -> None:
        """Build the aihwkit object and the window map from ``profile``."""
        DeviceModel.__init__(self, profile)
        self.noise = check_profile(profile)
        self.noise_name = type(self.noise).__name__
        spec = profile.aihwkit_noise_model
        g_min_m, g_max_m = model_window(self.noise)
        if spec is not None and spec.conductance_map == ConductanceMap.linear:
            lo = g_min_m or 0.0
            self._a = (g_max_m - lo) / (self.g_max - self.g_min)  # type: ignore[operator]
            self._b = lo - self._a * self.g_min
        else:
            self._a, self._b = 1.0, 0.0
        from aihwkit.exceptions import ArgumentError

        self._argument_error = ArgumentError
        self._coeffs_none = False

    @property
    def programs_in_pieces(self) -> bool:
        """Never: the aihwkit hooks take the whole layer."""
        return False

    @property
    def defers_exponents(self) -> bool:
        """Never: the aihwkit hooks draw from torch's global generator in their own order."""
        return False

    def _to_model(self, g: Tensor) -> Tensor:
        # Always a fresh tensor: some aihwkit hooks modify their input in place.
        return g * self._a + self._b if self._a != 1.0 or self._b != 0.0 else g.clone()

    def _from_model(self, g: Tensor) -> Tensor:
        return (g - self._b) / self._a if self._a != 1.0 or self._b != 0.0 else g

    def _call(self, gen: torch.Generator, hook: str, *args: Any) -> Any:
        # The tensors are on the CPU, so only the CPU generator is forked and seeded
        # (torch.manual_seed would also queue a lazy seed of every CUDA device, and
        # record a stack trace for it, on every call).
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.default_generator.manual_seed(torch_seed(gen))
            return getattr(self.noise, hook)(*args)

    def program_sigma(self, g_target: Tensor) -> Tensor | float:
        """Not defined: the aihwkit model draws the programmed state itself."""
        raise NotImplementedError(
            f"programming noise comes from {self.noise_name}.apply_programming_noise_to_"
            "conductance; it has no separate std"
        )

    def program(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """``apply_programming_noise_to_conductance`` on the targets (µS in, µS out)."""
        hook = "apply_programming_noise_to_conductance"
        out = self._call(gen, hook, self._to_model(g_target))
        return self._from_model(_check_finite(out.to(g_target.dtype), hook, self.noise_name))

    def drift_exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """``generate_drift_coefficients`` on the targets, in the model's own units.

        Never ``None``, so that memsim always calls the drift hook (it also adds the read
        noise accumulated since programming); a model returning ``None`` gets ``None``
        back in its drift hook.
        """
        coeffs = self._call(gen, "generate_drift_coefficients", self._to_model(g_target))
        self._coeffs_none = coeffs is None
        if coeffs is None:
            return torch.zeros_like(g_target)
        coeffs = torch.as_tensor(coeffs, dtype=g_target.dtype)
        try:
            return coeffs.expand_as(g_target).clone()
        except RuntimeError as exc:
            raise ValueError(
                f"{self.noise_name}.generate_drift_coefficients returned shape "
                f"{tuple(coeffs.shape)}, not broadcastable to the conductances "
                f"{tuple(g_target.shape)}"
            ) from exc

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """``apply_drift_noise_to_conductance`` at ``t_s`` seconds after programming."""
        hook = "apply_drift_noise_to_conductance"
        coeffs = None if (nu is None or self._coeffs_none) else nu.clone()
        try:
            out = self._call(gen, hook, self._to_model(g_prog), coeffs, float(t_s))
        except self._argument_error as exc:
            if t_s == 0.0:
                # A model fitted at fixed times only (ReRamWan2022NoiseModel) has no t = 0
                # entry; at t = 0 the devices are as programmed.
                return g_prog
            raise ValueError(f"{self.noise_name} cannot drift to t = {t_s:g} s: {exc}") from exc
        return self._from_model(_check_finite(out.to(g_prog.dtype), hook, self.noise_name))
