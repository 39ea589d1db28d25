"""Training through the chip: gradients, their exactness, eval identity, the two regimes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, SEED_OFFSET
from digits_support import trained_digits_mlp
from torch import nn
from train_support import IRDROP

import memsim
from models.data import load_digits_dataset
from models.small import lenet5

BEFORE_TRAINING = "ae663fd"
"""The last commit whose analog layers were inference-only (the reference of eval mode)."""


def _grouped_net() -> nn.Module:
    """Plain, grouped and depthwise convs and two linears (every layer kind)."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Tanh(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
        nn.Tanh(),
        nn.Linear(5, 3),
    )


@pytest.mark.parametrize(
    "profile", ["rram_1t1r_yao2020", "pcm_joshi2020", IRDROP], ids=["yao", "pcm", "irdrop"]
)
def test_gradients_reach_every_analog_weight_and_bias(profile):
    torch.manual_seed(0)
    for model, x in [
        (_grouped_net(), torch.randn(4, 2, 6, 6)),
        (lenet5(), torch.randn(4, 1, 28, 28)),
    ]:
        chip = memsim.convert(model, profile, seed=1).train()
        x.requires_grad_(True)
        loss = nn.functional.cross_entropy(chip(x), torch.arange(4) % 3)
        loss.backward()
        layers = memsim.analog_layers(chip)
        assert len(layers) == sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
        assert len(layers) >= 2
        for name, layer in layers:
            for what, p in (("target", layer.target), ("bias", layer.bias)):
                assert p.grad is not None, f"{name}.{what}"
                assert p.grad.shape == p.shape
                assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}.{what}"
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_straight_through_gradients_match_finite_differences_on_the_ideal_chip():
    """Ideal profile, float64: the chip's forward is the linear model, so d/dW is exact."""
    torch.manual_seed(3)
    model = _grouped_net().double()
    chip = memsim.convert(model, "ideal", seed=0).train()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 3, dtype=torch.float64)

    def loss() -> torch.Tensor:
        return (chip(x) * r).sum()

    loss().backward()
    eps = 1e-6
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for _, layer in memsim.analog_layers(chip):
            analytic = layer.target.grad.reshape(-1)
            original = layer.target.detach().clone().reshape(-1)
            for i in torch.randint(0, analytic.numel(), (6,), generator=gen).tolist():
                values = []
                for sign in (1.0, -1.0):
                    w = original.clone()
                    w[i] += sign * eps
                    layer.set_targets(w)
                    layer.program(0)  # the chip's own programming of the perturbed target
                    values.append(loss())
                layer.set_targets(original)
                layer.program(0)
                numeric = (values[0] - values[1]) / (2 * eps)
                assert numeric.item() == pytest.approx(analytic[i].item(), rel=1e-6, abs=1e-8)
            bias_num = []
            for j in range(2):
                b0 = layer.bias[j].item()
                layer.bias[j] = b0 + eps
                plus = loss()
                layer.bias[j] = b0 - eps
                minus = loss()
                layer.bias[j] = b0
                bias_num.append(((plus - minus) / (2 * eps)).item())
            assert bias_num == pytest.approx(layer.bias.grad[:2].tolist(), rel=1e-6, abs=1e-8)
        flat = x.detach().clone().reshape(-1)
        for i in torch.randint(0, flat.numel(), (6,), generator=gen).tolist():
            vals = []
            for sign in (1.0, -1.0):
                xp = flat.clone()
                xp[i] += sign * eps
                vals.append((chip(xp.view_as(x)) * r).sum())
            numeric = (vals[0] - vals[1]) / (2 * eps)
            assert numeric.item() == pytest.approx(x.grad.reshape(-1)[i].item(), rel=1e-6, abs=1e-8)


def test_input_gradient_is_the_chips_effective_weight():
    """On a faulty chip d y / d x is the chip's W_eff, not the digital weight."""
    torch.manual_seed(0)
    model = nn.Linear(20, 4)
    chip = memsim.convert(model, "rram_1t1r_faulty_chen2015", seed=2).train()
    x = torch.randn(1, 20, requires_grad=True)
    chip(x)[0, 1].backward()
    w_eff = memsim.effective_weights(chip)["weight"]
    assert torch.equal(x.grad[0], w_eff[1])
    assert not torch.allclose(w_eff, model.weight.detach(), atol=1e-3)


