"""Figures of a profile fit: the data against the fitted model, one PNG per quantity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lab.plots import style  # noqa: E402
from memsim.fit import ProfileFit  # noqa: E402
from memsim.physics import device_model  # noqa: E402


def plot_programming(result: ProfileFit, path: Path) -> Path:
    """Binned std of G - G_target against ĝ, the fitted sigma(ĝ) and the base's."""
    p = result.programming
    assert p is not None
    r = result.measurements.select("program")
    g_max = p.g_max_uS
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    gh = np.linspace(0.0, 1.0, 200)
    bins = p.bins
    a.errorbar(bins["ghat"], bins["std_uS"], yerr=bins["se_uS"], fmt="o", ms=3, label="data")
    a.plot(gh, p.sigma(gh), "r-", label=f"fit, degree {p.degree} (R² {p.r2:.3f})")
    base = device_model(result.base).program_sigma(torch.tensor(gh * g_max))
    if not isinstance(base, float):
        a.plot(gh, base.numpy(), "k--", lw=1, label=f"base {result.base.name}")
    a.set_xlabel("ĝ = G_target / g_max")
    a.set_ylabel("programming error std (µS)")
    a.legend(fontsize=8)
    x = r["target_uS"] / g_max
    e = r["g_uS"] - r["target_uS"]
    take = np.random.default_rng(0).permutation(len(x))[:5000]
    b.plot(x[take], e[take], ".", ms=1, alpha=0.4, label="data (5000 shown)")
    for k in (1, 2):
        b.plot(gh, p.mean_uS + k * p.sigma(gh), "r-", lw=0.8)
        b.plot(gh, p.mean_uS - k * p.sigma(gh), "r-", lw=0.8)
    b.set_xlabel("ĝ")
    b.set_ylabel("G - G_target (µS), fit ±1σ, ±2σ")
    fig.suptitle(f"programming error, {p.n_points} points")
    return style.save(fig, path)


def plot_drift(result: ProfileFit, path: Path, devices: int = 12) -> Path:
    """G(t) of sample devices with their fitted lines; the nu histogram; nu per state."""
    d = result.drift
    assert d is not None
    r = result.measurements.select("drift")
    panels = 3 if d.state else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4))
    a = axes[0]
    pick = d.devices[np.linspace(0, len(d.devices) - 1, min(devices, len(d.devices))).astype(int)]
    nu_of = dict(zip(d.devices.tolist(), d.nu.tolist()))
    for dev in pick:
        m = r["device"] == dev
        t, g = r["t_s"][m], r["g_uS"][m]
        order = np.argsort(t)
        t, g = t[order], g[order]
        (line,) = a.plot(t, g, "o", ms=3)
        x = np.log((t + d.t_offset_s) / d.t0_s)
        ok = (g > 0) & (t + d.t_offset_s >= d.t0_s)
        lg0 = np.mean(np.log(g[ok]) + nu_of[dev] * x[ok])
        tt = np.geomspace(max(t[ok].min(), 1e-3), t.max(), 50)
        a.plot(
            tt,
            np.exp(lg0) * ((tt + d.t_offset_s) / d.t0_s) ** -nu_of[dev],
            "-",
            color=line.get_color(),
            lw=0.8,
        )
    a.set_xscale("log")
    a.set_xlabel("t after programming (s)")
    a.set_ylabel("G (µS)")
    a.set_title(f"{len(pick)} of {d.n_devices} devices, fit per device")
    b = axes[1]
    b.hist(d.nu, bins=40, density=True, alpha=0.6, label="per-device ν")
    xs = np.linspace(d.nu.min(), d.nu.max(), 200)
    if d.nu_std > 0:
        pdf = np.exp(-0.5 * ((xs - d.nu_mean) / d.nu_std) ** 2) / (d.nu_std * np.sqrt(2 * np.pi))
        b.plot(xs, pdf, "r-", label=f"N({d.nu_mean:.4f}, {d.nu_std:.4f})")
    b.axvline(d.nu_mean, color="r", lw=0.8)
    b.set_xlabel("ν")
    b.legend(fontsize=8)
    if d.state:
        c = axes[2]
        st = d.state
        c.plot(d.state_ghat, d.nu, ".", ms=2, alpha=0.3, label="devices")
        bins = st["bins"]
        c.errorbar(bins["ghat"], bins["nu_mean"], yerr=bins["se"], fmt="o", label="bin means")
        gh = np.geomspace(d.state_ghat.min(), d.state_ghat.max(), 50)
        c.plot(
            gh,
            st["slope"] * np.log(gh) + st["intercept"],
            "r-",
            label=f"{st['slope']:+.4f} ln ĝ {st['intercept']:+.4f}",
        )
        c.set_xscale("log")
        c.set_xlabel("state ĝ")
        c.set_ylabel("ν")
        c.legend(fontsize=8)
    fig.suptitle(f"drift, {d.n_points} points, pooled R² {d.r2:.3f}")
    return style.save(fig, path)


def plot_read_noise(result: ProfileFit, path: Path) -> Path:
    """Per-device read std against the device mean, and its histogram, with the fit."""
    rf = result.read_noise
    assert rf is not None
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(rf.device_mean_uS, rf.device_std_uS, "o", ms=3, label="devices")
    a.axhline(rf.sigma_uS, color="r", label=f"pooled σ {rf.sigma_uS:.4f} µS")
    a.set_xlabel("device mean G (µS)")
    a.set_ylabel("read std (µS)")
    a.legend(fontsize=8)
    b.hist(rf.device_std_uS, bins=30, alpha=0.6)
    b.axvline(rf.sigma_uS, color="r")
    b.set_xlabel("per-device read std (µS)")
    fig.suptitle(f"read noise, {rf.n_points} reads of {rf.n_devices} devices")
    return style.save(fig, path)


def plot_stuck(result: ProfileFit, path: Path) -> Path:
    """Per-device read span against its mean, with the stuck-at threshold."""
    s = result.stuck
    assert s is not None
    d = result.base.device
    window = d.g_max_uS - d.g_min_uS
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(s.device_mean_uS, s.device_span_uS, "o", ms=2, alpha=0.5)
    ax.axhline(s.move_tol * window, color="r", label=f"threshold {s.move_tol:g} x window")
    ax.set_xlabel("mean read (µS)")
    ax.set_ylabel("span of reads over the targets (µS)")
    ax.set_title(f"march test: {s.n_gmin} stuck at g_min, {s.n_gmax} at g_max of {s.n_devices}")
    ax.legend(fontsize=8)
    return style.save(fig, path)


def plot_fit(result: ProfileFit, out_dir: str | Path) -> list[Path]:
    """Write one PNG per fitted quantity into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    if result.programming is not None:
        paths.append(plot_programming(result, out / "programming.png"))
    if result.drift is not None:
        paths.append(plot_drift(result, out / "drift.png"))
    if result.read_noise is not None:
        paths.append(plot_read_noise(result, out / "read_noise.png"))
    if result.stuck is not None:
        paths.append(plot_stuck(result, out / "stuck.png"))
    return paths
