"""A damaged store: `govtune report` names the damaged file and that `govtune run ... --resume` rebuilds it;
`--resume` then redoes only what it must (the runs whose own files are damaged) and the report is again the
one of the intact study."""

import json
import shutil
import sqlite3
from contextlib import closing

import pytest

from govtune.cli import main
from govtune.results.integrity import CorruptStore, check_study
from govtune.results.layout import StudyLayout
from govtune.study.grid import run_study

@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny study: the base model and LoRA with two seeds."""
    from tests.study.conftest import tiny_study

    config = tiny_study(methods=["lora"], seeds=[0, 1], shots=[0, 8], eval_limit=3)
    out = tmp_path_factory.mktemp("intact") / "study"
    run_study(config, out, progress=False)
    return config, out


@pytest.fixture
def copy(finished, tmp_path):
    config, out = finished
    mine = tmp_path / "study"
    shutil.copytree(out, mine)
    return config, mine


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _adapter(out, run_id):
    return next((out / "runs" / run_id / "checkpoint").rglob("adapter_model.safetensors"))


DAMAGE = {  # the file named in the error -> how it is damaged
    "results.sqlite": lambda out: (out / "results.sqlite").write_bytes(b"not a database " * 200),
    "results.json": lambda out: _cut(out / "results.json"),
    "result.json": lambda out: _cut(out / "runs" / "base-k0-none-s0" / "result.json"),
    "xnli.jsonl": lambda out: _cut(out / "runs" / "lora-k8-c0-s1" / "predictions" / "xnli.jsonl", 0.7),
    "adapter_model.safetensors": lambda out: _cut(_adapter(out, "lora-k8-c0-s0")),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_report_names_the_damaged_file_and_the_fix(copy, capsys, kind):
    _, out = copy
    DAMAGE[kind](out)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot be read" in err
    named = [line for line in err.splitlines() if line.startswith("- ")]
    assert len(named) == 1 and kind in named[0], err
    assert f"govtune run CONFIG --out {out} --resume" in err and "rebuilds" in err


def _results_json(out):
    """results.json without the costs (footprint, evaluation timing): they differ between two runs of the same
    computation."""
    entries = json.loads((out / "results.json").read_text())
    return [{**{k: v for k, v in e.items() if k != "footprint"},
             "metrics": {k: v for k, v in e["metrics"].items() if k != "timing"}} for e in entries]


def _metrics(out):
    """Every stored number but the training cost (wall-clock times and memory differ between two runs)."""
    with closing(sqlite3.connect(out / "results.sqlite")) as con:
        return sorted(con.execute("SELECT run_id, task, metric, value, ci_low, ci_high FROM metrics "
                                  "WHERE task != 'footprint' AND metric NOT LIKE 'timing.%'"))


def test_resume_redoes_only_the_damaged_runs_and_rebuilds_the_store(finished, copy, capsys):
    """Everything damaged at once: the database and results.json are rebuilt from the runs' files, the
    base run (its result.json cut) and LoRA seed 0 (its adapter cut) are redone, LoRA seed 1 is kept."""
    _, intact = finished
    config, out = copy
    DAMAGE["results.sqlite"](out)
    DAMAGE["results.json"](out)
    DAMAGE["result.json"](out)
    DAMAGE["adapter_model.safetensors"](out)
    with pytest.warns(UserWarning) as warned:
        outcome = run_study(config, out, resume=True, progress=False)
    said = "\n".join(str(w.message) for w in warned)
    assert "moved to results.sqlite.damaged-" in said and "results.json is cut short" in said
    assert sorted(outcome.ran) == ["base-k0-none-s0", "lora-k8-c0-s0"] and outcome.skipped == ["lora-k8-c0-s1"]
    check_study(StudyLayout(out))  # every file readable again
    assert len(list(out.glob("results.sqlite.damaged-*"))) == 1  # moved aside, not deleted
    assert _results_json(out) == _results_json(intact)
    rebuilt, before = _metrics(out), _metrics(intact)
    assert [r[:3] for r in rebuilt] == [r[:3] for r in before]
    flat = lambda rows: [x for r in rows for x in r[3:] if x is not None]  # noqa: E731
    assert [x is None for r in rebuilt for x in r[3:]] == [x is None for r in before for x in r[3:]]
    assert flat(rebuilt) == pytest.approx(flat(before), abs=1e-9)
    assert main(["report", str(out)]) == 0


def test_damaged_study_file_stops_resume_with_its_fix(copy, capsys):
    config, out = copy
    _cut(out / "study.json")
    with pytest.raises(CorruptStore, match=r"study.json is cut short or not JSON.*new --out directory"):
        run_study(config, out, resume=True, progress=False)
    assert main(["report", str(out)]) == 2
    assert "study.json is cut short" in capsys.readouterr().err


def test_missing_database_says_resume_rebuilds_it(copy, capsys):
    _, out = copy
    (out / "results.sqlite").unlink()
    assert main(["report", str(out)]) == 2
    assert "--resume` rebuilds it from the runs' own files" in capsys.readouterr().err
