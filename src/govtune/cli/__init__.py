"""The `govtune` command and its subcommands, one module each: curate (and curate_task), eval (and eval_task for
a task file), export, lm-eval, run, report, card and verify (documents), archive and restore. The top layer: it
imports the library, nothing imports it."""

from govtune.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