def _outputs_of(tree: Path, out: Path) -> dict[str, torch.Tensor]:
    """:func:`train_support.eval_outputs` computed with the memsim of ``tree`` (1 thread)."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    script = ROOT / "tests" / "train_support.py"
    subprocess.run([sys.executable, str(script), str(out)], cwd=tree, env=env, check=True)
    return torch.load(out)


def test_eval_outputs_are_bit_identical_to_before_training_support(tmp_path):
    """Eval and train mode give the outputs the inference-only layers gave, bit for bit.

    The reference is computed here, on this machine, by the code before the analog
    layers became trainable (commit ae663fd, exported from the repository's history), so
    that no stored floating-point output ties the test to one CPU.
    """
    if subprocess.run(["git", "cat-file", "-e", f"{BEFORE_TRAINING}^{{commit}}"], cwd=ROOT,
                      capture_output=True, check=False).returncode != 0:  # fmt: skip
        pytest.skip(f"commit {BEFORE_TRAINING} is not in this clone's history (shallow clone)")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "archive", BEFORE_TRAINING], cwd=ROOT,
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    before = _outputs_of(old, tmp_path / "before.pt")
    now = _outputs_of(ROOT, tmp_path / "now.pt")
    assert sorted(now) == sorted(before)
    for key, y in now.items():
        assert torch.equal(y, before[key]), key


def test_eval_mode_records_no_graph():
    chip = memsim.convert(lenet5(), "pcm_joshi2020", seed=0).eval()
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    assert not chip(x).requires_grad  # eval: no autograd, whatever the input
    chip.train()
    with torch.no_grad():
        assert not chip(x).requires_grad
    assert chip(x).requires_grad


def test_calibrate_in_train_mode_records_nothing_and_leaves_train_mode():
    chip = memsim.convert(lenet5(), "rram_1t1r_yao2020", seed=0).train()
    memsim.calibrate(chip, torch.randn(4, 1, 28, 28))
    assert chip.training
    assert all(p.grad is None for p in chip.parameters())


def test_state_dict_of_older_chips_still_loads_and_targets_are_parameters():
    chip = memsim.convert(nn.Linear(8, 3), "rram_1t1r_yao2020", seed=0)
    assert isinstance(chip.target, nn.Parameter)
    names = dict(chip.named_parameters())
    assert set(names) == {"target", "bias"}
    state = chip.state_dict()
    fresh = memsim.convert(nn.Linear(8, 3), "rram_1t1r_yao2020", seed=5)
    fresh.load_state_dict(state)
    x = torch.randn(4, 8)
    assert torch.equal(fresh.eval()(x), chip.eval()(x))
    assert not chip.tiles.target.requires_grad  # the read-only view is detached


def _digits_case(offset: int):
    train, test = load_digits_dataset()
    torch.manual_seed(offset)
    model = trained_digits_mlp(train)
    return model, train, test


def _accuracy(chip: nn.Module, train, test) -> float:
    chip.eval()
    memsim.calibrate(chip, train.images[:256])
    with torch.no_grad():
        return (chip(test.images).argmax(1) == test.labels).float().mean().item()


@pytest.mark.statistical
def test_chip_in_the_loop_training_recovers_a_faulty_chip():
    """Paired over 3 chips: trained targets beat the untouched conversion on that chip.

    Measured (test accuracy, conversion -> after 150 Adam steps through the chip): at
    MEMSIM_SEED_OFFSET 0 0.575->0.953, 0.531->0.936, 0.469->0.942 (gains 0.38-0.47); at
    1000 0.592->0.933, 0.597->0.944, 0.553->0.933 (gains 0.34-0.38).  The assertion asks
    for a 0.15 gain on every chip and 0.25 on average, below half the smallest measured.
    """
    model, train, test = _digits_case(SEED_OFFSET)
    gains = []
    for s in range(3):
        seed = SEED_OFFSET + s
        chip = memsim.convert(model, "rram_1t1r_faulty_chen2015", seed=seed, chip_seed=100 + seed)
        base = _accuracy(chip, train, test)
        faults = [layer.tiles.fault.clone() for _, layer in memsim.analog_layers(chip)]
        opt = torch.optim.Adam(chip.parameters(), lr=3e-3)
        trainer = memsim.HardwareAwareTrainer(chip, opt, "chip_in_the_loop", seed=seed)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(150):
            idx = torch.randint(0, len(train), (64,), generator=gen)
            trainer.step(train.images[idx], train.labels[idx])
        trainer.deploy(seed=seed + 10_000)
        # one chip instance throughout: its defects never changed
        for f, (_, layer) in zip(faults, memsim.analog_layers(chip), strict=True):
            assert torch.equal(f, layer.tiles.fault)
        gains.append(_accuracy(chip, train, test) - base)
    assert min(gains) > 0.15, gains
    assert sum(gains) / len(gains) > 0.25, gains


def _mlp_chip(profile: str = "rram_1t1r_faulty_chen2015", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    return memsim.convert(model, profile, seed=seed, chip_seed=seed + 1)


def _batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(i)
    return torch.randn(8, 12, generator=gen), torch.randint(0, 4, (8,), generator=gen)


def test_noise_in_the_loop_programs_afresh_every_step():
    chip = _mlp_chip()
    layer = memsim.analog_layers(chip)[0][1]
    trainer = memsim.HardwareAwareTrainer(
        chip, torch.optim.SGD(chip.parameters(), 0.1), "noise_in_the_loop", fresh_chip=True
    )
    seen_g, seen_fault = [], []
    for i in range(3):
        trainer.step(*_batch(i))
        seen_g.append(layer.tiles.g_prog.clone())
        seen_fault.append(layer.tiles.fault.clone())
    assert not torch.equal(seen_g[0], seen_g[1]) and not torch.equal(seen_g[1], seen_g[2])
    assert not torch.equal(seen_fault[0], seen_fault[1])  # a new chip instance each step


def test_deploy_after_fresh_chips_puts_the_chips_own_defects_back():
    # training draws other chip instances into the chip's layers; the trained targets
    # must go onto the chip handed in, with its own stuck devices and gains
    chip = _mlp_chip()
    own = [
        (lay.tiles.fault.clone(), lay.tiles.gain.clone()) for _, lay in memsim.analog_layers(chip)
    ]
    trainer = memsim.HardwareAwareTrainer(
        chip, torch.optim.SGD(chip.parameters(), 0.1), "noise_in_the_loop", fresh_chip=True
    )
    for i in range(2):
        trainer.step(*_batch(i))
    first = memsim.analog_layers(chip)[0][1]
    assert not torch.equal(first.tiles.fault, own[0][0])  # a fresh instance while training
    trainer.deploy(seed=5)
    for (_, lay), (fault, gain) in zip(memsim.analog_layers(chip), own, strict=True):
        assert torch.equal(lay.tiles.fault, fault) and torch.equal(lay.tiles.gain, gain)


def test_chip_in_the_loop_keeps_the_chip_and_reprograms_every_n_steps():
    chip = _mlp_chip()
    layer = memsim.analog_layers(chip)[0][1]
    fault = layer.tiles.fault.clone()
    opt = torch.optim.Adam(chip.parameters(), 1e-2)
    trainer = memsim.HardwareAwareTrainer(chip, opt, "chip_in_the_loop", program_every=2)
    g0, t0 = layer.tiles.g_prog.clone(), layer.tiles.target.clone()
    trainer.step(*_batch(0))
    assert torch.equal(layer.tiles.g_prog, g0)  # targets moved, the chip not yet written
    assert not torch.equal(layer.tiles.target, t0)
    trainer.step(*_batch(1))
    g1 = layer.tiles.g_prog.clone()
    assert torch.equal(g1, g0)
    trainer.step(*_batch(2))  # step 2 writes the targets of steps 0 and 1 first
    assert not torch.equal(layer.tiles.g_prog, g1)
    assert torch.equal(layer.tiles.fault, fault)


@pytest.mark.parametrize("regime", ["noise_in_the_loop", "chip_in_the_loop"])
def test_trainer_state_dict_resumes_bit_for_bit(regime):
    def make(regime: str = regime) -> tuple[nn.Module, memsim.HardwareAwareTrainer]:
        chip = _mlp_chip()
        opt = torch.optim.Adam(chip.parameters(), 1e-2)
        return chip, memsim.HardwareAwareTrainer(chip, opt, regime, seed=7)

    chip_a, a = make()
    for i in range(3):
        a.step(*_batch(i))
    # through a file, as a checkpoint goes (a state dict holds references to live tensors)
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer)
    chip_b, b = make()
    b.load_state_dict(state)
    for i in range(3, 5):
        assert torch.equal(a.step(*_batch(i)), b.step(*_batch(i)))
    for (_, la), (_, lb) in zip(
        memsim.analog_layers(chip_a), memsim.analog_layers(chip_b), strict=True
    ):
        assert torch.equal(la.target, lb.target) and torch.equal(la.g_prog, lb.g_prog)
    _, other = make("chip_in_the_loop" if regime == "noise_in_the_loop" else "noise_in_the_loop")
    with pytest.raises(ValueError, match="trainer"):
        other.load_state_dict(state)


def test_read_back_twin_trains_the_chips_targets_on_the_estimated_defects():
    chip = _mlp_chip()
    opt = torch.optim.SGD(chip.parameters(), 0.1)
    trainer = memsim.HardwareAwareTrainer(chip, opt, "chip_in_the_loop", defects="read_back")
    twin = trainer.model
    assert twin is not chip
    estimates = memsim.estimate_defects(chip, seed=0)
    for (name, lc), (_, lt) in zip(
        memsim.analog_layers(chip), memsim.analog_layers(twin), strict=True
    ):
        assert lt.target is lc.target and lt.bias is lc.bias
        assert torch.equal(lt.tiles.fault, estimates[f"{name}.weight"].fault)
    g_chip = memsim.analog_layers(chip)[0][1].tiles.g_prog.clone()
    t0 = memsim.target_weights(chip)
    trainer.step(*_batch(0))
    trainer.step(*_batch(1))
    assert not torch.equal(memsim.target_weights(chip)["0.weight"], t0["0.weight"])
    assert torch.equal(memsim.analog_layers(chip)[0][1].tiles.g_prog, g_chip)  # chip unwritten
    trainer.deploy(seed=3)
    assert not torch.equal(memsim.analog_layers(chip)[0][1].tiles.g_prog, g_chip)
    assert not chip.training


def test_trainer_refuses_options_of_the_other_regime():
    chip = _mlp_chip()
    opt = torch.optim.SGD(chip.parameters(), 0.1)
    with pytest.raises(ValueError, match="noise-in-the-loop option"):
        memsim.HardwareAwareTrainer(chip, opt, "chip_in_the_loop", fresh_chip=True)
    with pytest.raises(ValueError, match="chip-in-the-loop option"):
        memsim.HardwareAwareTrainer(chip, opt, "noise_in_the_loop", defects="read_back")
    with pytest.raises(ValueError):
        memsim.HardwareAwareTrainer(chip, opt, "digital")


def test_noise_in_the_loop_program_every_and_to_double():
    chip = _mlp_chip()
    layer = memsim.analog_layers(chip)[0][1]
    trainer = memsim.HardwareAwareTrainer(
        chip, torch.optim.SGD(chip.parameters(), 0.1), "noise_in_the_loop", program_every=2
    )
    trainer.step(*_batch(0))
    g0 = layer.tiles.g_prog.clone()
    trainer.step(*_batch(1))  # step 1 reads the programming of step 0
    assert torch.equal(layer.tiles.g_prog, g0)
    trainer.step(*_batch(2))
    assert not torch.equal(layer.tiles.g_prog, g0)
    trainer.to(torch.float64)
    trainer.optimizer = torch.optim.SGD(chip.parameters(), 0.1)  # built after the move
    x, y = _batch(3)
    assert trainer.step(x.double(), y).dtype == torch.float64
    assert layer.target.grad.dtype == torch.float64


def test_input_gradient_matches_finite_differences_on_a_faulty_drifted_chip():
    """Noise-free, quantizer-free, but stuck devices, device gains and drift: the chip's
    forward is still linear in its input, so d/dx through the chip must be exact."""
    profile = memsim.load_profile(
        {
            "name": "ideal_faulty",
            "extends": "ideal",
            "faults": {"stuck_at_gmin_rate": 0.1, "stuck_at_gmax_rate": 0.1, "d2d_sigma": 0.2},
            "drift": {"model": "power_law", "t0_s": 1.0, "nu_mean": 0.05, "nu_std": 0.02},
        }
    )
    torch.manual_seed(5)
    chip = memsim.convert(_grouped_net().double(), profile, seed=1).train()
    memsim.drift(chip, 86400.0)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    r = torch.randn(2, 3, dtype=torch.float64)
    (chip(x) * r).sum().backward()
    eps = 1e-6
    flat = x.detach().reshape(-1)
    with torch.no_grad():
        for i in range(0, flat.numel(), 7):
            vals = []
            for sign in (1.0, -1.0):
                xp = flat.clone()
                xp[i] += sign * eps
                vals.append((chip(xp.view_as(x)) * r).sum().item())
            numeric = (vals[0] - vals[1]) / (2 * eps)
            assert numeric == pytest.approx(x.grad.reshape(-1)[i].item(), rel=1e-6, abs=1e-8)
