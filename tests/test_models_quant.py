"""Tests of models.quant: STE fake-quantization, noise injection and the QAT loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from memsim.quantization import TERNARY, quantize_weight, symmetric_levels
from models.quant import (
    crossbar_weights,
    fake_quant,
    perturb_weight,
    perturbed_forward,
    perturbed_params,
    qat_finetune,
    qat_forward,
    quantized_state_dict,
)


def _toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
    )


@pytest.mark.parametrize("bits", range(1, 9))
def test_kbit_fake_quant_has_exactly_2_to_the_k_levels(bits: int) -> None:
    # dense enough that every level is hit, including both extremes
    w = torch.linspace(-1.0, 1.0, 20001)
    q = fake_quant(w, bits)
    values = torch.unique(q)
    assert len(values) == 2**bits
    torch.testing.assert_close(values, symmetric_levels(bits, 1.0), rtol=0, atol=1e-6)
    # symmetric and without a zero level
    torch.testing.assert_close(values, -values.flip(0))
    assert not bool((values == 0).any())


def test_ternary_gives_minus_a_zero_plus_a() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5000, generator=gen)
    q = fake_quant(w, TERNARY)
    values = torch.unique(q)
    assert len(values) == 3
    a = float(values[-1])
    torch.testing.assert_close(values, torch.tensor([-a, 0.0, a]))
    # TWN threshold: |w| <= 0.7 mean|w| -> 0, the scale is the mean of the survivors
    delta = 0.7 * w.abs().mean()
    assert bool((q[w.abs() <= delta] == 0).all())
    assert a == pytest.approx(float(w.abs()[w.abs() > delta].mean()), rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    w=arrays(
        np.float32,
        st.integers(2, 64),
        elements=st.floats(-10, 10, allow_nan=False, width=32),
    ),
    bits=st.integers(1, 8),
)
def test_fake_quant_matches_the_shared_quantizer(w: np.ndarray, bits: int) -> None:
    t = torch.from_numpy(w.copy())
    torch.testing.assert_close(fake_quant(t, bits), quantize_weight(t, bits))
    # never more levels than the bit width allows, never outside [-max|w|, max|w|]
    assert len(torch.unique(fake_quant(t, bits))) <= 2**bits
    assert float(fake_quant(t, bits).abs().max()) <= float(t.abs().max()) * (1 + 1e-6) + 1e-12


@pytest.mark.parametrize("bits", [1, 2, 3, 8, TERNARY])
def test_ste_gradient_passes_through_unchanged(bits: int) -> None:
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(300, generator=gen, requires_grad=True)
    upstream = torch.randn(300, generator=gen)
    (fake_quant(w, bits) * upstream).sum().backward()
    assert w.grad is not None
    torch.testing.assert_close(w.grad, upstream)


def test_noise_has_the_requested_relative_sigma() -> None:
    gen = torch.Generator().manual_seed(3)
    w = torch.full((200_000,), 0.5)
    for sigma in (0.05, 0.2):
        ratio = perturb_weight(w, None, sigma, gen) / w
        # 200k samples: the std estimate is within ~0.3 % of sigma
        assert float(ratio.mean()) == pytest.approx(1.0, abs=5 * sigma / 447)
        assert float(ratio.std()) == pytest.approx(sigma, rel=0.01)
    assert perturb_weight(w, None, 0.0, gen) is w


def test_noise_is_applied_after_quantization_and_is_seeded() -> None:
    w = torch.linspace(-1, 1, 101)
    a = perturb_weight(w, 2, 0.05, torch.Generator().manual_seed(4))
    b = perturb_weight(w, 2, 0.05, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    ratio = a / quantize_weight(w, 2)
    assert float((ratio - 1).abs().max()) < 0.5  # multiplicative around the levels
    assert float(ratio.std()) > 0.01


def test_perturbed_params_covers_every_crossbar_weight_only() -> None:
    model = _toy_model()
    params = perturbed_params(model, 2, 0.05, torch.Generator().manual_seed(0))
    assert set(params) == {"0.weight", "3.weight", "5.weight"}
    assert set(params) == set(crossbar_weights(model))
    for name, p in params.items():
        assert p.shape == dict(model.named_parameters())[name].shape
        assert p.requires_grad  # differentiable through the STE


def test_qat_forward_without_quantization_or_noise_is_the_plain_forward() -> None:
    model = _toy_model().eval()
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(qat_forward(model, x, None, 0.0), model(x))
    # and with quantization it equals the model carrying quantized weights
    quant = _toy_model().eval()
    quant.load_state_dict(quantized_state_dict(model, 2))
    torch.testing.assert_close(qat_forward(model, x, 2, 0.0), quant(x))


def test_perturbed_forward_reuses_one_draw_and_leaves_latent_weights() -> None:
    model = _toy_model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(6))
    fwd = perturbed_forward(model, 2, 0.2, torch.Generator().manual_seed(7))
    torch.testing.assert_close(fwd(x), fwd(x))
    other = perturbed_forward(model, 2, 0.2, torch.Generator().manual_seed(8))
    assert not torch.allclose(fwd(x), other(x))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_qat_finetune_learns_a_separable_problem_under_quantization_and_noise() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(512, 8, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 512, 64)]

    def ce(forward, batch):  # type: ignore[no-untyped-def]
        xb, yb = batch
        return F.cross_entropy(forward(xb), yb)

    losses = qat_finetune(model, ce, batches, steps=150, bits=2, sigma=0.05, generator=gen, lr=1e-2)
    assert len(losses) == 150
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20])
    with torch.no_grad():
        acc = (qat_forward(model, x, 2, 0.0).argmax(1) == y).float().mean()
    assert float(acc) > 0.85


def test_qat_finetune_accepts_a_batch_callable_and_is_deterministic() -> None:
    def run() -> list[float]:
        torch.manual_seed(0)
        model = nn.Linear(4, 2)
        gen = torch.Generator().manual_seed(10)
        data = torch.randn(32, 4, generator=torch.Generator().manual_seed(11))

        def loss(forward, batch):  # type: ignore[no-untyped-def]
            return forward(batch).pow(2).mean()

        return qat_finetune(
            model,
            loss,
            lambda step: data[step % 4 :: 4],
            steps=5,
            bits=3,
            sigma=0.1,
            generator=gen,
        )

    assert run() == run()


def test_qat_finetune_in_eval_mode_keeps_batchnorm_statistics() -> None:
    model = _toy_model()
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d)
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    x = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(12))

    def loss(forward, batch):  # type: ignore[no-untyped-def]
        return forward(batch).pow(2).mean()

    qat_finetune(model, loss, [x], steps=3, bits=2, sigma=0.05, train_mode=False)
    assert not model.training
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    qat_finetune(model, loss, [x], steps=1, bits=2, sigma=0.05)
    assert model.training and not torch.equal(bn.running_mean, stats[0])
