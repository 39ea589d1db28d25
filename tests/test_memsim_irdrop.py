"""IR drop against an independent nodal solve (scipy sparse KCL, written here)."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl
import torch
from torch import nn

import memsim
from memsim.irdrop import deviation_share, transfer_matrices
from memsim.profiles import DeviceProfile

G_MIN, G_MAX = 1.0, 40.0


def kcl_transfer(
    g_uS: np.ndarray,
    r_wire: float,
    r_access: float,
    driver: str = "left",
    sense: str = "bottom",
) -> np.ndarray:
    """Reference: sense currents per driver volt, ``(N, R)`` µS, by a sparse nodal solve.

    Every cell is a device node pair: word-line node -(G)- middle node -(1/r_access)-
    bit-line node (no middle node without access resistance).  Drivers are 1 V sources
    one wire segment before the first cell; sense amplifiers hold virtual ground one
    segment after the last cell.  A cell with G = 0 has no device.
    """
    r, n = g_uS.shape
    g = g_uS * 1e-6
    gw = 1.0 / r_wire
    n_nodes = 3 * r * n
    wl = np.arange(r * n).reshape(r, n)
    bl = wl + r * n
    mid = wl + 2 * r * n
    rows, cols, vals = [], [], []

    def branch(a: int, b: int, c: float) -> None:
        rows.extend([a, b, a, b])
        cols.extend([a, b, b, a])
        vals.extend([c, c, -c, -c])

    rhs = np.zeros((n_nodes, r))
    ks = list(range(n)) if driver == "left" else list(range(n))[::-1]
    rs = list(range(r)) if sense == "bottom" else list(range(r))[::-1]
    for i in range(r):
        for k in range(n):
            if g[i, k] <= 0:
                continue
            if r_access > 0:
                branch(wl[i, k], mid[i, k], g[i, k])
                branch(mid[i, k], bl[i, k], 1.0 / r_access)
            else:
                branch(wl[i, k], bl[i, k], g[i, k])
        rows.append(wl[i, ks[0]])
        cols.append(wl[i, ks[0]])
        vals.append(gw)
        rhs[wl[i, ks[0]], i] = gw
        for a, b in zip(ks[:-1], ks[1:], strict=True):
            branch(wl[i, a], wl[i, b], gw)
    for k in range(n):
        for a, b in zip(rs[:-1], rs[1:], strict=True):
            branch(bl[a, k], bl[b, k], gw)
        rows.append(bl[rs[-1], k])
        cols.append(bl[rs[-1], k])
        vals.append(gw)
    # middle nodes without a device (or without an access resistor) are pinned to 0 V
    a = sp.csc_matrix((vals, (rows, cols)), shape=(n_nodes, n_nodes)).tolil()
    for node in range(n_nodes):
        if a[node, node] == 0:
            a[node, node] = 1.0
    x = spl.splu(a.tocsc()).solve(rhs)
    last = rs[-1]
    return np.stack([gw * x[bl[last, k]] for k in range(n)]) * 1e6


def _profile(tile, **ir) -> DeviceProfile:
    base = memsim.load_profile("ideal").model_dump()
    base["device"] = {"g_min_uS": G_MIN, "g_max_uS": G_MAX, "levels": None}
    base["mapping"] = {**base["mapping"], "weight_scaling": "per_column"}
    base["tile"] = {"rows": tile[0], "cols": tile[1]}
    base["ir_drop"] = {"enabled": True, **ir}
    base["name"] = "irdrop-test"
    return memsim.validate_profile(base)


def _physical(layer, fill: float, r_access: float, layout: str) -> list[np.ndarray]:
    """Each physical array's cells (device and access in series, µS) of a one-tile layer."""
    g = layer.g_now.double().numpy()
    _, row, col = layer.layout.positions()
    rows, cols = layer.layout.rows, layer.layout.cols
    pair = np.full((2, rows, cols), fill)
    pair[:, row.numpy(), col.numpy()] = g
    if layout == "interleaved":
        arrays = [np.stack([pair[0], pair[1]], axis=-1).reshape(rows, 2 * cols)]
    else:
        arrays = [pair[0], pair[1]]
    return arrays


def _reference_weights(layer, r_wire, r_access, unused, layout, driver, sense, wires=True):
    """Effective normalized weights ``(out, K)`` from the reference solve."""
    fill = G_MIN if unused == "g_min" else 0.0
    arrays = _physical(layer, fill, r_access, layout)
    ts = []
    for arr in arrays:
        if wires:
            ts.append(kcl_transfer(arr, r_wire, r_access, driver, sense))
        else:
            ts.append((arr / (1.0 + arr * 1e-6 * r_access)).T)
    if layout == "interleaved":
        t = ts[0].reshape(-1, 2, arr.shape[0])
        diff = t[:, 0] - t[:, 1]
    else:
        diff = ts[0] - ts[1]
    _, row, col = layer.layout.positions()
    return torch.from_numpy(diff[col.numpy(), row.numpy()] / (G_MAX - G_MIN))


CASES = [
    # (tile rows, tile cols, in_features, out_features): every tile has unused cells
    (8, 8, 6, 7),
    (32, 32, 29, 30),
    (64, 16, 60, 13),
]


def _chip(tile, inp, out, seed, **ir):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(inp, out, bias=False))
    return memsim.convert(model, _profile(tile, **ir), seed=0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}")
