"""``python -m lab.studies.vit_cifar10``: the small ViT on CIFAR-10, a Table-1-style row.

Each replicate trains :func:`models.vit.vit_cifar` (4 pre-norm blocks of width 64, 4x4
patches: 64 patch tokens and the class token) from its own seed on a stratified subset
of the CIFAR-10 training split (AdamW, cosine schedule, horizontal flips; digital
training, no noise), then scores it on a stratified subset of the test split:

* digital (no chip);
* on ``rram_wan2022`` right after programming;
* on ``pcm_joshi2020`` 1 hour, 1 day and 1 year after programming (the profile's drift
  and its compensation, :func:`memsim.drift`);
* through :func:`lab.compare.compare` on ``pcm_joshi2020`` at the same times: memsim and
  IBM aihwkit, like for like (aihwkit maps the same split ``q/k/v_proj``, ``out_proj``
  and feed-forward ``nn.Linear`` layers);

and measures :func:`memsim.cost_report` of the ``rram_wan2022`` chip: energy per image
and per token by term (array, DAC, ADC, digital periphery, the attention products).
The report gives the mean and a 95 % t-interval over replicates.  With ``--record NAME``
the run is written to ``results/NAME.json`` (:func:`lab.studies.published.record`) and
rendered into ``docs/results.md``; ``--plot`` draws where the energy goes.

The scale (training images, epochs, test images) is a command-line choice and is
recorded with the results; nothing here is trained on a GPU.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import memsim
from lab.studies.replicates import t_interval
from models.data import (
    ImageDataset,
    calibration_images,
    load_dataset,
    resolve_data_root,
    stratified_subset,
)
from models.evaluate import classifier_accuracy, draw_accuracies
from models.vit import vit_cifar

DRIFT = (("1h", 3600.0), ("1d", 86400.0), ("1y", 365 * 86400.0))
"""The drift times of the ``pcm_joshi2020`` columns."""

COLUMNS = ("digital", "rram_wan2022", *(f"pcm_joshi2020 {label}" for label, _ in DRIFT))
"""The accuracy columns of the row, in order."""

TERMS = ("array_J", "dac_J", "adc_J", "digital_J")


def train_vit(
    train: ImageDataset, *, seed: int, epochs: int, batch_size: int = 128, lr: float = 2e-3
) -> tuple[nn.Module, list[float], float]:
    """Train a fresh :func:`vit_cifar` digitally; ``(model in eval mode, losses, seconds)``."""
    torch.manual_seed(seed)
    model = vit_cifar()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch_size):
            idx = order[i : i + batch_size]
            x, y = train.images[idx], train.labels[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    return model.eval(), losses, time.perf_counter() - start


def chip_accuracies(
    model: nn.Module, test: ImageDataset, calibration: torch.Tensor, *, draws: int, seed: int
) -> dict[str, list[float]]:
    """Accuracies (%) of ``model`` on both profiles, ``draws`` chips each, per column."""

    def score(chip: nn.Module, _gen: Any) -> list[float]:
        with torch.no_grad():
            return [100.0 * classifier_accuracy(chip, test, batch_size=500)]

    def common(times: tuple[float | None, ...], profile: str) -> dict[float | None, list[float]]:
        return draw_accuracies(
            model,
            profile,
            score,
            draws=draws,
            program_seed=lambda i: 100 * seed + i,
            chip_seed=lambda i: 100 * seed + 50 + i,
            generator=lambda i, t: None,
            times=times,
            calibration=calibration,
        )

    out = {"rram_wan2022": common((None,), "rram_wan2022")[None]}
    pcm = common(tuple(t for _, t in DRIFT), "pcm_joshi2020")
    for label, t in DRIFT:
        out[f"pcm_joshi2020 {label}"] = pcm[t]
    return out


def energy(model: nn.Module, images: torch.Tensor, *, tokens: int) -> dict[str, Any]:
    """Energy per image and per token of ``model`` on ``rram_wan2022`` by term and part."""
    chip = memsim.convert(model, "rram_wan2022", seed=0)
    memsim.calibrate(chip, images)
    report = memsim.cost_report(chip.eval(), images)
    by_term = {t: report.term(t) for t in TERMS}
    attn = sum(r.digital_J for r in report.layers if r.kind == "attn")
    by_term["attention_J"] = attn  # the attention products: part of digital_J
    by_term["digital_periphery_J"] = by_term["digital_J"] - attn
    parts: dict[str, float] = {}
    for r in report.layers:
        parts[part_of(r.name, r.kind)] = parts.get(part_of(r.name, r.kind), 0.0) + r.energy_J
    return {
        "profile": report.profile,
        "tokens": tokens,
        "per_image_J": report.energy_J,
        "per_token_J": report.energy_J / tokens,
        "terms_per_image_J": by_term,
        "parts_per_image_J": parts,
        "macs_per_image": report.macs,
        "report": report.to_dict(),
    }


def part_of(name: str, kind: str) -> str:
    """Which part of the ViT a cost-report row belongs to."""
    if kind == "attn":
        return "attention QK/AV (digital)"
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("q_proj", "k_proj", "v_proj"):
        return "q/k/v projections"
    return {
        "out_proj": "out projection",
        "linear1": "MLP",
        "linear2": "MLP",
        "patch_embed": "patch embedding",
        "head": "head",
    }.get(leaf, leaf)


def compare_aihwkit(
    model: nn.Module, test: ImageDataset, calibration: torch.Tensor, *, draws: int, seed: int
) -> dict[str, Any]:
    """Accuracies through memsim and aihwkit on ``pcm_joshi2020`` (:func:`lab.compare.compare`)."""
    from lab.compare import compare

    result = compare(
        model,
        "pcm_joshi2020",
        drift_times=[t for _, t in DRIFT],
        draws=draws,
        test_data=(test.images, test.labels),
        calibration=calibration,
        batch_size=500,
        seed=100 * seed,
        verbose=False,
    )
    keep = ("digital_accuracy", "aligned", "draws", "untranslated", "digital_both_sides")
    out = {k: result[k] for k in keep}
    out["times"] = [
        {
            "label": r["label"],
            "t_s": r["t_s"],
            "memsim": r["memsim"]["acc"],
            "aihwkit": r["aihwkit"]["acc"],
        }
        for r in result["times"]
    ]
    return out


def run(
    *,
    replicates: int,
    train_size: int,
    test_size: int,
    epochs: int,
    draws: int,
    data_root: str | None = None,
    aihwkit: bool = True,
    echo: Any = print,
) -> dict[str, Any]:
    """Train and score every replicate; the results dict (see the module doc)."""
    root = resolve_data_root(data_root)
    train_full, test_full = load_dataset("cifar10", root=root)
    test = stratified_subset(test_full, test_size, seed=12345)
    reps: list[dict[str, Any]] = []
    for seed in range(replicates):
        train = stratified_subset(train_full, train_size, seed=seed)
        model, losses, seconds = train_vit(train, seed=seed, epochs=epochs)
        calib = calibration_images(train, seed=seed)
        with torch.no_grad():
            rep: dict[str, Any] = {"seed": seed, "train_s": round(seconds, 1)}
            rep["final_loss"] = statistics.fmean(losses[-20:])
            rep["accuracy"] = {"digital": [100.0 * classifier_accuracy(model, test)]}
            rep["accuracy"].update(chip_accuracies(model, test, calib, draws=draws, seed=seed))
        if aihwkit:
            rep["aihwkit"] = compare_aihwkit(model, test, calib, draws=draws, seed=seed)
        if seed == 0:
            with torch.no_grad():
                rep["energy"] = energy(model, test.images[:16], tokens=65)
        reps.append(rep)
        means = {c: statistics.fmean(rep["accuracy"][c]) for c in COLUMNS}
        echo(f"replicate {seed}: trained {seconds:.0f} s, " + ", ".join(
            f"{c} {v:.2f}" for c, v in means.items()))  # fmt: skip
    summary = {c: t_interval([statistics.fmean(r["accuracy"][c]) for r in reps]) for c in COLUMNS}
    if aihwkit:
        for i, (label, _) in enumerate(DRIFT):
            for sim in ("memsim", "aihwkit"):
                summary[f"compare {sim} {label}"] = t_interval(
                    [statistics.fmean(r["aihwkit"]["times"][i][sim]) for r in reps]
                )
    scale = {
        "model": "vit_cifar (dim 64, depth 4, heads 4, mlp 128, 4x4 patches, 65 tokens)",
        "train_images": train_size,
        "test_images": len(test),
        "epochs": epochs,
        "optimizer": "AdamW lr 2e-3 one-cycle, weight decay 0.05, batch 128, flips",
        "draws": draws,
        "replicates": replicates,
    }
    results = {"kind": "bench", "scale": scale, "replicates": reps, "summary": summary}
    results["text"] = render_text(results)
    return results


def _cell(s: dict[str, Any]) -> str:
    if s["ci95_low_pp"] is None:
        return f"{s['mean_pp']:.2f}"
    return f"{s['mean_pp']:.2f} [{s['ci95_low_pp']:.2f}, {s['ci95_high_pp']:.2f}]"


def render_text(results: dict[str, Any]) -> str:
    """The row, the aihwkit table and the energy breakdown as fixed-width text."""
    sc, s = results["scale"], results["summary"]
    lines = [
        f"ViT on CIFAR-10: {sc['train_images']} training images, {sc['epochs']} epochs, "
        f"{sc['test_images']} test images, {sc['replicates']} replicates x {sc['draws']} chips",
        "accuracy % (mean [95 % t-interval over replicates])",
    ]
    lines += [f"  {c:<20} {_cell(s[c])}" for c in COLUMNS]
    if "compare memsim 1h" in s:
        lines.append("pcm_joshi2020 through memsim compare (aligned profile), accuracy %")
        lines.append(f"  {'t':<4} {'memsim':>26} {'aihwkit':>26}")
        for label, _ in DRIFT:
            m, a = s[f"compare memsim {label}"], s[f"compare aihwkit {label}"]
            lines.append(f"  {label:<4} {_cell(m):>26} {_cell(a):>26}")
    lines.append("per replicate (seed: digital / rram / pcm 1h 1d 1y, train s)")
    for r in results["replicates"]:
        acc = " / ".join(f"{statistics.fmean(r['accuracy'][c]):.2f}" for c in COLUMNS)
        lines.append(f"  {r['seed']}: {acc}, {r['train_s']:.0f} s")
    e = next((r["energy"] for r in results["replicates"] if "energy" in r), None)
    if e is not None:
        lines.append(
            f"energy on {e['profile']} (replicate 0): {e['per_image_J'] * 1e9:.2f} nJ/image, "
            f"{e['per_token_J'] * 1e12:.1f} pJ/token ({e['tokens']} tokens)"
        )
        terms = e["terms_per_image_J"]
        for key, label in (("array_J", "array"), ("dac_J", "DAC"), ("adc_J", "ADC"),
                           ("digital_periphery_J", "digital periphery"),
                           ("attention_J", "attention QK/AV (digital)")):  # fmt: skip
            v = terms[key]
            lines.append(
                f"  {label:<26} {v * 1e9:8.3f} nJ/image {v / e['tokens'] * 1e12:9.2f} pJ/token "
                f"{100 * v / e['per_image_J']:5.1f} %"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: see ``--help``."""
    p = argparse.ArgumentParser(prog="python -m lab.studies.vit_cifar10", description=__doc__)
    p.add_argument("--replicates", type=int, default=3)
    p.add_argument("--train-size", type=int, default=8000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--draws", type=int, default=3)
    p.add_argument("--no-aihwkit", action="store_true", help="skip the aihwkit comparison")
    p.add_argument("--data-root", default=None)
    p.add_argument("--record", default=None, help="write results/NAME.json")
    p.add_argument("--plot", default=None, help="PNG of where the energy goes")
    args = p.parse_args(argv)
    from lab.run_folder import environment

    started, t0 = environment(), time.perf_counter()
    results = run(
        replicates=args.replicates,
        train_size=args.train_size,
        test_size=args.test_size,
        epochs=args.epochs,
        draws=args.draws,
        data_root=args.data_root,
        aihwkit=not args.no_aihwkit,
    )
    print(results["text"])
    if args.plot:
        from lab.plots.cost import plot_energy_per_token

        e = results["replicates"][0]["energy"]
        print(f"wrote {plot_energy_per_token(e, args.plot)}")
    if args.record:
        from lab.studies.published import record

        command = "python -m lab.studies.vit_cifar10 " + " ".join(argv or sys.argv[1:])
        path = record(args.record, results, command=command.strip(),
                      wall_time_s=time.perf_counter() - t0, started=started)  # fmt: skip
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
