import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ga import Genome
from ga import operators as ops
from ga.references import maxmin_bounds


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _within_4_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1


# ----------------------------------------------------------------- crossover


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.integers(1, 6),
    n=st.integers(1, 40),
    prob=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
    seed=st.integers(0, 2**31),
    name=st.sampled_from(sorted(ops.CROSSOVERS)),
)
def test_crossover_conserves_each_pairs_genes_per_position(pairs, n, prob, seed, name):
    parents = torch.randn(2 * pairs, n, generator=_gen(seed))
    children = ops.CROSSOVERS[name](parents, prob, _gen(seed + 1))
    assert children.shape == parents.shape
    a, b = parents[0::2], parents[1::2]
    c1, c2 = children[0::2], children[1::2]
    # per position, the two children hold exactly the two parents' values
    assert torch.equal(torch.minimum(c1, c2), torch.minimum(a, b))
    assert torch.equal(torch.maximum(c1, c2), torch.maximum(a, b))
    assert ((c1 == a) | (c1 == b)).all()


def test_two_points_children_are_two_segments():
    n, pairs = 30, 400
    parents = torch.randn(2 * pairs, n, generator=_gen(1))
    children = ops.two_points(parents, 1.0, _gen(2))
    a, b, c1 = parents[0::2], parents[1::2], children[0::2]
    for i in range(pairs):
        from_b = (c1[i] == b[i]).nonzero().flatten()
        # one contiguous block [lo, hi) comes from the second parent
        assert len(from_b) >= 1
        assert torch.equal(from_b, torch.arange(int(from_b[0]), int(from_b[-1]) + 1))
        outside = torch.ones(n, dtype=torch.bool)
        outside[from_b] = False
        assert torch.equal(c1[i][outside], a[i][outside])


def test_crossover_probability_is_per_pair():
    pairs, n, cp = 4000, 8, 0.8
    parents = torch.randn(2 * pairs, n, generator=_gen(3))
    children = ops.two_points(parents, cp, _gen(4))
    crossed = (children[0::2] != parents[0::2]).any(dim=1)
    assert _within_4_sigma(int(crossed.sum()), pairs, cp)
    assert torch.equal(ops.two_points(parents, 0.0, _gen(4)), parents)


def test_crossover_rejects_odd_parent_count():
    with pytest.raises(ValueError):
        ops.two_points(torch.zeros(3, 4), 0.8, _gen())


# ------------------------------------------------------------------ mutation


def test_maxmin_stays_in_layer_bounds_and_matches_rate():
    g = Genome([("a", (40,)), ("b", (25,)), ("c", (35,))])
    ra = torch.randn(g.n_genes, generator=_gen(5))
    rb = 3 * torch.randn(g.n_genes, generator=_gen(6))
    low, high = maxmin_bounds(g, ra, rb)
    for s in g.slices:
        assert (
            low[s.start : s.stop] == min(ra[s.start : s.stop].min(), rb[s.start : s.stop].min())
        ).all()
        assert (
            high[s.start : s.stop] == max(ra[s.start : s.stop].max(), rb[s.start : s.stop].max())
        ).all()
    pop = 100 + torch.randn(600, g.n_genes, generator=_gen(7))  # far outside every bound
    mp = 0.1
    out = ops.maxmin(pop, mp, low, high, _gen(8))
    mutated = out != pop
    assert _within_4_sigma(int(mutated.sum()), pop.numel(), mp)
    lo = low.expand_as(out)[mutated]
    hi = high.expand_as(out)[mutated]
    assert ((out[mutated] >= lo) & (out[mutated] <= hi)).all()
    # the draw spreads over the layer range, not a point
    s = g.slices[2]
    vals = out[:, s.start : s.stop][mutated[:, s.start : s.stop]]
    span = float(high[s.start] - low[s.start])
    assert float(vals.max() - vals.min()) > 0.9 * span


def test_add_noise_has_its_sigma_and_rate():
    pop = 0.5 + torch.rand(200, 500, generator=_gen(9))
    out = ops.add_noise(pop, 1.0, 0.05, _gen(10))
    rel = (out / pop - 1).flatten().double()
    n = rel.numel()
    assert abs(float(rel.std()) - 0.05) < 4 * 0.05 / math.sqrt(2 * n) + 1e-6
    assert abs(float(rel.mean())) < 4 * 0.05 / math.sqrt(n) + 1e-6
    mp = 0.2
    out = ops.add_noise(pop, mp, 0.05, _gen(11))
    assert _within_4_sigma(int((out != pop).sum()), pop.numel(), mp)


