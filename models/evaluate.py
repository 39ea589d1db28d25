"""Accuracy of a model *deployed on a simulated chip*.

Every accuracy reported by the baselines goes through :func:`memsim.convert` with a device
profile: the model is copied, each Conv2d/Linear is mapped onto crossbars and programmed
with a seeded noise draw, and the copy is run in eval mode. This is repeated for several
programming-noise draws (and, for ProtoNet, several draws of the support images), and the
mean and sample standard deviation are reported. No noise is ever added here by hand.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import memsim
from memsim.quantization import TERNARY
from models.data import ImageDataset
from models.protonet import DEFAULT_TEST_SHOT, ProtoNet, embed, nearest_prototype_accuracy

BASE_PAPER_PROFILE = "paper_2bit_5pct"
"""Shipped profile the derived ``paper_*`` profiles are built from."""


def paper_profile_name(bits: int, sigma: float) -> str:
    """Name of the ``paper_*`` profile for ``bits`` (0 = ternary) and relative ``sigma``.

    E.g. ``(2, 0.05) -> "paper_2bit_5pct"``, ``(0, 0.05) -> "paper_ternary_5pct"``.
    """
    pct = f"{sigma * 100:g}".replace(".", "p")
    width = "ternary" if bits == TERNARY else f"{bits}bit"
    return f"paper_{width}_{pct}pct"


def paper_profile(bits: int, sigma: float) -> Any:
    """Return the device profile of "``bits``-bit weights with ``sigma`` relative noise".

    The shipped profile of that name is used when it exists (``paper_2bit_5pct``,
    ``paper_3bit_20pct``). Otherwise the profile is derived from ``paper_2bit_5pct`` by
    changing only the weight quantization and the programming-noise sigma, and validated
    with the profile schema, so it cannot drift from the shipped ones in any other field.

    Args:
        bits: 1..16, or ``TERNARY`` (0).
        sigma: Relative programming-noise std (0.05 for 5 %).

    Returns:
        A ``memsim`` ``DeviceProfile``.

    """
    from memsim.profiles import ProfileError

    name = paper_profile_name(bits, sigma)
    try:
        return memsim.load_profile(name)
    except ProfileError:
        pass
    return memsim.load_profile(BASE_PAPER_PROFILE).derive(
        name=name,
        description=(
            f"{'ternary' if bits == TERNARY else f'{bits}-bit'} weights with {sigma:.0%} "
            f"multiplicative programming noise (derived from {BASE_PAPER_PROFILE})"
        ),
        mapping={
            "weight_quant": "ternary" if bits == TERNARY else "symmetric",
            "weight_bits": None if bits == TERNARY else bits,
        },
        programming_noise={"sigma": sigma},
    )


def _resolve_profile(profile: Any) -> Any:
    return memsim.load_profile(profile) if isinstance(profile, str) else profile


@torch.no_grad()
def classifier_accuracy(model: nn.Module, data: ImageDataset, batch_size: int = 1000) -> float:
    """Top-1 accuracy (fraction) of ``model`` on ``data`` in eval mode."""
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        logits = model(data.images[i : i + batch_size])
        correct += int((logits.argmax(dim=1) == data.labels[i : i + batch_size]).sum())
    return correct / len(data)


@dataclass(frozen=True)
class Score:
    """Accuracies (fractions) of one model over simulated chips: the one result type.

    Every accuracy the project reports over programming draws (``evaluate_deployed``, the
    experiments' paired scores, ``memsim evaluate``) is a list of accuracies summarized
    here.
    """

    accuracies: list[float]

    @property
    def mean(self) -> float:
        """Mean accuracy."""
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        """Sample standard deviation (0 for one value)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able dict in percent, with the raw fractions."""
        return {
            "mean_pct": 100 * self.mean,
            "std_pct": 100 * self.std,
            "n": len(self.accuracies),
            **asdict(self),
        }

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} %"


@dataclass(frozen=True)
class DeployedAccuracy(Score):
    """A :class:`Score` with the protocol that produced it (baseline reports).

    Attributes:
        accuracies: Every accuracy; for ProtoNet ``noise_draws * support_draws`` values,
            noise draw major.
        noise_draws: Programming-noise draws (``memsim.convert`` seeds ``seed .. seed+n-1``).
        support_draws: Support-set draws per noise draw (ProtoNet; 1 otherwise).
        k_shot: Support images per class (ProtoNet; ``None`` otherwise).
        profile: Name of the device profile.
        seed: Base seed.

    """

    accuracies: list[float] = field(repr=False)
    noise_draws: int = 1
    support_draws: int = 1
    k_shot: int | None = None
    profile: str = ""
    seed: int = 0

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} % (n={len(self.accuracies)})"


ChipScore = Callable[[nn.Module, "torch.Generator | None"], list[float]]
"""Accuracies of one programmed chip, given the generator of its support sets."""


@torch.no_grad()
def draw_accuracies(
    model: nn.Module,
    profile: Any,
    score: ChipScore,
    *,
    draws: int,
    program_seed: Callable[[int], int],
    chip_seed: Callable[[int], int],
    generator: Callable[[int, float | None], torch.Generator | None],
    times: Sequence[float | None] = (None,),
    calibration: Tensor | None = None,
    after_program: Callable[[nn.Module], None] | None = None,
) -> dict[float | None, list[float]]:
    """The one loop over programming draws behind every reported chip accuracy.

    Draw ``i`` programs chip ``chip_seed(i)`` with seed ``program_seed(i)`` (a chip is
    converted once per chip seed and re-programmed for later draws of the same chip, which
    gives exactly the state a fresh conversion with that seed would), calibrates it on
    ``calibration`` when its converters need it, then ages it to each of ``times``
    (``None``: right after programming) and scores it there.

    Args:
        model: The digital model (not modified).
        profile: Device profile, name or path.
        score: Accuracies of the programmed chip (one per support set for a ProtoNet).
        draws: Programming draws (>= 1).
        program_seed: Seed of draw ``i``'s programming and read noise.
        chip_seed: Chip instance of draw ``i``.
        generator: Support-set generator of draw ``i`` at time ``t``.
        times: Times after programming (seconds, increasing), ``None`` for none.
        calibration: Training images that set calibrated DAC/ADC ranges.
        after_program: Called on the chip after each programming (e.g. to load a measured
            conductance map), before calibration.

    Returns:
        ``{time: accuracies}`` in draw order.

    """
    if draws < 1:
        raise ValueError("draws must be >= 1")
    prof = _resolve_profile(profile)
    out: dict[float | None, list[float]] = {t: [] for t in times}
    chip: nn.Module | None = None
    current = None
    for i in range(draws):
        cs, ps = chip_seed(i), program_seed(i)
        if chip is None or cs != current:
            chip, current = memsim.convert(model, prof, seed=ps, chip_seed=cs), cs
        else:
            memsim.program(chip, seed=ps)
        if after_program is not None:
            after_program(chip)
        if calibration is not None and memsim.needs_calibration(chip):
            memsim.calibrate(chip, calibration)
        chip.eval()
        for t in times:
            if t is not None:
                memsim.drift(chip, float(t))
            out[t] += score(chip, generator(i, t))
    return out


def evaluate_deployed(
    model: nn.Module,
    test: ImageDataset,
    profile: Any,
    *,
    draws: int = 5,
    seed: int = 0,
    support: ImageDataset | None = None,
    k_shot: int = DEFAULT_TEST_SHOT,
    support_draws: int = 5,
    batch_size: int = 1000,
    calibration: Tensor | None = None,
) -> DeployedAccuracy:
    """Accuracy of ``model`` deployed with ``profile``, over ``draws`` chips.

    For draw ``i`` the model is converted with ``memsim.convert(model, profile,
    seed=seed + i, chip_seed=seed + i)`` and evaluated in eval mode; ``model`` itself is not
    modified.

    A :class:`~models.protonet.ProtoNet` is evaluated with the nearest-prototype protocol:
    for every chip the whole test set is embedded once, then ``support_draws`` times
    ``k_shot`` images per class are drawn from ``support`` (the training split), embedded
    by the same chip and averaged into prototypes of all classes.

    Args:
        model: Trained model (classifier or ProtoNet embedding).
        test: Test data.
        profile: ``DeviceProfile`` or a profile name / path.
        draws: Programming-noise draws (>= 5 for reported numbers).
        seed: Base seed of the noise draws and the support draws.
        support: Training split, required for ProtoNet.
        k_shot: Support images per class (ProtoNet).
        support_draws: Support draws per chip (ProtoNet).
        batch_size: Evaluation batch size.
        calibration: Training images that set a calibrated chip's DAC/ADC ranges
            (``memsim.calibrate``); without them such a chip calibrates itself on the first
            test batch.

    Returns:
        A :class:`DeployedAccuracy`.

    """
    if draws < 1:
        raise ValueError("draws must be >= 1")
    prof = _resolve_profile(profile)
    is_proto = isinstance(model, ProtoNet)
    support_gen = torch.Generator().manual_seed(seed)  # one stream across all draws

    def score(chip: nn.Module, gen: torch.Generator | None) -> list[float]:
        return accuracies(
            chip,
            test,
            support=support,
            k_shot=k_shot,
            support_draws=support_draws,
            generator=gen,
            batch_size=batch_size,
        )

    accs = draw_accuracies(
        model,
        prof,
        score,
        draws=draws,
        program_seed=lambda i: seed + i,
        chip_seed=lambda i: seed + i,
        generator=lambda _i, _t: support_gen,
        calibration=calibration,
    )[None]
    return DeployedAccuracy(
        accuracies=accs,
        noise_draws=draws,
        support_draws=support_draws if is_proto else 1,
        k_shot=k_shot if is_proto else None,
        profile=getattr(prof, "name", str(profile)),
        seed=seed,
    )


def accuracies(
    model: nn.Module,
    test: ImageDataset,
    *,
    support: ImageDataset | None = None,
    k_shot: int = DEFAULT_TEST_SHOT,
    support_draws: int = 5,
    generator: torch.Generator | None = None,
    batch_size: int = 1000,
) -> list[float]:
    """Accuracy of one model as it is (e.g. one chip from ``memsim.convert``), in eval mode.

    This is the inner step of :func:`evaluate_deployed`, exposed for callers that manage the
    chip themselves (e.g. re-programming it with ``memsim.program``). A converted ProtoNet
    is still a :class:`~models.protonet.ProtoNet`, so the nearest-prototype protocol is
    chosen for it automatically: the test set is embedded once, then ``support_draws``
    support sets of ``k_shot`` images per class are drawn from ``support`` with
    ``generator``.

    Returns:
        One accuracy for a classifier; ``support_draws`` accuracies for a ProtoNet.

    """
    model.eval()
    if not isinstance(model, ProtoNet):
        return [classifier_accuracy(model, test, batch_size)]
    if support is None:
        raise ValueError("ProtoNet evaluation needs the training split as `support`")
    query_emb = embed(model, test.images, batch_size)
    return nearest_prototype_accuracy(
        model,
        support.images,
        support.labels,
        query_emb,
        test.labels,
        k_shot,
        support_draws,
        generator,
    )


def software_accuracy(
    model: nn.Module,
    test: ImageDataset,
    *,
    support: ImageDataset | None = None,
    k_shot: int = DEFAULT_TEST_SHOT,
    support_draws: int = 5,
    seed: int = 0,
) -> float:
    """Full-precision accuracy of the latent weights, without any device model.

    Only a diagnostic for models trained in full precision; reported numbers use
    :func:`evaluate_deployed`. After low-bit QAT the latent weights of a network with
    BatchNorm are usually useless on their own (the BatchNorm statistics were gathered
    under quantized weights), so compare against a noiseless chip instead
    (``evaluate_deployed(model, test, paper_profile(bits, 0.0), draws=1)``).
    """
    gen = torch.Generator().manual_seed(seed)
    accs = accuracies(
        model, test, support=support, k_shot=k_shot, support_draws=support_draws, generator=gen
    )
    return statistics.fmean(accs)
