"""Synthetic measurements drawn from a profile's own device models (tests, examples)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..profiles import DeviceProfile, load_profile

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

    from ..physics import device_model

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
