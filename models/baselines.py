"""The paper's baselines: train, deploy through the simulator, checkpoint.

Tasks (``memsim train-baseline TASK --scale quick|medium|paper``):

==========================  ==============  =============  =====  =====  ==================
task                        model           data           bits   noise  deployed with
==========================  ==============  =============  =====  =====  ==================
protonet-mnist              ProtoNet Conv-4 mnist          2      5 %    paper_2bit_5pct
protonet-fashion-mnist      ProtoNet Conv-4 fashion_mnist  3      20 %   paper_3bit_20pct
mobilenetv2-cifar10         MobileNetV2     cifar10        2      5 %    paper_2bit_5pct
micronet-cifar100           MicroNet-M0     cifar100       tern.  5 %    paper_ternary_5pct
protonet-digits             ProtoNet Conv-4 digits         2      5 %    paper_2bit_5pct
vit-digits                  small ViT       digits         4      5 %    paper_4bit_5pct
==========================  ==============  =============  =====  =====  ==================

ProtoNet tasks train on episodes of 5 random classes x 20 images (5 support + 15 query)
and are tested 10-way on the whole test split with prototypes from ``K = 5`` support images
per class drawn from the training split. MobileNetV2 trains each epoch on a fresh random
50 % of the training set. Every training step uses the deployment's weight quantizer and
noise (see :mod:`models.quant`), and every reported accuracy is measured on simulated chips
(:func:`models.evaluate.evaluate_deployed`): mean ± sample std over ``eval_draws``
programming-noise draws (times ``support_draws`` support draws for ProtoNet).

Scales: ``paper`` is the full recipe. ``medium`` (MobileNetV2 only) is a reduced recipe
that means something on a CPU: width 0.5, 17 float epochs (OneCycle, crop-and-flip, label
smoothing 0.1; the float phase compiled with ``torch.compile``) then 2 epochs of 2-bit/5 %
QAT, on the whole training set, evaluated on the whole test set, in about an hour on 2
cores (64 min measured); it reports the float phase's accuracy as ``float_accuracy``.
``quick`` keeps the protocol (episode shape, bits, noise, deployment) but trains far less
(fewer episodes/epochs; for the CIFAR tasks a smaller network on a stratified 20 % of the
training set, evaluated on a stratified 20 % of the test set; ProtoNet tasks keep the full
test set) so it finishes in minutes on 2 CPU cores.
``vit-digits`` is not a row of the paper: a Vision Transformer (:mod:`models.vit`, 2x2
patches of the 8x8 digits, 2 blocks of width 32) that puts the recovery methods on a
transformer task in seconds.  Its QAT phase perturbs the ``nn.Linear`` / ``nn.Conv2d``
weights only (the packed ``in_proj_weight`` of torch's attention is not one); the lab
splits it into ``q/k/v_proj`` (:func:`memsim.transformer.restructure`) before recovery.
Hyper-parameters the source does not state (optimizers, learning rates, episode and epoch
counts) are our choices and are written into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import statistics
import time
import typing
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from memsim.quantization import TERNARY
from models.checkpoint import build_model, save_checkpoint
from models.data import ImageDataset, calibration_images, load_dataset, stratified_fraction
from models.evaluate import classifier_accuracy, evaluate_deployed, paper_profile

# the recipes live in models.recipes; re-exported, since this is where users look for them
from models.recipes import MEDIUM_TASKS as MEDIUM_TASKS
from models.recipes import SCALES as SCALES
from models.recipes import TASKS as TASKS
from models.recipes import Recipe as Recipe
from models.recipes import get_recipe as get_recipe
from models.train import (
    SCHEDULES,
    ClassifierConfig,
    EpisodeConfig,
    train_classifier,
    train_protonet,
)

log = logging.getLogger(__name__)


class RecipeError(ValueError):
    """A recipe override names no field, or gives a value of the wrong type or range."""


class UnknownOverrideError(RecipeError, KeyError):
    """A recipe override names neither a recipe nor a training-config field."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


# allowed ranges of the numeric recipe and training fields (the rest: type checks only)
_COUNTS = frozenset(
    {"episodes", "n_way", "k_shot", "n_query", "lr_step", "epochs", "batch_size"}
    | {"eval_draws", "support_draws"}
)
_FRACTIONS = frozenset({"train_fraction", "test_fraction", "epoch_fraction"})
_POSITIVE = frozenset({"lr", "lr_gamma", "qat_lr"})
_UNIT = frozenset({"momentum", "label_smoothing", "sigma"})
_FIXED = frozenset({"task", "scale"})  # chosen by the command's TASK and --scale


