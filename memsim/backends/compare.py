r"""Side-by-side comparison of memsim and IBM aihwkit on one model, profile and test tensors.

For every drift time and every programming draw, the same trained model is deployed
through memsim (:func:`memsim.convert` / :func:`memsim.program` / :func:`memsim.drift`) and
through aihwkit (:mod:`memsim.backends.aihwkit`: ``convert_to_analog``,
``program_analog_weights``, ``drift_analog_weights``) and evaluated on the same inputs.
Reported per drift time, for both: accuracy (mean ± std over draws), relative output error
against the digital model ``||y - y_digital|| / ||y_digital||`` over all outputs, and wall
time of the inference pass and of programming + drifting.

By default memsim runs the *aligned* profile (:func:`memsim.backends.aihwkit.aligned_profile`):
the profile restricted to what aihwkit can express, so that both codes model the same
physics.  ``align=False`` runs memsim with the full profile instead; the knob table then
lists what aihwkit leaves out.

``nn.MultiheadAttention`` and the transformer layers are rebuilt first for both sides
(:func:`memsim.transformer.restructure`), so that aihwkit maps the same query, key, value
and output projections that memsim does.

Both sides also simulate the same layers: what aihwkit cannot map (grouped and depthwise
convolutions, :func:`memsim.backends.aihwkit.aihwkit_digital_layers`) stays digital on
memsim's side too, and the output says so first.  ``equal_layers=False`` (``memsim compare
--unequal-layers``) maps them onto memsim's tiles only: an unequal comparison.

This module takes a model and tensors; checkpoints, datasets, ProtoNet support sets and
the output files are the experiment layer's (:mod:`lab.compare`, ``memsim compare``).
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import api
from ..layers import analog_layers
from ..overrides import LayerProfiles, resolve_layer_profiles
from ..periphery import DAC
from ..profiles import DeviceProfile, load_profile
from ..transformer import restructure

Accuracy = Callable[[nn.Module], float]
"""Accuracy in percent of a deployed (or the digital) model; default: top-1 on ``(x, y)``."""


def duration_label(t_s: float) -> str:
    """Short label for a time in seconds (``3600.0 -> "1h"``)."""
    units = (
        ("y", 365 * 86400.0),
        ("w", 7 * 86400.0),
        ("d", 86400.0),
        ("h", 3600.0),
        ("min", 60.0),
        ("s", 1.0),
    )
    for unit, seconds in units:
        n = t_s / seconds
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}{unit}"
    return f"{t_s:g}s"


@torch.no_grad()
def _logits(model: nn.Module, x: Tensor, batch_size: int) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return out, time.perf_counter() - t0


def _top1(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean()) * 100.0


def _rel_err(out: Tensor, ref: Tensor) -> float:
    return float((out - ref).norm() / ref.norm().clamp(min=1e-30))


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def compare(
    model: nn.Module,
    profile: DeviceProfile | str,
    x: Tensor,
    y: Tensor | None = None,
    *,
    drift_times: Sequence[float] = (3600.0, 86400.0),
    draws: int = 10,
    accuracy: Accuracy | None = None,
    batch_size: int = 1000,
    seed: int = 0,
    align: bool = True,
    calibration: Tensor | None = None,
    name: str | None = None,
    data_desc: str = "tensors",
    verbose: bool = True,
    device: torch.device | str = "cpu",
    equal_layers: bool = True,
    layer_profiles: LayerProfiles | None = None,
) -> dict[str, Any]:
    """Run one model and profile through memsim and aihwkit and compare them.

    Args:
        model: The trained digital model.
        profile: memsim profile, name or JSON path.
        x: Test inputs (one batch dimension).
        y: Test labels for the default top-1 accuracy; unused when ``accuracy`` is given.
        drift_times: Times after programming, in seconds.
        draws: Programming draws (seeds ``seed .. seed + draws - 1``) per simulator.
        accuracy: How a model is scored, in percent (default: top-1 of its outputs on
            ``x`` against ``y``).  Called on the digital model, on memsim's chip and on
            aihwkit's model, so it must draw any randomness (support sets) the same way
            each time.
        batch_size: Inference batch size (same for both).
        seed: First programming seed.
        align: Run memsim with :func:`~memsim.backends.aihwkit.aligned_profile` (like for
            like); ``False``: memsim runs the full profile.
        calibration: Batch for memsim's calibrated DAC/ADC ranges (default: the first
            ``batch_size`` inputs); ignored when the profile calibrates nothing.
        name: Model label in the result (default: its class name).
        data_desc: Description of the test data, for the result.
        verbose: Print the table (and progress) to stdout.
        device: Where memsim's chip runs (``cpu``, ``cuda``, ``cuda:N``); the digital
            reference and aihwkit run on the CPU.  Chip seeds give the same chip on any
            device, because memsim draws its noise on the CPU.  ``accuracy`` must accept
            a model on ``device`` (``lab.fitness.scoring.digital_scorer`` does).
        equal_layers: Keep digital on memsim's side the layers aihwkit cannot map, so
            that both simulate the same layers (default); ``False`` maps them onto
            memsim's tiles only (an unequal comparison, said in the output).
        layer_profiles: Per-layer profiles (as for :func:`memsim.convert`), given to both
            simulators: memsim's layer runs its own profile, aihwkit's its own
            ``rpu_config``; with ``align`` each layer's profile is aligned on its own.

    Returns:
        The result as a JSON-able dict (``digital_accuracy``, ``times``, knobs, layers).

    """
    from . import aihwkit as ab

    name = name or type(model).__name__
    # attention and transformer layers rebuilt around nn.Linear projections for both
    # simulators: aihwkit then maps q/k/v/out like memsim does, and no fused fast path
    # reads their weights as tensors (a copy; the caller's model is untouched)
    model = restructure(model).eval()
    base = load_profile(profile)
    ms_profile, aligned = ab.aligned_profile(base) if align else (base, [])
    times = [float(t) for t in drift_times]
    if draws < 1 or not times:
        raise ValueError("need draws >= 1 and at least one drift time")
    if accuracy is None and y is None:
        raise ValueError("give the labels y or an accuracy function")
    calib = x[:batch_size] if calibration is None else calibration
    unmapped = ab.aihwkit_digital_layers(model, ms_profile)
    both_digital = [r.name for r in unmapped] if equal_layers else []
    # one profile object per layer, aligned on its own, by exact module name for both sides
    per_layer: dict[str, DeviceProfile] = {}
    if layer_profiles:
        names = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        for n, p in zip(names, resolve_layer_profiles(base, names, layer_profiles), strict=True):
            if p is not base:
                per_layer[n] = ab.aligned_profile(p)[0] if align else p
    ms_layers = {n: p for n, p in per_layer.items() if n not in both_digital}
    if verbose and unmapped:
        print(_layers_line(unmapped, equal_layers), flush=True)
    where = torch.device(device)
    # memsim's side on its device: a copy of the model, the inputs and the calibration batch
    ms_model = model if where.type == "cpu" else copy.deepcopy(model).to(where)
    ms_x, ms_calib = x.to(where), calib.to(where)

    def score(m: nn.Module, inputs: Tensor = x) -> tuple[float, float, float]:
        out, dt = _logits(m, inputs, batch_size)
        out = out.cpu()
        acc = accuracy(m) if accuracy is not None else _top1(out, y)
        return acc, _rel_err(out, ref), dt

    ref, t_digital = _logits(model, x, batch_size)
    acc_digital = accuracy(model) if accuracy is not None else _top1(ref, y)
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
            chip = api.convert(
                ms_model, ms_profile, seed=s, digital=both_digital, layer_profiles=ms_layers
            )
        else:
            api.program(chip, seed=s)
        if api.needs_calibration(chip):
            api.calibrate(chip, ms_calib)
        prog_ms = time.perf_counter() - t0
        if dep is None:
            dac_ranges = None
            if any(DAC(p.dac).needs_calibration for p in (ms_profile, *per_layer.values())):
                # aihwkit gets memsim's calibrated per-layer input ranges of the first draw.
                dac_ranges = {n: float(layer.tiles.dac_range) for n, layer in analog_layers(chip)}
            t0 = time.perf_counter()
            dep = ab.convert(
                model, ms_profile, seed=s, dac_ranges=dac_ranges, layer_profiles=per_layer
            )
        else:
            t0 = time.perf_counter()
            dep.program(s)
        prog_ai = time.perf_counter() - t0
        for t in times:
            t0 = time.perf_counter()
            api.drift(chip, t)
            prep = prog_ms + time.perf_counter() - t0
            acc, rel, dt = score(chip, ms_x)
            r = rec["memsim"][t]
            r["acc"].append(acc), r["rel"].append(rel), r["infer_s"].append(dt)
            r["prepare_s"].append(prep)

            t0 = time.perf_counter()
            dep.drift(t)
            prep = prog_ai + time.perf_counter() - t0
            acc, rel, dt = score(dep.model)
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
    assert dep is not None and chip is not None
    if both_digital:
        note = "aihwkit supports one group only: digital (exact) on both sides"
        dep.layers = [
            dataclasses.replace(r, memsim="digital", note=f"{r.note.split(':')[0]}: {note}")
            if r.name in both_digital
            else r
            for r in dep.layers
        ]

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
        "layer_profiles": {n: p.model_dump(mode="json") for n, p in per_layer.items()},
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
        "equal_layers": equal_layers,
        "digital_both_sides": both_digital,
        "digital_aihwkit_only": [r.name for r in unmapped if r.name not in both_digital],
        "memsim_analog_layers": [n for n, _ in analog_layers(chip)],
        "versions": {"torch": torch.__version__, "aihwkit": aihwkit.__version__},
    }
    result["knob_report"] = knob_report(result, dep)
    if verbose:
        print(format_table(result))
    return result


def _layers_line(unmapped: Sequence[Any], equal_layers: bool) -> str:
    """The first line of the output when aihwkit cannot map every layer."""
    what = ", ".join(f"{r.name} ({r.note.split(':')[0]})" for r in unmapped)
    if equal_layers:
        return (
            f"digital on both sides (aihwkit cannot map them, so memsim keeps them digital "
            f"too): {what}; memsim compare --unequal-layers maps them onto memsim's tiles only"
        )
    return f"UNEQUAL LAYERS: digital on the aihwkit side only, on tiles on memsim's side: {what}"


def knob_report(result: dict[str, Any], dep: Any) -> str:
    """Markdown: the alignment, the knobs aihwkit does not translate exactly, the layers."""
    from . import aihwkit as ab

    lines = [f"# memsim vs aihwkit: {result['model']}, profile {result['profile']}", ""]
    if result.get("digital_both_sides"):
        lines += [
            "Digital on both sides (aihwkit cannot map them): "
            + ", ".join(f"`{n}`" for n in result["digital_both_sides"]),
            "",
        ]
    if result.get("digital_aihwkit_only"):
        lines += [
            "**Unequal layers**: digital on the aihwkit side only, on tiles on memsim's side: "
            + ", ".join(f"`{n}`" for n in result["digital_aihwkit_only"]),
            "",
        ]
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
    lines = [head]
    if result.get("digital_both_sides"):
        lines.append(f"digital on both sides: {', '.join(result['digital_both_sides'])}")
    if result.get("digital_aihwkit_only"):
        lines.append(
            "UNEQUAL LAYERS, digital on the aihwkit side only: "
            + ", ".join(result["digital_aihwkit_only"])
        )
    lines.append(cols)
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
    return "\n".join(lines)
