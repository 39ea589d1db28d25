"""Accuracy of a model *deployed on a simulated chip*.

Every accuracy reported by the baselines goes through :func:`memsim.convert` with a device
profile: the model is copied, each Conv2d/Linear is mapped onto crossbars and programmed
with a seeded noise draw, and the copy is run in eval mode. This is repeated for several
programming-noise draws (and, for ProtoNet, several draws of the support images), and the
mean and sample standard deviation are reported. No noise is ever added here by hand.
"""

from __future__ import annotations

import statistics
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
    from memsim.profiles import ProfileError, validate_profile

    name = paper_profile_name(bits, sigma)
    try:
        return memsim.load_profile(name)
    except ProfileError:
        pass
    data = memsim.load_profile(BASE_PAPER_PROFILE).model_dump(mode="json")
    data["name"] = name
    data["description"] = (
        f"{'ternary' if bits == TERNARY else f'{bits}-bit'} weights with {sigma:.0%} "
        f"multiplicative programming noise (derived from {BASE_PAPER_PROFILE})"
    )
    data["mapping"]["weight_quant"] = "ternary" if bits == TERNARY else "symmetric"
    data["mapping"]["weight_bits"] = None if bits == TERNARY else bits
    data["programming_noise"]["sigma"] = sigma
    return validate_profile(data, origin=f"derived profile {name}")


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


@dataclass
class DeployedAccuracy:
    """Accuracy over several simulated chips.

    Attributes:
        mean: Mean accuracy (fraction) over all draws.
        std: Sample standard deviation over all draws (0 for a single draw).
        accuracies: Every accuracy; for ProtoNet ``noise_draws * support_draws`` values,
            noise draw major.
        noise_draws: Programming-noise draws (``memsim.convert`` seeds ``seed .. seed+n-1``).
        support_draws: Support-set draws per noise draw (ProtoNet; 1 otherwise).
        k_shot: Support images per class (ProtoNet; ``None`` otherwise).
        profile: Name of the device profile.
        seed: Base seed.

    """

    mean: float
    std: float
    accuracies: list[float] = field(repr=False)
    noise_draws: int
    support_draws: int
    k_shot: int | None
    profile: str
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f} % (n={len(self.accuracies)})"


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
    support_gen = torch.Generator().manual_seed(seed)
    accs: list[float] = []
    for i in range(draws):
        chip = memsim.convert(model, prof, seed=seed + i, chip_seed=seed + i)
        if calibration is not None and memsim.needs_calibration(chip):
            memsim.calibrate(chip, calibration)
        accs += accuracies(
            chip,
            test,
            support=support,
            k_shot=k_shot,
            support_draws=support_draws,
            generator=support_gen,
            batch_size=batch_size,
        )
    return DeployedAccuracy(
        mean=statistics.fmean(accs),
        std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
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
