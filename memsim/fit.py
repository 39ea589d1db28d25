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

import csv
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special

from .profiles import DeviceProfile, DriftModel, ProfileError, load_profile, validate_profile

COLUMNS = ("kind", "device", "target_uS", "t_s", "g_uS")
"""Columns of a measurement CSV."""
KINDS = ("program", "drift", "read", "stuck")
"""Allowed values of the ``kind`` column."""
MIN_POINTS = {"program": 200, "drift": 20, "read": 10, "stuck": 20}
"""Fewest points (program rows; devices for the others) a fit accepts."""


class MeasurementError(ValueError):
    """A measurement file or its data cannot be fitted (names file, line and field)."""


# -- reading ------------------------------------------------------------------------


@dataclass
class Measurements:
    """The rows of a measurement CSV, split by kind (numpy arrays, NaN for empty cells)."""

    path: Path | None
    sha256: str
    kind: np.ndarray
    device: np.ndarray
    """Device ids as strings ('' where empty)."""
    target_uS: np.ndarray
    t_s: np.ndarray
    g_uS: np.ndarray

    def select(self, kind: str) -> dict[str, np.ndarray]:
        """The rows of one ``kind`` as a dict of column arrays."""
        m = self.kind == kind
        return {
            "device": self.device[m],
            "target_uS": self.target_uS[m],
            "t_s": self.t_s[m],
            "g_uS": self.g_uS[m],
        }

    def count(self, kind: str) -> int:
        """Rows of ``kind``."""
        return int((self.kind == kind).sum())


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _float_column(path: Path, name: str, values: list[str], lines: list[int]) -> np.ndarray:
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        v = v.strip()
        if v:
            try:
                out[i] = float(v)
            except ValueError:
                raise MeasurementError(
                    f"{path}: line {lines[i]}: field '{name}' = {v!r} is not a number"
                ) from None
    return out


def read_measurements(path: str | os.PathLike[str]) -> Measurements:
    """Read a measurement CSV (format in the module docstring).

    Raises:
        FileNotFoundError: No such file.
        MeasurementError: A missing column, an unknown kind, a non-number, a negative
            conductance or time; the message names the file, line and field.

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: measurement file not found")
    with path.open(encoding="utf-8", newline="") as f:
        numbered = [(i + 1, line) for i, line in enumerate(f) if not line.startswith("#")]
    reader = csv.reader(line for _, line in numbered)
    header = [h.strip() for h in next(reader, [])]
    if not header:
        raise MeasurementError(f"{path}: empty file; the header must be {','.join(COLUMNS)}")
    for col in ("kind", "g_uS"):
        if col not in header:
            wrong = [h for h in header if h.startswith("g_")] if col == "g_uS" else []
            hint = f" (found {wrong[0]!r}: conductances must be in uS)" if wrong else ""
            raise MeasurementError(f"{path}: column {col!r} is missing{hint}; columns: {COLUMNS}")
    at = {h: i for i, h in enumerate(header)}
    rows, lines = [], []
    for (lineno, _), row in zip(numbered[1:], reader):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise MeasurementError(
                f"{path}: line {lineno}: {len(row)} fields, the header has {len(header)}"
            )
        rows.append(row)
        lines.append(lineno)

    def col(name: str) -> list[str]:
        return [r[at[name]] for r in rows] if name in at else [""] * len(rows)

    kind = np.array([k.strip() for k in col("kind")], dtype=object)
    bad = [i for i, k in enumerate(kind) if k not in KINDS]
    if bad:
        raise MeasurementError(
            f"{path}: line {lines[bad[0]]}: field 'kind' = {kind[bad[0]]!r}; allowed: "
            f"{', '.join(KINDS)}"
        )
    device = np.array([d.strip() for d in col("device")], dtype=object)
    target = _float_column(path, "target_uS", col("target_uS"), lines)
    t = _float_column(path, "t_s", col("t_s"), lines)
    g = _float_column(path, "g_uS", col("g_uS"), lines)
    checks = (
        ("g_uS", g, np.isnan(g), "every row needs a conductance"),
        ("g_uS", g, g < 0, "conductances must be >= 0 uS"),
        ("target_uS", target, target < 0, "targets must be >= 0 uS"),
        ("t_s", t, t < 0, "times must be >= 0 s"),
        (
            "target_uS",
            target,
            np.isin(kind, ("program", "stuck")) & np.isnan(target),
            "program and stuck rows need a target",
        ),
        ("t_s", t, (kind == "drift") & np.isnan(t), "drift rows need a time"),
        (
            "device",
            device,
            np.isin(kind, ("drift", "read", "stuck")) & (device == ""),
            "drift, read and stuck rows need a device id",
        ),
    )
    for name, values, mask, why in checks:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise MeasurementError(
                f"{path}: line {lines[i]}: field '{name}' = {values[i]!r}: {why}"
            )
    return Measurements(path, file_sha256(path), kind, device.astype(str), target, t, g)


def write_measurements(path: str | os.PathLike[str], tables: dict[str, dict[str, Any]]) -> Path:
    """Write ``{kind: {column: array}}`` as one measurement CSV (format above)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def cell(v: Any, fmt: str) -> str:
        if isinstance(v, str):
            return v
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt % v

    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for kind, table in tables.items():
            n = len(table["g_uS"])
            cols = [
                table.get("device", [""] * n),
                table.get("target_uS", [None] * n),
                table.get("t_s", [None] * n),
                table["g_uS"],
            ]
            fmts = ("%s", "%.6g", "%.6g", "%.6g")
            for i in range(n):
                w.writerow([kind, *(cell(_py(c[i]), fm) for c, fm in zip(cols, fmts))])
    return path


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# -- programming error --------------------------------------------------------------


