"""``memsim profiles list | show NAME | validate FILE...``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``profiles`` subcommand."""
    p = sub.add_parser(
        "profiles",
        help="list, show or validate device profiles",
        description="Device profiles: the shipped ones and your own JSON files.",
    )
    ps = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = ps.add_parser("list", help="names and descriptions of the shipped profiles")
    lst.set_defaults(func=cmd_list)
    show = ps.add_parser(
        "show", help="print a profile (shipped name or JSON path) as resolved JSON"
    )
    show.add_argument("name", help="shipped profile name or path to a .json file")
    show.set_defaults(func=cmd_show)
    val = ps.add_parser(
        "validate",
        help="validate profile JSON files (exit status 1 if any is invalid)",
        description="Validate each FILE against the profile schema; every bad field is named.",
    )
    val.add_argument("files", nargs="+", metavar="FILE", help="profile JSON file(s)")
    val.set_defaults(func=cmd_validate)
    from . import fit

    fit.register_fit(ps)


def cmd_list(args: argparse.Namespace) -> int:
    """Print every shipped profile with its description."""
    from memsim.profiles import ProfileError, list_profiles, load_profile

    names = list_profiles()
    width = max(len(n) for n in names)
    for name in names:
        try:
            desc = load_profile(name).description
        except ProfileError as exc:
            # e.g. a profile whose physics needs the optional aihwkit extra
            desc = f"(cannot load here: {exc})"
        print(f"{name:<{width}}  {desc}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one profile, ``extends`` resolved and defaults filled in."""
    from memsim.profiles import ProfileError, load_profile

    from .common import CliError

    try:
        prof = load_profile(args.name)
    except ProfileError as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps(prof.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate files; print OK lines and field-level errors; 1 if any failed."""
    from memsim.profiles import ProfileError, load_profile

    failed = 0
    for path in args.files:
        # a bare name would load a shipped profile; validate what the user pointed at
        target = path if ("/" in path or path.endswith(".json")) else f"./{path}"
        try:
            prof = load_profile(target)
        except ProfileError as exc:
            failed += 1
            print(f"INVALID {exc}", file=sys.stderr)
            continue
        print(f"OK {path}: profile {prof.name!r}")
    return 1 if failed else 0
