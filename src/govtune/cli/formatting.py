"""How every `govtune` subcommand's --help shows defaults.

argparse's ArgumentDefaultsHelpFormatter appends "(default: X)" to every option, also where the help
already says its default in words ("(default: all)") and where the default is None or False, which tells
the reader nothing ("(default: all) (default: None)"). This formatter appends it only where it informs."""

from __future__ import annotations

import argparse

# --model of `govtune eval` and `govtune lm-eval`. Written out, not read from govtune.models.OFFLINE_MODELS:
# importing that module imports transformers' modeling code, which --help must not pay for;
# tests/test_cli_help.py checks that every offline model is named here.
MODEL_HELP = ("model name or path: an offline model, gemma3-270m (the default of studies; alias "
              "google/gemma-3-270m) or smollm2-135m-instruct (alias smollm2); tiny-llama or tiny-bloom (random, "
              "for tests); a transformers checkpoint directory or hub name")


class HelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text.lower() or _says_nothing(action.default):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text  # a required positional has no default to show
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _says_nothing(default) -> bool:
    # None, False, "" and [] stand for "not given"; SUPPRESS is argparse's own --help
    return default is None or default is False or default == argparse.SUPPRESS or (
        isinstance(default, (str, list, tuple)) and not default)


def use_for_all(subparsers: argparse._SubParsersAction) -> None:
    """Give every registered subcommand's parser this formatter, whatever its module passed."""
    for parser in subparsers.choices.values():
        parser.formatter_class = HelpFormatter
