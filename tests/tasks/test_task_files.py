"""Task files: every bad input is refused with the field, row or value and the fix; splits are reproducible."""

import json

import pytest

from govtune.tasks.registry import load_task, task_spec
from govtune.tasks.spec import spec_from_dict

from task_helpers import INTENT_SPEC, intent_rows, write_task


def _prepare(path, settings, workdir=None):
    return load_task(str(path)).prepare(settings, workdir)


def test_unknown_type_suggests_the_closest(tmp_path):
    with pytest.raises(ValueError, match=r"`type: clasification` is not a task type \(did you mean 'classification'\?\)"):
        spec_from_dict({"type": "clasification", "data_files": "x.jsonl"}, tmp_path / "t.yaml")
    with pytest.raises(ValueError, match=r"unknown task 'xnl' \(did you mean 'xnli'\?\)"):
        task_spec("xnl")


def test_a_column_mapping_naming_a_missing_field_is_named(tmp_path, settings):
    path = write_task(tmp_path, intent_rows(), **{**INTENT_SPEC, "columns": {**INTENT_SPEC["columns"], "text": "message"}})
    with pytest.raises(ValueError, match=r"the text field reads column 'message', which .* does not have \(its "
                                         r"columns: intent, locale, msg, ticket\); set `columns: \{text: <your column>\}`"):
        _prepare(path, settings)


def test_a_label_not_in_labels_names_the_row_and_value(tmp_path, settings):
    rows = intent_rows()
    rows[5]["intent"] = "refund"
    path = write_task(tmp_path, rows, **INTENT_SPEC)
    with pytest.raises(ValueError, match=r"row 5 \(id en-delivery-1\): label 'refund' is not in `labels` "
                                         r"\['billing', 'delivery', 'account'\]; add it to `labels`"):
        _prepare(path, settings)


def test_an_empty_language_is_refused(tmp_path, settings):
    rows = intent_rows()
    rows[2]["locale"] = ""
    with pytest.raises(ValueError, match=r"row 2 \(id en-billing-2\): empty language ''"):
        _prepare(write_task(tmp_path, rows, **INTENT_SPEC), settings)
    # a language whose rows all go to test leaves it without train rows: named, with the fix
    rows = intent_rows() + [{"msg": f"bonjour {i}", "intent": "billing", "locale": "fr", "ticket": f"fr{i}"}
                            for i in range(4)]
    with pytest.raises(ValueError, match=r"language 'fr' has 4 rows; test_size 3 \+ val_size 3 leave none"):
        _prepare(write_task(tmp_path, rows, **INTENT_SPEC), settings)


def test_a_split_that_empties_a_language_names_it(tmp_path, settings):
    train = [r for r in intent_rows() if r["locale"] == "en"]
    test = intent_rows(per_label=1, langs=("en", "es"))
    for r in test:
        r["msg"] += " (test)"
        r["ticket"] += "t"
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    spec = {k: v for k, v in INTENT_SPEC.items() if k not in ("test_size", "val_size")}
    path = write_task(tmp_path, None, splits={"train": "train.jsonl", "test": "test.jsonl"}, **spec)
    with pytest.raises(ValueError, match=r"task 'intents': language 'es' has no train rows after splitting"):
        _prepare(path, settings)


def test_leakage_is_refused_with_the_row_ids(tmp_path, settings):
    train = intent_rows()
    test = [dict(train[0], ticket="t-0"), dict(train[4], msg=train[4]["msg"].upper() + "  ", ticket="t-1")]
    test += [{"msg": "a new message", "intent": "billing", "locale": lang, "ticket": f"t-{lang}"} for lang in ("en", "es")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    spec = {k: v for k, v in INTENT_SPEC.items() if k not in ("test_size", "val_size")}
    path = write_task(tmp_path, None, splits={"train": "train.jsonl", "test": "test.jsonl"}, **spec)
    with pytest.raises(ValueError, match=r"2 test rows equal train rows \(t-0 = train en-billing-0, t-1 = train "
                                         r"en-delivery-0\): leakage"):
        _prepare(path, settings)


def test_val_size_larger_than_a_language(tmp_path, settings):
    path = write_task(tmp_path, intent_rows(), **{**INTENT_SPEC, "val_size": 20})
    with pytest.raises(ValueError, match=r"`val_size`: 20 rows asked for language 'en', which has only 12; lower val_size"):
        _prepare(path, settings)


def test_a_chat_row_without_an_assistant_turn(tmp_path, settings):
    rows = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}],
             "lang": "en"} for i in range(6)]
    rows[3]["messages"] = [{"role": "user", "content": "anyone there?"}]
    path = write_task(tmp_path, rows, type="chat", name="chat", test_size=2)
    with pytest.raises(ValueError, match=r"row 3 \(id chat-3\): no assistant turn"):
        _prepare(path, settings)


def test_a_completion_row_with_an_empty_completion(tmp_path, settings):
    rows = [{"q": f"2 + {i} =", "a": str(2 + i), "lang": "en"} for i in range(6)]
    rows[4]["a"] = "  "
    path = write_task(tmp_path, rows, type="completion", name="sums", columns={"prompt": "q", "completion": "a"},
                      test_size=2)
    with pytest.raises(ValueError, match=r"row 4 \(id sums-4\): empty completion"):
        _prepare(path, settings)


def test_a_ragged_csv_row_names_its_line(tmp_path, settings):
    (tmp_path / "rows.csv").write_text("msg,intent,locale\nhello,billing,en\nhi, there,delivery,en\n")
    path = write_task(tmp_path, None, data_files="rows.csv", **INTENT_SPEC)
    with pytest.raises(ValueError, match=r"rows.csv line 3: 4 fields where the header has 3 \(msg, intent, "
                                         r"locale\); quote fields that hold a comma"):
        _prepare(path, settings)


def test_carved_splits_are_reproducible_label_balanced_and_written_down(tmp_path, settings):
    path = write_task(tmp_path, intent_rows(), **INTENT_SPEC)
    a = _prepare(path, settings, tmp_path / "a")
    b = _prepare(path, settings, tmp_path / "b")
    ids = {s: [r["id"] for r in rows] for s, rows in a.splits.items()}
    assert ids == {s: [r["id"] for r in rows] for s, rows in b.splits.items()}
    for lang in ("en", "es"):  # 3 test rows per language, one per label (the data has 4 of each)
        assert sorted(r["label"] for r in a.splits["test"] if r["lang"] == lang) == ["account", "billing", "delivery"]
        assert sum(r["lang"] == lang for r in a.splits["train"]) == 12 - 3 - 3
    written = json.loads((tmp_path / "a" / "intents.splits.json").read_text())
    assert written["splits"] == ids and written["seed"] == 0
    # A rerun reads the written split, whatever the carving would now give: here a different file order.
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(intent_rows())))
    assert {s: [r["id"] for r in rows] for s, rows in _prepare(path, settings, tmp_path / "a").splits.items()} == ids
    # Another seed is another split, and a written split of the old seed is refused rather than mixed.
    other = _prepare(write_task(tmp_path, None, filename="t2.yaml", data_files="rows.jsonl", **{**INTENT_SPEC, "seed": 1}),
                     settings, tmp_path / "c")
    assert [r["id"] for r in other.splits["test"]] != ids["test"]
    with pytest.raises(ValueError, match=r"carved with seed/val_size/test_size 0/3/3, the task now asks 1/3/3"):
        _prepare(tmp_path / "t2.yaml", settings, tmp_path / "a")
