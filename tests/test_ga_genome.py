import pytest
import torch
from torch import nn

from ga import Genome
from ga.references import level_steps, make_references, maxmin_bounds


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10)),
        nn.Linear(10, 3, bias=False),
    )


def test_from_model_takes_only_analog_weights():
    g = Genome.from_model(_model())
    assert g.keys == ["0.weight", "3.1.weight", "4.weight"]
    assert g.n_genes == 4 * 9 + 64 * 10 + 30
    assert [s.shape for s in g.slices] == [(4, 1, 3, 3), (10, 64), (3, 10)]
    assert g.slices[1].start == 36 and g.slices[1].stop == 36 + 640


def test_flatten_unflatten_round_trip_is_exact():
    model = _model()
    g = Genome.from_model(model)
    state = model.state_dict()
    vec = g.flatten(state)
    back = g.unflatten(vec)
    assert set(back) == set(g.keys)
    for k, v in back.items():
        assert torch.equal(v, state[k])
    assert torch.equal(g.flatten(back), vec)


def test_load_into_changes_only_the_genes():
    model = _model()
    g = Genome.from_model(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    vec = torch.arange(g.n_genes, dtype=torch.float32)
    g.load_into(model, vec)
    after = model.state_dict()
    for k in before:
        if k in g.keys:
            assert torch.equal(after[k], g.unflatten(vec)[k])
        else:
            assert torch.equal(after[k], before[k]), k
    assert torch.equal(g.from_module(model), vec)


def test_flatten_rejects_missing_or_misshaped():
    g = Genome([("a.weight", (2, 3))])
    with pytest.raises(KeyError):
        g.flatten({})
    with pytest.raises(ValueError):
        g.flatten({"a.weight": torch.zeros(3, 2)})
    with pytest.raises(ValueError):
        g.unflatten(torch.zeros(5))


def test_layer_ranges_and_expand():
    g = Genome([("a", (3,)), ("b", (2, 2))])
    vec = torch.tensor([1.0, -2.0, 3.0, 0.5, 7.0, -1.0, 2.0])
    lo, hi = g.layer_ranges(vec)
    assert lo.tolist() == [-2.0, -1.0] and hi.tolist() == [3.0, 7.0]
    pop = torch.stack([vec, vec * 2])
    lo, hi = g.layer_ranges(pop)
    assert lo.tolist() == [-4.0, -2.0] and hi.tolist() == [6.0, 14.0]
    assert g.expand(torch.tensor([10.0, 20.0])).tolist() == [10, 10, 10, 20, 20, 20, 20]


def test_references_bounds_and_steps():
    g = Genome([("a", (50,)), ("b", (30,))])
    base = torch.randn(80, generator=torch.Generator().manual_seed(1))
    ra, rb = make_references(g, base, 2, (0.05, 0.10), torch.Generator().manual_seed(2))
    # 2-bit levels of layer a, before noise, are {-a, -a/3, a/3, a}
    a = base[:50].abs().max()
    rel = ra[:50] / a
    levels = torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0])
    nearest = levels[(rel[:, None] - levels).abs().argmin(1)]
    assert ((rel / nearest - 1).abs() < 0.05 * 5).all()
    low, high = maxmin_bounds(g, ra, rb)
    assert low[0] == torch.minimum(ra[:50].min(), rb[:50].min())
    assert high[60] == torch.maximum(ra[50:].max(), rb[50:].max())
    step = level_steps(g, base, 2)
    assert torch.allclose(step[:50], torch.full((50,), float(2 * a / 3)))
