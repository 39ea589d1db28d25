import pytest
import torch
from config_support import chip_fitness, configs
from digits_support import trained_digits_mlp
from torch import nn

from ga import GATrainer, Genome
from lab.fitness.chip import deployed_test_fn
from models.data import load_dataset, train_val_split
from models.evaluate import paper_profile


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("digits")
    train, val = train_val_split(train, 0.2, seed=0)
    return train, val.subset(torch.arange(120)), test.subset(torch.arange(120))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def _cfg(**kw):
    base = dict(
        population_size=4,
        generations=1,
        draws=2,
        finetune_steps=2,
        finetune_lr=1e-2,
        weight_bits=2,
        progress=False,
    )
    base.update(kw)
    return configs(**base)


def test_chip_fitness_is_deterministic_and_writes_back(digits):
    train, val, _ = digits
    model = _model()
    genome = Genome.from_model(model)
    profile = paper_profile(2, 0.05)
    pop = genome.from_module(model).repeat(3, 1)
    pop[1:] *= 1.1
    out = []
    for _ in range(2):
        fit = chip_fitness(model, genome, profile, _cfg(), train=train, val=val)
        out.append(fit.evaluate_population(pop, 0, torch.Generator().manual_seed(5)))
    (f1, t1), (f2, t2) = out
    assert torch.equal(f1, f2) and torch.equal(t1, t2)
    assert ((f1 >= 0) & (f1 <= 1)).all()
    assert t1.shape == pop.shape and not torch.equal(t1, pop)
    # baseline model untouched
    assert torch.equal(genome.from_module(model), pop[0])


def test_batched_mode_matches_serial(digits):
    # more cases in test_ga_batched.py
    train, val, _ = digits
    model = _model()
    genome = Genome.from_model(model)
    pop = genome.from_module(model).repeat(3, 1)
    pop[1:] *= 1.1
    out = []
    for mode in ("serial", "batched"):
        fit = chip_fitness(
            model, genome, paper_profile(2, 0.05), _cfg(evaluation=mode), train=train, val=val
        )
        out.append(fit.evaluate_population(pop, 0, torch.Generator().manual_seed(5)))
    (fs, ts), (fb, tb) = out
    assert torch.equal(fs, fb) and torch.allclose(ts, tb, atol=1e-6, rtol=0)


def test_trainer_end_to_end_with_chip_fitness(digits):
    train, val, test = digits
    model = _model()
    genome = Genome.from_model(model)
    profile = paper_profile(2, 0.05)
    cfg = _cfg()
    fitness = chip_fitness(model, genome, profile, cfg, train=train, val=val)
    test_fn = deployed_test_fn(model, genome, test, profile, draws=2)
    r = GATrainer.from_model(cfg[0], fitness, model, test_fn=test_fn).run()
    assert len(r.history) == 2
    assert len(r.test_accuracies) == 2 and 0 <= r.test_accuracy_mean <= 1


def _adc_ranges(chip: nn.Module) -> list[torch.Tensor]:
    import memsim

    return [m.adc_range.clone() for _, m in memsim.analog_layers(chip)]


def test_calibrated_chip_takes_ranges_from_training_images_not_validation(digits):
    import memsim
    from models.data import calibration_images

    train, val, _ = digits
    model = _model()
    genome = Genome.from_model(model)
    # an ideal chip has nothing to calibrate
    fit = chip_fitness(model, genome, "ideal", _cfg(), train=train, val=val)
    assert fit.calibration is None
    fit = chip_fitness(model, genome, "rram_1t1r_yao2020", _cfg(), train=train, val=val)
    assert fit.calibration is not None and fit.calibration.shape[0] == 256
    genes = genome.from_module(model)
    fit.measure(genes, [3])
    after_val = _adc_ranges(fit.chip)
    # the same programming, calibrated on the training batch by hand, gives the same ranges
    chip = memsim.convert(model, "rram_1t1r_yao2020", seed=0, chip_seed=0)
    memsim.program(chip, genome.unflatten(genes), seed=3)
    memsim.calibrate(chip, calibration_images(train, seed=0))
    for a, b in zip(after_val, _adc_ranges(chip), strict=True):
        assert torch.equal(a, b)
    # and not the ranges the validation images would have set
    memsim.program(chip, seed=3)
    memsim.calibrate(chip, val.images)
    assert any(not torch.equal(a, b) for a, b in zip(after_val, _adc_ranges(chip), strict=True))


@pytest.mark.statistical
@pytest.mark.parametrize("chip_seed", [0, 1, 2])
def test_chip_aware_finetune_repairs_a_faulty_chip_that_a_blind_one_cannot(chip_seed):
    from conftest import SEED_OFFSET

    from models.evaluate import classifier_accuracy

    chip_seed += SEED_OFFSET
    train, test = load_dataset("digits")
    train, val = train_val_split(train, 0.2, seed=0)
    model = trained_digits_mlp(train)
    genome = Genome.from_model(model)
    genes = genome.from_module(model)
    acc = {}
    for aware in (False, True):
        cfg = _cfg(finetune_steps=60, finetune_lr=3e-3, weight_bits=4, chip_aware=aware)
        fit = chip_fitness(
            model,
            genome,
            "rram_1t1r_faulty_chen2015",
            cfg,
            train=train,
            val=val,
            qat_sigma=0.03,
            chip_seed=chip_seed,
        )
        assert fit.evaluation.value == "serial"
        tuned = fit._finetune(genes, 5)
        scores = []
        for s in range(5):
            fit.program(genome.unflatten(tuned), 100 + s)
            scores.append(classifier_accuracy(fit.chip, test))
        acc[aware] = sum(scores) / len(scores)
    # about 11 % stuck devices: the blind fine-tune stays near 50 %, the aware one near 90 %
    assert acc[True] >= 0.8 and acc[True] >= acc[False] + 0.2, acc


def test_chip_aware_finetune_cannot_be_batched(digits):
    from lab.fitness.batched import UnsupportedModelError

    train, val, _ = digits
    model = _model()
    cfg = _cfg(chip_aware=True, evaluation="batched")
    fit = chip_fitness(model, Genome.from_model(model), "ideal", cfg, train=train, val=val)
    with pytest.raises(UnsupportedModelError, match="serially"):
        _ = fit.evaluation
