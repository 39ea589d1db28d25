"""Test-set scoring of weight vectors on one simulated chip, paired across models.

Every reported accuracy of an experiment comes from :func:`score_on_chip`: the weights
are loaded into the baseline network (digital biases / BN are the baseline's), the
network is converted onto the chip instance ``chip_seed`` and then programmed
``draws`` times with fresh programming/read noise.  Draw ``i`` uses the same seeds
for every model scored (baseline, GA, control), so differences between models are
paired: the same noise streams and the same ProtoNet support sets.  The seeds come
from ``evaluation.seed``, a stream the fitness never uses, so test support sets
differ from every support set the fitness saw.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import memsim
from ga.genome import Genome
from lab.fitness.digital import Committee, add_corrections, ensemble_network
from lab.fitness.finetune import with_genes
from models.data import ImageDataset
from models.evaluate import Score, draw_accuracies
from models.tasks import Task

NO_DRIFT = "t0"
"""Key of the accuracies measured right after programming (no ``memsim.drift`` call)."""


def scoring_seed(*parts: int) -> int:
    """A 62-bit seed of the test-time scoring streams (programming draws, support sets).

    Seeds every draw an experiment scores its weights with, so baseline, GA and controls
    see the same draws (paired).  Not :func:`memsim.seeds.device_seed` nor
    :func:`ga.rng.stream_seed`: each gives different numbers.
    """
    state = np.random.SeedSequence([int(p) % (2**63) for p in parts]).generate_state(2, np.uint64)
    return int(state[0] >> 2)


_STREAM_DIGITAL_SUPPORT = -1
"""Stream of the fixed support sets of :func:`digital_scorer` (no draw index is negative)."""


def digital_scorer(
    task: Task,
    test: ImageDataset,
    support: ImageDataset | None,
    *,
    seed: int,
    support_draws: int,
) -> Callable[[nn.Module], float]:
    """An accuracy function (percent) that scores any model on the same draws.

    ``memsim evaluate``'s digital accuracy and every accuracy of ``memsim compare`` come
    from it, so the two commands agree on the same data.  A ProtoNet is scored by the
    nearest prototype with ``support_draws`` support sets drawn from ``support`` by one
    generator re-seeded on every call; a classifier top-1.  The model may be on any
    device: the data are copied there on first use.
    """
    on_device: dict[torch.device, tuple[ImageDataset, ImageDataset | None]] = {}

    def accuracy(model: nn.Module) -> float:
        # the data follow the model (a chip on CUDA is scored on CUDA copies, made once);
        # the support draws come from a CPU generator, so they are the same on any device
        where = _device_of(model)
        if where not in on_device:
            on_device[where] = (
                test.to(where),
                support.to(where) if support is not None else None,
            )
        queries, supports = on_device[where]
        gen = torch.Generator().manual_seed(scoring_seed(seed, _STREAM_DIGITAL_SUPPORT))
        with torch.no_grad():
            values = task.accuracies(model.eval(), queries, supports, gen, support_draws)
        return 100.0 * sum(values) / len(values)

    return accuracy


def _device_of(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def support_generator(seed: int, draw: int) -> torch.Generator:
    """The generator of the ProtoNet support sets scored on programming draw ``draw``."""
    return torch.Generator().manual_seed(scoring_seed(seed, draw, 1))


def drift_key(t_s: float | None) -> str:
    """Key of a drift time in score dicts (``"t0"`` or e.g. ``"3600s"``)."""
    return NO_DRIFT if t_s is None else f"{t_s:g}s"


def paired_delta(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean and std error (percentage points) of ``a - b`` over paired draws."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    d = [100 * (x - y) for x, y in zip(a, b)]
    mean = statistics.fmean(d)
    sem = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return {"mean_pp": mean, "sem_pp": sem, "n": len(d)}


@torch.no_grad()
def score_on_chip(
    model: nn.Module,
    genome: Genome,
    genes: Tensor,
    profile: Any,
    *,
    chip_seed: int,
    task: Task,
    test: ImageDataset,
    support: ImageDataset | None,
    draws: int,
    support_draws: int,
    seed: int,
    drift_times_s: Sequence[float] = (),
    calibration: Tensor | None = None,
    trim: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    placement: Mapping[str, tuple[Tensor, Tensor]] | None = None,
    adapters: Mapping[str, nn.Module] | None = None,
    committee: int | None = None,
    ensemble: Mapping[str, Tensor] | None = None,
) -> dict[str, Score]:
    """Test accuracy of ``genes`` on chip ``chip_seed`` over ``draws`` programmings.

    Args:
        model: Baseline network (its biases / BN are used; not modified).
        genome: Gene layout of ``model``.
        genes: The weights to score.
        profile: Device profile.
        chip_seed: Chip instance (faults, device-to-device variation).
        task: Accuracy protocol.
        test: Held-out test data (the queries).
        support: Training split the ProtoNet support sets are drawn from.
        draws: Programming/read-noise draws (fresh noise, same chip).
        support_draws: ProtoNet support sets per programming draw.
        seed: Seed of the draws (shared by every model scored in an experiment).
        drift_times_s: Extra times after programming to score at (``memsim.drift``).
        calibration: Training images that set calibrated DAC/ADC ranges after every
            programming (as a deployed chip is calibrated once, before it drifts); without
            them a calibrated chip would take its ranges from the first test batch.
        trim: Digital per-column output gain/offset to set on the chip
            (:func:`memsim.trim.set_output_trim`), e.g. a ``ga_knobs`` solution.
        placement: Per-tile row/column permutations of the weights
            (:func:`memsim.set_placement`), e.g. a ``ga_mapping`` solution.
        adapters: Digital branches added to the named analog layers' outputs
            (:func:`lab.fitness.digital.corrected`), e.g. an ``adapter_lora`` solution.
        committee: Deploy ``committee`` copies of the network on independent arrays and
            average their outputs (:class:`lab.fitness.digital.Committee`); ``None``: one.
        ensemble: ``{layer: mix (k, out)}``: ``k`` copies of each named layer on their own
            arrays, mixed per column (:func:`lab.fitness.digital.ensemble_network`).

    Returns:
        ``{"t0": Score, "<t>s": Score, ...}``; a ProtoNet score has
        ``draws * support_draws`` values, a classifier's ``draws``.

    """

    def deploy(chip: nn.Module) -> None:
        if placement is not None:
            # set once per chip (it then re-programs with the draw's seed); later draws
            # program with it in place, and setting it again changes nothing
            memsim.set_placement(chip, placement)
        if trim is not None:
            # the trim survives programming; setting it again after each one is the same state
            memsim.set_output_trim(chip, trim)
        if adapters and not getattr(chip, "_lab_adapters", False):
            # a chip is converted once per chip seed and re-programmed: hook it once
            add_corrections(chip, adapters=adapters)
            chip._lab_adapters = True  # type: ignore[assignment]

    times: list[float | None] = [None, *sorted(drift_times_s)]
    net = with_genes(model, genome, genes)
    if committee is not None or ensemble:
        if adapters or trim or placement:
            raise ValueError("copies of arrays deploy plain weights (no trim, placement, adapters)")
    if committee is not None:
        net = Committee(net, committee)
    if ensemble:
        k = next(iter(ensemble.values())).shape[0]
        net = ensemble_network(net, list(ensemble), k, ensemble)
    out = draw_accuracies(
        net,
        profile,
        lambda chip, gen: task.accuracies(chip, test, support, gen, support_draws),
        draws=draws,
        program_seed=lambda i: scoring_seed(seed, i),
        chip_seed=lambda _i: chip_seed,
        generator=lambda i, _t: support_generator(seed, i),
        times=times,
        calibration=calibration,
        after_program=None if trim is None and placement is None and not adapters else deploy,
    )
    return {drift_key(t): Score(v) for t, v in out.items()}


COST_IMAGES = 64
"""Test images whose inferences the cost model measures (its figures are per inference)."""


@torch.no_grad()
def cost_on_chip(
    model: nn.Module,
    genome: Genome,
    genes: Tensor,
    profile: Any,
    *,
    chip_seed: int,
    images: Tensor,
    calibration: Tensor | None,
    seed: int = 0,
) -> dict[str, Any]:
    """Energy, latency and TOPS/W per inference of ``genes`` on chip ``chip_seed``.

    :func:`memsim.cost_report` on the first :data:`COST_IMAGES` ``images``, after the
    calibration every scored chip gets.  A profile with ideal converters has no converter
    energy to model: the result then says why instead.
    """
    net = with_genes(model, genome, genes)
    chip = memsim.convert(net, profile, seed=seed, chip_seed=chip_seed)
    if calibration is not None and memsim.needs_calibration(chip):
        memsim.calibrate(chip, calibration)
    try:
        report = memsim.cost_report(chip.eval(), images[:COST_IMAGES])
    except memsim.CostModelError as exc:
        return {"available": False, "reason": str(exc)}
    return {"available": True, "images": min(COST_IMAGES, len(images)), **report.totals()}
