"""``ga_knobs``: differential evolution over digital per-column gains/offsets after the ADC.

The weights are the blind QAT solution (``budget.steps`` steps, as ``qat``); the search
then spends the chip-evaluation budget on a small vector of digital knobs
(:mod:`memsim.trim`): one gain and one offset per output column of every analog layer
(``recovery.knobs = "column"``) or per layer (``"layer"``).  This is the small-space regime
where evolution is competitive (cf. Mackin et al., Nat. Commun. 2022).

The search is DE/rand/1/bin (F = 0.5, CR = 0.9) with ``ga.population_size`` members, the
first of them the identity (gain 1, offset 0), each trial measured on
``fitness.draws`` fresh programming draws of the chip (one chip evaluation each),
with greedy selection; the best measured member is deployed.  Gains are searched in
``1 +- recovery.knob_gain_range``, offsets in ``+- recovery.knob_offset_range`` times the
column's output std on the digital network (no chip information).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn

from lab.methods.base import Access, Budget, RecoveryData, RecoveryMethod, Solution
from lab.methods.chip import Chip
from lab.methods.config import KnobGranularity
from lab.methods.training import BudgetError, counted_qat

_F, _CR = 0.5, 0.9


def column_std(baseline: nn.Module, data: RecoveryData, genes: Tensor) -> dict[str, Tensor]:
    """Per-output std of every crossbar layer of the digital network on 256 training images."""
    net = copy.deepcopy(baseline)
    net.load_state_dict(data.base_state)
    data.genome.load_into(net, genes)
    net.eval()
    stds: dict[str, Tensor] = {}
    hooks = []
    for key in data.genome.keys:
        mod = net.get_submodule(key.removesuffix(".weight"))

        def hook(_m: nn.Module, _i: object, out: Tensor, key: str = key) -> None:
            dims = [d for d in range(out.dim()) if d != 1]
            stds[key] = out.detach().std(dim=dims).clamp(min=1e-6)

        hooks.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        net(data.train.images[:256])
    for h in hooks:
        h.remove()
    return stds


class GAKnobs(RecoveryMethod):
    """Blind QAT weights plus digital output knobs searched with the chip in the loop."""

    name = "ga_knobs"
    needs = frozenset({Access.accuracy})
    uses_chip_evaluations = True

    def run(self, baseline: nn.Module, chip: Chip, data: RecoveryData, budget: Budget) -> Solution:
        """QAT for ``budget.steps``, then DE over the knobs for ``budget.chip_evaluations``."""
        s, g = self.settings, data.ga
        genes = counted_qat(baseline, chip, data, data.base_genes, budget.steps)
        draws = data.fitness.draws
        if budget.chip_evaluations % draws:
            raise BudgetError(
                f"ga_knobs measures every trial on fitness.draws={draws} draws; the budget "
                f"of {budget.chip_evaluations} chip evaluations is not a multiple of it"
            )
        trials = budget.chip_evaluations // draws
        pop = min(g.population_size, trials)
        stds = column_std(baseline, data, genes)
        keys = list(data.genome.keys)
        sizes = [int(stds[k].numel()) if s.knobs is KnobGranularity.column else 1 for k in keys]
        dim = 2 * sum(sizes)

        def decode(v: np.ndarray) -> dict[str, tuple[Tensor, Tensor]]:
            out, i = {}, 0
            for key, n in zip(keys, sizes):
                a = torch.as_tensor(v[i : i + n], dtype=torch.float32)
                b = torch.as_tensor(v[i + n : i + 2 * n], dtype=torch.float32)
                i += 2 * n
                cols = stds[key].numel()
                gain = (1.0 + s.knob_gain_range * a).expand(cols).clone()
                offset = (s.knob_offset_range * b).expand(cols) * stds[key]
                out[key] = (gain, offset)
            return out

        rng = np.random.default_rng(data.seed)

        def measure(v: np.ndarray) -> float:
            seeds = [int(x) for x in rng.integers(0, 2**62, size=draws)]
            return chip.accuracy(genes, seeds, decode(v))

        members = np.clip(rng.normal(0.0, 0.1, size=(pop, dim)), -1.0, 1.0)
        members[0] = 0.0  # the identity: no trim
        fitness = np.array([measure(m) for m in members])
        done = pop
        while done < trials:
            for i in range(pop):
                if done >= trials:
                    break
                a, b, c = rng.choice([j for j in range(pop) if j != i], 3, replace=False)
                mutant = np.clip(members[a] + _F * (members[b] - members[c]), -1.0, 1.0)
                cross = rng.random(dim) < _CR
                cross[rng.integers(dim)] = True
                trial = np.where(cross, mutant, members[i])
                f = measure(trial)
                done += 1
                if f >= fitness[i]:
                    members[i], fitness[i] = trial, f
        best = int(np.argmax(fitness))
        return Solution(
            genes,
            trim=decode(members[best]),
            info={"knobs": dim, "best_validation_fitness": float(fitness[best])},
        )
