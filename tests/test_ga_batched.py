import pytest
import torch
from config_support import chip_fitness, configs
from torch import nn

from ga import Genome
from lab.fitness import batched as gb
from lab.fitness.batched import BatchedFinetuner, UnsupportedModelError, auto_evaluation
from lab.fitness.config import EvaluationMode
from lab.fitness.task import TaskFitness
from models.data import load_dataset, train_val_split
from models.evaluate import paper_profile
from models.protonet import ProtoNet
from models.tasks import ProtoNetTask
from models.train import cross_entropy_loss


@pytest.fixture(scope="module")
def digits():
    train, _ = load_dataset("digits")
    train, val = train_val_split(train, 0.2, seed=0)
    return train, val.subset(torch.arange(100))


class _Tiny(nn.Module):
    """Conv-BN-ReLU, dropout, linear: every layer kind the batched path must reproduce."""

    def __init__(self, dropout: nn.Module | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Flatten()
        )
        self.drop = dropout if dropout is not None else nn.Dropout(0.3)
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.body(x)))


def _tiny(dropout: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    return _Tiny(dropout)


def _cfg(**kw):
    base = dict(
        population_size=4,
        generations=1,
        draws=2,
        finetune_steps=3,
        finetune_lr=1e-2,
        weight_bits=2,
        progress=False,
    )
    base.update(kw)
    return configs(**base)


def _population(genome: Genome, model: nn.Module, p: int = 4) -> torch.Tensor:
    pop = genome.from_module(model).repeat(p, 1)
    return pop * torch.linspace(0.9, 1.1, p)[:, None]


def _evaluate(fitness, pop, global_seed=123):
    # the serial fine-tune's nn.Dropout draws from the global RNG: start both paths equal
    torch.manual_seed(global_seed)
    out = fitness.evaluate_population(pop, 0, torch.Generator().manual_seed(5))
    return out, torch.get_rng_state()


@pytest.mark.parametrize("bits", [2, 0])
def test_batched_matches_serial_on_a_tiny_classifier(digits, bits):
    train, val = digits
    model = _tiny()
    genome = Genome.from_model(model)
    pop = _population(genome, model)
    profile = paper_profile(bits, 0.05)
    res = {}
    for mode in ("serial", "batched"):
        fit = chip_fitness(
            model, genome, profile, _cfg(evaluation=mode, weight_bits=bits), train=train, val=val
        )
        res[mode] = _evaluate(fit, pop)
        assert fit.evaluation is EvaluationMode(mode)
    ((fs, ts), rng_s), ((fb, tb), rng_b) = res["serial"], res["batched"]
    assert torch.allclose(ts, tb, atol=1e-5, rtol=0)
    assert not torch.allclose(ts, pop)  # the fine-tune did something
    assert torch.equal(fs, fb)
    # the same dropout masks were drawn from the global RNG, in the same amount
    assert torch.equal(rng_s, rng_b)


def _tuned(digits, model, mode, finetune_mode):
    train, val = digits
    genome = Genome.from_model(model)
    pop = _population(genome, model)
    cfg = _cfg(evaluation=mode, finetune_mode=finetune_mode)
    fit = chip_fitness(model, genome, paper_profile(2, 0.05), cfg, train=train, val=val)
    (fitness, tuned), rng = _evaluate(fit, pop)
    assert fit.evaluation is EvaluationMode(mode)
    return fitness, tuned, rng, pop


def test_eval_mode_finetune_reads_the_running_statistics_on_both_paths(digits):
    # train mode normalizes with batch statistics, so the baseline's running statistics
    # cannot matter; eval mode must read them, as the deployed network does
    def shifted() -> nn.Module:
        model = _tiny()
        model.body[1].running_mean.fill_(0.5)
        model.body[1].running_var.fill_(4.0)
        return model

    for mode in ("serial", "batched"):
        _, train_a, _, _ = _tuned(digits, _tiny(), mode, "train")
        _, train_b, _, _ = _tuned(digits, shifted(), mode, "train")
        assert torch.equal(train_a, train_b)
        _, eval_a, _, pop = _tuned(digits, _tiny(), mode, "eval")
        _, eval_b, _, _ = _tuned(digits, shifted(), mode, "eval")
        assert not torch.allclose(eval_a, pop)  # the fine-tune did something
        assert (eval_a - eval_b).abs().max() > 1e-4
        assert (eval_a - train_a).abs().max() > 1e-4
    fs, ts, rng_s, _ = _tuned(digits, shifted(), "serial", "eval")
    fb, tb, rng_b, _ = _tuned(digits, shifted(), "batched", "eval")
    assert torch.allclose(ts, tb, atol=1e-5, rtol=0)
    assert torch.equal(fs, fb)
    # dropout is off in eval mode: neither path draws masks from the global RNG
    torch.manual_seed(123)
    assert torch.equal(rng_s, torch.get_rng_state()) and torch.equal(rng_b, rng_s)


def test_batched_matches_serial_on_protonet_episodes(digits):
    train, val = digits
    torch.manual_seed(0)
    model = ProtoNet(in_channels=1, hidden=8, blocks=2)
    genome = Genome.from_model(model)
    pop = _population(genome, model, 3)
    task = ProtoNetTask(n_way=3, k_shot=2, n_query=3)
    res = {}
    for mode in ("serial", "batched"):
        fit = TaskFitness(
            model,
            genome,
            paper_profile(2, 0.05),
            _cfg(population_size=3, evaluation=mode)[1],
            weight_bits=2,
            task=task,
            train=train,
            val=val,
            qat_sigma=0.05,
            chip_seed=0,
        )
        res[mode] = _evaluate(fit, pop)[0]
        assert fit.evaluation is EvaluationMode(mode)
    (fs, ts), (fb, tb) = res["serial"], res["batched"]
    assert torch.allclose(ts, tb, atol=1e-5, rtol=0)
    assert torch.equal(fs, fb)


def _finetuner(train, model, sigma=0.05):
    def draw(gen):
        idx = torch.randint(0, len(train), (16,), generator=gen)
        return train.images[idx], train.labels[idx]

    return BatchedFinetuner(
        model, Genome.from_model(model), cross_entropy_loss, draw, bits=2, sigma=sigma
    )


def test_each_member_gets_its_own_noise_and_data(digits):
    train, _ = digits
    model = _tiny(nn.Identity())
    ft = _finetuner(train, model)
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 1)]
    batches = [ft.draw_batch(g) for g in gens]
    eps = ft._draw_noise(gens)
    assert not torch.equal(batches[0][0], batches[1][0])
    assert torch.equal(batches[0][0], batches[2][0])  # same seed, same data
    for e in eps.values():
        assert e.shape[0] == 3
        assert not torch.equal(e[0], e[1]) and torch.equal(e[0], e[2])
    # drawn from the member's own stream, after its batch, as the serial path draws
    ref = torch.Generator().manual_seed(2)
    ft.draw_batch(ref)
    for key in ft.perturbed:
        assert torch.equal(eps[key][1], torch.randn(eps[key].shape[1:], generator=ref))
    # identical genes: only the seeds make the members differ
    pop = Genome.from_model(model).from_module(model).repeat(3, 1)
    tuned = ft.finetune(pop, [1, 2, 1], steps=2, lr=1e-2)
    assert not torch.equal(tuned[0], tuned[1]) and torch.equal(tuned[0], tuned[2])


