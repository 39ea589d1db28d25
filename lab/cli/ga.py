"""``memsim ga CONFIG.toml`` and ``memsim demo``: run (or resume) one GA experiment."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from .common import (
    CliError,
    add_run_options,
    add_track_option,
    positive_int,
    run_context,
    tracked,
    user_errors,
)
from .errors import check_output_folder
from .executor_options import EXECUTOR_EPILOG, add_executor_options, executor_spec

GA_EPILOG = """\
The run folder <run-root>/ga/<name>-<timestamp>/ holds config.json (resolved),
run.json (versions, git commit, seeds, profile, dataset sha256, wall times),
recovery/ (each method's result; recovery/ga/ the GA's checkpoint, history.csv and
snapshots), weights/<method>.pt (evaluable with 'memsim evaluate'), scores.json,
results.json and the plots. With --replicates N the folder holds study.json, rep-00 ..
rep-NN (one such run folder each), results.json over the replicates and gain.png.

Examples:
  memsim ga experiments/table1/protonet_mnist.toml --scale quick
  memsim ga experiments/table1/protonet_mnist.toml --set ga.population_size=6 --set ga.seed=3
  memsim ga experiments/recovery_faulty.toml --scale quick --replicates 5
  memsim ga --resume runs/ga/table1-protonet-mnist-20250101-120000
"""


def add_config_options(p: argparse.ArgumentParser) -> None:
    """``--scale`` and the overrides (:func:`add_override_options`)."""
    p.add_argument(
        "--scale",
        choices=("quick", "medium", "paper"),
        default=None,
        help="apply the config's [quick] or [medium] table (quick, medium) or neither "
        "(paper); default: the scale written in the config",
    )
    add_override_options(p)


def add_override_options(p: argparse.ArgumentParser) -> None:
    """Repeatable ``--set``, ``--replicates`` and ``--vary-chips``."""
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (TOML syntax), e.g. --set ga.generations=5; repeatable",
    )
    p.add_argument(
        "--replicates",
        type=positive_int,
        default=None,
        metavar="N",
        help="run N independent replicates (own baseline, method and evaluation seeds) and "
        "report 95 %% intervals over them (experiment.replicates; default: the config's)",
    )
    p.add_argument(
        "--vary-chips",
        action="store_true",
        help="replicates also draw new chip instances (experiment.vary_chips)",
    )


def add_record_option(p: argparse.ArgumentParser) -> None:
    """``--record NAME``: also write ``results/NAME.json`` (:mod:`lab.studies.published`)."""
    p.add_argument(
        "--record",
        default=None,
        metavar="NAME",
        help="also write the results, with this command, the commit, the machine, the "
        "threads and the wall time, to results/NAME.json, from which the README and docs "
        "tables are rendered (python -m lab.studies.published)",
    )


def config_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values, then ``--replicates`` and ``--vary-chips`` as overrides."""
    out = list(args.overrides)
    if args.replicates is not None:
        out.append(f"experiment.replicates={args.replicates}")
    if args.vary_chips:
        out.append("experiment.vary_chips=true")
    return out


def register_ga(sub: Any) -> None:
    """Add the ``ga`` subcommand."""
    p = sub.add_parser(
        "ga",
        help="run an experiment from a TOML config (baseline, methods, paired test scores)",
        description="Run an experiment: baseline -> every method of [recovery] (default the "
        "paper's GA and its equal-budget QAT control) on a simulated chip -> test accuracy of "
        "all on fresh programming draws; with --replicates, intervals over replicates.",
        epilog=GA_EPILOG + "\n" + EXECUTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", default=None, help="experiment TOML file")
    add_config_options(p)
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved CONFIG (after --scale and --set) with every key, its default "
        "and its description, and exit",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="RUN_DIR",
        help="continue RUN_DIR, with the run root (baselines) it was started with; default: "
        "the newest unfinished run of CONFIG's name. A finished run is left as it is.",
    )
    add_record_option(p)
    add_run_options(p)
    add_track_option(p)
    add_executor_options(p)
    p.set_defaults(func=cmd_ga, supports_device=True)


