"""Read noise: the pooled within-device standard deviation of repeated reads."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .measurements import MIN_POINTS, MeasurementError

# -- read noise ----------------------------------------------------------------------


@dataclass
class ReadNoiseFit:
    """State-independent read noise, pooled over devices."""

    sigma_uS: float
    sigma: float
    """As a fraction of the window g_max - g_min (the profile's unit)."""
    n_devices: int
    n_points: int
    r2: float
    """Share of the reads' total variance explained by the device means."""
    residual_sigma_uS: float
    """Std of the per-device read std around the pooled value."""
    device_mean_uS: np.ndarray
    device_std_uS: np.ndarray
    state_slope: float
    """Slope of per-device std against mean conductance (µS/µS; 0: state independent)."""


def fit_read_noise(device: np.ndarray, g_uS: np.ndarray, window_uS: float) -> ReadNoiseFit:
    """Pooled within-device std of repeated reads (devices with >= 2 reads)."""
    ids, inv = np.unique(np.asarray(device).astype(str), return_inverse=True)
    g = np.asarray(g_uS, dtype=np.float64)
    n = np.bincount(inv, minlength=len(ids)).astype(float)
    mean = np.bincount(inv, weights=g, minlength=len(ids)) / np.maximum(n, 1)
    ssw = np.bincount(inv, weights=(g - mean[inv]) ** 2, minlength=len(ids))
    ok = n >= 2
    if ok.sum() < MIN_POINTS["read"]:
        raise MeasurementError(
            f"read-noise fit needs >= {MIN_POINTS['read']} devices with >= 2 reads, "
            f"got {int(ok.sum())}"
        )
    dof = float((n[ok] - 1).sum())
    sigma = math.sqrt(float(ssw[ok].sum()) / dof)
    rows = ok[inv]
    sst = float(((g[rows] - g[rows].mean()) ** 2).sum())
    dev_std = np.sqrt(ssw[ok] / (n[ok] - 1))
    slope = float(np.polyfit(mean[ok], dev_std, 1)[0]) if np.ptp(mean[ok]) > 0 else 0.0
    return ReadNoiseFit(
        sigma_uS=sigma,
        sigma=sigma / window_uS,
        n_devices=int(ok.sum()),
        n_points=int(n[ok].sum()),
        r2=1.0 - float(ssw[ok].sum()) / sst if sst > 0 else float("nan"),
        residual_sigma_uS=float(np.std(dev_std - sigma)),
        device_mean_uS=mean[ok],
        device_std_uS=dev_std,
        state_slope=slope,
    )
