"""The `govtune` command. Each subcommand is a module of this package with `register(subparsers)`, which adds
its parser and sets `func(args) -> int`; it drives the library below it and holds no logic of its own that
another caller would need."""

from __future__ import annotations

import argparse
import importlib
import sys

from govtune import __version__
from govtune.cli.formatting import use_for_all
from govtune.launch import exit_with_launcher, leave_process_group_at_exit

# subcommand -> module that registers it. Imported only when needed, so `govtune --help` stays fast.
SUBCOMMANDS = {
    "curate": "govtune.cli.curate",
    "eval": "govtune.cli.eval",
    "export": "govtune.cli.export",
    "lm-eval": "govtune.cli.lm_eval",
    "run": "govtune.cli.run",
    "report": "govtune.cli.report",
    "card": "govtune.cli.documents",
    "verify": "govtune.cli.documents",
    "archive": "govtune.cli.archive",
    "restore": "govtune.cli.archive",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govtune", description="Governance-aware hybrid PEFT for multilingual LMs: curate, evaluate, run studies.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    registered = set()
    for name, module in SUBCOMMANDS.items():
        if (only is not None and name != only) or module in registered:
            continue
        importlib.import_module(module).register(sub)
        registered.add(module)
    use_for_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    only = first if first in SUBCOMMANDS else "" if argv[:1] == ["--version"] else None  # "": no subcommand
    parser = build_parser(only)
    args = parser.parse_args(argv)
    exit_with_launcher()  # a process of a killed launch must not run on alone
    leave_process_group_at_exit()  # and one that formed a gloo group must not abort at exit
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, MemoryError, ConnectionError,
            ModuleNotFoundError) as e:
        # Errors raised on bad input carry the fix in their message; no traceback for those. Progress bars
        # still open are closed first, so that the message is the last thing the user sees.
        _close_progress_bars()
        print(f"govtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C is a user's choice, not a failure: no traceback. A command that can be continued says how
        # (its parser's `on_interrupt(args) -> str`); what it wrote before is whole, since writes are atomic.
        _close_progress_bars()
        hint = getattr(args, "on_interrupt", None)
        print(f"govtune {args.command}: interrupted" + (f"; {hint(args)}" if hint else ""), file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C ended


def _close_progress_bars() -> None:
    tqdm = sys.modules.get("tqdm")  # none open if tqdm was never imported
    if tqdm is not None:
        for bar in list(getattr(tqdm.tqdm, "_instances", ())):
            bar.close()
