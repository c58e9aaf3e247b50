"""`govtune curate`: output files, bad input named by line, --skip-invalid accounting, dataset input."""

import json

import pytest

from govtune.cli import main

GOOD = [
    {"premise": "The committee met on Tuesday to discuss the budget.", "hypothesis": "The committee met.",
     "label": "entailment", "lang": "en", "id": "p1", "extra": {"source": "x"}},
    {"text": "他说，妈妈，我回来了。我们一起吃了晚饭。", "lang": "zh", "id": "z1"},
    {"text": "वैज्ञानिकों ने एक नए डायग्नोस्टिक उपकरण के आविष्कार की घोषणा की।", "lang": "hi", "id": "h1"},
    {"text": "Hola, ¿cómo estás? Esta frase está escrita en español.", "lang": "en", "id": "w1"},
]


def _write(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_cli_outputs(tmp_path, pool, capsys):
    src = _write(tmp_path / "pool.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in pool])
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--stage", "c2", "--out", str(out),
                 "--shots", "8", "--seed", "0", "--no-progress"]) == 0
    kept, dropped = _jsonl(out / "kept.jsonl"), _jsonl(out / "dropped.jsonl")
    assert len(kept) + len(dropped) == len(pool)
    assert all({"reason", "stage"} <= set(r) for r in dropped)
    assert _jsonl(out / "kept.jsonl")[0] in pool  # every input field unchanged
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == len(kept) and "perplexity" in report["notes"][0]
    md = (out / "report.md").read_text()
    assert "| C1 | wrong_language |" in md and "## Dropped examples" in md
    assert len(_jsonl(out / "shots.jsonl")) == 24
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_cli_skip_leaves_steps_out(tmp_path, capsys):
    src = _write(tmp_path / "pool.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in GOOD])
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--stage", "c1", "--out", str(out),
                 "--skip", "langid", "--no-progress"]) == 0
    assert len(_jsonl(out / "kept.jsonl")) == len(GOOD)  # the Spanish line declared en stays
    assert "without the langid step" in json.loads((out / "report.json").read_text())["notes"][0]
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--stage", "c1", "--out", str(out),
                 "--skip", "ppl", "--no-progress"]) != 0
    assert "skip has unknown steps ['ppl']" in capsys.readouterr().err


@pytest.mark.parametrize("line,message", [
    (b'{"lang": "en", "id": 1}', "line 2: no text field"),
    (b'{"text": "hello there", "lang": "en"', "line 2: invalid JSON"),
    (b'{"text": "   ", "lang": "en"}', "line 2: field `text` is empty"),
    (b'{"text": "hello there", "lang": "english"}', "line 2: `lang` is 'english'"),
    (b'{"text": "caf\xe9 au lait", "lang": "fr"}', "line 2: bytes that are not UTF-8"),
])
def test_bad_input_names_line(tmp_path, capsys, line, message):
    src = _write(tmp_path / "pool.jsonl", [json.dumps(GOOD[0]).encode(), line])
    code = main(["curate", "--input", str(src), "--langs", "en", "--stage", "c1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "--skip-invalid" in err
    assert not (tmp_path / "o").exists()


def test_skip_invalid_accounts_for_every_line(tmp_path):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in GOOD] + [
        b'{"lang": "en"}', b'not json', b'{"text": "", "lang": "en"}', b'{"text": "hi there", "lang": "xx"}',
        b'{"text": "\xff\xfe broken", "lang": "en"}', b'{"text": "Bonjour tout le monde", "lang": "fr"}', b""]
    src = _write(tmp_path / "pool.jsonl", lines)
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--stage", "c1", "--out", str(out),
                 "--skip-invalid", "--no-progress"]) == 0
    kept, dropped = _jsonl(out / "kept.jsonl"), _jsonl(out / "dropped.jsonl")
    assert len(kept) + len(dropped) == 10  # 10 non-blank lines in, 10 records out
    reasons = sorted(r["reason"] for r in dropped)
    assert reasons == sorted(["missing_text", "invalid_json", "empty_text", "unknown_language", "undecodable",
                              "language_not_selected", "wrong_language"])
    assert {r["id"] for r in kept} == {"p1", "z1", "h1"}
    assert [r for r in dropped if r["reason"] == "invalid_json"][0] == {
        "line": 6, "raw": "not json", "reason": "invalid_json", "stage": "c0"}
    report = json.loads((out / "report.json").read_text())
    assert report["stages"]["c0"]["dropped"] == 6 and report["stages"]["c1"]["dropped"] == 1


def test_dataset_directory_input_and_protected(tmp_path, pool):
    import datasets

    rows = [r for r in pool if "text" in r][:120]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    protected = _write(tmp_path / "eval.jsonl", [json.dumps(rows[0], ensure_ascii=False).encode()])
    out = tmp_path / "out"
    assert main(["curate", "--input", str(tmp_path / "ds"), "--langs", "en,zh,hi", "--stage", "c1",
                 "--out", str(out), "--protected", str(protected), "--no-progress"]) == 0
    dropped = _jsonl(out / "dropped.jsonl")
    assert len(_jsonl(out / "kept.jsonl")) + len(dropped) == 120
    assert any(r["id"] == rows[0]["id"] and r["reason"] == "leakage" for r in dropped)


def test_missing_input_file(tmp_path, capsys):
    assert main(["curate", "--input", str(tmp_path / "nope.jsonl"), "--langs", "en", "--out", str(tmp_path)]) == 2
    assert "no pool" in capsys.readouterr().err


def test_cli_perplexity_model(tmp_path, pool):
    rows = [r for r in pool if r["kind"] == "clean" and "text" in r][:30]
    src = _write(tmp_path / "pool.jsonl", [json.dumps(r, ensure_ascii=False).encode() for r in rows])
    out = tmp_path / "out"
    assert main(["curate", "--input", str(src), "--langs", "en,zh,hi", "--stage", "c2", "--out", str(out),
                 "--ppl-model", "tiny-llama", "--ppl-drop-percent", "20", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert not report["notes"]
    step = [s for s in report["steps"] if s["name"] == "perplexity"][0]
    assert step["drop_top_percent"] == 20.0
    per_lang = report["stages"]["c2"]["dropped_by_language"]
    c2_in = report["stages"]["c2"]["input_by_language"]
    for lang, n in c2_in.items():
        assert per_lang.get(lang, {}).get("high_perplexity", 0) == int(n * 0.2)
