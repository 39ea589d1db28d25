"""Digital corrections: trim_grad and adapter_lora fit on measured outputs, analog untouched."""

from __future__ import annotations

import torch
from torch import nn

import memsim
from lab.fitness.digital import corrected
from lab.methods.correction import Adapter, digital_overhead


def _chip() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 5))
    prof = memsim.load_profile("rram_1t1r_faulty_chen2015")
    return net, memsim.convert(net, prof, seed=1, chip_seed=2)


def test_adapters_change_the_outputs_and_leave_the_analog_state_bit_identical():
    net, chip = _chip()
    x = torch.rand(4, 1, 4, 4)
    memsim.calibrate(chip, x)  # converter ranges set once, before the state is compared
    chip.eval()
    before = {k: v.clone() for k, v in chip.state_dict().items() if torch.is_tensor(v)}
    gen = torch.Generator().manual_seed(0)
    adapters = {"0.weight": Adapter(net[0], 2, gen), "3.weight": Adapter(net[3], 2, gen)}
    with torch.no_grad():
        for a in adapters.values():
            a.up.weight.normal_()
        plain = chip(x)
        with corrected(chip, adapters=adapters):
            fixed = chip(x)
    assert not torch.allclose(plain, fixed)
    after = chip.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_digital_overhead_counts_parameters_and_macs():
    net, _ = _chip()
    gen = torch.Generator().manual_seed(0)
    adapters = {"0.weight": Adapter(net[0], 2, gen), "3.weight": Adapter(net[3], 2, gen)}
    got = digital_overhead(net, ["0.weight", "3.weight"], torch.rand(1, 1, 4, 4), adapters=adapters)
    # conv: A 2 x (1 x 3 x 3), B 8 x 2 at 16 positions; linear: A 2 x 128, B 5 x 2
    assert got["digital_params"] == (18 + 16) + (256 + 10)
    assert got["digital_macs"] == 16 * (18 + 16) + (256 + 10)
    trim = {k: (torch.ones(n), torch.zeros(n)) for k, n in (("0.weight", 8), ("3.weight", 5))}
    got = digital_overhead(net, ["0.weight", "3.weight"], torch.rand(1, 1, 4, 4), trim=trim)
    assert got == {"digital_params": 26, "digital_macs": 8 * 16 + 5}


def test_correction_methods_spend_the_budget_and_report_their_digital_cost(tmp_path):
    from recovery_support import recovery_config

    from lab.experiment.context import RunContext
    from lab.experiment.runner import run_experiment

    methods = ["qat", "trim_grad", "adapter_lora", "committee"]
    cfg = recovery_config(methods, ga={"generations": 1}, fitness={"finetune_steps": 4})
    ctx = RunContext(run_root=tmp_path, progress=False, echo=lambda s: None)
    results, run_dir = run_experiment(cfg, ctx)
    rows = {r["method"]: r for r in results["methods"]}
    budget = results["budget"]["steps"]
    for name in methods[1:]:
        assert rows[name]["counters"]["steps"] == budget
        if name == "committee":
            continue
        assert rows[name]["counters"]["chip_batches"] > 0
        assert rows[name]["info"]["digital_params"] > 0
        price = rows[name]["price"]
        assert price["digital_macs"] == rows[name]["info"]["digital_macs"] > 0
        analog = 1e9 * results["cost"]["models"][name]["energy_J"]
        assert abs(price["energy_nJ"] - analog - price["digital_energy_nJ"]) < 1e-9
    # the committee: the qat weights on 3 sets of arrays (3 x the area)
    committee = torch.load(run_dir / "recovery" / "committee.pt", weights_only=False)
    qat = torch.load(run_dir / "recovery" / "qat.pt", weights_only=False)
    assert torch.equal(committee["genes"], qat["genes"])
    assert rows["committee"]["price"]["arrays"] == 3
    area = rows["qat"]["price"]["area_mm2"]
    assert abs(rows["committee"]["price"]["area_mm2"] - 3 * area) < 1e-12
    record = torch.load(run_dir / "recovery" / "adapter_lora.pt", weights_only=False)
    assert sorted(record["adapters"]) == [f"encoder.{i}.0.weight" for i in range(4)]
    assert record["trim"] is None
    assert torch.load(run_dir / "recovery" / "trim_grad.pt", weights_only=False)["trim"]


def test_price_counts_arrays_and_digital_macs():
    from lab.experiment.price import method_price

    cost = {"available": True, "energy_J": 2e-9, "area_mm2": 0.5, "latency_s": 3e-6}
    plain = method_price(cost, {}, 3.1)
    assert plain is not None
    assert plain["energy_nJ"] == 2.0 and plain["area_mm2"] == 0.5 and plain["arrays"] == 1
    three = method_price(cost, {"arrays": 3, "digital_macs": 1000, "digital_params": 7}, 3.1)
    assert three is not None
    assert abs(three["energy_nJ"] - (6.0 + 1000 * 3.1e-3)) < 1e-9
    assert three["area_mm2"] == 1.5 and three["latency_us"] == plain["latency_us"] == 3.0
    assert method_price({"available": False, "reason": "ideal"}, {}, 3.1) is None
