"""Fit a device profile to a user's own measurements.

One measurement CSV holds every kind of data, one row per reading, with the columns
:data:`COLUMNS` (extra columns are ignored, empty cells are allowed where a kind does
not use a field, lines starting with ``#`` are comments):

========  ============================================================================
kind      meaning of a row (the fields it needs)
========  ============================================================================
program   one device programmed to ``target_uS`` and read once, ``g_uS``, right after
          programming (``device`` optional; rows of devices found stuck are dropped)
drift     one read ``g_uS`` of ``device`` at ``t_s`` seconds after its programming
          (``target_uS`` optional: the programmed state; default the device's first read)
read      one of several repeated reads ``g_uS`` of ``device`` (same state, no
          re-programming in between)
stuck     one read ``g_uS`` of ``device`` after programming it to ``target_uS``; each
          device is programmed to targets spread over the window (a march test)
========  ============================================================================

Each kind is fitted on its own (see the functions ``fit_*``) and :func:`fit_profile`
assembles a profile dict that ``extends`` a base profile and overrides only the
quantities the file has data for.  Every overridden section gets a ``source`` entry
naming the file, its sha256, the number of points used and the fit quality.

The models are memsim's own (:mod:`memsim.physics`):

* programming: ``G = max(0, G_target + mu + sigma(ĝ) N(0, 1))`` with
  ``sigma(ĝ) = sum_i c_i ĝ**i`` (µS), ``ĝ = G_target / g_max``; the degree is chosen by
  5-fold cross-validation of the Gaussian likelihood (reads at 0 are censored);
* drift: ``G(t) = G0 ((t + t_offset) / t0) ** -nu`` per device, ``nu ~ N(nu_mean,
  nu_std)`` over devices (``nu_std`` corrected for the estimation error of each ``nu``);
* read noise: state-independent Gaussian, pooled within-device standard deviation;
* stuck-at: a device whose reads move by less than ``move_tol`` of the window while
  its targets span at least half of it.
"""

from __future__ import annotations

from .drift import DriftFit, fit_drift
from .measurements import (
    COLUMNS,
    KINDS,
    MIN_POINTS,
    MeasurementError,
    Measurements,
    file_sha256,
    read_measurements,
    write_measurements,
)
from .profile import ProfileFit, check_fitted_profile, fit_profile
from .programming import ProgrammingFit, fit_programming
from .read_noise import ReadNoiseFit, fit_read_noise
from .stuck import StuckFit, fit_stuck
from .synthetic import simulate_measurements

__all__ = [
    "COLUMNS",
    "DriftFit",
    "KINDS",
    "MIN_POINTS",
    "MeasurementError",
    "Measurements",
    "ProfileFit",
    "ProgrammingFit",
    "ReadNoiseFit",
    "StuckFit",
    "check_fitted_profile",
    "file_sha256",
    "fit_drift",
    "fit_profile",
    "fit_programming",
    "fit_read_noise",
    "fit_stuck",
    "read_measurements",
    "simulate_measurements",
    "write_measurements",
]
