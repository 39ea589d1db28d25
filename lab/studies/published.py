"""Numbers generated, never pasted: committed results files and the tables rendered from them.

A measured table in the README or the docs is a block between two markers::

    <!-- results:demo -->
    ...rendered text, never edited by hand...
    <!-- /results:demo -->

and ``results/demo.json`` holds what it is rendered from: the command that measured it,
the commit, the machine, the torch threads, the seed offset, the wall time and the
results dict of the run (:func:`record`, called by ``memsim ga/demo --record NAME``).
:func:`render_file` rewrites every block of a file from its results file;
``tests/test_published.py`` fails when a committed block differs from its rendering, so
a table cannot drift from the measurement behind it.

``python -m lab.studies.published [--check] FILE ...`` rewrites (or checks) the blocks.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.run_folder import REPO_ROOT, environment, read_json, write_json

RESULTS_DIR = REPO_ROOT / "results"
"""Where the committed results files live (``results/<name>.json``)."""

DOCUMENTS = ("README.md", "docs/results.md")
"""The files whose tables are rendered (and checked by the tests)."""

_BLOCK = re.compile(
    r"(<!-- results:(?P<name>[A-Za-z0-9_.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


class PublishedError(ValueError):
    """A results file is missing or malformed, or a block names an unknown one."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def record(
    name: str,
    results: dict[str, Any],
    *,
    command: str,
    wall_time_s: float,
    folder: str | os.PathLike[str] | None = None,
    started: dict[str, Any] | None = None,
) -> Path:
    """Write ``results/<name>.json`` (or ``<folder>/<name>.json``) for a finished run.

    ``started`` is :func:`lab.run_folder.environment` taken when the run started: the
    commit recorded is the code that ran, even if the checkout moved on meanwhile.

    Returns:
        The file written.

    """
    import torch

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise PublishedError(f"--record {name!r}: use letters, digits, '.', '_' and '-' only")
    env = started or environment()
    data = {
        "name": name,
        "command": command,
        "commit": env.get("git_commit"),
        "dirty": env.get("git_dirty"),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "threads": torch.get_num_threads(),
        "seed_offset": results.get("seed_offset", results.get("seeds", {}).get("seed_offset")),
        "wall_time_s": round(wall_time_s, 1),
        "results": results,
    }
    path = Path(folder or RESULTS_DIR) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


class _Tee(io.TextIOBase):
    """Writes to every stream it holds (the terminal and the copy :func:`record_printed` keeps)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def record_printed(name: str, report: Callable[[], None], command: str) -> Path:
    """Run ``report`` (a bench script's tables, printed) and record what it printed.

    The results file holds ``{"kind": "bench", "text": <the printed text>}``; its block
    renders that text (see :func:`render`).

    Returns:
        The file written.

    """
    started, t0, printed = environment(), time.perf_counter(), io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, printed)):
        report()
    results = {"kind": "bench", "text": printed.getvalue().rstrip("\n")}
    wall = time.perf_counter() - t0
    return record(name, results, command=command, wall_time_s=wall, started=started)


def add_record_option(parser: argparse.ArgumentParser) -> None:
    """Give a bench script the ``--record NAME`` option of :func:`report_or_record`."""
    parser.add_argument(
        "--record",
        metavar="NAME",
        default=None,
        help="also write the printed tables, the command, commit, machine, threads and wall "
        "time to results/NAME.json, from which docs/results.md is rendered",
    )


def report_or_record(
    record_name: str | None, report: Callable[[], None], script: str, argv: list[str] | None
) -> None:
    """Run ``report``; with a ``--record`` name, record what it printed as well.

    Args:
        record_name: The ``--record`` value (``None``: only run ``report``).
        report: Prints the bench script's tables.
        script: The script's path from the repository root (the recorded command).
        argv: The script's arguments (``None``: ``sys.argv[1:]``).

    """
    if record_name is None:
        report()
        return
    command = f"python {script} " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"recorded: {record_printed(record_name, report, command)}")


def load(name: str, folder: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The results file ``<folder>/<name>.json``.

    Raises:
        PublishedError: It does not exist or lacks a field of :func:`record`.

    """
    path = Path(folder or RESULTS_DIR) / f"{name}.json"
    if not path.is_file():
        raise PublishedError(f"{path}: no such results file (a block names results:{name})")
    data = read_json(path)
    missing = [k for k in ("command", "commit", "machine", "threads", "wall_time_s", "results")
               if k not in data]  # fmt: skip
    if missing:
        raise PublishedError(f"{path}: missing field(s) {', '.join(missing)}")
    return data


def render(data: dict[str, Any]) -> str:
    """The Markdown block of one results file: the table, then how it was measured."""
    from lab.experiment.report import format_results

    r = data["results"]
    if r.get("kind") == "bench":  # a bench script's printed tables (bench/*.py --record)
        return f"```text\n{r['text']}\n```\n\n{_stamp(data)}\n"
    if "rows" in r:  # a Table 1 reproduction (lab.studies.table1): its own Markdown table
        from lab.studies.table1 import render_markdown

        # without its title and machine paragraph (read from this machine): the stamp says
        table = render_markdown(r).split("\n\n", 2)[2]
        return f"{table.rstrip()}\n\n{_stamp(data)}\n"
    return f"```text\n{format_results(r)}\n```\n\n{_stamp(data)}\n"


def _stamp(data: dict[str, Any]) -> str:
    """How a results file was measured: command, commit, machine, threads, wall time."""
    commit = (data["commit"] or "unknown")[:12] + ("+dirty" if data.get("dirty") else "")
    m = data["machine"]
    return (
        f"Measured with `{data['command']}` at commit `{commit}` on {m['cpu']} "
        f"({m['cores']} cores), {data['threads']} torch thread(s), seed offset "
        f"{data.get('seed_offset') or 0}, wall time {data['wall_time_s']:.0f} s "
        f"({data['date']}); file `results/{data['name']}.json`."
    )


def render_text(text: str, folder: str | os.PathLike[str] | None = None) -> str:
    """``text`` with every results block re-rendered from its results file."""

    def one(match: re.Match[str]) -> str:
        body = render(load(match.group("name"), folder))
        return f"{match.group(1)}{body}{match.group(4)}"

    return _BLOCK.sub(one, text)


def blocks(text: str) -> list[str]:
    """Names of the results blocks in ``text``, in order."""
    return [m.group("name") for m in _BLOCK.finditer(text)]


def render_file(path: str | os.PathLike[str], *, check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the blocks of ``path``; True if up to date."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = render_text(text)
    if new == text:
        return True
    if not check:
        path.write_text(new, encoding="utf-8")
    return False


def main(argv: list[str] | None = None) -> int:
    """``python -m lab.studies.published [--check] [FILE ...]`` (default: the documents)."""
    p = argparse.ArgumentParser(
        prog="python -m lab.studies.published",
        description="Render the results blocks of README.md and the docs from results/*.json.",
        allow_abbrev=False,
    )
    p.add_argument("files", nargs="*", help=f"files to render (default: {', '.join(DOCUMENTS)})")
    p.add_argument("--check", action="store_true", help="only check; exit 1 if any is stale")
    args = p.parse_args(argv)
    files = args.files or [str(REPO_ROOT / d) for d in DOCUMENTS if (REPO_ROOT / d).is_file()]
    stale = []
    try:
        for f in files:
            if not render_file(f, check=args.check):
                stale.append(f)
    except PublishedError as exc:
        print(f"lab.studies.published: error: {exc}", file=sys.stderr)
        return 2
    for f in stale:
        print(f"{f}: {'stale' if args.check else 'rendered'}")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
