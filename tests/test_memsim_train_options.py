"""The trainer options the fine-tune through the chip uses: loss closures, digital eval
mode, calibration after programming, a read-back made beforehand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import memsim


def _bn_chip(profile: str = "rram_1t1r_faulty_chen2015") -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    return memsim.convert(model, profile, seed=0, chip_seed=1)


def _batch(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(i)
    return torch.randn(8, 12, generator=gen), torch.randint(0, 4, (8,), generator=gen)


def test_step_fn_is_step_with_the_loss_as_a_closure():
    a, b = _bn_chip(), _bn_chip()
    ta = memsim.HardwareAwareTrainer(
        a, torch.optim.SGD(a.parameters(), 0.1), "noise_in_the_loop", seed=3
    )
    tb = memsim.HardwareAwareTrainer(
        b, torch.optim.SGD(b.parameters(), 0.1), "noise_in_the_loop", seed=3
    )
    for i in range(3):
        x, y = _batch(i)
        la = ta.step(x, y)
        lb = tb.step_fn(lambda m, x=x, y=y: F.cross_entropy(m(x), y))
        assert torch.equal(la, lb)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_digital_eval_keeps_batch_norm_as_deployed_and_still_trains_the_targets():
    chip = _bn_chip()
    bn = chip[1]
    mean0 = bn.running_mean.clone()
    target0 = memsim.target_weights(chip)["0.weight"].clone()
    trainer = memsim.HardwareAwareTrainer(
        chip, torch.optim.SGD(chip.parameters(), 0.1), "noise_in_the_loop", digital_eval=True
    )
    trainer.step(*_batch(0))
    assert torch.equal(bn.running_mean, mean0)  # eval mode: running statistics untouched
    assert not torch.equal(memsim.target_weights(chip)["0.weight"], target0)
    plain = _bn_chip()
    memsim.HardwareAwareTrainer(
        plain, torch.optim.SGD(plain.parameters(), 0.1), "noise_in_the_loop"
    ).step(*_batch(0))
    assert not torch.equal(plain[1].running_mean, mean0)  # the default trains batch norm


def test_calibration_images_calibrate_after_every_programming(monkeypatch):
    import memsim.train as train

    calls = []
    real = train.calibrate

    def spy(model, images):
        calls.append((model, images))
        return real(model, images)

    monkeypatch.setattr(train, "calibrate", spy)
    chip = _bn_chip()
    assert memsim.needs_calibration(chip)  # a profile with calibrated converters
    images = torch.randn(64, 12, generator=torch.Generator().manual_seed(9))
    trainer = memsim.HardwareAwareTrainer(
        chip,
        torch.optim.SGD(chip.parameters(), 0.1),
        "noise_in_the_loop",
        calibration=images,
        program_every=2,
    )
    for i in range(5):
        trainer.step(*_batch(i))
    assert len(calls) == 3  # programmed at steps 0, 2 and 4
    assert all(m is chip and x is images for m, x in calls)
    assert all(layer.calibrated for _, layer in memsim.analog_layers(chip))
    calls.clear()
    plain = _bn_chip()
    memsim.HardwareAwareTrainer(
        plain, torch.optim.SGD(plain.parameters(), 0.1), "noise_in_the_loop"
    ).step(*_batch(0))
    assert not calls  # without images, the first batch sets the ranges, as before


def test_a_read_back_made_beforehand_is_the_twins_defect_map():
    chip = _bn_chip()
    est = memsim.estimate_defects(chip, reads=2, seed=5)
    trainer = memsim.HardwareAwareTrainer(
        chip,
        torch.optim.SGD(chip.parameters(), 0.1),
        "chip_in_the_loop",
        defects="read_back",
        estimates=est,
    )
    for name, layer in memsim.analog_layers(trainer.model):
        assert torch.equal(layer.tiles.fault, est[f"{name}.weight"].fault)
