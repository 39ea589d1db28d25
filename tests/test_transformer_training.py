"""Transformers trained through the chip and recovered by the lab's methods (issue 29)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, SEED_OFFSET
from sklearn.datasets import load_digits
from torch import nn

import memsim
from memsim.transformer import restructure, source_state_dict
from models.vit import ViT

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj", "linear1", "linear2")


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16, dtype=torch.float32).view(-1, 1, 8, 8), torch.tensor(y)


def _vit(seed: int) -> ViT:
    torch.manual_seed(seed)
    return ViT(image_size=8, patch_size=4, in_channels=1, dim=32, depth=2, heads=2, mlp_dim=64)


def test_gradients_reach_every_projection_of_the_vit_through_the_chip():
    x, y = _digits()
    chip = memsim.convert(_vit(0).eval(), "rram_wan2022", seed=0)
    names = [n for n, _ in memsim.analog_layers(chip)]
    for block in range(2):
        for p in PROJECTIONS:
            prefix = f"encoder.layers.{block}." + ("self_attn." if p.endswith("proj") else "")
            assert prefix + p in names
    opt = torch.optim.SGD(chip.parameters(), lr=0.1)
    before = {n: layer.target.detach().clone() for n, layer in memsim.analog_layers(chip)}
    trainer = memsim.HardwareAwareTrainer(chip, opt, "noise_in_the_loop", seed=1)
    trainer.step(x[:128], y[:128])
    for name, layer in memsim.analog_layers(chip):
        grad = layer.target.grad
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name  # q, k and v each get their own gradient
        assert not torch.equal(layer.target.detach(), before[name]), name


def test_noise_in_the_loop_lowers_the_held_out_loss_of_the_vit_on_a_fresh_chip():
    """15 steps of noise in the loop; held-out loss on one programming before and after.

    Measured at MEMSIM_SEED_OFFSET 0, 1000, 2000: 2.40 -> 1.32, 2.37 -> 1.28, 2.44 -> 1.10
    (ratios 0.55, 0.54, 0.45); the test asks for a ratio below 0.75.
    """
    x, y = _digits()
    seed = SEED_OFFSET
    chip = memsim.convert(_vit(seed).eval(), "rram_wan2022", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=gen)
    train, test = order[:1200], order[1200:1500]

    def held_out() -> float:
        memsim.program(chip, seed=seed + 7)
        with torch.no_grad():
            return float(F.cross_entropy(chip.eval()(x[test]), y[test]))

    before = held_out()
    opt = torch.optim.Adam(chip.parameters(), lr=1e-2)
    trainer = memsim.HardwareAwareTrainer(chip, opt, "noise_in_the_loop", seed=seed + 1)
    for _ in range(15):
        batch = train[torch.randint(0, len(train), (128,), generator=gen)]
        trainer.step(x[batch], y[batch])
    assert held_out() < 0.75 * before


def test_source_state_dict_packs_the_split_projections_back():
    model = _vit(3).eval()
    rebuilt = restructure(model)
    with torch.no_grad():
        for p in rebuilt.parameters():
            p.add_(0.01 * torch.randn_like(p))  # weights changed on the rebuilt model
    source = _vit(4).eval()
    source.load_state_dict(source_state_dict(rebuilt))  # strict: every key, every shape
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(source(x), rebuilt(x), rtol=1e-5, atol=1e-6)
    # separate q/k/v weights when kdim and vdim differ from embed_dim, and no bias
    mha = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, bias=False, batch_first=True).eval()
    state = source_state_dict(restructure(mha))
    assert set(state) == set(mha.state_dict())
    fresh = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, bias=False, batch_first=True)
    fresh.load_state_dict(state)
    for key, value in mha.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_qat_and_the_ga_run_on_the_vit_with_a_gene_per_projection_weight(tmp_path, capsys):
    from cli_support import cli, read, run_folder

    from models.checkpoint import load_checkpoint

    rc, out, err = cli(
        capsys, "ga", ROOT / "experiments" / "vit_digits.toml", "--scale", "quick",
        "--run-root", tmp_path, "--no-progress",
    )  # fmt: skip
    assert rc == 0, err
    run = run_folder(out)
    rows = {r["method"]: r for r in read(run / "results.json")["methods"]}
    assert {"qat", "ga"} <= set(rows)
    baseline, _ = load_checkpoint(next((tmp_path / "baselines").glob("vit-digits-*.pt")))
    chip = memsim.convert(baseline, "ideal", seed=0)
    expected = {f"{n}.weight": layer.target.numel() for n, layer in memsim.analog_layers(chip)}
    assert len(expected) == 1 + 6 * 2 + 1  # patch embedding, 6 per block, head
    ga = torch.load(run / "recovery" / "ga" / "best_solution.pt", weights_only=False)
    assert ga["keys"] == list(expected)  # q/k/v split, as the chip holds them
    assert ga["best_solution"].numel() == sum(expected.values())
    qat = torch.load(run / "recovery" / "qat.pt", weights_only=False)
    assert qat["genes"].numel() == sum(expected.values())
    # the recovered networks load as the ViT they were trained as (q/k/v packed back)
    net, _ = load_checkpoint(run / "weights" / "ga.pt")
    assert isinstance(net, ViT)
    got = memsim.target_weights(memsim.convert(net, "ideal", seed=0))
    genes = torch.cat([got[k].reshape(-1) for k in expected])
    torch.testing.assert_close(genes, ga["best_solution"].float())


def test_a_genome_refuses_a_packed_attention_and_covers_the_rebuilt_one():
    from ga.genome import Genome

    vit = _vit(0)
    with pytest.raises(ValueError, match="restructure"):
        Genome.from_model(vit)  # in_proj_weight would silently be left out
    genome = Genome.from_model(restructure(vit))
    chip = memsim.convert(vit, "ideal", seed=0)
    assert genome.keys == [f"{n}.weight" for n, _ in memsim.analog_layers(chip)]
    assert len(genome) == sum(layer.target.numel() for _, layer in memsim.analog_layers(chip))
