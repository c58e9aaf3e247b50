"""The wheel installs and runs: built from this tree, installed alone into a fresh virtual environment, it runs
`govtune --version` and a small `govtune run demo` from a directory outside the repository, so its configs,
data and task files must all be inside the wheel. About 35 s of CPU time (the build, the install and a demo
shrunk by overrides to two runs on the tiny random model); 2 min 10 s wall on a 2-core CPU at load 13-18."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import govtune

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel

# The demo as shipped, shrunk: the tiny random model, LoRA against the untuned base model, a few examples.
SMALL_DEMO = ["model=tiny-llama", "methods=lora", "seeds=0", "shots=0,8", "incontext_shots=0", "eval_limit=4",
              "flores_eval_limit=2", "flores_train_pairs=4", "xnli_pool_rows=[0,20]", "robustness=false",
              "val_per_language=2", "max_new_tokens=8", "calibration_batches=1"]


def _run(cmd, cwd, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # nothing from the repo
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("build")
    # A copy of what the build reads, so that the build's own files (build/, *.egg-info) stay out of the tree;
    # no build isolation: the build needs setuptools only, already installed (the test extra), and no network.
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    _run([sys.executable, "-m", "pip", "wheel", project, "--no-deps", "--no-build-isolation", "-q", "-w",
          tmp / "dist"], cwd=tmp)
    (built,) = (tmp / "dist").glob("govtune-*.whl")
    return built


def _fresh_venv(tmp: Path) -> Path:
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=tmp)
    if sys.prefix != sys.base_prefix:
        # The tests run in a virtual environment whose packages (torch, transformers, ...) are not the base
        # interpreter's, which is what --system-site-packages sees: list this environment's site directories
        # in a .pth file instead. Plain path lines: the .pth files inside them (an editable install of
        # govtune among them) are not read, so the only govtune the new environment can import is the wheel's.
        site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         cwd=tmp).stdout.strip())
        dirs = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        (site / "parent_environment.pth").write_text("".join(f"{d}\n" for d in dirs))
    return venv


def test_the_wheel_ships_each_config_and_data_file_once(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert len(names) == len(set(names))
    package = ROOT / "src" / "govtune"
    for folder in ("configs", "data", "tasks/builtin"):
        files = [p for p in (package / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files
        for p in files:
            assert f"govtune/{p.relative_to(package).as_posix()}" in names, p
    assert not [n for n in names if n.startswith(("configs/", "tests/", "bench/"))]
    assert wheel.name == f"govtune-{govtune.__version__}-py3-none-any.whl"


def test_the_installed_wheel_runs_the_demo_by_name_outside_the_repository(wheel, tmp_path):
    venv = _fresh_venv(tmp_path)
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp_path)
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = _run([venv / "bin" / "python", "-c", "import govtune, sysconfig; print(govtune.__file__); "
                  "print(sysconfig.get_paths()['purelib'])"], cwd=away).stdout.split()
    installed, site = (Path(p).resolve() for p in where)
    assert installed.is_relative_to(site) and site.is_relative_to(venv.resolve()), where

    assert _run([venv / "bin" / "govtune", "--version"], cwd=away).stdout.strip() == f"govtune {govtune.__version__}"

    done = _run([venv / "bin" / "govtune", "run", "demo", *SMALL_DEMO, "--out", "x", "--quiet"], cwd=away)
    results = json.loads((away / "x" / "results.json").read_text())
    runs = sorted((r["method"], r["shots"], r["task"], r["curation"]) for r in results)
    assert runs == [("base", 0, "flores", "none"), ("base", 0, "xnli", "none"),
                    ("lora", 8, "flores", "c2"), ("lora", 8, "xnli", "c2")]
    assert all(0 <= r["metrics"]["macro"] <= 100 for r in results if r["task"] == "xnli")
    assert (away / "x" / "report.md").is_file()
    assert "Failed to load" not in done.stderr and "Enum subclass" not in done.stderr
