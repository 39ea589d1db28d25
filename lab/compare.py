r"""``memsim compare``: memsim against IBM aihwkit on a checkpoint, a dataset and a profile.

The simulation itself is :func:`memsim.backends.compare.compare`, which takes a model and
tensors.  This module supplies what the rest of the project supplies everywhere: the
checkpoint (:mod:`models.checkpoint`, so every registered network loads), the data (the
same data root as every other command), the scoring protocol of the network (top-1 for a
classifier; nearest prototype with support sets from the training split for a ProtoNet,
exactly as ``memsim evaluate`` scores it), calibration on training images, and the files
``compare.json``, ``compare.png`` and ``untranslated.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lab.fitness.scoring import digital_scorer
from memsim.backends.compare import compare as compare_tensors
from memsim.backends.compare import duration_label, format_table
from models.checkpoint import load_checkpoint, load_model, save_model
from models.data import (
    ImageDataset,
    calibration_images,
    load_dataset,
    load_npz,
    resolve_data_root,
)
from models.small import lenet5, mlp
from models.tasks import make_task

__all__ = [
    "SMALL_ARCHS",
    "compare",
    "duration_label",
    "format_table",
    "parse_duration",
    "plot",
    "reference_model",
]

SMALL_ARCHS = {"mlp": mlp, "lenet5": lenet5}
"""The :mod:`models.small` networks that :func:`reference_model` trains."""

_UNITS = {
    "": 1.0,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}


def parse_duration(text: str | float) -> float:
    """Seconds from ``"3600"``, ``"30s"``, ``"10min"``, ``"1h"``, ``"1d"``, ``"1w"`` or ``"1y"``.

    The one ``--drift`` syntax of every command.  ``m`` is minutes and ``y`` 365 days.

    Raises:
        ValueError: For anything else, including negative, NaN and infinite times.

    """
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", text.lower())
        if not m or m.group(2) not in _UNITS:
            raise ValueError(
                f"bad duration {text!r}: use a number of seconds or 30s/10min/1h/1d/1y"
            )
        value = float(m.group(1)) * _UNITS[m.group(2)]
    if not (value >= 0.0 and value != float("inf")):
        raise ValueError(f"bad duration {text!r}: must be a finite time >= 0 s")
    return value


# -- models ----------------------------------------------------------------------------------
def _train_plain(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> nn.Module:
    # plain Adam + cross-entropy: the reference networks of the comparison are trained
    # without quantization or noise, so both simulators start from the same float model
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = len(labels)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def reference_model(
    arch: str,
    train: tuple[Tensor, Tensor],
    *,
    cache_dir: str | Path = "runs/aihwkit_compare",
    epochs: int = 1,
    seed: int = 0,
    limit: int | None = None,
    tag: str = "mnist",
) -> tuple[nn.Module, Path]:
    """A :mod:`models.small` network trained on ``train``, cached as a checkpoint.

    Args:
        arch: ``"mlp"`` or ``"lenet5"``.
        train: ``(images, labels)``.
        cache_dir: Folder for the checkpoint (git-ignored ``runs/`` by default).
        epochs: Training epochs.
        seed: Seed of the initialisation and data order.
        limit: Train on the first ``limit`` images only.
        tag: Dataset tag for the file name.

    Returns:
        ``(model, checkpoint path)``; the model is in eval mode.

    """
    if arch not in SMALL_ARCHS:
        raise ValueError(f"arch must be one of {sorted(SMALL_ARCHS)}, got {arch!r}")
    n = len(train[1]) if limit is None else min(limit, len(train[1]))
    path = Path(cache_dir) / f"{arch}_{tag}_n{n}_e{epochs}_s{seed}.pt"
    if path.is_file():
        return load_model(path), path
    torch.manual_seed(seed)
    model = SMALL_ARCHS[arch]()
    _train_plain(model, train[0][:n], train[1][:n], epochs=epochs, seed=seed)
    meta = {"dataset": tag, "train_images": n, "epochs": epochs, "seed": seed}
    save_model(path, arch, model, meta)
    return model, path


# -- data ------------------------------------------------------------------------------------
def _resolve_data(
    test_data: Any, data_root: str | None
) -> tuple[Tensor, Tensor, str, ImageDataset | None, ImageDataset | None]:
    """``(images, labels, description, train split or None, test split or None)``."""
    if isinstance(test_data, (str, Path)):
        text = str(test_data)
        if text.endswith(".npz"):
            train, test = load_npz(text)
        else:
            train, test = load_dataset(text, root=resolve_data_root(data_root))
        return test.images, test.labels, f"{test.name} test ({test.source})", train, test
    if hasattr(test_data, "tensors"):
        x, y = test_data.tensors[0], test_data.tensors[1]
        return x, y, getattr(test_data, "name", "dataset"), None, None
    x, y = test_data
    return x, y, "tensors", None, None


# -- the comparison --------------------------------------------------------------------------
def compare(
    checkpoint_or_model: str | Path | nn.Module,
    profile: Any,
    drift_times: Sequence[float | str] = (3600.0, 86400.0),
    draws: int = 10,
    test_data: Any = None,
    out_dir: str | Path | None = None,
    *,
    batch_size: int = 1000,
    seed: int = 0,
    align: bool = True,
    limit: int | None = None,
    calibration: Tensor | None = None,
    support_draws: int = 5,
    data_root: str | None = None,
    verbose: bool = True,
    device: str = "cpu",
    equal_layers: bool = True,
) -> dict[str, Any]:
    """Run one model and profile through memsim and aihwkit and compare them.

    Args:
        checkpoint_or_model: A trained model or a checkpoint path.
        profile: memsim profile, name or JSON path.
        drift_times: Times after programming, seconds or strings like ``"1h"``.
        draws: Programming draws per simulator.
        test_data: ``(images, labels)``, a TensorDataset, a dataset name or an ``.npz``
            path; default: the checkpoint's dataset.
        out_dir: Where ``compare.json``, ``compare.png`` and ``untranslated.md`` go
            (nothing is written when ``None``).
        batch_size: Inference batch size (same for both).
        seed: First programming seed, and the seed of the ProtoNet support sets.
        align: Run memsim with the profile aligned to what aihwkit models.
        limit: Use only the first ``limit`` test images.
        calibration: Batch for memsim's calibrated DAC/ADC ranges (default: 256 training
            images when the data names a dataset, else the first test batch).
        support_draws: ProtoNet support sets per score (as ``memsim evaluate``).
        data_root: Folder with ``<dataset>.npz`` (default: the usual search).
        verbose: Print the table (and progress) to stdout.
        device: Where memsim's chip runs (aihwkit and the digital reference: CPU).
        equal_layers: Keep digital on memsim's side what aihwkit cannot map (grouped and
            depthwise convs), so that both simulate the same layers; ``False``: an
            unequal comparison, those layers on memsim's tiles only.

    Returns:
        The result dict that is also written as ``compare.json``.

    Raises:
        ValueError: A ProtoNet given as tensors (it needs a training split for its
            support sets), or no data at all.

    """
    model, name, meta = checkpoint_or_model, type(checkpoint_or_model).__name__, {}
    if not isinstance(model, nn.Module):
        name = Path(str(model)).name
        model, meta = load_checkpoint(model)
    if test_data is None:
        test_data = meta.get("dataset")
        if not test_data:
            raise ValueError(f"{name}: the checkpoint names no dataset; pass --data NAME")
    x, y, data_desc, train, test = _resolve_data(test_data, data_root)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    task = make_task(model)
    accuracy = None
    if task.is_protonet:
        if train is None or test is None:
            raise ValueError(
                f"{name} is a ProtoNet: it is scored with support sets from a training split, "
                "so pass a dataset name or .npz file as the data, not tensors"
            )
        queries = test if limit is None else test.subset(torch.arange(len(y)))
        accuracy = digital_scorer(task, queries, train, seed=seed, support_draws=support_draws)
    if calibration is None and train is not None:
        calibration = calibration_images(train)
    result = compare_tensors(
        model,
        profile,
        x,
        y,
        drift_times=[parse_duration(t) for t in drift_times],
        draws=draws,
        accuracy=accuracy,
        batch_size=batch_size,
        seed=seed,
        align=align,
        calibration=calibration,
        name=name,
        data_desc=f"{data_desc}, {len(y)} images",
        verbose=verbose,
        device=device,
        equal_layers=equal_layers,
    )
    result["memsim_device"] = device
    result["scoring"] = "nearest prototype" if task.is_protonet else "top-1"
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "json": str(out / "compare.json"),
            "png": str(out / "compare.png"),
            "knobs": str(out / "untranslated.md"),
        }
        result["files"] = files
        (out / "untranslated.md").write_text(result["knob_report"], encoding="utf-8")
        plot(result, files["png"])
        Path(files["json"]).write_text(json.dumps(result, indent=2), encoding="utf-8")
        if verbose:
            print(f"wrote {files['json']}, {files['png']}, {files['knobs']}")
    return result


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Accuracy and relative output error vs drift time, both simulators (PNG).

    With several drift times: lines over a log time axis.  With one: one point per
    simulator side by side, since a log axis of one value has no scale to show.
    """
    from lab.plots import style  # first: it selects the headless backend

    plt = style.plt

    rows = result["times"]
    sims = (("memsim", "o", 0.94), ("aihwkit", "s", 1.06))
    fig, axes = plt.subplots(1, 2, figsize=style.WIDE)
    for ax, key in zip(axes, ("acc", "rel_err")):
        for k, (sim, marker, shift) in enumerate(sims):
            means = [r[sim][f"{key}_mean"] for r in rows]
            stds = [r[sim][f"{key}_std"] for r in rows]
            color = style.color_for(sim)
            if len(rows) == 1:
                ax.errorbar(
                    [k], means, yerr=stds, fmt=marker, ms=7, capsize=4, color=color, label=sim
                )
            else:
                t = [max(r["t_s"], 1.0) for r in rows]
                ax.errorbar(
                    [v * shift for v in t],  # side by side, so that the error bars do not overlap
                    means,
                    yerr=stds,
                    marker=marker,
                    capsize=3,
                    color=color,
                    label=sim,
                )
        if len(rows) == 1:
            ax.set_xticks([0, 1], [s for s, _, _ in sims])
            ax.set_xlim(-0.6, 1.6)
            ax.set_xlabel(f"time after programming: {rows[0]['label']}")
        else:
            ax.set_xscale("log")
            ax.set_xlabel("time after programming (s)")
            ax.set_xticks([max(r["t_s"], 1.0) for r in rows], [r["label"] for r in rows])
            ax.minorticks_off()  # the labelled times are the only ticks
    axes[0].axhline(result["digital_accuracy"], **style.DIGITAL, label="digital (no chip)")
    axes[0].set_ylabel(f"accuracy (%, bars: std over {result['draws']} draws)")
    axes[1].set_ylabel("relative output error vs digital")
    for ax in axes:
        ax.grid(alpha=style.GRID_ALPHA)
        ax.legend(fontsize=style.LEGEND_SIZE)
    fig.suptitle(
        f"{result['model']} on {result['profile']}: memsim vs aihwkit ({result['draws']} draws)"
    )
    style.save(fig, path)