def _check_override(key: str, value: Any, hint: Any) -> None:
    """Refuse a value that does not fit field ``key`` of declared type ``hint``."""
    args = set(typing.get_args(hint)) or {hint}
    if value is None:
        if type(None) in args:
            return
        raise RecipeError(f"override {key}=None: {key} must not be None")
    if bool in args:
        if not isinstance(value, bool):
            raise RecipeError(f"override {key}={value!r}: {key} must be true or false")
        return
    if int in args and float not in args:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"override {key}={value!r}: {key} must be an integer")
    elif float in args:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"override {key}={value!r}: {key} must be a number")
        if not math.isfinite(value):
            raise RecipeError(f"override {key}={value!r}: {key} must be finite")
    elif str in args and not isinstance(value, str):
        raise RecipeError(f"override {key}={value!r}: {key} must be a string")
    elif typing.get_origin(hint) is dict or hint is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"override {key}={value!r}: {key} must be a table/dict")
    ok, allowed = True, ""
    if key in _COUNTS:
        ok, allowed = value >= 1, "an integer >= 1"
    elif key in _FRACTIONS:
        ok, allowed = 0 < value <= 1, "in (0, 1]"
    elif key in _POSITIVE:
        ok, allowed = value > 0, "> 0"
    elif key in _UNIT:
        ok, allowed = 0 <= value < 1, "in [0, 1)"
    elif key == "bits":
        ok, allowed = 0 <= value <= 16, "0 (ternary) .. 16, or null (full precision)"
    elif key == "weight_decay":
        ok, allowed = value >= 0, ">= 0"
    elif key == "float_epochs":
        ok, allowed = value >= 0, "an integer in 0..epochs"
    elif key == "schedule":
        ok, allowed = value in SCHEDULES, f"one of {', '.join(SCHEDULES)}"
    if not ok:
        raise RecipeError(f"override {key}={value!r}: {key} must be {allowed}")


def apply_overrides(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """Return ``recipe`` with fields replaced (recipe fields or training-config fields).

    Names are looked up first among :class:`Recipe` fields, then among the fields of its
    training config (e.g. ``episodes``, ``epochs``, ``lr``).  Values are checked against
    the field's type and range (counts >= 1, fractions in (0, 1], ...); an integer is
    accepted for a float field.

    Raises:
        UnknownOverrideError: A name that is neither (also a ``KeyError``).
        RecipeError: A value of the wrong type or out of range, or ``task``/``scale``,
            which the task and scale arguments choose.

    """
    from models.checkpoint import ARCHITECTURES
    from models.data import DATASETS

    top: dict[str, Any] = {}
    inner: dict[str, Any] = {}
    recipe_hints = typing.get_type_hints(Recipe)
    train_hints = typing.get_type_hints(type(recipe.train))
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"train"}
    train_fields = {f.name for f in dataclasses.fields(recipe.train)}
    for key, value in overrides.items():
        if key in _FIXED:
            raise RecipeError(f"override {key}: choose the {key} with the command's arguments")
        if key in recipe_fields:
            _check_override(key, value, recipe_hints[key])
            top[key] = value
        elif key in train_fields:
            _check_override(key, value, train_hints[key])
            inner[key] = value
        else:
            raise UnknownOverrideError(
                f"unknown override {key!r}; recipe fields: {sorted(recipe_fields - _FIXED)}, "
                f"training fields: {sorted(train_fields)}"
            )
    if "dataset" in top and top["dataset"] not in DATASETS:
        raise RecipeError(f"override dataset={top['dataset']!r}: choose from {list(DATASETS)}")
    if "arch" in top and top["arch"] not in ARCHITECTURES:
        raise RecipeError(f"override arch={top['arch']!r}: choose from {sorted(ARCHITECTURES)}")
    try:
        return replace(recipe, **top, train=replace(recipe.train, **inner))
    except ValueError as err:  # a combination the training config refuses
        raise RecipeError(f"overrides {overrides}: {err}") from None


