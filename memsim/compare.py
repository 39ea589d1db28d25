r"""Side-by-side comparison of memsim and IBM aihwkit on one model, profile and test set.

For every drift time and every programming draw, the same trained model is deployed
through memsim (:func:`memsim.convert` / :func:`memsim.program` / :func:`memsim.drift`) and
through aihwkit (:mod:`memsim.backends.aihwkit`: ``convert_to_analog``,
``program_analog_weights``, ``drift_analog_weights``) and evaluated on the same images.
Reported per drift time, for both: accuracy (mean ± std over draws), relative output error
against the digital model ``||y - y_digital|| / ||y_digital||`` over all logits, and wall
time of the inference pass and of programming + drifting.

By default memsim runs the *aligned* profile (:func:`memsim.backends.aihwkit.aligned_profile`):
the profile restricted to what aihwkit can express, so that both codes model the same
physics.  ``align=False`` runs memsim with the full profile instead; the knob table then lists
what aihwkit leaves out.

Usage::

    python -m memsim.compare CHECKPOINT --profile pcm_joshi2020 --drift 1h 1d --draws 10 \\
        --data mnist --out runs/compare
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import api
from .layers import analog_layers
from .profiles import DeviceProfile, RangeMode, load_profile

__all__ = [
    "SMALL_ARCHS",
    "add_arguments",
    "compare",
    "format_table",
    "load_model",
    "main",
    "parse_duration",
    "plot",
    "reference_model",
    "run",
    "save_model",
    "train_classifier",
]

SMALL_ARCHS = ("mlp", "lenet5")
"""Architectures of :mod:`models.small` that :func:`load_model` rebuilds by name."""

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

    ``m`` is minutes and ``y`` 365 days.
    """
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"bad duration {text!r}: use a number of seconds or 30s/10min/1h/1d/1y")
    return float(m.group(1)) * _UNITS[m.group(2)]


def duration_label(t_s: float) -> str:
    """Short label for a time in seconds (``3600.0 -> "1h"``)."""
    for unit in ("y", "w", "d", "h", "min", "s"):
        n = t_s / _UNITS[unit]
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}{unit}"
    return f"{t_s:g}s"


