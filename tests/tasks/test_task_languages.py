"""A task in languages govtune.languages does not know (Toki Pona `tok`, a code of the user's own): with
`langid: false` it is curated (deduplication, quality, leakage, k-shot), tuned, evaluated, reported and
exported; with language ID on it is refused before any work, naming the code and the fix."""

import json
import re

import pytest
import yaml

from govtune.cli import main
from govtune.tasks.spec import spec_from_dict

from task_helpers import INTENT_SPEC, write_task

LANGS = ("tok", "xx-custom")
WORDS = ("jan", "moku", "kili", "tomo", "telo", "suno", "lape", "kasi", "waso", "soweli", "ilo", "nasin", "lipu",
         "pipi", "kiwen", "seli", "lupa", "sike", "mun", "ma", "sewi", "anpa", "kulupu", "toki", "musi", "pali")
FIX = r"`langid: false` in the task file, --skip langid"


def rows() -> list[dict]:
    """12 distinct messages (4 per intent) per language, in the user's own field names."""
    out = []
    for lang in LANGS:
        for k, intent in enumerate(("billing", "delivery", "account")):
            for i in range(4):
                n = 12 * LANGS.index(lang) + 4 * k + i
                text = " ".join(WORDS[(n * 7 + j * 11) % len(WORDS)] for j in range(6)) + f" {n}"
                out.append({"msg": text, "intent": intent, "locale": lang, "ticket": f"{lang}-{intent}-{i}"})
    return out


def task_file(tmp_path, langid: bool):
    return write_task(tmp_path, rows(), filename=f"langid_{str(langid).lower()}.yaml",
                      **{**INTENT_SPEC, "name": "tp", "langid": langid})


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_langid_must_be_a_boolean(tmp_path):
    with pytest.raises(ValueError, match=r"`langid: 'no'` must be true or false"):
        spec_from_dict({**INTENT_SPEC, "data_files": "x.jsonl", "langid": "no"}, tmp_path / "t.yaml")


def test_curate_task_without_language_id(tmp_path, capsys):
    out = tmp_path / "refused"
    assert main(["curate", "--task", str(task_file(tmp_path, True)), "--stage", "c2", "--no-progress",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "task 'tp': language 'tok': unknown language" in err and "langid: false" in err
    assert not (out / "kept.jsonl").exists()  # refused before curation
    out = tmp_path / "curated"
    assert main(["curate", "--task", str(task_file(tmp_path, False)), "--stage", "c2", "--shots", "3",
                 "--no-progress", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kept_by_language"] == {"tok": 6, "xx-custom": 6}  # 12 rows - 3 test - 3 validation each
    assert [s["name"] for s in report["steps"]] == ["pii", "dedup", "decontam", "quality"]  # no language ID, the rest ran
    shots = _jsonl(out / "shots.jsonl")
    for lang in LANGS:  # label-balanced draw: one row of each intent per language
        assert sorted(r["label"] for r in shots if r["lang"] == lang) == ["account", "billing", "delivery"]
    # --skip langid on the command line turns it off for a task file that leaves it on
    assert main(["curate", "--task", str(task_file(tmp_path, True)), "--stage", "c1", "--skip", "langid",
                 "--no-progress", "--out", str(tmp_path / "skipped")]) == 0


STUDY = dict(name="t", model="tiny-llama", methods=["lora"], seeds=[0], shots=[2], curation=["c1"], epochs=1,
             batch_size=8, max_length=96, eval_batch_size=16, val_per_language=2, max_new_tokens=8,
             robustness=False, adapter={"r": 2, "alpha": 4})


def _run(tmp_path, langid: bool, out):
    """`govtune run` on a study of the task alone (tiny model, one LoRA cell and the base model)."""
    study = tmp_path / f"study_{str(langid).lower()}.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "tasks": [task_file(tmp_path, langid).name]}), encoding="utf-8")
    return main(["run", str(study), "--out", str(out)])


def test_govtune_run_without_language_id_and_refused_with_it(tmp_path, capsys):
    out = tmp_path / "refused"
    assert _run(tmp_path, True, out) == 2
    err = capsys.readouterr().err
    assert re.search(rf"task 'tp': language 'tok': unknown language.*{FIX}", err)
    assert not (out / "curation").exists() and not (out / "runs").exists()  # nothing curated, nothing run
    out = tmp_path / "out"
    assert _run(tmp_path, False, out) == 0
    lora = next(r for r in json.loads((out / "results.json").read_text()) if r["method"] == "lora")
    assert set(lora["metrics"]["languages"]) == set(LANGS)
    assert all(v["n"] == 3 for v in lora["metrics"]["languages"].values())
    curated = json.loads((out / "curation" / "tp" / "c1.report.json").read_text())
    assert [s["name"] for s in curated["steps"]] == ["pii", "dedup", "decontam"]  # C1 without its language ID step
    report = (out / "report.md").read_text()
    assert "| Method | tok | xx-custom | Macro |" in report and "| tp:c1 | C1 | xx-custom | 6 | 6 | 0 |" in report
    assert {r["lang"] for r in _jsonl(out / "export" / "tp" / "c1" / "test.jsonl")} == set(LANGS)


def test_eval_task_without_language_id(tmp_path):
    out = tmp_path / "eval"
    assert main(["eval", "--model", "tiny-llama", "--task", str(task_file(tmp_path, False)), "--shots", "1",
                 "--no-robustness", "--batch-size", "16", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["languages"]) == set(LANGS)
    preds = _jsonl(out / "predictions.jsonl")
    xx = [p for p in preds if p["language"] == "xx-custom"]
    assert metrics["languages"]["xx-custom"]["accuracy"] == pytest.approx(100 * sum(p["correct"] for p in xx) / len(xx))