def register_demo(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    import tomllib

    from lab.studies.demo import DEMO_TOML

    demo = tomllib.loads(DEMO_TOML)  # the help names what the demo runs, never a copy of it
    chip = demo["chip"]
    p = sub.add_parser(
        "demo",
        help="what each accuracy-recovery method wins back on a faulty RRAM chip (digits)",
        description="The README demo (no files or network needed): "
        f"a ProtoNet on scikit-learn's digits, deployed on chip {chip['chip_seed']} of the "
        f"faulty RRAM profile {chip['profile']}; the recovery methods "
        f"{', '.join(demo['recovery']['methods'])} with one budget, in "
        f"{demo['experiment']['replicates']} independent replicates; the table gives test "
        f"accuracy on chip {chip['chip_seed']} and chip "
        f"{', '.join(map(str, chip['transfer_chip_seeds']))}, the gain over blind QAT with "
        "its 95 % interval over replicates and whether it is significant, and what each "
        "method needs of the chip; gain.png draws it. The former GA demo is "
        "experiments/demo_ga.toml.",
    )
    add_override_options(p)
    add_record_option(p)
    add_run_options(p)
    add_track_option(p)
    add_executor_options(p)
    p.set_defaults(func=cmd_demo, supports_device=True)


def _latest_unfinished(parent: Path, name: str) -> Path:
    from lab.run_folder import read_json

    candidates = sorted(parent.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        run = path / "run.json"
        # a finished run has nothing to resume, and a failed start is never resumed
        if (path / "config.json").exists() and (
            not run.exists() or read_json(run).get("status") not in ("complete", "failed")
        ):
            return path
    raise CliError(f"no unfinished run folder {parent}/{name}-* to resume")


def _run(
    config: Any,
    args: argparse.Namespace,
    *,
    resume_dir: Path | None,
    source_text: str | None,
    run_root: str | Path | None = None,
) -> int:
    from lab.experiment.report import format_results
    from lab.run_folder import environment
    from lab.studies.replicates import run_study

    started = environment()  # the commit that runs: recorded with the results
    start = time.perf_counter()
    with user_errors(), tracked(args):
        ctx = run_context(args, executor=args.executor_spec, run_root=run_root)
        results, run_dir = run_study(config, ctx, resume_dir=resume_dir, source_text=source_text)
    wall = time.perf_counter() - start
    print(format_results(results))
    if "replicates" in results:
        print(f"figure: {run_dir / 'gain.png'}")
    if getattr(args, "record", None):
        import shlex

        from lab.studies.published import record

        command = "memsim " + shlex.join(args.command_line)
        path = record(args.record, results, command=command, wall_time_s=wall, started=started)
        print(f"recorded: {path}")
    print(f"run folder: {run_dir}  (wall time {wall:.1f} s)")
    return 0


def cmd_ga(args: argparse.Namespace) -> int:
    """Load/override/validate the config, then run or resume the experiment."""
    from lab.experiment.checks import folder_run_root
    from lab.experiment.config import ExperimentConfig, build_config, read_toml
    from lab.experiment.runner import CONFIG_JSON
    from lab.run_folder import read_json

    args.executor_spec = executor_spec(args)  # before any work: a bad --address fails now
    with user_errors():
        config = None
        source = None
        if args.config is not None:
            raw = read_toml(args.config)  # first: it names the file if it is not UTF-8 TOML
            source = Path(args.config).read_text(encoding="utf-8")
            config = build_config(
                raw,
                scale=args.scale,
                overrides=config_overrides(args),
                origin=args.config,
            )
        if getattr(args, "print_config", False):
            if config is None:
                raise CliError("--print-config needs a CONFIG.toml")
            from lab.experiment.config import describe_config

            print(describe_config(config), end="")
            return 0
        if args.resume is None:
            if config is None:
                raise CliError("give a CONFIG.toml to start a run, or --resume RUN_DIR")
            check_output_folder(args.run_root, "--run-root")
            return _run(config, args, resume_dir=None, source_text=source)
        if args.resume == "latest":
            if config is None:
                raise CliError("--resume without RUN_DIR needs CONFIG to find the run")
            resume_dir = _latest_unfinished(Path(args.run_root) / "ga", config.experiment.name)
        else:
            resume_dir = Path(args.resume)
            if resume_dir.is_file():
                parent = resume_dir.parent
                hint = (
                    f"; its folder {parent} is one"
                    if (parent / CONFIG_JSON).is_file()
                    else "; give the run folder <run-root>/ga/<name>-<timestamp>"
                )
                raise CliError(f"--resume {resume_dir}: is a file, not a run folder{hint}")
            if not resume_dir.is_dir():
                raise CliError(f"--resume {resume_dir}: no such run folder")
        if config is None:
            # resuming from the folder alone: its saved config, plus any --set
            saved = (
                read_json(resume_dir / CONFIG_JSON) if (resume_dir / CONFIG_JSON).exists() else None
            )
            if saved is None:
                raise CliError(f"{resume_dir} is not an experiment run folder (no {CONFIG_JSON})")
            config = build_config(saved, overrides=config_overrides(args), origin=str(resume_dir))
        assert isinstance(config, ExperimentConfig)
        # the folder's own run root (its baseline), wherever the command is run from
        root = folder_run_root(resume_dir, args.run_root)
        return _run(config, args, resume_dir=resume_dir, source_text=None, run_root=root)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the built-in demo experiment and print its recovery table."""
    import tomllib

    from lab.experiment.config import build_config
    from lab.studies.demo import DEMO_TOML

    args.executor_spec = executor_spec(args)
    with user_errors():
        config = build_config(
            tomllib.loads(DEMO_TOML), overrides=config_overrides(args), origin="demo"
        )
    check_output_folder(args.run_root, "--run-root")
    return _run(config, args, resume_dir=None, source_text=DEMO_TOML)
