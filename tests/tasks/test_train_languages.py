"""`train_languages`: a classification task tuned on some of its languages and evaluated on all of them. Its
pool, shots, validation and calibration rows are of the tuning languages only; an evaluation-only language
is scored with the temperature fit on the tuning languages' validation rows together, and its in-context
demonstrations are theirs; bad train languages are refused with the language and the fix."""

import collections
import dataclasses

import numpy as np
import pytest
import torch

from govtune.evaluation.calibration import TemperatureScaling, check_calibration_sets, fit_temperature, \
    log_probabilities
from govtune.models import tiny_model
from govtune.study.loading import build_config
from govtune.tasks.registry import load_task, task_spec

from task_helpers import INTENT_SPEC, intent_rows, write_task


@pytest.fixture
def xnli(settings):
    s = dataclasses.replace(settings, languages=["en", "zh"], train_languages=["eng"], xnli_pool_rows=[0, 30],
                            eval_limit=3)
    return load_task("xnli").prepare(s, None)


def test_xnli_tunes_on_english_and_tests_on_english_and_chinese(xnli):
    assert xnli.units == ["en", "zh"] and xnli.train_units == ["en"]
    assert {r["lang"] for r in xnli.pool()} == {"en"} and len(xnli.pool()) == 30
    s = xnli.sample(xnli.pool(), None, 4, 0)
    assert collections.Counter(r["lang"] for r in s.train) == {"en": 4}  # shots per tuning language
    assert {r["lang"] for r in s.val} == {"en"} and s.counts == {"xnli_train": 4, "xnli_val": 2}
    assert list(xnli.calibration_rows(xnli.pool(), 4, 0)) == ["en"]
    assert list(xnli.calibration_rows(None, 0, 0)) == ["en"]  # the base model's rows: the raw pool's, English
    assert {lang: len(rows) for lang, rows in xnli.test_sets().items()} == {"en": 3, "zh": 3}
    cal = xnli.calibration_rows(xnli.pool(), 4, 0)
    assert xnli.borrowed(xnli.test_sets(), cal) == {"zh": ["en"]}
    assert xnli.borrowed(xnli.test_sets(), None) is None


def test_xnli_evaluation_only_language_gets_the_tuning_languages_temperature(xnli, single_thread):
    model, tok = tiny_model()
    cal = xnli.calibration_rows(xnli.pool(), 4, 0)
    with torch.no_grad():
        m, preds = xnli.evaluate(model, tok, xnli.test_sets(), seed=0, progress=False, calibration=cal)
    en, zh = m["languages"]["en"], m["languages"]["zh"]
    assert zh["temperature"] == en["temperature"] and zh["calibrated_on"] == ["en"]  # fit on the same rows
    assert zh["calibration_n"] == en["calibration_n"] == 2 and "calibrated_on" not in en
    assert all("probs_ts" in r for r in preds if r["language"] == "zh")


def test_xnli_incontext_demonstrations_of_an_evaluation_only_language_are_the_tuning_languages(xnli):
    tests, val = xnli.incontext(xnli.pool(), None, 3, 0)
    assert set(tests) == {"en", "zh"} and set(val) == {"en"}
    pool = {r["premise"] for r in xnli.pool()}
    shown = [p for p in pool if p in tests["zh"][0]["context"]]
    assert len(shown) == 3  # k demonstrations, each an English pool row
    assert all(t["context"] == tests["zh"][0]["context"] for t in tests["zh"])


def test_a_borrowed_temperature_is_the_fit_on_the_sources_rows_together():
    rng = np.random.default_rng(0)
    probs = {lang: rng.dirichlet(np.ones(3), size=n) for lang, n in (("en", 7), ("hi", 5))}
    gold = {lang: rng.integers(0, 3, size=len(p)) for lang, p in probs.items()}
    ts = TemperatureScaling.fit(probs, gold, borrowed={"yo": ["en", "hi"], "sw": ["en", "hi"]})
    hand = fit_temperature(log_probabilities(np.concatenate([probs["en"], probs["hi"]])),
                           np.concatenate([gold["en"], gold["hi"]]))
    assert ts.temperatures["yo"] == ts.temperatures["sw"] == pytest.approx(hand, rel=1e-9)
    assert ts.n == {"en": 7, "hi": 5, "yo": 12, "sw": 12}
    assert ts.temperatures["en"] == pytest.approx(fit_temperature(log_probabilities(probs["en"]), gold["en"]))
    with pytest.raises(ValueError, match="'yo' is to be fit on the validation rows of en, de, and de have none"):
        TemperatureScaling.fit(probs, gold, borrowed={"yo": ["en", "de"]})
    tests = {"en": [{"id": "a", "lang": "en", "text": "a"}], "yo": [{"id": "b", "lang": "yo", "text": "b"}]}
    val = {"en": [{"id": "c", "lang": "en", "text": "c"}]}
    check_calibration_sets(val, tests, borrowed={"yo": ["en"]})
    with pytest.raises(ValueError, match="no validation examples for 'yo'"):
        check_calibration_sets(val, tests)


