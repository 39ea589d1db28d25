"""Profile fitting recovers the shipped device models from data drawn with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from torch import nn

import memsim
from memsim import fit
from memsim.physics import device_model


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # skinny (n, k) products are far slower on a threaded BLAS shared with other jobs
    with threadpool_limits(1):
        yield


@pytest.mark.parametrize("base", ["rram_wan2022", "pcm_joshi2020"])
def test_programming_sigma_and_nu_mean_are_recovered(base):
    prof = memsim.load_profile(base)
    data = fit.simulate_measurements(
        prof, n_program=100_000, n_drift_devices=2000, n_read_devices=0, seed=1
    )
    p = data["program"]
    got = fit.fit_programming(p["target_uS"], p["g_uS"], prof.device.g_max_uS)
    ghat = np.linspace(0.05, 1.0, 400)
    true = device_model(prof).program_sigma(torch.tensor(ghat * prof.device.g_max_uS)).numpy()
    rel = np.abs(got.sigma(ghat) / true - 1.0)
    assert rel.max() < 0.05, (got.degree, rel.max())
    # the shipped polynomials are of degree 4 (Wan) and 2 (Joshi)
    assert got.degree == len(prof.programming_noise.coeffs_uS) - 1
    assert abs(got.mean_uS) < 3 * got.mean_se_uS
    d = data["drift"]
    off = prof.drift.t0_s if prof.drift.model.value == "pcm_joshi2020" else 0.0
    dfit = fit.fit_drift(
        d["device"],
        d["t_s"],
        d["g_uS"],
        g_max_uS=prof.device.g_max_uS,
        t0_s=prof.drift.t0_s,
        t_offset_s=off,
        target_uS=d["target_uS"],
    )
    nu_true = d["nu_true"]
    assert abs(dfit.nu_mean - nu_true.mean()) < 0.002
    assert dfit.n_devices == 2000


def test_power_law_spread_and_read_noise_are_recovered():
    # Yao's profile: nu ~ N(0.005, 0.002), read noise 0.5 % of the window
    prof = memsim.load_profile("rram_1t1r_yao2020")
    data = fit.simulate_measurements(
        prof, n_program=0, n_drift_devices=2000, n_read_devices=100, n_reads=40, seed=2
    )
    d = data["drift"]
    dfit = fit.fit_drift(d["device"], d["t_s"], d["g_uS"], g_max_uS=20.0, t0_s=1.0)
    true = d["nu_true"]
    assert abs(dfit.nu_mean - true.mean()) < 0.0005
    # nu_std is the spread of the devices, not of the noisy per-device estimates
    assert abs(dfit.nu_std - true.std()) < 0.15 * true.std()
    assert np.std(dfit.nu) > dfit.nu_std
    r = data["read"]
    rf = fit.fit_read_noise(r["device"], r["g_uS"], prof.g_range_uS)
    assert rf.sigma == pytest.approx(0.005, rel=0.05)
    assert rf.n_points == 4000


def test_state_dependence_of_drift_is_found():
    # nu = 0.05 - 0.01 ln(ghat) on states spread over a decade, 3 % read noise on G
    rng = np.random.default_rng(0)
    n, times = 600, np.array([10.0, 100.0, 1e3, 1e4, 1e5])
    ghat = np.exp(rng.uniform(np.log(0.1), 0.0, n))
    nu = 0.05 - 0.01 * np.log(ghat) + 0.003 * rng.standard_normal(n)
    g = 25 * ghat[:, None] * (times / 10.0) ** -nu[:, None]
    g *= 1 + 0.03 * rng.standard_normal(g.shape)
    dev = np.repeat(np.arange(n), len(times)).astype(str)
    dfit = fit.fit_drift(
        dev,
        np.tile(times, n),
        g.reshape(-1),
        g_max_uS=25.0,
        t0_s=10.0,
        target_uS=np.repeat(25 * ghat, len(times)),
    )
    st = dfit.state
    assert st["slope"] == pytest.approx(-0.01, abs=3 * st["slope_se"] + 1e-4)
    assert st["intercept"] == pytest.approx(0.05, abs=0.002)


def test_flat_noise_gets_degree_zero_and_stuck_devices_are_counted():
    data = fit.simulate_measurements(
        "rram_1t1r_yao2020",
        n_program=20_000,
        n_drift_devices=0,
        n_read_devices=0,
        n_stuck_devices=3000,
        stuck_rates=(0.02, 0.05),
        seed=3,
    )
    p = data["program"]
    got = fit.fit_programming(p["target_uS"], p["g_uS"], 20.0)
    assert got.degree == 0
    assert got.coeffs_uS[0] == pytest.approx(0.015 * 18.0, rel=0.03)
    s = data["stuck"]
    sf = fit.fit_stuck(s["device"], s["target_uS"], s["g_uS"], g_min_uS=2.0, g_max_uS=20.0)
    per_device = s["fault_true"]
    assert sf.n_gmin == int((per_device == 1).sum())
    assert sf.n_gmax == int((per_device == 2).sum())
    assert sf.stuck_at_gmin_rate == sf.n_gmin / 3000


def test_fitted_profile_validates_and_runs(tmp_path):
    data = fit.simulate_measurements(
        "pcm_joshi2020",
        n_program=3000,
        n_drift_devices=100,
        n_read_devices=30,
        n_reads=10,
        n_stuck_devices=300,
        stuck_rates=(0.01, 0.03),
        seed=4,
    )
    path = fit.write_measurements(tmp_path / "meas.csv", data)
    result = fit.fit_profile(path, "pcm_joshi2020", name="my_pcm")
    prof_dict = result.profile
    assert prof_dict["extends"] == "pcm_joshi2020"
    sha = fit.file_sha256(path)
    for key in ("programming_noise", "drift", "read_noise", "faults"):
        assert sha in prof_dict["source"][key] and "points" in prof_dict["source"][key]
    assert "3000 points" in prof_dict["source"]["programming_noise"]
    assert "R^2" in prof_dict["source"]["programming_noise"]
    out = tmp_path / "my_pcm.json"
    out.write_text(json.dumps(prof_dict))
    prof = memsim.load_profile(out)
    assert prof.name == "my_pcm" and prof.drift.model.value == "power_law"
    assert prof.programming_noise.coeffs_uS == prof_dict["programming_noise"]["coeffs_uS"]
    assert prof.device.g_max_uS == 25.0  # from the base
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    chip = memsim.convert(model, prof, seed=0)
    y = chip(torch.randn(5, 16))
    assert y.shape == (5, 4) and torch.isfinite(y).all()
    memsim.drift(chip, 3600.0)
    assert torch.isfinite(chip(torch.randn(5, 16))).all()


def test_bad_measurement_files_name_line_and_field(tmp_path):
    def write(text):
        p = tmp_path / "m.csv"
        p.write_text(text)
        return p

    head = "kind,device,target_uS,t_s,g_uS\n"
    with pytest.raises(fit.MeasurementError, match=r"line 3: field 'kind' = 'prog'"):
        fit.read_measurements(write(head + "program,a,1,,1.1\nprog,b,1,,1\n"))
    with pytest.raises(fit.MeasurementError, match=r"line 2: field 'g_uS' = 'x'"):
        fit.read_measurements(write(head + "program,a,1,,x\n"))
    with pytest.raises(fit.MeasurementError, match=r"'g_nS'.*uS"):
        fit.read_measurements(write("kind,device,target_uS,t_s,g_nS\nprogram,a,1,,1\n"))
    with pytest.raises(fit.MeasurementError, match=r"line 2: field 't_s'.*drift rows need"):
        fit.read_measurements(write(head + "drift,a,,,1\n"))
    with pytest.raises(fit.MeasurementError, match=r"line 2: field 'g_uS'.*>= 0"):
        fit.read_measurements(write(head + "read,a,,,-2\n"))
    with pytest.raises(fit.MeasurementError, match=r"needs >= 200 program rows, got 1"):
        fit.fit_profile(write(head + "program,a,1,,1.1\n"), "rram_wan2022")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        fit.read_measurements(tmp_path / "nope.csv")
