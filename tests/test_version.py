"""One version, written once in govtune/__init__.py: the package metadata, `govtune --version` and the changelog."""

import re
from pathlib import Path

import pytest

import govtune
from govtune.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_command_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"govtune {govtune.__version__}"


def test_pyproject_reads_the_version_from_the_package():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "govtune.__version__"}


def test_changelog_has_a_section_for_this_version():
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (ROOT / "CHANGELOG.md").read_text(), flags=re.M)
    assert releases[0] == govtune.__version__, releases
    assert releases == sorted(releases, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