@pytest.mark.parametrize("layout", ["interleaved", "separate"])
@pytest.mark.parametrize("r_access", [0.0, 5000.0])
def test_exact_and_fast_against_nodal_solve(case, layout, r_access):
    rows, cols, inp, out = case
    unused = "g_min" if r_access == 0 else "none"
    r_wire = 2.5
    ir = dict(r_wire_ohm=r_wire, r_access_ohm=r_access, pair_layout=layout, unused_cells=unused)
    exact = _chip((rows, cols), inp, out, 1, model="exact", **ir)
    fast = _chip((rows, cols), inp, out, 1, model="fast", **ir)
    layer = memsim.analog_layers(exact)[0][1]
    w_ref = _reference_weights(layer, r_wire, r_access, unused, layout, "left", "bottom")
    w_ideal = _reference_weights(
        layer, r_wire, r_access, unused, layout, "left", "bottom", wires=False
    )
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(64, inp, generator=gen, dtype=torch.float64) * 2 - 1
    y_ref, y_ideal = x @ w_ref.T, x @ w_ideal.T
    scale = memsim.analog_layers(exact)[0][1].scale[:, 0].double()  # per-column weight scale
    with torch.no_grad():
        y_exact = exact(x.float()).double() / scale
        y_fast = fast(x.float()).double() / scale
    rel = (y_exact - y_ref).norm() / y_ref.norm()
    assert rel <= 1e-5
    # the wires matter in these cases, so the share below is meaningful
    assert (y_ref - y_ideal).norm() / y_ref.norm() > 1e-3
    assert deviation_share(y_fast, y_ref, y_ideal) >= 0.9


@pytest.mark.parametrize("driver", ["left", "right"])
@pytest.mark.parametrize("sense", ["bottom", "top"])
def test_driver_and_sense_sides(driver, sense):
    gen = np.random.default_rng(3)
    g = gen.uniform(G_MIN, G_MAX, size=(12, 20))
    for shape in [(12, 20), (20, 12)]:  # both solve orientations
        gg = g if shape == (12, 20) else g[:, :12].T.copy()
        ref = kcl_transfer(gg, 5.0, 0.0, driver, sense)
        t = transfer_matrices(torch.from_numpy(gg)[None], 5.0, "exact", driver, sense)[0]
        assert np.abs(t.numpy() - ref).max() / np.abs(ref).max() < 1e-9


def test_no_wire_resistance_is_the_access_series_formula():
    ir = dict(r_wire_ohm=0.0, r_access_ohm=2000.0)
    chip = _chip((16, 8), 16, 8, 4, **ir)
    layer = memsim.analog_layers(chip)[0][1]
    g = layer.g_now.double()
    cell = g / (1.0 + g * 1e-6 * 2000.0)  # device in series with the access transistor
    expected = (cell[0] - cell[1]) / (G_MAX - G_MIN)
    assert torch.allclose(layer.w_norm.double(), expected, rtol=1e-6, atol=1e-7)


def test_unused_cells_load_the_lines():
    # the same 6x7 weights in an 8x8 tile: g_min devices in the free cells draw current
    ir = dict(r_wire_ohm=5.0, r_access_ohm=0.0)
    with_gmin = _chip((8, 8), 6, 7, 5, unused_cells="g_min", **ir)
    empty = _chip((8, 8), 6, 7, 5, unused_cells="none", **ir)
    w_gmin = memsim.analog_layers(with_gmin)[0][1].w_norm
    w_none = memsim.analog_layers(empty)[0][1].w_norm
    assert not torch.allclose(w_gmin, w_none, rtol=1e-6, atol=0)
    layer = memsim.analog_layers(with_gmin)[0][1]
    ref = _reference_weights(layer, 5.0, 0.0, "g_min", "interleaved", "left", "bottom")
    assert torch.allclose(w_gmin.double(), ref, rtol=1e-5, atol=1e-8)


def test_drift_recomputes_the_transfer_matrices():
    base = memsim.load_profile("ideal").model_dump()
    base.update(
        name="drift-ir",
        device={"g_min_uS": G_MIN, "g_max_uS": G_MAX, "levels": None},
        tile={"rows": 8, "cols": 8},
        drift={**base["drift"], "model": "power_law", "t0_s": 1.0, "nu_mean": 0.05},
        ir_drop={"enabled": True, "r_wire_ohm": 5.0},
    )
    torch.manual_seed(6)
    prof = memsim.validate_profile(base)
    chip = memsim.convert(nn.Sequential(nn.Linear(8, 8, bias=False)), prof, seed=0)
    memsim.drift(chip, 1e4)
    layer = memsim.analog_layers(chip)[0][1]
    ref = _reference_weights(layer, 5.0, 0.0, "g_min", "interleaved", "left", "bottom")
    assert torch.allclose(layer.w_norm.double(), ref, rtol=1e-5, atol=1e-8)


def test_shipped_profiles_keep_ir_drop_off_except_the_variant():
    for name in memsim.list_profiles():
        prof = memsim.load_profile(name)
        assert prof.ir_drop.enabled == (name == "rram_wan2022_irdrop"), name
    var = memsim.load_profile("rram_wan2022_irdrop")
    assert var.tile.rows == var.tile.cols == 256 and 1.0 <= var.ir_drop.r_wire_ohm <= 2.5
    assert {"ir_drop.r_wire_ohm", "ir_drop.r_access_ohm"} <= set(var.source)


def test_overflowing_solve_is_an_error_naming_the_field():
    g = torch.full((1, 8, 3000), 1e5, dtype=torch.float64)
    with pytest.raises(ValueError, match="r_wire_ohm"):
        transfer_matrices(g, 1e4, "fast")
    with pytest.raises(ValueError, match="tiles, rows, bit lines"):
        transfer_matrices(g[0], 1.0)
