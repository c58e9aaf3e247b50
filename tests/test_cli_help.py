"""Every subcommand's --help: defaults shown once, never "(default: None)", and the models --model knows."""

import re

import pytest

from govtune.cli import main
from govtune.cli.main import SUBCOMMANDS


def _options(capsys, monkeypatch, command: str) -> dict[str, str]:
    """{option: its help entry on one line} from `govtune COMMAND --help` as printed."""
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside a help text
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out.split("options:", 1)[1]
    entries = re.split(r"\n(?=  -)", text.strip("\n"))  # an entry starts at an option, continues indented deeper
    return {e.split()[0].rstrip(","): " ".join(e.split()) for e in entries}


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_no_subcommand_help_doubles_or_empties_a_default(capsys, monkeypatch, command):
    options = _options(capsys, monkeypatch, command)
    assert "-h" in options, options
    for entry in options.values():
        assert entry.count("(default") <= 1, entry
        assert "(default: None)" not in entry and "(default: )" not in entry and "(default: False)" not in entry, entry


def test_help_shows_a_default_it_does_not_say_in_words(capsys, monkeypatch):
    lines = _options(capsys, monkeypatch, "eval")
    assert lines["--langs"].endswith("(default: en,zh,hi)")
    assert lines["--batch-size"].endswith("(default: 8)")
    assert lines["--limit"].count("(default: all)") == 1


@pytest.mark.parametrize("command", ["eval", "lm-eval"])
def test_model_help_lists_every_offline_model_and_the_default(capsys, monkeypatch, command):
    from govtune.models import GEMMA3, OFFLINE_MODELS, TINY_BLOOM, TINY_LLAMA

    model_line = _options(capsys, monkeypatch, command)["--model"]
    assert f"{GEMMA3} (the default of studies" in model_line
    for name in (*OFFLINE_MODELS, TINY_LLAMA, TINY_BLOOM):
        assert name in model_line
    for model in OFFLINE_MODELS.values():
        assert f"alias {model.aliases[0]}" in model_line
