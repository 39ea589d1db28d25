"""``memsim reproduce table1`` and ``memsim sweep figures``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import CliError, add_run_options, positive_int, run_context, user_errors
from .errors import check_output_folder
from .executor_options import add_executor_options, executor_spec


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scale",
        choices=("quick", "paper"),
        default="quick",
        help="quick: the configs' [quick] smoke settings; paper: the paper's (default quick)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a value in every experiment (repeatable)",
    )
    p.add_argument("--resume", default=None, metavar="DIR", help="continue an earlier folder")
    add_run_options(p)
    add_executor_options(p)


def register_reproduce(sub: Any) -> None:
    """Add ``reproduce table1``."""
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's Table 1 (baseline, GA and the extra-QAT control)",
        description="Reproduce a table of the paper.",
    )
    ps = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    t = ps.add_parser(
        "table1",
        help="every Table 1 row: baseline, GA, control, beside the paper's numbers",
        description="Run every experiments/table1/*.toml row and write table1.md and "
        "table1.json under <run-root>/table1/. Rows whose data is unavailable are reported "
        "as skipped with the reason.",
    )
    _common(t)
    t.add_argument("--configs", default=None, help="folder of row configs (experiments/table1)")
    t.add_argument(
        "--rows", default=None, help="comma-separated row config names (default: all rows)"
    )
    t.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="deprecated: the same as --executor process --workers N",
    )
    from .ga import add_record_option

    add_record_option(t)
    t.set_defaults(func=cmd_table1, supports_device=True)


def register_sweep(sub: Any) -> None:
    """Add ``sweep figures``."""
    p = sub.add_parser(
        "sweep",
        help="parameter sweeps of the paper's Figures 4-7",
        description="Parameter sweeps.",
    )
    ps = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    f = ps.add_parser(
        "figures",
        help="Figures 4-7: accuracy vs generations, population, CP x MP, strategies",
        description="Run experiments/sweeps/*.toml; write a PNG and a CSV per figure under "
        "<run-root>/sweeps/.",
    )
    _common(f)
    f.add_argument("--sweeps", default=None, help="folder of sweep configs (experiments/sweeps)")
    f.add_argument(
        "--only", default=None, help="comma-separated figure names, e.g. fig4,fig6 (default all)"
    )
    f.set_defaults(func=cmd_figures, supports_device=True)
    from . import sweep_grid

    sweep_grid.register(ps)


def _echo(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_table1(args: argparse.Namespace) -> int:
    """Run the Table 1 rows; print table1.md."""
    from lab.executors import ExecutorSpec
    from lab.studies.table1 import CONFIG_DIR, TABLE_MD, read_table, run_table1

    check_output_folder(args.run_root, "--run-root")
    if args.jobs is not None:
        if args.executor != "serial" or args.workers is not None:
            raise CliError("--jobs is the old spelling of --executor process --workers N; give one")
        print(
            "memsim reproduce: --jobs is deprecated; use --executor process --workers N",
            file=sys.stderr,
        )
        executor = ExecutorSpec(
            kind="process", workers=args.jobs, threads_per_worker=args.threads or 1
        )
    else:
        executor = executor_spec(args)
    with user_errors():
        try:
            _, out = run_table1(
                args.scale,
                config_dir=args.configs or CONFIG_DIR,
                rows=_split(args.rows),
                **_run_options(args, executor),
            )
        except (FileNotFoundError, ValueError) as exc:
            raise CliError(str(exc)) from exc
    print((out / TABLE_MD).read_text(encoding="utf-8"))
    print(f"wrote {out / TABLE_MD} and {out / 'table1.json'}")
    if args.record:
        import shlex

        from lab.studies.published import record

        table, _ = read_table(out)
        wall = float(table.get("wall_time_s", 0.0))
        command = "memsim " + shlex.join(args.command_line)
        # the commit of the session that started the table
        started = (table.get("sessions") or [None])[0]
        path = record(args.record, table, command=command, wall_time_s=wall, started=started)
        print(f"recorded: {path}")
    return 0


def _run_options(args: argparse.Namespace, executor: Any) -> dict[str, Any]:
    """The options ``reproduce table1`` and ``sweep figures`` pass on alike."""
    return {
        "ctx": run_context(args, executor=executor),
        "resume_dir": args.resume,
        "overrides": args.overrides,
    }


def cmd_figures(args: argparse.Namespace) -> int:
    """Run the figure sweeps; list the PNG/CSV files written."""
    from lab.studies.sweeps import SWEEP_DIR, run_figures

    check_output_folder(args.run_root, "--run-root")
    executor = executor_spec(args)
    with user_errors():
        try:
            state, out = run_figures(
                args.scale,
                sweep_dir=args.sweeps or SWEEP_DIR,
                only=_split(args.only),
                **_run_options(args, executor),
            )
        except FileNotFoundError as exc:
            raise CliError(str(exc)) from exc
    for name, fig in state["figures"].items():
        print(f"{name}: {fig['title']}")
        for ext in ("png", "csv"):
            print(f"  {Path(out) / name / f'{name}.{ext}'}")
    print(f"sweep folder: {out}  (wall time {state['wall_time_s'] / 60:.1f} min)")
    return 0
