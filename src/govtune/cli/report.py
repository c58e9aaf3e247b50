"""`govtune report DIR`: (re)write a study's report.md, report.html and figures from its results.sqlite."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    report = subparsers.add_parser("report", help="(re)write OUT/report.md, report.html and figures",
                                   description="Build the report of a study directory from its results.sqlite.")
    report.add_argument("out", help="a study's output directory")
    report.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from govtune.report import write_report  # here: the report's figures import matplotlib

    out = Path(args.out)
    if not out.is_dir():
        raise FileNotFoundError(f"{out} is not a directory: pass the --out directory of a `govtune run`")
    print(write_report(out))
    return 0