def test_add_noise_level_step_mode_is_additive_in_steps():
    pop = torch.zeros(100, 400)  # zeros: the multiplicative form could not move them
    step = torch.linspace(0.1, 1.0, 400)
    out = ops.add_noise(pop, 1.0, 0.5, _gen(12), step=step)
    z = (out / step).flatten().double()
    assert abs(float(z.std()) - 0.5) < 4 * 0.5 / math.sqrt(2 * z.numel())
    assert torch.equal(ops.add_noise(pop, 1.0, 0.5, _gen(12)), pop)


def test_mutations_draw_fixed_randomness():
    # the stream position after an operator must not depend on the data
    g1, g2 = _gen(13), _gen(13)
    ops.add_noise(torch.zeros(5, 7), 0.3, 0.05, g1)
    ops.add_noise(torch.ones(5, 7), 0.9, 0.05, g2)
    assert torch.equal(g1.get_state(), g2.get_state())


# ----------------------------------------------------------------- selection


def test_sigmoid_rws_probabilities_match_formula():
    f = [0.9, 0.5, 0.7, 0.1]
    total = sum(f)
    sig = [1 / (1 + math.exp(-x / total)) for x in f]
    expected = [w / sum(sig) for w in sig]
    got = ops.sigmoid_rws_probabilities(torch.tensor(f, dtype=torch.float64))
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    tau = 7.0
    sig = [1 / (1 + math.exp(-tau * (x / total - 1 / 4))) for x in f]
    expected = [w / sum(sig) for w in sig]
    got = ops.sigmoid_rws_probabilities(torch.tensor(f, dtype=torch.float64), tau, "mean")
    assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=0)


def test_sigmoid_rws_sampling_frequencies():
    f = torch.tensor([0.9, 0.5, 0.7, 0.1])
    p = ops.sigmoid_rws_probabilities(f, 20.0, "mean")
    n = 20000
    idx = ops.sigmoid_rws(f, n, _gen(14), tau=20.0, center="mean")
    counts = torch.bincount(idx, minlength=4)
    for c, pi in zip(counts.tolist(), p.tolist()):
        assert _within_4_sigma(c, n, pi)


def test_selection_pressure_grows_with_tau():
    f = torch.tensor([0.80, 0.82, 0.85, 0.79, 0.90], dtype=torch.float64)
    rep = ops.selection_pressure(f, [1.0, 10.0, 100.0], center="mean")
    ratios = [r.ratio_best_worst for r in rep]
    assert ratios == sorted(ratios) and ratios[0] < 1.02 < 2 < ratios[-1]
    literal = ops.selection_pressure(f, [1.0])[0]
    s = float(f.sum())
    sig = lambda x: 1 / (1 + math.exp(-x / s))  # noqa: E731
    assert literal.ratio_best_worst == pytest.approx(sig(0.90) / sig(0.79), rel=1e-12)
    assert literal.expected_best_copies == pytest.approx(5 * literal.p_best)


def test_rank_probabilities_follow_fitness_order():
    f = torch.tensor([0.3, 0.9, 0.1, 0.5])
    p = ops.rank_probabilities(f)
    assert p.tolist() == pytest.approx([2 / 10, 4 / 10, 1 / 10, 3 / 10])
    assert torch.equal(torch.argsort(p), torch.argsort(f))
    # ties: stable, by population index
    p = ops.rank_probabilities(torch.tensor([0.5, 0.5, 0.1]))
    assert p.tolist() == pytest.approx([2 / 6, 3 / 6, 1 / 6])


def test_rws_probabilities_shift_negative_fitness():
    assert ops.rws_probabilities(torch.tensor([1.0, 3.0])).tolist() == [0.25, 0.75]
    assert ops.rws_probabilities(torch.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]


def test_tournament_prefers_the_fittest():
    f = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    idx = ops.tournament(f, 6000, _gen(15), k=3)
    counts = torch.bincount(idx, minlength=6).double() / 6000
    # P(winner = i) = ((i+1)^3 - i^3) / 6^3 for a 3-way tournament with replacement
    expected = [((i + 1) ** 3 - i**3) / 216 for i in range(6)]
    for c, e in zip(counts.tolist(), expected):
        assert abs(c - e) < 4 * math.sqrt(e * (1 - e) / 6000) + 1e-9
