"""Studies at breadth on the tiny model: SIB-200 over 54 languages and XNLI over all 15 finish, with
per-language metrics for every language in results.json and in the report; a language that curation
empties is refused, by name, before any cell trains."""

import json

import pytest

from govtune.data import sib200 as sib
from govtune.study.loading import build_config
from govtune.study.grid import run_study
from govtune.languages import XNLI_LANGUAGES, flores_code

# One tuned cell, one test row per language (robustness on: every script's perturbations run), one
# validation row per language for temperature scaling.
SMALL = dict(model="tiny-llama", methods=["lora"], seeds=[0], shots=[1], curation=["c0"], epochs=1,
             batch_size=16, max_length=96, eval_batch_size=32, val_per_language=1, eval_limit=1,
             adapter={"r": 2, "alpha": 4})


def _run(tmp_path, **kw):
    out = tmp_path / "out"
    run_study(build_config({**SMALL, "name": "breadth", **kw}), out, progress=False)
    return json.loads((out / "results.json").read_text()), (out / "report.md").read_text()


def _rows(report: str, title: str) -> str:
    """The per-language table of a section: over more than 8 languages, one row per language."""
    return report.split(title)[1].split("#### Accuracy per language")[1].split("####")[0]


@pytest.mark.breadth
def test_sib200_study_over_54_languages(tmp_path):
    codes = sorted(set(sib.languages()[::4]) | {"eng_Latn", "yor_Latn", "zho_Hant"})  # every 4th: 20+ scripts
    over = tmp_path / "sib.yaml"
    over.write_text(f"builtin: sib200\nlanguages: [{', '.join(codes)}]\n")
    results, report = _run(tmp_path, tasks=[str(over)])
    (run,) = results
    m = run["metrics"]  # results.json: one entry per run and task
    units = list(m["languages"])
    assert len(units) == len(codes) >= 53 and {flores_code(u) for u in units} == set(codes)
    assert all(v["n"] == 1 and v["accuracy"] in (0.0, 100.0) for v in m["languages"].values())
    assert m["macro"] == pytest.approx(sum(v["accuracy"] for v in m["languages"].values()) / len(units))
    assert set(m["robustness"]["by_language"]) == set(units)
    rows = _rows(report, "### Task `sib200` (classification)")
    assert all(rows.count(f"| `{u}` |") == 1 for u in units)
    acc = sorted(v["accuracy"] for v in m["languages"].values())
    k = -(-len(acc) // 10)  # a decile: a tenth of the languages, rounded up
    assert m["decile_gap"] == pytest.approx(sum(acc[-k:]) / k - sum(acc[:k]) / k)
    low, high = run["ci95"]["decile_gap"]
    assert low <= m["decile_gap"] <= high
    assert (tmp_path / "out" / "figures" / "languages_sib200.png").exists()


@pytest.mark.breadth
def test_xnli_study_over_its_15_languages(tmp_path):
    results, report = _run(tmp_path, tasks=["xnli"], languages=list(XNLI_LANGUAGES), xnli_pool_rows=[0, 45])
    (run,) = results
    m = run["metrics"]
    assert set(m["languages"]) == set(XNLI_LANGUAGES)
    assert all(v["n"] == 1 and "temperature" in v for v in m["languages"].values())
    rows = _rows(report, "### XNLI")
    assert all(rows.count(f"| `{lang}` |") == 1 for lang in XNLI_LANGUAGES)
    assert "decile_gap" in m and report.index("## What the study found") < report.index("### XNLI")


def test_a_language_curation_empties_is_refused_before_any_training(tmp_path):
    """C2's length rule set beyond any German sentence: the c2 cells could not draw German shots. The study
    stops after curation, naming the task and the language, before the c0 cells (which could) train."""
    variants = {"c2_long_de": {"stage": "c2", "perplexity": False, "langid": False,
                               "quality": {"min_chars": {"default": 10, "de": 100000}}}}
    with pytest.raises(ValueError, match=r"task 'xnli', curation c2_long_de, 2 shots: language 'de' has no "
                                         r"records left after curation; the pool had 30 de records; C2 removed 30"):
        _run(tmp_path, tasks=["xnli"], languages=["en", "de"], xnli_pool_rows=[0, 30], shots=[2],
             curation=["c0", "c2_long_de"], curation_variants=variants)
    runs = tmp_path / "out" / "runs"
    assert not runs.exists() or not any(runs.iterdir())  # no cell started
    assert (tmp_path / "out" / "curation" / "c2_long_de.jsonl").exists()  # curation itself finished
