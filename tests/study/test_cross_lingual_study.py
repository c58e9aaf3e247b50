"""Cross-lingual transfer on the tiny model: SIB-200 tuned on 2 of its 9 languages (`train_languages`) and
evaluated on all 9. The curated pool, the shots, the validation and calibration rows hold only the tuning
languages; the test rows, the per-language metrics and the temperatures cover all 9 (an evaluation-only
language's T is the one fit on the tuning languages' validation rows together); the report groups the
languages into tuned and not tuned; a resume with other train_languages is refused as another study."""

import collections
import json

import numpy as np
import pytest

from govtune.report import group_differences as gd
from govtune.report.reading import Study
from govtune.results.layout import StudyLayout
from govtune.study.data import StudyData
from govtune.study.grid import run_study
from govtune.study.loading import build_config

LANGS = ["eng_Latn", "hin_Deva", "yor_Latn", "zho_Hans", "arb_Arab", "swh_Latn", "fra_Latn", "rus_Cyrl", "tha_Thai"]
TRAIN = ["eng_Latn", "hin_Deva"]
TUNED, UNTUNED = {"en", "hi"}, {"yo", "zh", "ar", "sw", "fr", "ru", "th"}  # internal forms
STUDY = dict(name="transfer", model="tiny-llama", methods=["lora"], seeds=[0], shots=[2], curation=["c0"],
             tasks=["sib200"], epochs=1, batch_size=8, max_length=96, eval_batch_size=32, val_per_language=2,
             eval_limit=2, robustness=False, adapter={"r": 2, "alpha": 4},
             task_options={"sib200": {"languages": LANGS, "train_languages": TRAIN}})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer") / "out"
    config = build_config(STUDY)
    run_study(config, out, progress=False)
    (run,) = StudyLayout(out).finished_runs()
    return config, out, json.loads(run.result.read_text())


def test_tuning_rows_are_of_the_train_languages_and_test_rows_of_all(study):
    config, out, result = study
    layout = StudyLayout(out)
    curated = [json.loads(line) for line in layout.curated("c0", "sib200").read_text().splitlines() if line]
    assert {r["lang"] for r in curated} == TUNED  # what curation saw and kept: the tuning languages' pool
    report = json.loads(layout.curation_report("c0", "sib200").read_text())
    assert not any("no records left" in note for note in report.get("notes", []))  # no empty-language warning
    data = StudyData(config, layout, progress=False)
    train, val = data.training_examples("c0", 2, 0, "sib200")
    assert collections.Counter(r["lang"] for r in train) == {"en": 2, "hi": 2}  # shots per tuning language
    assert collections.Counter(r["lang"] for r in val) == {"en": 2, "hi": 2}
    assert result["data"]["sib200_train"] == 4 and result["data"]["sib200_val"] == 4
    calibration = data.validation_examples("c0", 2, 0, "sib200")
    assert set(calibration) == TUNED and all(len(rows) == 2 for rows in calibration.values())
    tests = data.test_sets("sib200")
    assert set(tests) == TUNED | UNTUNED and all(len(rows) == 2 for rows in tests.values())
    held = {(r["lang"], r["index_id"]) for rows in tests.values() for r in rows}
    assert not held & {(r["lang"], r["index_id"]) for r in train + val}


def test_every_language_is_scored_and_scaled_with_the_tuning_languages_temperature(study):
    _, out, result = study
    per = result["metrics"]["sib200"]["languages"]  # the run's result.json: metrics per task
    assert set(per) == TUNED | UNTUNED and all(v["n"] == 2 and "accuracy" in v for v in per.values())
    assert all("temperature" in v and "ece_ts" in v for v in per.values())
    assert all(per[lang]["calibration_n"] == 2 and "calibrated_on" not in per[lang] for lang in TUNED)
    shared = {per[lang]["temperature"] for lang in UNTUNED}
    assert len(shared) == 1 and all(per[lang]["calibrated_on"] == ["en", "hi"] for lang in UNTUNED)
    assert all(per[lang]["calibration_n"] == 4 for lang in UNTUNED)
    path = StudyLayout(out).run(result["run_id"]).predictions("sib200")
    preds = [json.loads(line) for line in path.read_text().splitlines() if line]
    (t,) = shared
    for rec in preds:  # every prediction carries its language's scaled probabilities: softmax(log p / T)
        temp = per[rec["language"]]["temperature"]
        p = np.array(list(rec["probs"].values()), dtype=np.float64)
        z = np.log(np.maximum(p, np.finfo(np.float64).tiny)) / temp
        want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        assert list(rec["probs_ts"].values()) == pytest.approx(want.tolist(), abs=1e-9)
    assert t == pytest.approx(per["yo"]["temperature"])


def test_report_groups_tuned_and_evaluation_only_languages(study):
    _, out, _ = study
    md = (out / "report.md").read_text()
    table = md.split("#### Accuracy per language")[1].split("####")[0]
    groups = {}
    for line in table.splitlines():
        if line.startswith("| **"):
            current = line.split("**")[1]
        elif line.startswith("| ") and "`" in line:
            groups.setdefault(current, set()).add(line.split("`")[1])
    tuned = set().union(*(codes for g, codes in groups.items() if g.endswith("in the tuning set")))
    untuned = set().union(*(codes for g, codes in groups.items() if g.endswith("not tuned on")))
    assert tuned == TUNED and untuned == UNTUNED


def test_resume_with_other_train_languages_is_refused(study, tmp_path):
    _, out, _ = study
    other = build_config({**STUDY, "task_options": {"sib200": {"languages": LANGS, "train_languages": ["eng_Latn"]}}})
    with pytest.raises(FileExistsError, match="differing keys: task_options"):
        run_study(other, out, resume=True, progress=False)
    flat = dict(STUDY, task_options={"sib200": {"languages": LANGS}}, train_languages=TRAIN)
    assert build_config(flat).settings_hash() != build_config({**flat, "train_languages": None}).settings_hash()
    saved = json.loads((out / "study.json").read_text())
    assert saved["config"]["task_options"]["sib200"]["train_languages"] == ["en", "hi"]


def test_language_groups_for_paired_differences_follow_the_tuning_set(study):
    """The groups the report pairs methods over: the tuning set and the languages evaluated only, as recorded;
    one method, no comparison: no table of paired group differences."""
    _, out, _ = study
    by = {g.name: set(g.codes) for g in gd.groups(Study(out), "sib200")}
    assert by[gd.TUNED] == TUNED and by[gd.UNTUNED] == UNTUNED and by[gd.ALL] == TUNED | UNTUNED
    assert "#### Paired differences per language group" not in (out / "report.md").read_text()
