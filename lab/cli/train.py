"""``memsim train-baseline TASK [--scale quick|paper]``: train one of the paper's baselines."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from .common import DEFAULT_RUN_ROOT, CliError, add_track_option, tracked, user_errors
from .errors import check_output_folder

TASK_HELP = """\
tasks: protonet-mnist (2-bit, 5 %), protonet-fashion-mnist (3-bit, 20 %),
mobilenetv2-cifar10 (2-bit, 5 %), micronet-cifar100 (ternary, 5 %), protonet-digits
(2-bit, 5 %, bundled data). The checkpoint goes to <out>/<task>-<scale>-seed<k>.pt, where
'memsim ga' experiments with data.baseline_holdout=false reuse it. With --set values or a
--profile that differ from the recipe, the name gets a hash of those settings
(<task>-<scale>-seed<k>-<hash8>.pt), so the experiments never reuse it by mistake. An
existing checkpoint is never replaced without --force.
"""


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def register(sub: Any) -> None:
    """Add ``train-baseline``."""
    from models.baselines import SCALES, TASKS

    p = sub.add_parser(
        "train-baseline",
        help="train a paper baseline with noise-aware QAT and score it on simulated chips",
        description="Train one of the paper's baselines (models.baselines) and checkpoint it.",
        epilog=TASK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", choices=TASKS, help="baseline to train")
    p.add_argument("--scale", choices=SCALES, default="quick", help="recipe size")
    p.add_argument("--seed", type=int, default=0, help="seed of everything")
    p.add_argument(
        "--out",
        default=f"{DEFAULT_RUN_ROOT}/baselines",
        help="output folder of the checkpoint (default: %(default)s)",
    )
    p.add_argument("--profile", default=None, help="deployment profile name or path")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe/training field, e.g. --set episodes=100 (repeatable)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing checkpoint of the same name (default: refuse)",
    )
    add_track_option(p)
    p.set_defaults(func=cmd_train, supports_device=True)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, evaluate, checkpoint; print the metrics JSON."""
    from pathlib import Path

    import memsim
    from models.baselines import RecipeError, baseline_file_name, train_baseline
    from models.data import resolve_data_root

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = _parse_value(value)
    with user_errors():
        # everything is checked before any training: overrides, profile, target file
        profile = memsim.load_profile(args.profile) if args.profile is not None else None
        try:
            name = baseline_file_name(args.task, args.scale, args.seed, overrides, profile)
        except RecipeError as exc:
            raise CliError(f"--set: {exc}") from None
        check_output_folder(args.out, "--out")
        path = Path(args.out) / name
        if path.exists() and not args.force:
            raise CliError(
                f"{path}: a baseline checkpoint of these settings is already there; it is "
                "kept (use it, pass --force to replace it, or choose another --out)"
            )
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with user_errors(), tracked(args):
        _, path, metrics = train_baseline(
            args.task,
            args.scale,
            args.seed,
            resolve_data_root(args.data_root),
            args.out,
            overrides=overrides,
            profile=profile,
            progress=args.progress,
            path=path,
            overwrite=args.force,
            device=args.device,
        )
    print(json.dumps({"checkpoint": str(path), **metrics}, indent=2))
    return 0
