"""Drift: per-device power-law exponents, nu_mean, nu_std and the state dependence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .measurements import MIN_POINTS, MeasurementError

# -- drift ---------------------------------------------------------------------------


@dataclass
class DriftFit:
    """Power-law drift exponents per device and their distribution."""

    nu_mean: float
    nu_std: float
    """Device-to-device std, with each device's estimation variance removed."""
    nu_mean_se: float
    n_devices: int
    n_points: int
    t0_s: float
    t_offset_s: float
    r2: float
    """Pooled R² of the per-device lines ln G vs ln((t + t_offset) / t0)."""
    residual_sigma: float
    """RMS residual of ln G (relative conductance noise)."""
    devices: np.ndarray
    nu: np.ndarray
    """Per-device exponents."""
    nu_se: np.ndarray
    state_ghat: np.ndarray
    """Per-device state ĝ (target, else first read, over g_max)."""
    state: dict[str, Any] = field(default_factory=dict)
    """State dependence ``nu_mean = slope ln ĝ + intercept`` when enough devices per
    state bin: ``slope``, ``slope_se``, ``intercept``, ``bins`` (ĝ, mean nu, se, n)."""


def fit_drift(
    device: np.ndarray,
    t_s: np.ndarray,
    g_uS: np.ndarray,
    *,
    g_max_uS: float,
    t0_s: float,
    t_offset_s: float = 0.0,
    target_uS: np.ndarray | None = None,
    min_per_state: int = 30,
) -> DriftFit:
    """Fit ``G(t) = G0 ((t + t_offset) / t0) ** -nu`` to each device, then the population.

    Rows with ``G <= 0`` (log undefined) and, without offset, rows with ``t < t0``
    (before the power law holds) are dropped.  A device needs reads at >= 3 distinct
    times.  State dependence is fitted when there are >= 3 state bins of
    ``min_per_state`` devices.
    """
    device = np.asarray(device).astype(str)
    t = np.asarray(t_s, dtype=np.float64)
    g = np.asarray(g_uS, dtype=np.float64)
    keep = (g > 0) & (t + t_offset_s >= t0_s)
    ids, inv = np.unique(device[keep], return_inverse=True)
    x = np.log((t[keep] + t_offset_s) / t0_s)
    y = np.log(g[keep])
    n_dev = len(ids)

    def s(w: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=w, minlength=n_dev)

    n = s(np.ones_like(x))
    sx, sy, sxx, sxy, syy = s(x), s(y), s(x * x), s(x * y), s(y * y)
    # distinct read times per device: unique (device, time) pairs, counted per device
    pairs = np.unique(np.stack([inv.astype(np.float64), x]), axis=1)
    times = np.bincount(pairs[0].astype(np.int64), minlength=n_dev)
    sxx_c = sxx - sx * sx / np.maximum(n, 1)
    ok = (times >= 3) & (sxx_c > 0)
    if ok.sum() < MIN_POINTS["drift"]:
        raise MeasurementError(
            f"drift fit needs >= {MIN_POINTS['drift']} devices with reads at >= 3 times "
            f"(t + t_offset >= t0 = {t0_s:g} s, G > 0), got {int(ok.sum())}"
        )
    slope = (sxy - sx * sy / np.maximum(n, 1)) / np.where(ok, sxx_c, 1.0)
    syy_c = syy - sy * sy / np.maximum(n, 1)
    ss_res = np.clip(syy_c - slope * (sxy - sx * sy / np.maximum(n, 1)), 0.0, None)
    se2 = ss_res / np.maximum(n - 2, 1) / np.where(ok, sxx_c, 1.0)
    nu, nu_se2 = -slope[ok], se2[ok]
    nu_mean = float(nu.mean())
    nu_std = float(math.sqrt(max(0.0, float(nu.var(ddof=1)) - float(nu_se2.mean()))))
    r2_tot = float(syy_c[ok].sum())
    r2 = 1.0 - float(ss_res[ok].sum()) / r2_tot if r2_tot > 0 else float("nan")
    resid = float(math.sqrt(ss_res[ok].sum() / max(1.0, float((n[ok] - 2).sum()))))
    # state of each device: its target, else its earliest read
    if target_uS is not None and not np.all(np.isnan(np.asarray(target_uS, dtype=float))):
        tg = np.asarray(target_uS, dtype=np.float64)[keep]
        state = s(np.nan_to_num(tg)) / np.maximum(n, 1)
    else:
        first = np.full(n_dev, np.inf)
        np.minimum.at(first, inv, x)
        at_first = x == first[inv]
        state = np.exp(
            np.bincount(inv, weights=np.where(at_first, y, 0.0), minlength=n_dev)
            / np.maximum(np.bincount(inv, weights=at_first.astype(float), minlength=n_dev), 1)
        )
    ghat = state[ok] / g_max_uS
    fit = DriftFit(
        nu_mean=nu_mean,
        nu_std=nu_std,
        nu_mean_se=float(nu.std(ddof=1) / math.sqrt(len(nu))),
        n_devices=int(ok.sum()),
        n_points=int(n[ok].sum()),
        t0_s=float(t0_s),
        t_offset_s=float(t_offset_s),
        r2=r2,
        residual_sigma=resid,
        devices=ids[ok],
        nu=nu,
        nu_se=np.sqrt(nu_se2),
        state_ghat=ghat,
    )
    n_bins = min(10, len(nu) // min_per_state)
    if n_bins >= 3 and np.all(ghat > 0):
        edges = np.quantile(ghat, np.linspace(0, 1, n_bins + 1))
        b = np.clip(np.searchsorted(edges, ghat, side="right") - 1, 0, n_bins - 1)
        cnt = np.bincount(b, minlength=n_bins).astype(float)
        if cnt.min() >= 2:
            m = np.bincount(b, weights=nu, minlength=n_bins) / cnt
            gm = np.exp(np.bincount(b, weights=np.log(ghat), minlength=n_bins) / cnt)
            var = np.bincount(b, weights=(nu - m[b]) ** 2, minlength=n_bins) / (cnt - 1)
            se = np.sqrt(np.maximum(var, 1e-30) / cnt)
            coef, cov = np.polyfit(np.log(gm), m, 1, w=1.0 / se, cov="unscaled")
            fit.state = {
                "slope": float(coef[0]),
                "slope_se": float(math.sqrt(cov[0, 0])),
                "intercept": float(coef[1]),
                "bins": {"ghat": gm, "nu_mean": m, "se": se, "n": cnt},
            }
    return fit
