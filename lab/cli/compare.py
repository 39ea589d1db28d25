"""``memsim compare CHECKPOINT --profile NAME``: memsim against IBM aihwkit on one model.

Every checkpoint that ``evaluate`` reads works here (one model registry), and the model
is scored the way the rest of the project scores it: top-1 for a classifier, the
nearest prototype with support sets from the training split for a ProtoNet.  aihwkit is
an optional dependency (``pip install 'memsim[aihwkit]'``); ``memsim compare --help``
works without it, and a missing aihwkit is reported before any work starts.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from .common import (
    CliError,
    add_checkpoint_arguments,
    add_run_options,
    flatten_drift,
    positive_int,
    user_errors,
)
from .errors import check_output_folder

INSTALL_HINT = (
    "memsim compare needs IBM aihwkit, which is not installed in this environment; "
    "install it with: pip install 'memsim[aihwkit]'  (aihwkit==1.1.0)"
)


def aihwkit_status() -> str:
    """One sentence for the help: whether aihwkit is installed here (found, not imported)."""
    if aihwkit_available():
        return "It needs IBM aihwkit, which is installed in this environment."
    return (
        "It needs IBM aihwkit, which is not installed in this environment: "
        "pip install 'memsim[aihwkit]'  (aihwkit==1.1.0)."
    )


def register(sub: Any) -> None:
    """Add the ``compare`` subcommand."""
    p = sub.add_parser(
        "compare",
        help="compare memsim with IBM aihwkit on a checkpoint (needs aihwkit)",
        description="Side-by-side memsim vs aihwkit: accuracy, output error and time per drift "
        "time, written to compare.json, compare.png and untranslated.md. --device moves "
        "memsim's chip (aihwkit runs on the CPU). " + aihwkit_status(),
    )
    add_checkpoint_arguments(p, drift_default="1h 1d")
    p.add_argument("--draws", type=positive_int, default=10, help="programming draws (default 10)")
    p.add_argument(
        "--data",
        default=None,
        help="dataset name or .npz path (default: the checkpoint's dataset)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="use the first N test images")
    p.add_argument(
        "--support-draws",
        type=positive_int,
        default=5,
        help="ProtoNet support sets per score (default 5, as evaluate)",
    )
    p.add_argument(
        "--out", default=None, help="output folder (default: a new <run-root>/compare folder)"
    )
    p.add_argument("--batch-size", type=positive_int, default=1000)
    p.add_argument("--seed", type=int, default=0, help="base seed of the draws (default 0)")
    p.add_argument(
        "--no-align",
        dest="align",
        action="store_false",
        help="run memsim with the full profile (not aligned to aihwkit)",
    )
    p.add_argument(
        "--unequal-layers",
        dest="equal_layers",
        action="store_false",
        help="map onto memsim's tiles the layers aihwkit keeps digital (grouped and depthwise "
        "convs); default: they stay digital on both sides, so that both simulate the same "
        "layers",
    )
    add_run_options(p)
    p.set_defaults(func=cmd_compare, supports_device=True)


def aihwkit_available() -> bool:
    """Whether the ``aihwkit`` package can be imported."""
    return importlib.util.find_spec("aihwkit") is not None


def cmd_compare(args: argparse.Namespace) -> int:
    """Check for aihwkit, then run :func:`lab.compare.compare` and write its files."""
    from models.data import DATASETS

    if not aihwkit_available():
        raise CliError(INSTALL_HINT)
    if Path(args.checkpoint).is_dir():
        raise CliError(f"{args.checkpoint}: is a folder; expected a checkpoint file (.pt)")
    if not Path(args.checkpoint).is_file():
        raise CliError(f"{args.checkpoint}: no such checkpoint file")
    if args.data is not None and not args.data.endswith(".npz"):
        if args.data.lower().replace("-", "_") not in DATASETS:
            raise CliError(
                f"--data {args.data!r}: unknown dataset; choose from {', '.join(DATASETS)} "
                "or give a .npz file"
            )
    if args.data is not None and args.data.endswith(".npz") and not Path(args.data).is_file():
        raise CliError(f"--data {args.data}: no such .npz file")
    check_output_folder(
        args.out or Path(args.run_root) / "compare", "--out" if args.out else "--run-root"
    )
    from lab.compare import compare
    from lab.run_folder import new_run_dir

    if args.out:
        out = Path(args.out)
    else:
        out = new_run_dir(Path(args.run_root) / "compare", Path(args.checkpoint).stem)
    with user_errors():
        try:
            compare(
                args.checkpoint,
                args.profile,
                flatten_drift(args.drift) or [3600.0, 86400.0],
                args.draws,
                args.data,
                out,
                batch_size=args.batch_size,
                seed=args.seed,
                align=args.align,
                limit=args.limit,
                support_draws=args.support_draws,
                data_root=args.data_root,
                device=args.device,
                equal_layers=args.equal_layers,
            )
        except ImportError as exc:
            raise CliError(f"aihwkit cannot be imported: {exc}") from exc
        except ValueError as exc:
            if type(exc) is not ValueError:  # ProfileError etc.: handled by user_errors
                raise
            raise CliError(str(exc)) from exc
    return 0
