"""Study configs shipped inside the package, found by name: `govtune run demo` from a wheel as from a clone."""

from pathlib import Path

import pytest

from govtune.builtin_configs import CONFIGS_DIR, builtin_configs, resolve_config
from govtune.cli import main
from govtune.study.loading import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_configs_folder_is_the_packaged_one():
    # docs and scripts say configs/demo.yaml: that path must read the very files the wheel ships
    assert (ROOT / "configs").resolve() == CONFIGS_DIR.resolve()
    assert (ROOT / "configs" / "demo.yaml").read_bytes() == (CONFIGS_DIR / "demo.yaml").read_bytes()


def test_every_shipped_yaml_has_a_name_and_demo_comes_first():
    names = builtin_configs()
    assert len(names) == len(list(CONFIGS_DIR.rglob("*.yaml"))) >= 13
    assert list(names)[0] == "demo"
    assert {"cpu_method_study", "cpu_study", "paper/xnli_main"} <= set(names)
    for name, path in names.items():
        assert path == CONFIGS_DIR / f"{name}.yaml"


@pytest.mark.parametrize("ref", ["demo", "demo.yaml", "configs/demo.yaml"])
def test_a_name_resolves_from_any_directory(tmp_path, monkeypatch, ref):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the name alone must find the packaged file
    assert resolve_config(ref) == CONFIGS_DIR / "demo.yaml"
    assert load_config(ref).name == "demo"


def test_a_file_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("demo").write_text("name: mine\nmodel: tiny-llama\n")
    assert resolve_config("demo") == Path("demo")
    assert load_config("demo").name == "mine"
    assert load_config("paper/flores").name == load_config(CONFIGS_DIR / "paper" / "flores.yaml").name


def test_an_unknown_name_lists_the_builtin_ones_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "dmeo", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config 'dmeo' is neither a file nor a built-in config (did you mean 'demo'?)" in err
    for name in builtin_configs():
        assert name in err
    assert "Traceback" not in err and not out.exists()


def test_run_help_says_a_name_works(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "the name of a config shipped with govtune: demo" in text and "a file that exists wins over a name" in text
