"""Programming error: the polynomial sigma(g_hat) and the mean error."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from .measurements import MIN_POINTS, MeasurementError

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