def test_a_task_file_language_with_test_rows_alone_is_evaluated_when_not_tuned_on(tmp_path, settings):
    rows = intent_rows(per_label=6, langs=("en", "es", "de"))
    spec = {k: v for k, v in INTENT_SPEC.items() if k not in ("test_size", "val_size")}
    en = [r for r in rows if r["locale"] == "en"]
    write_task(tmp_path, en[::2], data="train.jsonl")
    write_task(tmp_path, [r for r in rows if r["locale"] != "en" or r in en[1::2]], data="test.jsonl")
    path = write_task(tmp_path, None, splits={"train": "train.jsonl", "test": "test.jsonl"}, **spec)
    with pytest.raises(ValueError, match="language 'de' has no train rows"):
        load_task(str(path)).prepare(settings, tmp_path)
    task = load_task(str(path)).prepare(dataclasses.replace(settings, train_languages=["en"]), tmp_path)
    assert task.units == ["de", "en", "es"] and task.train_units == ["en"]
    assert {r["lang"] for r in task.pool()} == {"en"}
    assert {lang: len(r) for lang, r in task.test_sets().items()} == {"de": 18, "en": 9, "es": 18}
    s = task.sample(task.pool(), None, 2, 0)
    assert collections.Counter(r["lang"] for r in s.train) == {"en": 2} and {r["lang"] for r in s.val} == {"en"}
    assert set(task.calibration_rows(task.pool(), 2, 0)) == {"en"}
    tests, _ = task.incontext(task.pool(), None, 2, 0)
    assert all(tests[lang][0]["context"].count("Answer:") == 2 for lang in ("de", "es"))


def test_a_task_files_own_train_languages(tmp_path, settings):
    path = write_task(tmp_path, intent_rows(per_label=5, langs=("en", "es", "fr")), languages=["eng", "spa", "fra"],
                      train_languages=["spa"], **INTENT_SPEC)
    task = load_task(str(path)).prepare(settings, tmp_path)
    assert task.train_units == ["es"] and {r["lang"] for r in task.pool()} == {"es"}
    over = tmp_path / "sib.yaml"
    over.write_text("builtin: sib200\nlanguages: [eng_Latn, yor_Latn]\ntrain_languages: [yor_Latn]\n")
    assert task_spec(str(over)).train_languages == ["yo"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("builtin: sib200\nlanguages: [eng_Latn, yor_Latn]\ntrain_languages: [hin_Deva]\n")
    with pytest.raises(ValueError, match=r"task 'sib200': train_languages 'hi' not among the languages the task "
                                         r"evaluates \(en, yo\).*add it to the task's languages or drop it"):
        build_config({"tasks": [str(bad)], "methods": ["lora"]})


@pytest.mark.parametrize("config, message", [
    ({"tasks": ["xnli"], "languages": ["en", "zh"], "train_languages": ["de"]},
     r"task 'xnli': train_languages 'de' not among the languages the task evaluates \(en, zh\)"),
    ({"tasks": ["xnli"], "languages": ["en", "zh"], "train_languages": ["xx"]}, r"unknown XNLI language 'xx'"),
    ({"tasks": ["sib200"], "task_options": {"sib200": {"languages": ["eng_Latn"], "train_languages": ["qqq_Latn"]}}},
     r"task 'sib200': train_languages: unknown language 'qqq_Latn'"),
    ({"tasks": ["xnli", "flores"], "task_options": {"flores": {"train_languages": ["en"]}}},
     r"task 'flores' does not read 'train_languages'"),
    ({"tasks": ["flores"], "train_languages": ["en"]}, r"train_languages is set but no task of the study reads it"),
    ({"tasks": ["xnli"], "train_languages": []}, r"train_languages is empty"),
])
def test_bad_train_languages_are_refused_before_the_study_starts(config, message):
    with pytest.raises(ValueError, match=message):
        build_config({"methods": ["lora"], **config})


def test_train_languages_are_normalised_and_hashed_only_when_set(tmp_path):
    cfg = build_config({"methods": ["lora"], "tasks": ["sib200"], "task_options": {
        "sib200": {"languages": "all", "train_languages": "eng_Latn,zho_Hans,hin_Deva,swh_Latn"}}})
    assert cfg.task_settings("sib200").train_languages == ["en", "zh", "hi", "sw"]
    plain = build_config({"methods": ["lora"], "tasks": ["xnli"]})
    assert "train_languages" not in plain.settings()  # the default leaves every existing study's hash as it was
    assert build_config({"methods": ["lora"], "tasks": ["xnli"], "train_languages": ["en"]}).settings_hash() \
        != plain.settings_hash()
    completion = write_task(tmp_path, [{"prompt": "a", "completion": "b", "lang": "en"}], type="completion",
                            name="c", test_size=0.5, train_languages=["en"])
    with pytest.raises(ValueError, match="`train_languages` belongs to classification tasks"):
        task_spec(str(completion))