# -- models ----------------------------------------------------------------------------------
def _build_small(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    from models import small

    return getattr(small, arch)(**kwargs)


def save_model(
    path: str | Path,
    arch: str,
    model: nn.Module,
    meta: dict[str, Any],
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` in the ``models.checkpoint`` layout (format 1) with ``arch`` by name.

    Used for the :mod:`models.small` networks, which the checkpoint registry does not list.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": 1,
        "arch": arch,
        "model_kwargs": model_kwargs or {},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_model(path: str | Path) -> nn.Module:
    """Load a checkpoint (``models.checkpoint`` format; ``mlp``/``lenet5`` by name too)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "arch" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path}: not a memsim checkpoint (a dict with 'arch' and 'state_dict')")
    arch, kwargs = payload["arch"], payload.get("model_kwargs") or {}
    if arch in SMALL_ARCHS:
        model = _build_small(arch, kwargs)
    else:
        from models.checkpoint import build_model

        model = build_model(arch, kwargs)
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def train_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int = 1,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
) -> nn.Module:
    """Train ``model`` in place with Adam and cross-entropy (no augmentation); returns it."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weight init of a freshly built model is the caller's
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
        raise ValueError(f"arch must be one of {SMALL_ARCHS}, got {arch!r}")
    n = len(train[1]) if limit is None else min(limit, len(train[1]))
    path = Path(cache_dir) / f"{arch}_{tag}_n{n}_e{epochs}_s{seed}.pt"
    if path.is_file():
        return load_model(path), path
    torch.manual_seed(seed)
    model = _build_small(arch, {})
    train_classifier(model, train[0][:n], train[1][:n], epochs=epochs, seed=seed)
    save_model(
        path, arch, model, {"dataset": tag, "train_images": n, "epochs": epochs, "seed": seed}
    )
    return model, path


# -- data ------------------------------------------------------------------------------------
def _resolve_data(test_data: Any, limit: int | None) -> tuple[Tensor, Tensor, str]:
    """``(images, labels, description)`` from tensors, a dataset, a name or an .npz path."""
    desc = "tensors"
    if isinstance(test_data, (str, Path)):
        text = str(test_data)
        if text.endswith(".npz"):
            from models.data import load_npz

            _, ds = load_npz(text)
        else:
            from models.data import load_dataset

            _, ds = load_dataset(text)
        x, y, desc = ds.images, ds.labels, f"{ds.name} test ({ds.source})"
    elif hasattr(test_data, "tensors"):
        x, y = test_data.tensors[0], test_data.tensors[1]
        desc = getattr(test_data, "name", "dataset")
    else:
        x, y = test_data
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x, y, f"{desc}, {len(y)} images"


# -- evaluation ------------------------------------------------------------------------------
@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, batch_size: int) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return out, time.perf_counter() - t0


def _score(logits: Tensor, y: Tensor, ref: Tensor) -> tuple[float, float]:
    acc = float((logits.argmax(1) == y).float().mean()) * 100.0
    rel = float((logits - ref).norm() / ref.norm().clamp(min=1e-30))
    return acc, rel


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def _needs_calibration(profile: DeviceProfile) -> bool:
    return (profile.dac.bits is not None and profile.dac.mode == RangeMode.calibrated) or (
        profile.adc.bits is not None and profile.adc.mode == RangeMode.calibrated
    )


def compare(
    checkpoint_or_model: str | Path | nn.Module,
    profile: DeviceProfile | str,
    drift_times: Sequence[float | str] = (3600.0, 86400.0),
    draws: int = 10,
    test_data: Any = "mnist",
    out_dir: str | Path | None = None,
    *,
    batch_size: int = 1000,
    seed: int = 0,
    align: bool = True,
    limit: int | None = None,
    calibration: Tensor | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Run one model and profile through memsim and aihwkit and compare them.

    Args:
        checkpoint_or_model: A trained model or a checkpoint path (:func:`load_model`).
        profile: memsim profile, name or JSON path.
        drift_times: Times after programming, seconds or strings like ``"1h"``.
        draws: Programming draws (seeds ``seed .. seed + draws - 1``) per simulator.
        test_data: ``(images, labels)``, a TensorDataset, a dataset name of
            :func:`models.data.load_dataset` or an ``.npz`` path.
        out_dir: Where ``compare.json``, ``compare.png`` and ``untranslated.md`` go
            (nothing is written when ``None``).
        batch_size: Inference batch size (same for both).
        seed: First programming seed.
        align: Run memsim with :func:`~memsim.backends.aihwkit.aligned_profile` (like for
            like); ``False``: memsim runs the full profile.
        limit: Use only the first ``limit`` test images.
        calibration: Batch for memsim's calibrated DAC/ADC ranges (default: the first
            test batch); ignored when the profile calibrates nothing.
        verbose: Print the table (and progress) to stdout.

    Returns:
        The result dict that is also written as ``compare.json``.

    """
    from .backends import aihwkit as ab

    model = checkpoint_or_model
    name = type(model).__name__
    if not isinstance(model, nn.Module):
        name = Path(str(model)).name
        model = load_model(model)
    model = model.eval()
    base = load_profile(profile)
    ms_profile, aligned = ab.aligned_profile(base) if align else (base, [])
    times = [parse_duration(t) for t in drift_times]
    if draws < 1 or not times:
        raise ValueError("need draws >= 1 and at least one drift time")
    x, y, data_desc = _resolve_data(test_data, limit)
    calib = x[:batch_size] if calibration is None else calibration

    ref, t_digital = _logits(model, x, batch_size)
    acc_digital, _ = _score(ref, y, ref)
    rec: dict[str, dict[float, dict[str, list[float]]]] = {
        sim: {t: {"acc": [], "rel": [], "infer_s": [], "prepare_s": []} for t in times}
        for sim in ("memsim", "aihwkit")
    }

    chip = None
    dep = None
    for d in range(draws):
        s = seed + d
        # memsim: one conversion, then re-programming on the same chip for later draws.
        t0 = time.perf_counter()
        if chip is None:
            chip = api.convert(model, ms_profile, seed=s)
        else:
            api.program(chip, seed=s)
        if _needs_calibration(ms_profile):
            api.calibrate(chip, calib)
        prog_ms = time.perf_counter() - t0
        if dep is None:
            dac_ranges = None
            if ms_profile.dac.mode == RangeMode.calibrated and ms_profile.dac.bits is not None:
                # aihwkit gets memsim's calibrated per-layer input ranges of the first draw.
                dac_ranges = {n: float(layer.dac_range) for n, layer in analog_layers(chip)}
            t0 = time.perf_counter()
            dep = ab.convert(model, ms_profile, seed=s, dac_ranges=dac_ranges)
        else:
            t0 = time.perf_counter()
            dep.program(s)
        prog_ai = time.perf_counter() - t0
        for t in times:
            t0 = time.perf_counter()
            api.drift(chip, t)
            prep = prog_ms + time.perf_counter() - t0
            out, dt = _logits(chip, x, batch_size)
            acc, rel = _score(out, y, ref)
            r = rec["memsim"][t]
            r["acc"].append(acc), r["rel"].append(rel), r["infer_s"].append(dt)
            r["prepare_s"].append(prep)

            t0 = time.perf_counter()
            dep.drift(t)
            prep = prog_ai + time.perf_counter() - t0
            out, dt = _logits(dep.model, x, batch_size)
            acc, rel = _score(out, y, ref)
            r = rec["aihwkit"][t]
            r["acc"].append(acc), r["rel"].append(rel), r["infer_s"].append(dt)
            r["prepare_s"].append(prep)
        if verbose:
            last = times[-1]
            print(
                f"draw {d + 1}/{draws}: t={duration_label(last)} memsim "
                f"{rec['memsim'][last]['acc'][-1]:.2f}% aihwkit "
                f"{rec['aihwkit'][last]['acc'][-1]:.2f}%",
                flush=True,
            )
    assert dep is not None

    rows = []
    for t in times:
        row: dict[str, Any] = {"t_s": t, "label": duration_label(t)}
        for sim in ("memsim", "aihwkit"):
            r = rec[sim][t]
            acc_m, acc_s = _stats(r["acc"])
            rel_m, rel_s = _stats(r["rel"])
            row[sim] = {
                "acc_mean": acc_m,
                "acc_std": acc_s,
                "acc": r["acc"],
                "rel_err_mean": rel_m,
                "rel_err_std": rel_s,
                "rel_err": r["rel"],
                "infer_s_mean": statistics.fmean(r["infer_s"]),
                "prepare_s_mean": statistics.fmean(r["prepare_s"]),
            }
        row["delta_acc"] = row["memsim"]["acc_mean"] - row["aihwkit"]["acc_mean"]
        row["speedup"] = row["aihwkit"]["infer_s_mean"] / max(row["memsim"]["infer_s_mean"], 1e-12)
        rows.append(row)

    import aihwkit

    result: dict[str, Any] = {
        "model": name,
        "profile": base.name,
        "aligned": align,
        "alignment": [c.as_dict() for c in aligned],
        "memsim_profile": ms_profile.model_dump(mode="json"),
        "draws": draws,
        "seed": seed,
        "data": data_desc,
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "digital_accuracy": acc_digital,
        "digital_infer_s": t_digital,
        "times": rows,
        "knobs": [k.as_dict() for k in dep.translation.knobs],
        "untranslated": [k.as_dict() for k in dep.translation.untranslated()],
        "layers": [r.as_dict() for r in dep.layers],
        "versions": {"torch": torch.__version__, "aihwkit": aihwkit.__version__},
    }
    if verbose:
        print(format_table(result))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "json": str(out / "compare.json"),
            "png": str(out / "compare.png"),
            "knobs": str(out / "untranslated.md"),
        }
        result["files"] = files
        (out / "untranslated.md").write_text(_knob_report(result, dep), encoding="utf-8")
        plot(result, files["png"])
        Path(files["json"]).write_text(json.dumps(result, indent=2), encoding="utf-8")
        if verbose:
            print(f"wrote {files['json']}, {files['png']}, {files['knobs']}")
    return result


def _knob_report(result: dict[str, Any], dep: Any) -> str:
    from .backends import aihwkit as ab

    lines = [f"# memsim vs aihwkit: {result['model']}, profile {result['profile']}", ""]
    if result["alignment"]:
        lines += [
            "## memsim side aligned to what aihwkit can express",
            "",
            "| profile field | profile value | memsim ran with | why |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{c['field']}` | "
            + " | ".join(ab.md_cell(c[k]) for k in ("value", "aihwkit", "note"))
            + " |"
            for c in result["alignment"]
        ]
        lines.append("")
    lines += [
        "## knobs not translated exactly",
        "",
        dep.translation.table(),
        "",
        "## layers",
        "",
        dep.layer_table(),
        "",
    ]
    return "\n".join(lines)


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a fixed-width text table."""
    head = (
        f"model {result['model']} | profile {result['profile']}"
        f"{' (aligned)' if result['aligned'] else ''} | {result['draws']} draws | "
        f"{result['data']} | digital {result['digital_accuracy']:.2f}% | "
        f"threads {result['threads']}"
    )
    cols = (
        f"{'t':>6} {'memsim acc %':>14} {'aihwkit acc %':>14} {'delta':>6} "
        f"{'memsim relerr':>14} {'aihwkit relerr':>15} {'memsim s':>9} {'aihwkit s':>10} "
        f"{'speedup':>8}"
    )
    lines = [head, cols]
    for r in result["times"]:
        m, a = r["memsim"], r["aihwkit"]
        lines.append(
            f"{r['label']:>6} {m['acc_mean']:>7.2f} ± {m['acc_std']:<4.2f} "
            f"{a['acc_mean']:>7.2f} ± {a['acc_std']:<4.2f} {r['delta_acc']:>+6.2f} "
            f"{m['rel_err_mean']:>6.4f} ± {m['rel_err_std']:<5.4f} "
            f"{a['rel_err_mean']:>7.4f} ± {a['rel_err_std']:<5.4f} "
            f"{m['infer_s_mean']:>9.3f} {a['infer_s_mean']:>10.3f} {r['speedup']:>7.1f}x"
        )
    n_un = len(result["untranslated"])
    lines.append(
        f"knobs not translated exactly: {n_un}"
        + (" (" + ", ".join(k["field"] for k in result["untranslated"]) + ")" if n_un else "")
    )
    digital = [r["name"] for r in result["layers"] if r["aihwkit"] == "digital"]
    if digital:
        lines.append(f"digital on the aihwkit side: {', '.join(digital)}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> None:
    """Accuracy and relative output error vs drift time, both simulators (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["times"]
    t = [max(r["t_s"], 1.0) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for sim, marker, shift in (("memsim", "o", 0.94), ("aihwkit", "s", 1.06)):
        for ax, key in zip(axes, ("acc", "rel_err")):
            ax.errorbar(
                [v * shift for v in t],  # side by side, so that the error bars do not overlap
                [r[sim][f"{key}_mean"] for r in rows],
                yerr=[r[sim][f"{key}_std"] for r in rows],
                marker=marker,
                capsize=3,
                label=sim,
            )
    axes[0].axhline(result["digital_accuracy"], color="grey", ls="--", label="digital")
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("relative output error vs digital")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("time after programming (s)")
        ax.set_xticks(t, [r["label"] for r in rows])
        ax.legend()
    fig.suptitle(
        f"{result['model']} on {result['profile']}: memsim vs aihwkit ({result['draws']} draws)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- command line ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``memsim compare`` arguments to ``parser`` (for the CLI subcommand)."""
    parser.add_argument("checkpoint", help="checkpoint path (models.checkpoint format)")
    parser.add_argument("--profile", required=True, help="profile name or JSON path")
    parser.add_argument(
        "--drift",
        nargs="+",
        default=["1h", "1d"],
        help="times after programming: seconds or 30s/10min/1h/1d/1y",
    )
    parser.add_argument("--draws", type=int, default=10, help="programming draws (default 10)")
    parser.add_argument(
        "--data", default="mnist", help="dataset name (models.data) or .npz path (default mnist)"
    )
    parser.add_argument("--limit", type=int, default=None, help="use the first N test images")
    parser.add_argument("--out", default="runs/compare", help="output folder")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--no-align",
        dest="align",
        action="store_false",
        help="run memsim with the full profile (not aligned to aihwkit)",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`compare` from parsed :func:`add_arguments` arguments."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return compare(
        args.checkpoint,
        args.profile,
        args.drift,
        args.draws,
        args.data,
        args.out,
        batch_size=args.batch_size,
        seed=args.seed,
        align=args.align,
        limit=args.limit,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m memsim.compare CHECKPOINT --profile NAME [--drift ...] [--draws N]``."""
    parser = argparse.ArgumentParser(
        prog="memsim compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run(args)
    except ImportError as exc:
        print(f"memsim compare: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
