"""Device physics: a small class hierarchy with three hooks.

* :meth:`DeviceModel.program` — the conductance a device reaches when programmed
  to a target (programming noise).
* :meth:`DeviceModel.drift` — the conductance ``t`` seconds after programming
  (drift and any noise accumulated with it), from per-device exponents drawn by
  :meth:`DeviceModel.drift_exponents`.
* :meth:`DeviceModel.read_sigma` — the std of one read of one device (per MVM).

All conductances are in µS.  The mapping of weights to conductances is not here
(see :mod:`memsim.mapping`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .profiles import _PROFILE_CHECKS, DeviceProfile, DriftModel, ProgNoiseModel, ReadNoiseModel


def _randn(like: Tensor, gen: torch.Generator) -> Tensor:
    return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)


class DeviceModel:
    """Generic device: programming noise from the profile, power-law drift."""

    def __init__(self, profile: DeviceProfile) -> None:
        """Build from ``profile``."""
        self.profile = profile
        self.g_min = profile.device.g_min_uS
        self.g_max = profile.device.g_max_uS

    def program_sigma(self, g_target: Tensor) -> Tensor | float:
        """Std (µS) of the programming error at each target conductance."""
        pn = self.profile.programming_noise
        if pn.model == ProgNoiseModel.none:
            return 0.0
        if pn.model == ProgNoiseModel.gaussian:
            return pn.sigma * (self.g_max - self.g_min)
        if pn.model == ProgNoiseModel.proportional:
            return pn.sigma * g_target
        ghat = g_target / self.g_max
        sig = torch.zeros_like(g_target)
        for power, coeff in enumerate(pn.coeffs_uS):
            sig = sig + coeff * ghat**power
        ref = pn.coeffs_g_max_ref_uS or self.g_max
        # A polynomial fit can go negative outside its range; a std cannot.
        return sig.clamp(min=0.0) * (self.g_max / ref)

    def program(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """Return the programmed conductance (target plus programming error, >= 0)."""
        sig = self.program_sigma(g_target)
        if isinstance(sig, float) and sig == 0.0:
            return g_target.clone()
        return (g_target + sig * _randn(g_target, gen)).clamp(min=0.0)

    def drift_exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor | None:
        """Per-device drift exponents nu (``None`` when the profile has no drift)."""
        d = self.profile.drift
        if d.model == DriftModel.none:
            return None
        return (d.nu_mean + d.nu_std * _randn(g_target, gen)).clamp(min=0.0)

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """Conductance ``t_s`` seconds after programming: ``G (t / t0) ** -nu`` for t > t0."""
        if nu is None:
            return g_prog
        t0 = self.profile.drift.t0_s
        if t_s <= t0:
            return g_prog
        return g_prog * (t_s / t0) ** (-nu)

    def read_sigma(self) -> float:
        """Std of one device read, as a fraction of the window g_max - g_min."""
        rn = self.profile.read_noise
        return rn.sigma if rn.model == ReadNoiseModel.gaussian else 0.0


class PCMJoshi2020(DeviceModel):
    """PCM physics of Joshi et al. (2020), as in aihwkit's ``PCMLikeNoiseModel``.

    The drift exponent depends on the target state and the read noise accumulated
    since programming (1/f) is drawn together with the drift, with ``t`` counted
    from the end of programming and ``t0`` the first read:

    * ``mu = clip(-0.0155 ln ĝ + 0.0244, 0.049, 0.1)``,
      ``sig = clip(-0.0125 ln ĝ - 0.0059, 0.008, 0.045)``, ``nu = |N(mu, sig)|``;
    * ``G(t) = G_prog ((t + t0) / t0) ** -nu``;
    * ``Q_s = min(0.0088 / max(ĝ, 1e-3) ** 0.65, 0.2)`` and
      ``G += |G| Q_s sqrt(ln((t + t0 + t_read) / (2 t_read))) N(0, 1)``.
    """

    def drift_exponents(self, g_target: Tensor, gen: torch.Generator) -> Tensor:
        """State-dependent nu (aihwkit ``generate_drift_coefficients``)."""
        ghat = (g_target / self.g_max).abs().clamp(min=1e-7)
        mu = (-0.0155 * torch.log(ghat) + 0.0244).clamp(0.049, 0.1)
        sig = (-0.0125 * torch.log(ghat) - 0.0059).clamp(0.008, 0.045)
        return (mu + sig * _randn(ghat, gen)).abs()

    def drift(self, g_prog: Tensor, nu: Tensor | None, t_s: float, gen: torch.Generator) -> Tensor:
        """Drifted conductance plus the 1/f noise accumulated up to ``t_s``."""
        d = self.profile.drift
        t = t_s + d.t0_s
        g = g_prog * (t / d.t0_s) ** (-nu) if (nu is not None and t > d.t0_s) else g_prog
        q_s = (0.0088 / (g_prog.abs() / self.g_max).pow(0.65).clamp(min=1e-3)).clamp(max=0.2)
        # no 1/f noise has accumulated before one read pulse (t < t_read: log < 0)
        sig = q_s * math.sqrt(max(0.0, math.log((t + d.t_read_s) / (2 * d.t_read_s))))
        return (g + g.abs() * sig * _randn(g, gen)).clamp(min=0.0)


def device_model(profile: DeviceProfile) -> DeviceModel:
    """Return the device-physics object for ``profile``."""
    if profile.aihwkit_noise_model is not None:
        # Imported here: the aihwkit extra is optional.
        from .physics_aihwkit import AihwkitDeviceModel

        return AihwkitDeviceModel(profile)
    if profile.drift.model == DriftModel.pcm_joshi2020:
        return PCMJoshi2020(profile)
    return DeviceModel(profile)


def _check_aihwkit_section(profile: DeviceProfile, origin: str) -> None:
    if profile.aihwkit_noise_model is not None:
        # Imported here: aihwkit is an optional extra, and only this section needs it.
        from .physics_aihwkit import check_profile

        check_profile(profile, origin)


_PROFILE_CHECKS.append(_check_aihwkit_section)
