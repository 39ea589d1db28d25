"""Stuck-at devices: devices whose reads do not move under programming."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .measurements import MIN_POINTS, MeasurementError

# -- stuck-at ------------------------------------------------------------------------


@dataclass
class StuckFit:
    """Stuck-at rates from a march test."""

    stuck_at_gmin_rate: float
    stuck_at_gmax_rate: float
    n_devices: int
    n_points: int
    n_gmin: int
    n_gmax: int
    move_tol: float
    stuck_devices: np.ndarray
    device_span_uS: np.ndarray
    """Per-device range of reads (for plots)."""
    device_mean_uS: np.ndarray

    def rate_se(self, rate: float) -> float:
        """Binomial standard error of a rate."""
        return math.sqrt(max(rate * (1 - rate), 0.0) / max(self.n_devices, 1))


def fit_stuck(
    device: np.ndarray,
    target_uS: np.ndarray,
    g_uS: np.ndarray,
    *,
    g_min_uS: float,
    g_max_uS: float,
    move_tol: float = 0.1,
) -> StuckFit:
    """Devices whose reads stay within ``move_tol`` x window while targets span >= 1/2 of it."""
    ids, inv = np.unique(np.asarray(device).astype(str), return_inverse=True)
    g = np.asarray(g_uS, dtype=np.float64)
    tg = np.asarray(target_uS, dtype=np.float64)
    window = g_max_uS - g_min_uS
    k = len(ids)
    gmax_d, gmin_d = np.full(k, -np.inf), np.full(k, np.inf)
    tmax_d, tmin_d = np.full(k, -np.inf), np.full(k, np.inf)
    np.maximum.at(gmax_d, inv, g)
    np.minimum.at(gmin_d, inv, g)
    np.maximum.at(tmax_d, inv, tg)
    np.minimum.at(tmin_d, inv, tg)
    tested = (tmax_d - tmin_d) >= 0.5 * window
    if tested.sum() < MIN_POINTS["stuck"]:
        raise MeasurementError(
            f"stuck-at fit needs >= {MIN_POINTS['stuck']} devices programmed to targets "
            f"spanning >= half the window, got {int(tested.sum())}"
        )
    span = gmax_d - gmin_d
    mean = np.bincount(inv, weights=g, minlength=k) / np.bincount(inv, minlength=k)
    stuck = tested & (span < move_tol * window)
    low = stuck & (mean < g_min_uS + 0.5 * window)
    high = stuck & ~low
    nt = int(tested.sum())
    return StuckFit(
        stuck_at_gmin_rate=float(low.sum() / nt),
        stuck_at_gmax_rate=float(high.sum() / nt),
        n_devices=nt,
        n_points=int(tested[inv].sum()),
        n_gmin=int(low.sum()),
        n_gmax=int(high.sum()),
        move_tol=move_tol,
        stuck_devices=ids[stuck],
        device_span_uS=span[tested],
        device_mean_uS=mean[tested],
    )
