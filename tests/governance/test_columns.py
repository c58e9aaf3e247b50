"""A user's own schema: field names mapped through `columns`, labels other than XNLI's, CSV rows checked."""

import json

import pytest

from govtune.cli import main
from govtune.governance.columns import map_columns, parse_columns
from govtune.governance.io import load_pool
from govtune.governance.sources import iter_pool

ROWS = [
    {"body": "I was charged twice for my order this month.", "language": "en", "intent": "billing", "ref": "a1"},
    {"body": "我的包裹三周了还没有到，请帮我查一下。", "language": "zh", "intent": "shipping", "ref": "a2"},
    {"body": "मुझे अपने पैसे वापस चाहिए, उत्पाद खराब निकला।", "language": "hi", "intent": "refund", "ref": "a3"},
    {"body": "Please close my account and delete my data.", "language": "en", "intent": "account", "ref": "a4"},
]
COLUMNS = "text=body,lang=language,label=intent,id=ref"


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _read(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_cli_curates_a_pool_in_its_own_schema(tmp_path, capsys):
    src = _jsonl(tmp_path / "intents.jsonl", ROWS)
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--columns", COLUMNS, "--langs", "en,zh,hi", "--stage", "c2",
                 "--out", str(out), "--no-progress"]) == 0
    kept = _read(out / "kept.jsonl")
    assert kept == [{"text": r["body"], "lang": r["language"], "label": r["intent"], "id": r["ref"]} for r in ROWS]
    assert json.loads((out / "report.json").read_text())["kept_by_language"] == {"en": 2, "zh": 1, "hi": 1}


def test_cli_checks_labels_against_the_given_list(tmp_path, capsys):
    src = _jsonl(tmp_path / "intents.jsonl", ROWS)
    code = main(["curate", "--input", str(src), "--columns", COLUMNS, "--labels", "billing,shipping,refund",
                 "--langs", "en,zh,hi", "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "line 4: label 'account' is not one of the labels ['billing', 'shipping', 'refund']" in err
    assert not (tmp_path / "o").exists()


def test_xnli_label_error_names_the_way_out(tmp_path, capsys):
    src = _jsonl(tmp_path / "intents.jsonl", [{"text": r["body"], "lang": r["language"], "label": r["intent"]}
                                               for r in ROWS])
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "line 1: label 'billing' is not an XNLI class" in err and "--labels" in err
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--labels", "any", "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 0


def test_a_missing_mapped_field_names_field_row_and_fix(tmp_path, capsys):
    src = _jsonl(tmp_path / "intents.jsonl", ROWS)
    assert main(["curate", "--input", str(src), "--columns", "text=bdy,lang=language", "--langs", "en,zh,hi",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "intents.jsonl, line 1: columns maps text=bdy, but there is no field 'bdy'" in err
    assert "e.g. text=body" in err
    with pytest.raises(ValueError, match=r"unknown target 'txt' \(did you mean 'text'\?\)"):
        parse_columns("txt=body")
    with pytest.raises(ValueError, match="'text' is not TARGET=FIELD"):
        parse_columns("text")
    with pytest.raises(ValueError, match="would overwrite"):
        map_columns({"body": "x", "text": "y"}, {"text": "body"})


def test_text_pair_becomes_premise_and_hypothesis():
    row = {"q": "Is the shop open?", "a": "The shop is open today.", "l": "en", "y": "yes"}
    record = map_columns(row, parse_columns("text=q,text_pair=a,lang=l,label=y"))
    assert record == {"premise": row["q"], "hypothesis": row["a"], "lang": "en", "label": "yes"}


def test_ragged_csv_row_names_its_line(tmp_path, capsys):
    src = tmp_path / "pool.csv"
    src.write_text("body,language,intent\n"
                   "\"I was charged twice, please help.\",en,billing\n"
                   "My parcel is late,en,shipping,extra\n"
                   "Please close my account now.,en,account\n", encoding="utf-8")
    assert main(["curate", "--input", str(src), "--columns", "text=body,lang=language,label=intent",
                 "--langs", "en", "--stage", "c1", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pool.csv, line 3: 4 cells where the header has 3 (body, language, intent)" in err
    records, rejected = load_pool(src, ["en"], skip_invalid=True, labels=None,
                                  columns=parse_columns("text=body,lang=language,label=intent"))
    assert [r["label"] for r in records] == ["billing", "account"]
    assert [(r["line"], r["reason"]) for r in rejected] == [(3, "ragged_row")]


def test_missing_field_with_skip_invalid_is_dropped_with_its_reason(tmp_path):
    rows = ROWS[:2] + [{"language": "en", "intent": "billing", "ref": "a9"}]
    src = _jsonl(tmp_path / "p.jsonl", rows)
    got = list(iter_pool(src, ["en", "zh"], labels=None, columns=parse_columns(COLUMNS), skip_invalid=True))
    assert [r.get("reason") for r in got] == [None, None, "missing_field"]
    assert "no field 'body'" in got[2]["problem"]


def test_datatrove_reader_adapter_reads_the_same_schema():
    from govtune.governance.datatrove_steps import make_record_reader_adapter

    adapter = make_record_reader_adapter(parse_columns(COLUMNS), "any")
    doc = adapter(None, ROWS[1], "intents.jsonl", 1)
    assert doc["text"] == ROWS[1]["body"] and doc["id"] == "a2"
    assert doc["metadata"]["record"] == {"text": ROWS[1]["body"], "lang": "zh", "label": "shipping", "id": "a2"}
    with pytest.raises(ValueError, match="intents.jsonl, record 0: columns maps text=body"):
        adapter(None, {"language": "en"}, "intents.jsonl", 0)
