"""Device physics: memsim's own device laws and the device model that combines them.

Each law is a small class registered by name (:mod:`memsim.laws`):

* programming noise (``programming_noise.model``): ``none``, ``gaussian``,
  ``proportional``, ``polynomial``;
* drift (``drift.model``): ``none``, ``power_law``, ``pcm_joshi2020``;
* read noise (``read_noise.model``): ``none``, ``gaussian`` (state-independent),
  ``proportional`` (state-dependent).

:class:`DeviceModel` binds the three laws a profile selects and offers the hooks the
tiles call: :meth:`DeviceModel.program`, :meth:`DeviceModel.drift_exponents`,
:meth:`DeviceModel.drift` and :meth:`DeviceModel.read_sigma`.  An aihwkit noise model
(the ``aihwkit_noise_model`` section) is the registered ``device`` law of
:mod:`memsim.physics_aihwkit`.

All conductances are in µS.  The mapping of weights to conductances is not here
(see :mod:`memsim.mapping`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .laws import (
    AihwkitForm,
    DriftLaw,
    ProgrammingLaw,
    ReadNoiseLaw,
    build,
    law_class,
    randn_like,
    register_device_law,
)

if TYPE_CHECKING:
    from .profiles import DeviceProfile

_randn = randn_like


# -- programming noise -------------------------------------------------------------------
@register_device_law
class NoProgrammingNoise(ProgrammingLaw):
    """Devices reach their targets exactly."""

    name = "none"
    aihwkit_missing = None
    elementwise = True

    def sigma(self, g_target: Tensor) -> float:
        """Zero."""
        return 0.0

    def aihwkit(self) -> AihwkitForm:
        """``prog_noise_scale = 0``."""
        payload = {"coeffs": [0.0], "ref": self.g_max, "scale": 0.0}
        return AihwkitForm("none", "prog_noise_scale = 0", payload=payload)


@register_device_law
class GaussianProgramming(ProgrammingLaw):
    """Gaussian error of std ``sigma x (g_max - g_min)``."""

    name = "gaussian"
    uses = ("sigma",)
    aihwkit_missing = None
    elementwise = True

    def sigma(self, g_target: Tensor) -> float:
        """``sigma (g_max - g_min)``."""
        return self.section.sigma * (self.g_max - self.g_min)

    def aihwkit(self) -> AihwkitForm:
        """A constant polynomial."""
        c0 = self.section.sigma * (self.g_max - self.g_min)
        return AihwkitForm(
            f"gaussian sigma={self.section.sigma}",
            f"prog_coeff = [{c0:g}] µS",
            "a constant polynomial is the Gaussian model",
            payload={"coeffs": [c0], "ref": self.g_max, "scale": 1.0},
        )


@register_device_law
class ProportionalProgramming(ProgrammingLaw):
    """Gaussian error of std ``sigma x G_target``."""

    name = "proportional"
    uses = ("sigma",)
    aihwkit_missing = None
    elementwise = True

    def sigma(self, g_target: Tensor) -> Tensor:
        """``sigma G_target``."""
        return self.section.sigma * g_target

    def aihwkit(self) -> AihwkitForm:
        """A linear polynomial in ``G / g_max``."""
        c1 = self.section.sigma * self.g_max
        return AihwkitForm(
            f"proportional sigma={self.section.sigma}",
            f"prog_coeff = [0, {c1:g}] µS",
            "sigma * G_target = (sigma g_max) (G_target/g_max)",
            payload={"coeffs": [0.0, c1], "ref": self.g_max, "scale": 1.0},
        )


@register_device_law
class PolynomialProgramming(ProgrammingLaw):
    """Std ``sum_i coeffs_uS[i] ĝ**i`` µS with ``ĝ = G_target / g_max`` (aihwkit's form)."""

    name = "polynomial"
    uses = ("coeffs_uS", "coeffs_g_max_ref_uS")
    aihwkit_missing = None
    elementwise = True

    def _ref(self) -> float:
        return self.section.coeffs_g_max_ref_uS or self.g_max

    def sigma(self, g_target: Tensor) -> Tensor:
        """The polynomial, clipped at 0, scaled by ``g_max / coeffs_g_max_ref_uS``."""
        ghat = g_target / self.g_max
        coeffs = list(self.section.coeffs_uS)
        # the terms of powers 0 and 1 without pow: ghat**0 is exactly 1 and ghat**1 exactly
        # ghat, so the sum has the values of sum(coeff * ghat**power) started at zeros
        # (in place on fresh tensors, term 0 added to term 1 rather than the terms to a
        # tensor full of term 0: the same sums, as addition commutes)
        if len(coeffs) < 2:
            sig = torch.full_like(g_target, 0.0 + coeffs[0] if coeffs else 0.0)
        else:
            sig = ghat.mul(coeffs[1]).add_(coeffs[0])
        for power, coeff in enumerate(coeffs[2:], start=2):
            sig = sig.add_(ghat.pow(power).mul_(coeff))
        # A polynomial fit can go negative outside its range; a std cannot.
        return sig.clamp_(min=0.0).mul_(self.g_max / self._ref())

    def aihwkit(self) -> AihwkitForm:
        """Aihwkit's ``prog_coeff`` with its reference g_max."""
        coeffs, ref = list(self.section.coeffs_uS), self._ref()
        # memsim clamps a negative polynomial std at 0; aihwkit would flip the noise sign,
        # which gives the same distribution (the noise is symmetric) except where it is < 0.
        return AihwkitForm(
            f"polynomial {coeffs}",
            f"prog_coeff = {coeffs}, reference g_max {ref:g} µS",
            "where the polynomial is negative memsim uses sigma 0, aihwkit |sigma|",
            payload={"coeffs": coeffs, "ref": ref, "scale": 1.0},
        )


# -- drift -------------------------------------------------------------------------------
@register_device_law
class NoDrift(DriftLaw):
    """Devices keep their programmed conductances."""

    name = "none"
    aihwkit_missing = None
    elementwise = True

    def aihwkit(self) -> AihwkitForm:
        """A PCM-like model with drift and read noise off."""

        def build_model(**kwargs: Any) -> Any:
            from aihwkit.inference import PCMLikeNoiseModel

            return PCMLikeNoiseModel(drift_scale=0.0, read_noise_scale=0.0, **kwargs)

        return AihwkitForm(
            "none",
            "PCMLikeNoiseModel(drift_scale=0, read_noise_scale=0)",
            payload={"build": build_model, "drifts": False},
        )


@register_device_law
class PowerLawDrift(DriftLaw):
    """``G(t) = G (t / t0) ** -nu`` for ``t > t0``, ``nu ~ N(nu_mean, nu_std)`` clipped at 0."""

    name = "power_law"
    uses = ("t0_s", "nu_mean", "nu_std")
    aihwkit_missing = None
    elementwise = True
    deferrable = True  # drift() returns g_prog for t_s <= t0 without reading nu

    def exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """``max(0, N(nu_mean, nu_std))`` per device."""
        d = self.section
        return (d.nu_mean + d.nu_std * _randn(g_target, gen)).clamp(min=0.0)

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """``G (t / t0) ** -nu`` for t > t0."""
        t0 = self.section.t0_s
        if nu is None or t_s <= t0:
            return g_prog
        return g_prog * (t_s / t0) ** (-nu)

    def aihwkit(self) -> AihwkitForm:
        """A flat-table ``CustomDriftPCMLikeNoiseModel`` (approximated)."""
        d = self.section

        def build_model(**kwargs: Any) -> Any:
            from aihwkit.inference import CustomDriftPCMLikeNoiseModel

            table = {
                "g_lst": [self.g_min, self.g_max],
                "nu_mean_lst": [d.nu_mean] * 2,
                "nu_std_lst": [d.nu_std] * 2,
            }
            return CustomDriftPCMLikeNoiseModel(table, read_noise_scale=0.0, **kwargs)

        return AihwkitForm(
            f"power_law nu={d.nu_mean:g}+-{d.nu_std:g}",
            "CustomDriftPCMLikeNoiseModel (flat nu table, read_noise_scale=0)",
            "aihwkit: G ((t + t0)/t0)^-|nu|; memsim: G (t/t0)^-max(nu, 0) for t > t0",
            approximated=True,
            payload={"build": build_model, "drifts": True},
        )


@register_device_law
class PCMJoshi2020Drift(DriftLaw):
    """PCM drift of Joshi et al. (2020), as in aihwkit's ``PCMLikeNoiseModel``.

    The drift exponent depends on the target state and the read noise accumulated
    since programming (1/f) is drawn together with the drift, with ``t`` counted
    from the end of programming and ``t0`` the first read:

    * ``mu = clip(-0.0155 ln ĝ + 0.0244, 0.049, 0.1)``,
      ``sig = clip(-0.0125 ln ĝ - 0.0059, 0.008, 0.045)``, ``nu = |N(mu, sig)|``;
    * ``G(t) = G_prog ((t + t0) / t0) ** -nu``;
    * ``Q_s = min(0.0088 / max(ĝ, 1e-3) ** 0.65, 0.2)`` and
      ``G += |G| Q_s sqrt(ln((t + t0 + t_read) / (2 t_read))) N(0, 1)``.
    """

    name = "pcm_joshi2020"
    uses = ("t0_s", "t_read_s")
    aihwkit_missing = None
    elementwise = True
    deferrable = True  # at t_s = 0 drift() adds the 1/f noise only: nu is not read

    def exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """State-dependent nu (aihwkit ``generate_drift_coefficients``)."""
        # in place on fresh tensors, in the order of the formulas: the same values as
        # mu + sig * N, |.|, without a new tensor per operation (programming runs per step)
        log_g = (g_target / self.g_max).abs_().clamp_(min=1e-7).log_()
        mu = log_g.mul(-0.0155).add_(0.0244).clamp_(0.049, 0.1)
        sig = log_g.mul_(-0.0125).sub_(0.0059).clamp_(0.008, 0.045)
        return _randn(sig, gen).mul_(sig).add_(mu).abs_()

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """Drifted conductance plus the 1/f noise accumulated up to ``t_s``."""
        d = self.section
        t = t_s + d.t0_s
        g = g_prog * (t / d.t0_s) ** (-nu) if (nu is not None and t > d.t0_s) else g_prog
        abs_prog = g_prog.abs()
        ghat = abs_prog.div(self.g_max).pow_(0.65).clamp_(min=1e-3)
        q_s = ghat.reciprocal_().mul_(0.0088).clamp_(max=0.2)  # the ops of 0.0088 / ghat
        # no 1/f noise has accumulated before one read pulse (t < t_read: log < 0)
        sig = q_s.mul_(math.sqrt(max(0.0, math.log((t + d.t_read_s) / (2 * d.t_read_s)))))
        # (|g| sig) N + g, clipped at 0: the values of the formula, computed in place
        # (sig |g| is |g| sig: products commute; before drift |g| is the |g_prog| above)
        sig = sig.mul_(abs_prog if g is g_prog else g.abs())
        return sig.mul_(_randn(g, gen)).add_(g).clamp_(min=0.0)

    def aihwkit(self) -> AihwkitForm:
        """The aihwkit ``PCMLikeNoiseModel`` (the same formulas)."""
        d = self.section

        def build_model(**kwargs: Any) -> Any:
            from aihwkit.inference import PCMLikeNoiseModel

            return PCMLikeNoiseModel(**kwargs)

        return AihwkitForm(
            "pcm_joshi2020",
            f"PCMLikeNoiseModel(t_0={d.t0_s:g}, t_read={d.t_read_s:g})",
            "same state-dependent nu and 1/f accumulated-noise formulas",
            payload={"build": build_model, "drifts": True},
        )


# -- read noise --------------------------------------------------------------------------
@register_device_law
class NoReadNoise(ReadNoiseLaw):
    """Noise-free reads."""

    name = "none"
    aihwkit_missing = None

    def aihwkit(self) -> AihwkitForm:
        """``forward.w_noise = 0``."""
        return AihwkitForm("none", "forward.w_noise=0", payload={"w_noise": 0.0})


@register_device_law
class GaussianReadNoise(ReadNoiseLaw):
    """State-independent Gaussian read noise of std ``sigma (g_max - g_min)`` per device."""

    name = "gaussian"
    uses = ("sigma",)
    aihwkit_missing = None

    def sigma(self) -> float:
        """``read_noise.sigma``."""
        return self.section.sigma

    def aihwkit(self) -> AihwkitForm:
        """``forward.w_noise = sqrt(2) sigma`` (additive constant)."""
        w = math.sqrt(2.0) * self.section.sigma
        return AihwkitForm(
            self.section.sigma,
            f"forward.w_noise={w:.4g} (ADDITIVE_CONSTANT)",
            "sqrt(2) sigma per pair; both draw per MVM, output-referred, ||x|| scaled",
            payload={"w_noise": w},
        )


@register_device_law
class ProportionalReadNoise(ReadNoiseLaw):
    """State-dependent read noise: each device's std is ``sigma G``, G its conductance now."""

    name = "proportional"
    uses = ("sigma",)
    state_dependent = True
    aihwkit_missing = (
        "aihwkit's forward w_noise is one constant (or proportional to the weight, not to "
        "each device's conductance)"
    )

    def device_sigma(self, g: Tensor) -> Tensor:
        """``sigma G / (g_max - g_min)`` (a fraction of the window)."""
        return g * (self.section.sigma / (self.g_max - self.g_min))

    def active(self) -> bool:
        """Active for a positive sigma."""
        return self.section.sigma > 0.0


# -- the combined device model -----------------------------------------------------------
class DeviceModel:
    """The programming, drift and read-noise laws of one profile, bound together."""

    def __init__(self, profile: DeviceProfile) -> None:
        """Build the laws ``profile`` selects."""
        self.profile = profile
        self.g_min = profile.device.g_min_uS
        self.g_max = profile.device.g_max_uS
        self.programming = build("programming_noise", profile)
        self.drift_law = build("drift", profile)
        self.read = build("read_noise", profile)

    def program_sigma(self, g_target: Tensor) -> Tensor | float:
        """Std (µS) of the programming error at each target conductance."""
        return self.programming.sigma(g_target)

    def program(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """Return the programmed conductance (target plus programming error, >= 0)."""
        return self.programming.program(g_target, gen)

    def drift_exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor | None:
        """Per-device drift exponents nu (``None`` when the profile has no drift)."""
        return self.drift_law.exponents(g_target, gen)

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """Conductance ``t_s`` seconds after programming."""
        return self.drift_law.drift(g_prog, nu, t_s, gen)

    @property
    def programs_in_pieces(self) -> bool:
        """Whether programming may run piece by piece (both laws ``elementwise``)."""
        return bool(self.programming.elementwise and self.drift_law.elementwise)

    @property
    def defers_exponents(self) -> bool:
        """Whether the drift exponents may be drawn after programming (see ``DriftLaw``)."""
        return bool(self.drift_law.deferrable)

    def read_sigma(self) -> float:
        """Std of one device read, as a fraction of the window (state-independent laws)."""
        return self.read.sigma()

    @property
    def read_state_dependent(self) -> bool:
        """Whether each device's read noise depends on its conductance."""
        return bool(self.read.state_dependent)


class PCMJoshi2020(DeviceModel):
    """A device model with the ``pcm_joshi2020`` drift law, whatever the profile's drift.

    :func:`device_model` returns it for profiles that select that law.
    """

    def __init__(self, profile: DeviceProfile) -> None:
        """Bind the profile's laws, with the Joshi 2020 drift."""
        super().__init__(profile)
        self.drift_law = PCMJoshi2020Drift(profile)


def device_model(profile: DeviceProfile) -> DeviceModel:
    """Return the device-physics object for ``profile``."""
    if profile.aihwkit_noise_model is not None:
        return law_class("device", "aihwkit_noise_model")(profile)  # type: ignore[return-value]
    if profile.drift.model == PCMJoshi2020Drift.name:
        return PCMJoshi2020(profile)
    return DeviceModel(profile)


# registers the aihwkit adapter (aihwkit itself is imported only when a profile uses it)
from . import physics_aihwkit  # noqa: E402, F401
