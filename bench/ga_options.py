"""Effect of each GA improvement option on the chip-in-the-loop experiment.

Every variant is the chip-in-the-loop experiment (``experiments/chip_in_the_loop.toml``:
ProtoNet-MNIST, the paper-scale baseline, ``rram_1t1r_yao2020`` chip 11, tested on chip
11 and on chip 12) with the paper's GA settings, plus one option changed.  The GA is
shortened to ``--generations`` and the test split to ``--test-size`` images so that the
whole table runs in about an hour on one core.  Each variant has its own control (the
baseline QAT-fine-tuned for the GA's number of fine-tune steps), and all scores are
paired test-split draws (see :mod:`lab.fitness.scoring`).

Besides the test scores, the table shows the generation of the best-ever solution and the
last generation's best and mean validation fitness: how each option changes the search
even where the reported (test) result does not move.

Run folders go to ``<out>/<variant>/``; a rerun reuses finished variants and resumes an
unfinished one, so the script can be killed and restarted.

Usage::

    .venv/bin/python bench/ga_options.py --threads 1
    .venv/bin/python bench/ga_options.py --only paper,level_step --generations 4
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.experiment.config import load_config  # noqa: E402
from lab.experiment.context import RunContext  # noqa: E402
from lab.experiment.runner import run_experiment  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {},
    "tau_mean_1000": {"selection_tau": 1000.0, "sigmoid_center": "mean"},
    "draws_R3": {"fitness.draws": 3},
    "elitism_3": {"keep_elitism": 3},
    "level_step": {"mutation": "add_noise", "mutation_scale": "level_step"},
    "combined": {
        "selection_tau": 1000.0,
        "sigmoid_center": "mean",
        "fitness.draws": 3,
        "keep_elitism": 3,
        "mutation": "add_noise",
        "mutation_scale": "level_step",
    },
}
"""Changes to the config per variant (``paper``: none): ``[ga]`` keys, or ``table.key``."""


def _toml(value: Any) -> str:
    return json.dumps(value)  # TOML accepts JSON strings, numbers and arrays


def _finished(folder: Path) -> Path | None:
    done = sorted(folder.glob("*/results.json"))
    return done[-1].parent if done else None


def run_variant(
    name: str, args: argparse.Namespace, echo: Any = print
) -> tuple[dict[str, Any], Path]:
    """Run (or reuse, or resume) one variant; return its results and run folder."""
    folder = Path(args.out) / name
    done = _finished(folder)
    if done is not None:
        return json.loads((done / "results.json").read_text()), done
    overrides = [
        f"experiment.name={_toml('options-' + name)}",
        f"ga.generations={args.generations}",
        f"data.test_size={args.test_size}",
        "evaluation.drift_times_s=[]",
        f"chip.transfer_chip_seeds={_toml(args.transfer_chips)}",
        *(f"{k if '.' in k else 'ga.' + k}={_toml(v)}" for k, v in VARIANTS[name].items()),
    ]
    cfg = load_config(args.config, scale=args.scale, overrides=overrides)
    unfinished = sorted(p for p in folder.glob("*") if (p / "config.json").is_file())
    ctx = RunContext(
        run_root=args.run_root,
        data_root=args.data_root,
        progress=not args.no_progress,
        echo=echo,
    )
    return run_experiment(
        cfg, ctx, folder=folder, resume_dir=unfinished[-1] if unfinished else None
    )


def _entry(results: dict[str, Any], chip: int, model: str) -> dict[str, Any]:
    row = next(r for r in results["methods"] if r["method"] == model)
    return row["chips"][str(chip)]["by_time"]["t0"]


def _delta(results: dict[str, Any], chip: int, key: str) -> str:
    model, _, ref = key.partition("_minus_")
    d = _entry(results, chip, model)["paired_vs_" + ("reference" if ref == "qat" else ref)]
    return f"{d['mean_pp']:+.2f} ± {d['sem_pp']:.2f}"


def _pct(results: dict[str, Any], chip: int, model: str) -> str:
    s = _entry(results, chip, model)
    return f"{s['mean_pct']:.2f} ± {s['std_pct']:.2f}"


def main(argv: list[str] | None = None) -> None:
    """Run the variants and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "experiments" / "chip_in_the_loop.toml"))
    ap.add_argument("--scale", default="paper", choices=["quick", "paper"])
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--test-size", type=int, default=2000)
    ap.add_argument("--transfer-chips", type=int, nargs="*", default=[12])
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    ap.add_argument("--out", default="runs/ga_options")
    ap.add_argument("--run-root", default="runs")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    rows = []
    for name in names:
        results, run_dir = run_variant(name, args)
        run = json.loads((run_dir / "run.json").read_text())
        history = json.loads((run_dir / "recovery" / "ga" / "history.json").read_text())
        rows.append((name, results, history[-1], run["wall_time_s"].get("ga", float("nan"))))
        print(f"{name}: {run_dir}", flush=True)
    chip = rows[0][1]["fitness_chip"] if rows else None
    others = args.transfer_chips
    print(
        f"\nchip-in-the-loop options, {args.scale} baseline, G={args.generations}, "
        f"{args.test_size} test images; fitness chip {chip}; mean ± std (%), "
        "deltas mean ± s.e. of paired draws (pp)"
    )
    head = ["variant", "GA", "QAT", "GA - baseline", "GA - QAT"]
    head += [f"GA - QAT (chip {c})" for c in others]
    head += ["best-ever gen", "last gen: best / mean val %", "GA wall s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, res, last, wall in rows:
        cells = [
            name,
            _pct(res, chip, "ga"),
            _pct(res, chip, "qat"),
            _delta(res, chip, "ga_minus_baseline"),
            _delta(res, chip, "ga_minus_qat"),
        ]
        cells += [_delta(res, c, "ga_minus_qat") for c in others]
        cells += [
            str(res["ga"]["best_generation"]),
            f"{100 * last['best']:.2f} / {100 * last['mean']:.2f}",
            f"{wall:.0f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
