"""``memsim profiles fit MEASUREMENTS.csv --base NAME --out my_chip.json``.

Fits programming error, drift, read noise and stuck-at rates to the rows of the
measurement CSV (columns kind, device, target_uS, t_s, g_uS; see ``memsim.fit``) and
writes a profile that ``extends`` the base with the fitted numbers, each with a
``source`` entry naming the file, its sha256, the number of points and the fit
quality.  Plots of data against fit go to ``<out stem>_fit/`` (``--no-plots`` to skip).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lab.cli.common import as_cli_errors
from lab.hardware import HardwareCliError


def register_fit(profiles_sub: Any) -> None:
    """Add the ``fit`` action to the subparsers of ``memsim profiles``."""
    p = profiles_sub.add_parser(
        "fit",
        help="fit a profile to your own measurements (CSV) on top of a base profile",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("measurements", metavar="MEASUREMENTS.csv", help="measurement CSV")
    p.add_argument("--base", required=True, help="shipped profile the result extends")
    p.add_argument("--out", required=True, metavar="FILE.json", help="profile JSON to write")
    p.add_argument("--name", default=None, help="profile name (default: the --out stem)")
    p.add_argument(
        "--max-degree", type=int, default=6, help="highest sigma polynomial degree (0..15)"
    )
    p.add_argument(
        "--move-tol",
        type=float,
        default=0.1,
        help="stuck-at threshold: read span below this fraction of the window (default 0.1)",
    )
    p.add_argument(
        "--t-offset",
        type=float,
        default=None,
        metavar="SECONDS",
        help="drift time offset (default: t0 for a pcm_joshi2020 base, else 0)",
    )
    p.add_argument(
        "--t0",
        type=float,
        default=None,
        metavar="SECONDS",
        help="drift reference time t0 of the fitted power law (default: the base's t0)",
    )
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the figures")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=as_cli_errors(run))


def run(args: argparse.Namespace) -> int:
    """Fit, write the profile JSON (and plots), print the summary."""
    from memsim import fit

    out = Path(args.out)
    if out.suffix != ".json":
        raise HardwareCliError(f"--out {out}: the profile file must end in .json")
    if out.exists() and not args.force:
        raise HardwareCliError(f"{out} exists; pass --force to overwrite it")
    if not 0 <= args.max_degree <= 15:
        raise HardwareCliError(f"--max-degree must be in 0..15, got {args.max_degree}")
    if args.t0 is not None and not args.t0 > 0:
        raise HardwareCliError(f"--t0 must be > 0 seconds, got {args.t0}")
    if not 0 < args.move_tol < 1:
        raise HardwareCliError(f"--move-tol must be in (0, 1), got {args.move_tol}")
    result = fit.fit_profile(
        args.measurements,
        args.base,
        name=args.name or out.stem,
        max_degree=args.max_degree,
        move_tol=args.move_tol,
        t_offset_s=args.t_offset,
        t0_s=args.t0,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.profile, indent=2, ensure_ascii=False) + "\n")
    print(result.summary())
    print(f"wrote {out}")
    if args.plots:
        from lab.plots.fit import plot_fit

        for path in plot_fit(result, out.with_name(f"{out.stem}_fit")):
            print(f"wrote {path}")
    return 0
