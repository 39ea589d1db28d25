"""memsim compare maps the same attention projections onto tiles on both sides."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("aihwkit")

from aihwkit.nn import AnalogLinear  # noqa: E402

from memsim.backends.aihwkit import convert as aihwkit_convert  # noqa: E402
from memsim.backends.compare import compare  # noqa: E402
from models.vit import vit_mnist  # noqa: E402

_BLOCK = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.out_proj",
    "linear1",
    "linear2",
)


def _vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return vit_mnist(depth=1, dim=16, heads=2, mlp_dim=32).eval()


def test_aihwkit_maps_every_projection_of_a_transformer():
    model = _vit()
    dep = aihwkit_convert(model, "pcm_joshi2020", seed=0)
    projections = [f"encoder.layers.0.{p}" for p in _BLOCK]
    assert [r.name for r in dep.layers] == ["patch_embed", *projections, "head"]
    assert all(r.aihwkit == "analog" for r in dep.layers)
    modules = dict(dep.model.named_modules())
    assert all(isinstance(modules[n], AnalogLinear) for n in [*projections, "head"])
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():  # eval and no_grad: a fused path would fail on analog layers
        out, ref = dep.model(x), model(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert float((out - ref).norm() / ref.norm()) < 0.5  # noisy, but the same network


def test_compare_runs_a_vit_with_the_same_layers_on_both_sides():
    model = _vit()
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    res = compare(model, "pcm_joshi2020", x, y, drift_times=[3600.0], draws=1, verbose=False)
    where = {r["name"]: (r["memsim"], r["aihwkit"]) for r in res["layers"]}
    assert len(where) == 8 and set(where.values()) == {("analog", "analog")}
    assert res["memsim_analog_layers"] == list(where)
    assert res["digital_aihwkit_only"] == [] and res["digital_both_sides"] == []
    (row,) = res["times"]
    # both simulate the same noisy network: output errors of one order
    assert 0.0 < row["memsim"]["rel_err_mean"] < 1.0 and 0.0 < row["aihwkit"]["rel_err_mean"] < 1.0
