"""How much a chip's own defects cost: the headroom of any chip-in-the-loop method.

For a finished experiment run folder, every scored model (the baseline, and the
``weights/<method>.pt`` of ga, qat and defect_aware_oracle if present) is re-scored on the
fitness chip and on a *defect-free* twin of that chip: the same profile and the same
programming/read-noise draws, but no stuck-at devices and no device-to-device variation.
The difference is what the chip's fixed defects cost those weights; a method that adapts
the weights to this one chip (the GA's chip-in-the-loop fitness) can win back at most
about that much over weights that ignore the chip, unless it is also a better trainer.

Usage::

    .venv/bin/python bench/chip_headroom.py runs/ga/chip-in-the-loop-<stamp> --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import memsim  # noqa: E402
from lab.experiment.config import ExperimentConfig  # noqa: E402
from lab.experiment.context import RunContext, shift_seeds  # noqa: E402
from lab.experiment.inputs import Inputs, prepare_inputs  # noqa: E402
from lab.fitness.scoring import paired_delta  # noqa: E402

WEIGHTS = {
    "baseline": None,
    "ga": "weights/ga.pt",
    "qat": "weights/qat.pt",
    "defect_aware_oracle": "weights/defect_aware_oracle.pt",
}
"""Scored models and their weight files in a run folder (the baseline is the input's)."""


def defect_free(profile: memsim.DeviceProfile) -> memsim.DeviceProfile:
    """``profile`` without stuck-at devices and device-to-device variation."""
    data = profile.model_dump(mode="json")
    data["name"] = f"{profile.name}-defect-free"
    data["faults"].update(stuck_at_gmin_rate=0.0, stuck_at_gmax_rate=0.0, d2d_sigma=0.0)
    return memsim.DeviceProfile.model_validate(data)


def _load_genes(path: Path, inputs: Inputs) -> torch.Tensor:
    """The gene weights of a ``weights/<method>.pt`` checkpoint of a run folder."""
    from models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return inputs.genome.from_module(model)


def main(argv: list[str] | None = None) -> None:
    """Score the run's models on its chip and on the defect-free twin; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--run-root", default="runs")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = ExperimentConfig.model_validate(json.loads((args.run_dir / "config.json").read_text()))
    ctx = RunContext(run_root=args.run_root, data_root=args.data_root, echo=lambda _msg: None)
    inputs = prepare_inputs(shift_seeds(cfg, ctx.seed_offset), ctx)
    ev, chip = cfg.evaluation, cfg.chip.chip_seed
    twin = defect_free(inputs.profile)
    print(
        f"{args.run_dir.name}: {inputs.profile.name} chip {chip} vs its defect-free twin, "
        f"{len(inputs.test)} test images, {ev.draws} draws x {ev.support_draws} support sets "
        "(paired); mean ± std %, delta mean ± s.e. pp"
    )
    print("| weights | on chip | defect-free | defects cost |")
    print("|---|---|---|---|")
    for name, file in WEIGHTS.items():
        if file is not None and not (args.run_dir / file).is_file():
            continue
        genes = inputs.base_genes if file is None else _load_genes(args.run_dir / file, inputs)
        scores = {}
        for label, prof in (("chip", inputs.profile), ("free", twin)):
            scores[label] = inputs.score(genes, ev, chip_seed=chip, profile=prof)["t0"]
        d = paired_delta(scores["free"].accuracies, scores["chip"].accuracies)
        print(
            f"| {name} | {scores['chip']} | {scores['free']} | "
            f"{d['mean_pp']:+.2f} ± {d['sem_pp']:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
