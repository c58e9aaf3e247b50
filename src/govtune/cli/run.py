"""`govtune run CONFIG [key=value ...] --out DIR [--resume]`.

The runner is imported when the command runs: it pulls in torch, and `govtune --help` imports this module;
a bad config is refused before that."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from govtune.launch import warn_if_fewer_processes
from govtune.study.loading import load_config


def register(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="run a study (methods x seeds x shots x curation) and write its report",
        description="Run every cell of the study in CONFIG into --out, then write OUT/report.md. "
                    "Overrides are key=value, typed by the config schema: methods=lora,hybrid seeds=0,1 "
                    "epochs=2 adapter.r=8.")
    run.add_argument("config", help="a study YAML file, or the name of a config shipped with govtune: demo (the "
                                    "embedded default), cpu_study, cpu_method_study, paper/xnli_main, ...; a file "
                                    "that exists wins over a name, an unknown name lists them all")
    run.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    run.add_argument("--out", required=True, help="output directory (runs, results.sqlite, report)")
    run.add_argument("--resume", action="store_true",
                     help="continue the same study in --out: finished runs are kept, the rest run")
    run.add_argument("--no-report", action="store_true", help="skip writing the report at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local: cells one after another in this process; ray: each cell a Ray task with the "
                          "config's cell_resources, on a local Ray instance or the cluster of --ray-address "
                          "(pip install 'govtune[ray]')")
    run.add_argument("--ray-address", metavar="HOST:PORT",
                     help="the Ray cluster to join (default: RAY_ADDRESS, else a local Ray instance)")
    run.set_defaults(func=_run, on_interrupt=_how_to_continue)


def _how_to_continue(args: argparse.Namespace) -> str:
    again = ["govtune", "run", args.config, *args.overrides, "--out", args.out, "--resume"]
    if args.executor != "local":  # continue where it ran
        again += ["--executor", args.executor] + (["--ray-address", args.ray_address] if args.ray_address else [])
    return f"finished runs are kept; continue with: {shlex.join(again)}"


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: the runner and the process group import torch
    from govtune.evaluation.sharding import process_state
    from govtune.study.grid import run_study

    config = load_config(args.config, args.overrides)
    warn_if_fewer_processes(process_state().num_processes)
    outcome = run_study(config, Path(args.out), resume=args.resume, progress=not args.quiet,
                        report=not args.no_report, executor=args.executor, ray_address=args.ray_address)
    print(f"{len(outcome.ran)} run(s) finished, {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed", file=sys.stderr)
    for run_id, message in outcome.failed.items():
        print(f"  {run_id}: {message}", file=sys.stderr)
    if outcome.report is not None:
        print(outcome.report)
    return 1 if outcome.failed else 0
