"""`govtune card OUT` (the model card and datasheet of a study's tuned runs) and `govtune verify OUT` (the
study's files against its provenance manifest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from govtune.results.layout import StudyLayout
from govtune.results.manifest import Manifest, verify


def register(subparsers) -> None:
    card = subparsers.add_parser(
        "card", help="write the model card (README.md) and datasheet of a study's tuned runs",
        description="Write a Hugging Face model card and a datasheet beside the adapter of each finished, tuned "
                    "run of the study in OUT (OUT/runs/<run_id>/adapter/), from the study's files.")
    card.add_argument("out", help="a study's output directory")
    card.add_argument("--run", action="append", dest="runs", metavar="RUN_ID",
                      help="only this run (repeatable); default: every tuned run with a saved adapter")
    card.add_argument("--to", metavar="DIR", help="write into DIR instead of the run's adapter directory "
                                                  "(one --run only)")
    card.set_defaults(func=_card)

    verify = subparsers.add_parser(
        "verify", help="check a study's files against its manifest (sha256 of inputs and outputs)",
        description="Hash every file of the study in OUT again and compare with OUT/manifest.json: names every "
                    "file that changed, went missing or appeared without being recorded. Exit 1 if any did.")
    verify.add_argument("out", help="a study's output directory")
    verify.set_defaults(func=_verify)


def _study(out: str):
    layout = StudyLayout(Path(out))
    if not layout.study.exists():
        raise FileNotFoundError(f"{out} holds no govtune study ({layout.study.name} missing): pass the --out "
                                f"directory of a `govtune run`")
    return layout


def _card(args: argparse.Namespace) -> int:
    # the report package imports matplotlib and huggingface_hub: only when cards are written
    from govtune.report.run_documents import tuned_runs, write_run_documents

    layout = _study(args.out)
    runs = args.runs or tuned_runs(layout)
    if not runs:
        raise ValueError(f"{args.out} has no finished tuned run with a saved adapter: model cards describe "
                         f"adapters (runs with shots > 0 of a govtune that saves them)")
    if args.to and len(runs) != 1:
        raise ValueError(f"--to writes one run's card: pass exactly one --run (got {len(runs)} runs)")
    for run_id in runs:
        for path in write_run_documents(layout, run_id, args.to):
            print(path)
    return 0


def _verify(args: argparse.Namespace) -> int:
    layout = _study(args.out)
    problems = verify(layout.root)
    recorded = len(Manifest.load(layout.root).data["files"])
    for problem in problems:
        print(problem)
    print(f"{recorded} recorded files checked: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0