@dataclass
class ProgrammingFit:
    """Programming error ``G - G_target ~ N(mean_uS, sigma(ĝ))``."""

    coeffs_uS: list[float]
    """Monomial coefficients of sigma(ĝ) in µS, lowest order first."""
    degree: int
    g_max_uS: float
    mean_uS: float
    """Mean programming error (µS); the profile schema has no term for it."""
    mean_se_uS: float
    n_points: int
    cv_nll: dict[int, float]
    """Mean held-out negative log-likelihood per point, per degree."""
    r2: float
    """R² of sigma(ĝ) against the binned standard deviations."""
    residual_sigma_uS: float
    """RMS of the binned standard deviations around sigma(ĝ)."""
    bins: dict[str, np.ndarray] = field(default_factory=dict)
    """``ghat``, ``std_uS``, ``se_uS``, ``n`` of the quantile bins (for plots)."""

    def sigma(self, ghat: np.ndarray | float) -> np.ndarray:
        """The fitted std in µS at each ĝ (clipped at 0, as memsim does)."""
        return np.clip(np.polynomial.polynomial.polyval(ghat, self.coeffs_uS), 0.0, None)


_SIGMA_FLOOR = 1e-6


def _nll_parts(
    params: np.ndarray, basis: np.ndarray, e: np.ndarray, g_t: np.ndarray, cens: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-point negative log-likelihood and the gradient of its sum.

    ``params`` are the mean error and the Legendre coefficients of sigma.
    """
    mu, c = params[0], params[1:]
    # skinny products by hand: a threaded BLAS on (n, <= 16) matrices is many times slower
    raw = (basis * c).sum(1)
    sig = np.maximum(raw, _SIGMA_FLOOR)
    z = (e - mu) / sig
    nll = np.log(sig) + 0.5 * z * z
    d_mu = -z / sig
    d_sig = (1.0 - z * z) / sig
    if cens.any():
        # a read at 0 only says the programmed value was <= 0 (clamped)
        sc = sig[cens]
        a = (-g_t[cens] - mu) / sc
        logcdf = special.log_ndtr(a)
        lam = np.exp(-0.5 * a * a - 0.5 * math.log(2 * math.pi) - logcdf)
        nll[cens] = -logcdf
        d_mu[cens] = lam / sc
        d_sig[cens] = lam * a / sc
    d_sig *= raw > _SIGMA_FLOOR
    grad = np.concatenate([[d_mu.sum()], (basis * d_sig[:, None]).sum(0)])
    return nll, grad


def _legendre_basis(x: np.ndarray, degree: int) -> np.ndarray:
    return np.polynomial.legendre.legvander(2.0 * x - 1.0, degree)


def _fit_sigma(
    x: np.ndarray, e: np.ndarray, g_t: np.ndarray, cens: np.ndarray, degree: int
) -> np.ndarray:
    """Maximum-likelihood (mu, Legendre coefficients on [0, 1]) of one degree."""
    basis = _legendre_basis(x, degree)
    # start from a weighted fit to binned standard deviations (cheap, close to the MLE)
    mu0 = float(np.mean(e[~cens])) if (~cens).any() else 0.0
    bins = _binned_std(x, e, mu0, n_bins=max(degree + 2, min(50, len(x) // 100)))
    c0 = np.polynomial.legendre.legfit(
        2.0 * bins["ghat"] - 1.0, bins["std_uS"], degree, w=1.0 / np.maximum(bins["se_uS"], 1e-9)
    )
    if np.any((basis * c0).sum(1) <= _SIGMA_FLOOR):
        c0 = np.zeros(degree + 1)
        c0[0] = max(float(np.std(e)), 1e-3)
    n = len(e)

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        nll, grad = _nll_parts(p, basis, e, g_t, cens)
        return float(nll.sum() / n), grad / n

    res = optimize.minimize(
        fun,
        np.concatenate([[mu0], c0]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "gtol": 1e-10, "ftol": 1e-13},
    )
    return np.asarray(res.x)


def _binned_std(x: np.ndarray, e: np.ndarray, mu: float, n_bins: int) -> dict[str, np.ndarray]:
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    nb = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    keep = nb >= 3
    sx = np.bincount(idx, weights=x, minlength=len(nb))
    ss = np.bincount(idx, weights=(e - mu) ** 2, minlength=len(nb))
    std = np.sqrt(ss / np.maximum(nb, 1))
    return {
        "ghat": (sx / np.maximum(nb, 1))[keep],
        "std_uS": std[keep],
        "se_uS": (std / np.sqrt(2 * np.maximum(nb - 1, 1)))[keep],
        "n": nb[keep],
    }


def fit_programming(
    target_uS: np.ndarray,
    measured_uS: np.ndarray,
    g_max_uS: float,
    *,
    max_degree: int = 6,
    folds: int = 5,
    seed: int = 0,
) -> ProgrammingFit:
    """Fit the polynomial programming-noise model to (target, measured) pairs.

    The degree is the smallest whose held-out likelihood is not worse than the best
    degree's by more than two standard errors of the paired per-point difference
    (a one-standard-error-style rule, to avoid wiggles that the data do not support).

    Args:
        target_uS: Programmed targets (µS).
        measured_uS: Reads right after programming (µS, >= 0; 0 is treated as clamped).
        g_max_uS: ``g_max`` of the device; ĝ = target / g_max.
        max_degree: Highest degree tried (0..15).
        folds: Cross-validation folds (>= 2).
        seed: Seed of the fold assignment.

    """
    g_t = np.asarray(target_uS, dtype=np.float64)
    g_m = np.asarray(measured_uS, dtype=np.float64)
    n = len(g_t)
    if n < MIN_POINTS["program"]:
        raise MeasurementError(
            f"programming fit needs >= {MIN_POINTS['program']} program rows, got {n}"
        )
    if not 0 <= max_degree <= 15:
        raise ValueError(f"max_degree must be in 0..15, got {max_degree}")
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    x = g_t / g_max_uS
    if np.ptp(x) <= 0:
        raise MeasurementError("programming fit needs targets at more than one conductance")
    e = g_m - g_t
    cens = g_m <= 0.0
    fold = np.random.default_rng(seed).permutation(n) % folds
    held = np.zeros((max_degree + 1, n))
    for d in range(max_degree + 1):
        for k in range(folds):
            tr, te = fold != k, fold == k
            p = _fit_sigma(x[tr], e[tr], g_t[tr], cens[tr], d)
            held[d, te], _ = _nll_parts(p, _legendre_basis(x[te], d), e[te], g_t[te], cens[te])
    mean_nll = held.mean(1)
    best = int(np.argmin(mean_nll))
    degree = best
    for d in range(best):
        diff = held[d] - held[best]
        if diff.mean() <= 2.0 * diff.std(ddof=1) / math.sqrt(n):
            degree = d
            break
    p = _fit_sigma(x, e, g_t, cens, degree)
    leg = np.polynomial.Legendre(p[1:], domain=[0.0, 1.0])
    coeffs = leg.convert(kind=np.polynomial.Polynomial).coef.tolist()
    coeffs = (coeffs + [0.0] * (degree + 1))[: degree + 1]
    mu = float(p[0])
    bins = _binned_std(x, e, mu, n_bins=max(5, min(50, n // 200)))
    fitted = np.clip(np.polynomial.polynomial.polyval(bins["ghat"], coeffs), 0.0, None)
    resid = bins["std_uS"] - fitted
    ss_tot = float(((bins["std_uS"] - bins["std_uS"].mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    sig = np.clip(np.polynomial.polynomial.polyval(x, coeffs), _SIGMA_FLOOR, None)
    mean_se = float(math.sqrt(np.mean(sig**2) / n))
    return ProgrammingFit(
        coeffs_uS=[float(c) for c in coeffs],
        degree=degree,
        g_max_uS=float(g_max_uS),
        mean_uS=mu,
        mean_se_uS=mean_se,
        n_points=n,
        cv_nll={d: float(v) for d, v in enumerate(mean_nll)},
        r2=r2,
        residual_sigma_uS=float(np.sqrt(np.mean(resid**2))),
        bins=bins,
    )


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
    from .profiles import _deep_merge, _raw_profile, _resolve_path

    merged = _deep_merge(_raw_profile(_resolve_path(data["extends"])), data)
    return validate_profile(merged, f"fitted profile {data.get('name')!r}")


# -- synthetic measurements ------------------------------------------------------------


def simulate_measurements(
    profile: str | DeviceProfile,
    *,
    n_program: int = 2000,
    n_drift_devices: int = 200,
    drift_times_s: tuple[float, ...] = (20.0, 100.0, 1e3, 1e4, 1e5, 1e6),
    n_read_devices: int = 50,
    n_reads: int = 20,
    n_stuck_devices: int = 0,
    stuck_rates: tuple[float, float] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """Draw "measurements" of a profile's devices with memsim's device models.

    Programming uses :meth:`memsim.physics.DeviceModel.program` on targets spread
    uniformly over the window; drift uses the model's exponents and
    :meth:`~memsim.physics.DeviceModel.drift` (plus the profile's read noise) at
    ``drift_times_s`` on states in [0.1, 1] g_max; reads add the read noise; stuck-at
    devices follow ``stuck_rates`` (default the profile's) in a 4-target march test.

    Returns:
        ``{kind: {column: array}}`` for :func:`write_measurements`.

    """
    import torch

    from .physics import device_model

    prof = load_profile(profile)
    phys = device_model(prof)
    d = prof.device
    window = d.g_max_uS - d.g_min_uS
    gen = torch.Generator().manual_seed(seed)
    read_std = phys.read_sigma() * window
    out: dict[str, dict[str, np.ndarray]] = {}

    def rand(n: int) -> torch.Tensor:
        return torch.rand(n, generator=gen, dtype=torch.float64)

    def noise(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    if n_program:
        tg = d.g_min_uS + rand(n_program) * window
        g = phys.program(tg, gen)
        out["program"] = {
            "device": np.array([f"p{i}" for i in range(n_program)]),
            "target_uS": tg.numpy(),
            "g_uS": g.numpy(),
        }
    if n_drift_devices:
        lo = max(d.g_min_uS, 0.1 * d.g_max_uS)
        tg = lo + rand(n_drift_devices) * (d.g_max_uS - lo)
        gp = phys.program(tg, gen)
        nu = phys.drift_exponents(tg, gen)
        rows: dict[str, list[Any]] = {"device": [], "target_uS": [], "t_s": [], "g_uS": []}
        for t in drift_times_s:
            gt = phys.drift(gp, nu, float(t), gen)
            gt = (gt + read_std * noise(gt.shape)).clamp(min=0.0)
            rows["device"] += [f"d{i}" for i in range(n_drift_devices)]
            rows["target_uS"] += tg.tolist()
            rows["t_s"] += [float(t)] * n_drift_devices
            rows["g_uS"] += gt.tolist()
        out["drift"] = {k: np.asarray(v) for k, v in rows.items()}
        out["drift"]["nu_true"] = np.zeros(n_drift_devices) if nu is None else nu.numpy()
    if n_read_devices and n_reads:
        tg = d.g_min_uS + rand(n_read_devices) * window
        gp = phys.program(tg, gen)
        reads = gp[:, None] + read_std * noise((n_read_devices, n_reads))
        out["read"] = {
            "device": np.repeat([f"r{i}" for i in range(n_read_devices)], n_reads),
            "g_uS": reads.clamp(min=0.0).reshape(-1).numpy(),
        }
    if n_stuck_devices:
        r_min, r_max = stuck_rates or (
            prof.faults.stuck_at_gmin_rate,
            prof.faults.stuck_at_gmax_rate,
        )
        u = rand(n_stuck_devices)
        fault = torch.zeros(n_stuck_devices, dtype=torch.int64)
        fault[u < r_min] = 1
        fault[(u >= r_min) & (u < r_min + r_max)] = 2
        targets = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=torch.float64) * window + d.g_min_uS
        tg = targets.repeat(n_stuck_devices)
        dev = fault.repeat_interleave(len(targets))
        g = phys.program(tg, gen)
        g = torch.where(dev == 1, torch.full_like(g, d.g_min_uS), g)
        g = torch.where(dev == 2, torch.full_like(g, d.g_max_uS), g)
        g = (g + read_std * noise(g.shape)).clamp(min=0.0)
        out["stuck"] = {
            "device": np.repeat([f"s{i}" for i in range(n_stuck_devices)], len(targets)),
            "target_uS": tg.numpy(),
            "g_uS": g.numpy(),
            "fault_true": fault.numpy(),
        }
    return out
