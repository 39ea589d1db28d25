"""Profile-agnostic check: memsim's PCM physics against aihwkit's PCMLikeNoiseModel.

One large layer (1024 x 1024 weights, 2,097,152 devices) is mapped to target conductances;
memsim's device model and aihwkit's noise model (built by the translation) program and drift
them independently.  The two implement the same published formulas (aihwkit's
``inference/noise/pcm.py``), so the moments must agree.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("aihwkit")

import memsim  # noqa: E402
from memsim import mapping  # noqa: E402
from memsim.backends import aihwkit as ab  # noqa: E402
from memsim.physics import device_model  # noqa: E402

TIMES = {"1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}


@pytest.fixture(scope="module")
def pcm():
    p = memsim.load_profile("pcm_joshi2020")
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(1024, 1024, generator=gen) * 2 - 1  # normalized weights in [-1, 1]
    g_t = mapping.to_conductances(w, p)  # (2, out, in): G+ and G-, one of each at g_min
    assert g_t.numel() >= 65_536
    phys = device_model(p)
    noise = ab.translate(p).rpu_config.noise_model
    gen = torch.Generator().manual_seed(1)  # one stream, as in AnalogLayer.program
    g_ms = phys.program(g_t, gen)
    nu_ms = phys.drift_exponents(g_t, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        g_ai = torch.stack([noise.apply_programming_noise_to_conductance(g) for g in g_t])
        nu_ai = torch.stack([noise.generate_drift_coefficients(g) for g in g_t])
    return p, phys, noise, g_t, (g_ms, nu_ms), (g_ai, nu_ai)


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_programming_error_moments_agree_within_5_percent(pcm):
    _, _, _, g_t, (g_ms, _), (g_ai, _) = pcm
    e_ms, e_ai = g_ms - g_t, g_ai - g_t
    # The mean error is the positive bias of clamping G >= 0 at the g_min devices.
    assert e_ai.mean().item() > 0.04
    assert _rel(e_ms.mean().item(), e_ai.mean().item()) < 0.05
    assert _rel(e_ms.std().item(), e_ai.std().item()) < 0.05
    on = g_t > 0
    assert _rel(e_ms[on].std().item(), e_ai[on].std().item()) < 0.05
    assert _rel(e_ms.abs().mean().item(), e_ai.abs().mean().item()) < 0.05


def test_drift_exponents_agree(pcm):
    _, _, _, _, (_, nu_ms), (_, nu_ai) = pcm
    assert _rel(nu_ms.mean().item(), nu_ai.mean().item()) < 0.01
    assert _rel(nu_ms.std().item(), nu_ai.std().item()) < 0.02


@pytest.mark.parametrize("label", list(TIMES))
def test_mean_drift_factor_agrees_within_2_percent(pcm, label):
    _, phys, noise, g_t, (g_ms, nu_ms), (g_ai, nu_ai) = pcm
    t = TIMES[label]
    gd_ms = phys.drift(g_ms, nu_ms, t, torch.Generator().manual_seed(3))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        gd_ai = torch.stack(
            [noise.apply_drift_noise_to_conductance(g, n, t) for g, n in zip(g_ai, nu_ai)]
        )
    # G(t)/G(t0) per device, over programmed devices away from g = 0 (where the ratio of
    # two noisy numbers near zero is meaningless).
    sel_ms = (g_t > 1.0) & (g_ms > 0.5)
    sel_ai = (g_t > 1.0) & (g_ai > 0.5)
    f_ms = (gd_ms[sel_ms] / g_ms[sel_ms]).mean().item()
    f_ai = (gd_ai[sel_ai] / g_ai[sel_ai]).mean().item()
    assert f_ms < 0.8  # it did drift
    assert _rel(f_ms, f_ai) < 0.02, (label, f_ms, f_ai)
    s_ms = (gd_ms[sel_ms] / g_ms[sel_ms]).std().item()
    s_ai = (gd_ai[sel_ai] / g_ai[sel_ai]).std().item()
    assert _rel(s_ms, s_ai) < 0.05
    med_ms = (gd_ms[sel_ms] / g_ms[sel_ms]).median().item()
    med_ai = (gd_ai[sel_ai] / g_ai[sel_ai]).median().item()
    assert _rel(med_ms, med_ai) < 0.02
