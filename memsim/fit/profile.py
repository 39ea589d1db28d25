"""The fitted profile: every fit assembled into a profile that extends a base."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..profiles import DeviceProfile, DriftModel, ProfileError, load_profile, validate_profile
from .drift import DriftFit, fit_drift
from .measurements import KINDS, MeasurementError, Measurements, read_measurements
from .programming import ProgrammingFit, fit_programming
from .read_noise import ReadNoiseFit, fit_read_noise
from .stuck import StuckFit, fit_stuck

# -- the profile -----------------------------------------------------------------------


@dataclass
class ProfileFit:
    """A fitted profile and the fits it came from."""

    profile: dict[str, Any]
    """Profile JSON (``extends`` the base)."""
    base: DeviceProfile
    measurements: Measurements
    programming: ProgrammingFit | None = None
    drift: DriftFit | None = None
    read_noise: ReadNoiseFit | None = None
    stuck: StuckFit | None = None

    def summary(self) -> str:
        """One line per fitted quantity."""
        lines = []
        if self.programming is not None:
            p = self.programming
            lines.append(
                f"programming: degree {p.degree}, coeffs_uS {[round(c, 4) for c in p.coeffs_uS]}, "
                f"mean error {p.mean_uS:+.4f} uS, R2 {p.r2:.3f}, {p.n_points} points"
            )
        if self.drift is not None:
            d = self.drift
            lines.append(
                f"drift: nu_mean {d.nu_mean:.4f} +- {d.nu_mean_se:.4f}, nu_std {d.nu_std:.4f}, "
                f"{d.n_devices} devices, R2 {d.r2:.3f}"
            )
        if self.read_noise is not None:
            r = self.read_noise
            lines.append(
                f"read noise: sigma {r.sigma:.5f} of the window ({r.sigma_uS:.4f} uS), "
                f"{r.n_devices} devices"
            )
        if self.stuck is not None:
            s = self.stuck
            lines.append(
                f"stuck-at: g_min {s.stuck_at_gmin_rate:.4f}, g_max {s.stuck_at_gmax_rate:.4f} "
                f"({s.n_gmin} + {s.n_gmax} of {s.n_devices} devices)"
            )
        return "\n".join(lines)


def _src(meas: Measurements, n: int, what: str) -> str:
    name = meas.path.name if meas.path is not None else "<data>"
    return f"Fitted by memsim.fit from {name} (sha256 {meas.sha256}), {n} points: {what}"


def fit_profile(
    measurements: str | os.PathLike[str] | Measurements,
    base: str | os.PathLike[str] | DeviceProfile = "rram_wan2022",
    *,
    name: str | None = None,
    max_degree: int = 6,
    move_tol: float = 0.1,
    t_offset_s: float | None = None,
    t0_s: float | None = None,
    seed: int = 0,
) -> ProfileFit:
    """Fit every quantity the file has data for; return a profile extending ``base``.

    Args:
        measurements: A measurement CSV path or :class:`Measurements`.
        base: Shipped profile name (or path) the result ``extends``; it supplies the
            conductance window (g_min, g_max), t0 and everything not measured.
        name: Name of the new profile (default ``<base>_fitted``).
        max_degree: Highest programming-noise polynomial degree tried.
        move_tol: Stuck-at threshold, fraction of the window.
        t_offset_s: Drift time offset (default: t0 for a ``pcm_joshi2020`` base, whose
            model counts ``t + t0``; else 0).
        t0_s: Drift reference time of the fitted power law (default the base's t0;
            drift rows before it are not used unless an offset brings them past it).
        seed: Seed of the cross-validation folds.

    Raises:
        MeasurementError: Too few points for a kind that is present, or no data at all.
        ProfileError: Unknown base profile.

    """
    meas = (
        measurements if isinstance(measurements, Measurements) else read_measurements(measurements)
    )
    prof = load_profile(base)
    if isinstance(base, DeviceProfile) or str(base).endswith(".json") or "/" in str(base):
        # ``extends`` resolves shipped names only
        base_name = prof.extends or prof.name
        try:
            load_profile(base_name)
        except ProfileError:
            raise ProfileError(
                f"base {base!r}: 'extends' needs a shipped profile name; got {prof.name!r}"
            ) from None
    else:
        base_name = str(base)
    d = prof.device
    window = d.g_max_uS - d.g_min_uS
    out: dict[str, Any] = {
        "name": name or f"{prof.name}_fitted",
        "extends": base_name,
        "description": f"{prof.name} with numbers fitted to "
        f"{meas.path.name if meas.path else 'measurements'}",
        "source": {},
    }
    src = out["source"]
    src["general"] = (
        f"Measured values fitted by memsim.fit from "
        f"{meas.path.name if meas.path else '<data>'} (sha256 {meas.sha256}); everything "
        f"else is {base_name} (see its sources)."
    )
    fit = ProfileFit(out, prof, meas)
    if not any(meas.count(k) for k in KINDS):
        raise MeasurementError(f"{meas.path}: no measurement rows")
    stuck_ids: set[str] = set()
    if meas.count("stuck"):
        r = meas.select("stuck")
        s = fit_stuck(
            r["device"],
            r["target_uS"],
            r["g_uS"],
            g_min_uS=d.g_min_uS,
            g_max_uS=d.g_max_uS,
            move_tol=move_tol,
        )
        fit.stuck = s
        stuck_ids = set(s.stuck_devices.tolist())
        out["faults"] = {
            "stuck_at_gmin_rate": s.stuck_at_gmin_rate,
            "stuck_at_gmax_rate": s.stuck_at_gmax_rate,
        }
        src["faults"] = _src(
            meas,
            s.n_points,
            f"march test of {s.n_devices} devices; a device is stuck if its reads span less "
            f"than {move_tol:g} of the window: {s.n_gmin} at g_min, {s.n_gmax} at g_max "
            f"(binomial se {s.rate_se(s.stuck_at_gmin_rate):.2g} / "
            f"{s.rate_se(s.stuck_at_gmax_rate):.2g}); d2d_sigma is the base's.",
        )
    if meas.count("program"):
        r = meas.select("program")
        keep = (
            ~np.isin(r["device"], list(stuck_ids)) if stuck_ids else np.ones(len(r["g_uS"]), bool)
        )
        p = fit_programming(
            r["target_uS"][keep], r["g_uS"][keep], d.g_max_uS, max_degree=max_degree, seed=seed
        )
        fit.programming = p
        out["programming_noise"] = {
            "model": "polynomial",
            "coeffs_uS": p.coeffs_uS,
            "coeffs_g_max_ref_uS": d.g_max_uS,
        }
        flag = (
            " (significant, not modeled: the schema has no mean term)"
            if abs(p.mean_uS) > 3 * p.mean_se_uS
            else ""
        )
        src["programming_noise"] = _src(
            meas,
            p.n_points,
            f"maximum-likelihood sigma(g/g_max) polynomial, degree {p.degree} chosen by "
            f"5-fold cross-validation; R^2 {p.r2:.4f} against binned std, residual sigma "
            f"{p.residual_sigma_uS:.3g} uS; mean error {p.mean_uS:+.4g} +- "
            f"{p.mean_se_uS:.2g} uS{flag}.",
        )
    if meas.count("drift"):
        r = meas.select("drift")
        t0 = prof.drift.t0_s if t0_s is None else float(t0_s)
        if not t0 > 0:
            raise MeasurementError(f"t0_s must be > 0 s, got {t0}")
        off = t_offset_s
        if off is None:
            off = prof.drift.t0_s if prof.drift.model == DriftModel.pcm_joshi2020 else 0.0
        dfit = fit_drift(
            r["device"],
            r["t_s"],
            r["g_uS"],
            g_max_uS=d.g_max_uS,
            t0_s=t0,
            t_offset_s=off,
            target_uS=r["target_uS"],
        )
        fit.drift = dfit
        out["drift"] = {
            "model": "power_law",
            "t0_s": t0,
            "nu_mean": max(0.0, dfit.nu_mean),
            "nu_std": dfit.nu_std,
            "compensation": prof.drift.compensation.value,
        }
        state = ""
        if dfit.state:
            st = dfit.state
            state = (
                f"; state dependence nu_mean = {st['slope']:+.4g} (+- {st['slope_se']:.2g}) "
                f"ln(g/g_max) {st['intercept']:+.4g} over {len(st['bins']['n'])} state bins "
                "(not modeled: power_law is state independent)"
            )
        src["drift"] = _src(
            meas,
            dfit.n_points,
            f"per-device least squares of ln G on ln((t + {off:g} s) / t0) for "
            f"{dfit.n_devices} devices; nu_mean {dfit.nu_mean:.4g} +- {dfit.nu_mean_se:.2g}, "
            f"nu_std corrected for estimation error; pooled R^2 {dfit.r2:.4f}, residual "
            f"sigma {dfit.residual_sigma:.3g} in ln G{state}.",
        )
    if meas.count("read"):
        r = meas.select("read")
        rf = fit_read_noise(r["device"], r["g_uS"], window)
        fit.read_noise = rf
        out["read_noise"] = {"model": "gaussian", "sigma": rf.sigma}
        src["read_noise"] = _src(
            meas,
            rf.n_points,
            f"pooled within-device std of repeated reads of {rf.n_devices} devices, "
            f"{rf.sigma_uS:.4g} uS; R^2 {rf.r2:.4f} (variance explained by the device "
            f"means), residual sigma {rf.residual_sigma_uS:.3g} uS; state slope "
            f"{rf.state_slope:+.3g}.",
        )
    check_fitted_profile(out)
    return fit


def check_fitted_profile(data: dict[str, Any]) -> DeviceProfile:
    """Resolve ``extends`` and validate a fitted profile dict (raises ProfileError)."""
    return validate_profile(data, f"fitted profile {data.get('name')!r}")
