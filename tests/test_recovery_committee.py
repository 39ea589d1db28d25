"""committee: k copies of the network on independent arrays, outputs averaged."""

from __future__ import annotations

import torch
from torch import nn

import memsim
from lab.fitness.digital import Committee

PROFILE = "rram_1t1r_faulty_chen2015"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    chip = memsim.convert(model, memsim.load_profile(PROFILE), seed=4, chip_seed=9)
    memsim.calibrate(chip, x)
    with torch.no_grad():
        return chip.eval()(x)


def test_a_committee_of_one_is_the_single_chip():
    x = torch.rand(16, 1, 8, 8)
    assert torch.equal(_outputs(Committee(_net(), 1), x), _outputs(_net(), x))


def test_a_committee_averages_copies_on_independent_arrays():
    x = torch.rand(16, 1, 8, 8)
    net = _net()
    chip = memsim.convert(Committee(net, 3), memsim.load_profile(PROFILE), seed=4, chip_seed=9)
    layers = memsim.analog_layers(chip)
    assert len(layers) == 6
    faults = [layer.tiles.fault for name, layer in layers if name.endswith(".1")]
    assert not torch.equal(faults[0], faults[1])  # each copy has its own stuck devices
    memsim.calibrate(chip, x)
    seen: list[torch.Tensor] = []
    for m in chip.members:
        m.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        out = chip.eval()(x)  # read noise is per call: compare within this one call
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])
    assert torch.allclose(out, sum(seen) / 3, atol=1e-6)


def test_a_layer_ensemble_mixes_its_copies_per_column():
    from lab.fitness.digital import ensemble_network

    x = torch.rand(16, 1, 8, 8)
    net = _net()
    keys = ["1.weight", "3.weight"]
    one = ensemble_network(net, keys, 1)
    assert torch.equal(_outputs(one, x), _outputs(net, x))  # k = 1 is the single chip
    mix = torch.zeros(3, 32)
    mix[1, :16] = 1.0  # columns 0..15 from copy 1 only, the rest from copy 2
    mix[2, 16:] = 1.0
    mixes = {"1.weight": mix, "3.weight": torch.full((3, 10), 1 / 3)}
    chip = memsim.convert(
        ensemble_network(net, keys, 3, mixes), memsim.load_profile(PROFILE), seed=4, chip_seed=9
    )
    memsim.calibrate(chip, x)
    seen: list[torch.Tensor] = []
    for c in chip.get_submodule("1").copies:
        c.register_forward_hook(lambda _m, _i, out: seen.append(out))
    hidden: list[torch.Tensor] = []
    chip.get_submodule("1").register_forward_hook(lambda _m, _i, out: hidden.append(out))
    with torch.no_grad():
        chip.eval()(x)
    assert torch.allclose(hidden[0][:, :16], seen[1][:, :16])
    assert torch.allclose(hidden[0][:, 16:], seen[2][:, 16:])


def test_layer_ensemble_runs_in_the_recovery_stage(tmp_path):
    from recovery_support import recovery_config

    from lab.experiment.context import RunContext
    from lab.experiment.runner import run_experiment

    methods = ["qat", "layer_ensemble"]
    cfg = recovery_config(methods, ga={"generations": 1}, fitness={"finetune_steps": 2})
    ctx = RunContext(run_root=tmp_path, progress=False, echo=lambda s: None)
    results, run_dir = run_experiment(cfg, ctx)
    rows = {r["method"]: r for r in results["methods"]}
    record = torch.load(run_dir / "recovery" / "layer_ensemble.pt", weights_only=False)
    for mix in record["ensemble"].values():
        assert mix.shape[0] == 3 and torch.allclose(mix.sum(0), torch.ones(mix.shape[1]))
    assert 1 / 3 <= rows["layer_ensemble"]["info"]["healthy_copy_share"] < 1.0
    assert rows["layer_ensemble"]["counters"]["device_reads"] > 0
    assert rows["layer_ensemble"]["price"]["arrays"] == 3