def test_dropout_masks_are_drawn_per_member_and_step(digits):
    train, _ = digits
    ft = _finetuner(train, _tiny())
    assert ft.dropout_calls == [("drop.mask", (16, 256))]
    torch.manual_seed(0)
    masks = ft._draw_masks(members=2, steps=2)
    m = [s["drop.mask"] for s in masks]
    assert m[0].shape == (2, 16, 256)
    assert not torch.equal(m[0][0], m[0][1]) and not torch.equal(m[0][0], m[1][0])
    # serial order: member 0's steps come first
    torch.manual_seed(0)
    first = torch.nn.functional.dropout(torch.ones(16, 256), 0.3, training=True)
    second = torch.nn.functional.dropout(torch.ones(16, 256), 0.3, training=True)
    assert torch.equal(m[0][0], first) and torch.equal(m[1][0], second)


def test_auto_choice(digits, monkeypatch):
    train, val = digits
    assert auto_evaluation(ProtoNet()) is gb.AUTO_EVALUATION["ProtoNet"]
    assert auto_evaluation(_tiny()) is EvaluationMode.SERIAL  # not in the table
    profile = paper_profile(2, 0.05)

    def mode(model, **kw):
        g = Genome.from_model(model)
        fit = chip_fitness(model, g, profile, _cfg(**kw), train=train, val=val)
        return fit.evaluation

    assert mode(_tiny(), evaluation="auto") is EvaluationMode.SERIAL
    monkeypatch.setitem(gb.AUTO_EVALUATION, "_Tiny", EvaluationMode.BATCHED)
    assert mode(_tiny(), evaluation="auto") is EvaluationMode.BATCHED
    # a model the batched path cannot reproduce falls back to serial under auto ...
    assert mode(_tiny(nn.Dropout1d(0.2)), evaluation="auto") is EvaluationMode.SERIAL
    # ... and is refused when batched is asked for
    with pytest.raises(UnsupportedModelError):
        mode(_tiny(nn.Dropout1d(0.2)), evaluation="batched")
    # without a fine-tune there is nothing to batch
    assert mode(_tiny(), evaluation="batched", finetune_steps=0) is EvaluationMode.SERIAL
    assert mode(_tiny(), evaluation="serial") is EvaluationMode.SERIAL


def test_loss_that_vmap_rejects_is_unsupported(digits):
    train, _ = digits
    model = _tiny(nn.Identity())

    def draw(gen):
        idx = torch.randint(0, len(train), (8,), generator=gen)
        return train.images[idx], train.labels[idx]

    def bad_loss(forward, batch):
        x, y = batch
        out = forward(x)
        return out[: int(y.max())].sum()  # data-dependent size: no vmap rule

    with pytest.raises(UnsupportedModelError):
        BatchedFinetuner(model, Genome.from_model(model), bad_loss, draw, bits=2, sigma=0.05)