def baseline_identity(
    task: str, scale: str, overrides: dict[str, Any] | None = None, profile: Any = None
) -> str | None:
    """Short hash of the settings that make a baseline differ from the standard one.

    ``None`` when every override equals the recipe's value and the profile is the
    recipe's own ``paper_*`` profile (or not given): such a run is the standard baseline.
    Otherwise the first 8 hex digits of a sha256 over the overrides that change the
    recipe and the profile's JSON, so two different settings never share a file name.
    """
    recipe = get_recipe(task, scale)
    changed = apply_overrides(recipe, overrides or {})
    diff = {
        k: v
        for k, v in sorted((overrides or {}).items())
        if _value_of(changed, k) != _value_of(recipe, k)
    }
    prof_json = None
    if profile is not None:
        import memsim

        prof = memsim.load_profile(profile) if not hasattr(profile, "model_dump") else profile
        prof_json = prof.model_dump(mode="json")
        if prof_json == paper_profile(changed.bits, changed.sigma).model_dump(mode="json"):
            prof_json = None
    if not diff and prof_json is None:
        return None
    blob = json.dumps({"overrides": diff, "profile": prof_json}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, with tuples as lists (a JSON round trip)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def recipe_differences(stored: dict[str, Any], recipe: Recipe) -> list[str]:
    """The fields where a checkpoint's stored recipe differs from ``recipe``.

    Args:
        stored: A checkpoint's ``meta["recipe"]`` (:meth:`Recipe.as_dict` when it was
            trained).
        recipe: The recipe the caller would train now.

    Returns:
        One ``"field: <stored> in the checkpoint, <current> now"`` line per differing field
        (dotted names, e.g. ``train.float_epochs``), sorted; empty when they agree.

    """
    old, new = _flat(stored), _flat(recipe.as_dict())
    missing = object()
    lines = []
    for key in sorted(old.keys() | new.keys()):
        was, now = old.get(key, missing), new.get(key, missing)
        if was != now:
            shown = ["(absent)" if v is missing else repr(v) for v in (was, now)]
            lines.append(f"{key}: {shown[0]} in the checkpoint, {shown[1]} now")
    return lines


def _value_of(recipe: Recipe, key: str) -> Any:
    if hasattr(recipe, key) and key != "train":
        return getattr(recipe, key)
    return getattr(recipe.train, key)


def baseline_file_name(
    task: str,
    scale: str,
    seed: int,
    overrides: dict[str, Any] | None = None,
    profile: Any = None,
) -> str:
    """``<task>-<scale>-seed<k>.pt``, or ``...-seed<k>-<hash>.pt`` for non-standard settings.

    The experiments reuse the standard name only (see :func:`baseline_identity`).
    """
    digest = baseline_identity(task, scale, overrides, profile)
    stem = f"{task}-{scale}-seed{seed}"
    return f"{stem}-{digest}.pt" if digest else f"{stem}.pt"


def fit_recipe(
    recipe: Recipe,
    train: ImageDataset,
    seed: int,
    *,
    progress: bool = False,
    device: torch.device | str = "cpu",
    on_float_end: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, ImageDataset, list[float], float]:
    """Build the recipe's network and train it on (a stratified part of) ``train``.

    The one training routine of every baseline: :func:`train_baseline` and the
    experiments' hold-out baselines (:mod:`lab.experiment.baseline`) both call it.

    Args:
        recipe: The baseline recipe.
        train: Training split (the recipe's ``train_fraction`` of it is used).
        seed: Seeds the model initialisation, the subset and the training.
        progress: Show a progress bar (stderr).
        device: Where the network trains (``cpu``, ``cuda``, ``cuda:N``); the returned
            model is on the CPU either way.  Initialisation, subset, batches and weight
            noise come from CPU generators, so the draws are the same on any device.
        on_float_end: Called with the model at the end of a recipe's float phase
            (``float_epochs > 0``; see :func:`models.train.train_classifier`).

    Returns:
        ``(model, images used, losses, training seconds)``; the model is in train mode.

    """
    torch.manual_seed(seed)  # model initialisation
    used = stratified_fraction(train, recipe.train_fraction, seed)
    kwargs = dict(recipe.model_kwargs)
    if recipe.is_protonet:
        kwargs["in_channels"] = train.images.shape[1]
    model = build_model(recipe.arch, kwargs).to(device)
    data = used.to(device)
    start = time.perf_counter()
    if recipe.is_protonet:
        assert isinstance(recipe.train, EpisodeConfig)
        losses = train_protonet(model, data, recipe.train, seed=seed, progress=progress)
    else:
        assert isinstance(recipe.train, ClassifierConfig)
        losses = train_classifier(
            model, data, recipe.train, seed=seed, progress=progress, on_float_end=on_float_end
        )
    return model.cpu(), used, losses, time.perf_counter() - start


def train_baseline(
    task: str,
    scale: str = "quick",
    seed: int = 0,
    data_root: str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "checkpoints",
    *,
    overrides: dict[str, Any] | None = None,
    profile: Any = None,
    progress: bool = False,
    path: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Path, dict[str, Any]]:
    """Train one baseline, evaluate it on simulated chips and write a checkpoint.

    Args:
        task: One of :data:`TASKS`.
        scale: ``"quick"`` or ``"paper"``.
        seed: Seeds model init, data subset, training and evaluation.
        data_root: Folder with ``<dataset>.npz`` (see :func:`models.data.load_dataset`).
        out_dir: Folder for the checkpoint, named by :func:`baseline_file_name`
            (``<task>-<scale>-seed<seed>.pt``, with a settings hash when ``overrides``
            or ``profile`` differ from the recipe).
        overrides: Recipe or training-config fields to change (see :func:`apply_overrides`).
        profile: Deployment profile (object, name or path); default: the matching
            ``paper_*`` profile from :func:`models.evaluate.paper_profile`.
        progress: Show a training progress bar (stderr).
        path: Checkpoint file (default ``<out_dir>/<baseline_file_name(...)>``).
        overwrite: Replace an existing checkpoint file; without it an existing file is
            refused before any training.
        device: Where the network trains (see :func:`fit_recipe`); the deployed
            evaluation runs on the CPU.

    Returns:
        ``(model, checkpoint_path, metrics)`` with the trained full-precision model; metrics
        hold the deployed accuracy (``accuracy_mean``, ``accuracy_std``, ``accuracies``),
        the accuracy with quantized weights but no programming noise
        (``quantized_noiseless_accuracy``, profile ``paper_profile(bits, 0.0)``) and wall
        times.

    """
    recipe = apply_overrides(get_recipe(task, scale), overrides or {})
    if path is None:
        path = Path(out_dir) / baseline_file_name(task, scale, seed, overrides, profile)
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path}: a baseline checkpoint is already there; it is kept (pass overwrite=True, "
            "or --force on the command line, to replace it)"
        )
    train, test = load_dataset(recipe.dataset, root=data_root)
    test = stratified_fraction(test, recipe.test_fraction, seed)
    log.info("%s/%s: %d test images", task, scale, len(test))
    float_accuracy: list[float] = []  # the float phase's digital test accuracy, if any

    def measure_float(net: nn.Module) -> None:
        with torch.no_grad():
            float_accuracy.append(classifier_accuracy(net, test.to(next(net.parameters()).device)))
        log.info("%s/%s float-phase test accuracy %.4f", task, scale, float_accuracy[-1])

    model, train_used, losses, train_time = fit_recipe(
        recipe, train, seed, progress=progress, device=device, on_float_end=measure_float
    )

    start = time.perf_counter()
    prof = profile if profile is not None else paper_profile(recipe.bits, recipe.sigma)
    support = train if recipe.is_protonet else None  # prototypes come from the train split
    deployed = evaluate_deployed(
        model,
        test,
        prof,
        draws=recipe.eval_draws,
        seed=seed,
        support=support,
        k_shot=recipe.k_shot,
        support_draws=recipe.support_draws,
        calibration=calibration_images(train_used),
    )
    eval_time = time.perf_counter() - start
    # the paper chip without programming noise separates the cost of noise from that of
    # quantization (the latent float weights say little after QAT: BatchNorm statistics
    # were collected under quantized weights)
    noiseless = evaluate_deployed(
        model,
        test,
        paper_profile(recipe.bits, 0.0),
        draws=1,
        seed=seed,
        support=support,
        k_shot=recipe.k_shot,
        support_draws=recipe.support_draws,
        calibration=calibration_images(train_used),
    )

    metrics: dict[str, Any] = {
        "accuracy_mean": deployed.mean,
        "accuracy_std": deployed.std,
        "accuracies": deployed.accuracies,
        "profile": deployed.profile,
        "noise_draws": deployed.noise_draws,
        "support_draws": deployed.support_draws,
        "k_shot": deployed.k_shot,
        "quantized_noiseless_accuracy": noiseless.mean,
        # digital accuracy at the end of the float phase (recipes with float_epochs > 0)
        "float_accuracy": float_accuracy[0] if float_accuracy else None,
        # classifier: mean loss of the last epoch; ProtoNet: of the last 50 episodes
        "final_train_loss": statistics.fmean(losses[-50:] if recipe.is_protonet else losses[-1:]),
        "train_time_s": train_time,
        "eval_time_s": eval_time,
        "train_images": len(train_used),
        "test_images": len(test),
    }
    meta: dict[str, Any] = {
        "task": task,
        "scale": scale,
        "seed": seed,
        "bits": recipe.bits,
        "ternary": recipe.bits == TERNARY,
        "noise": recipe.sigma,
        "dataset": recipe.dataset,
        "dataset_sha256": train.sha256,
        "dataset_source": train.source,
        "accuracy": deployed.mean,
        "accuracy_std": deployed.std,
        "metrics": metrics,
        "recipe": recipe.as_dict(),
        "overrides": dict(overrides or {}),
        "identity": baseline_identity(task, scale, overrides, profile),
        "torch_version": str(torch.__version__),
    }
    path = save_checkpoint(path, model, meta)
    log.info("%s/%s deployed accuracy %s, checkpoint %s", task, scale, deployed, path)
    return model, path, metrics
