"""Language codes: with language ID on, a code govtune.languages does not know, or one the backend does not
cover, is an error naming the code and the fix; with language ID off (`skip=("langid",)`, `--skip langid`) any non-empty code is a language, on
every curation path (in memory, streamed, `datasets`, datatrove reader, command line)."""

import json

import pytest

from govtune.cli import main
from govtune.governance import CurationConfig, curate
from govtune.governance.pipeline import check_languages
from govtune.governance.records import KNOWN_LANGUAGES, invalid_reason, known_languages
from govtune.governance.stream import curate_stream

OFF = CurationConfig(skip=("langid",))
FIX = r"`langid: false` in the task file, --skip langid"


def _records():
    """Distinct sentences in a language lingua does not know (Toki Pona) and a code of the user's own."""
    words = ["jan", "moku", "kili", "tomo", "telo", "suno", "pona", "lape"]
    return [{"text": f"mi {words[i]} li {words[(i + 3) % 8]} e {words[(i + 5) % 8]} nanpa {i} tenpo {7 * i}",
             "lang": lang, "id": f"{lang}-{i}"} for lang in ("tok", "xx-custom") for i in range(8)]


def test_an_unknown_code_is_refused_naming_it_and_the_fix():
    assert "tok" not in KNOWN_LANGUAGES and "gsw" not in KNOWN_LANGUAGES
    with pytest.raises(ValueError, match=rf"language 'tok': unknown language .*{FIX}"):
        check_languages("en,tok")
    with pytest.raises(ValueError, match=rf"language 'tok': unknown language .*{FIX}"):
        curate(_records(), ["tok", "xx-custom"], "c1", progress=False)
    reason, message = invalid_reason({"text": "toki", "lang": "gsw"})
    assert reason == "unknown_language" and "'gsw'" in message and "--skip langid" in message


def test_with_language_id_off_any_nonempty_code_is_a_language():
    assert check_languages("tok,gsw,xx-custom", None) == ["tok", "gsw", "xx-custom"]
    assert invalid_reason({"text": "toki", "lang": "xx-custom"}, langid=None) is None
    for bad in ("", "  ", None, 5):  # still a code: a non-empty string
        assert invalid_reason({"text": "toki", "lang": bad}, langid=None)[0] == "unknown_language"
    with pytest.raises(ValueError, match="no languages"):
        check_languages(" , ", None)
    with pytest.raises(ValueError, match=r"language '': give the language's code"):
        check_languages([""], None)


def test_curation_without_language_id_runs_every_other_step():
    records = _records()
    records.append({**records[0], "id": "copy"})  # an exact duplicate: deduplication still runs
    records.append({"text": "jan", "lang": "tok", "id": "short"})  # too short: the quality rules still run
    protected = [{**records[9], "id": "test-row"}]  # a xx-custom test row: leakage is still removed
    result = curate(records, ["tok", "xx-custom"], "c2", protected=protected, config=OFF, progress=False)
    reasons = {r["id"]: r["reason"] for r in result.dropped}
    # tok-1 is the test row's text declared as another language: no duplicate within a language, but it
    # contains the evaluation text, so decontamination drops it
    assert reasons == {"copy": "exact_duplicate", "short": "too_short", "xx-custom-1": "leakage",
                       "tok-1": "contamination"}
    assert len(result.kept) == 14 and result.report["kept_by_language"] == {"tok": 7, "xx-custom": 7}
    assert [s["name"] for s in result.report["steps"]] == ["pii", "dedup", "decontam", "quality"]
    kept, dropped = [], []  # streamed: the same verdicts
    curate_stream(iter(records), ["tok", "xx-custom"], "c2", protected=protected, config=OFF, keep=kept.append,
                  drop=dropped.append)
    assert kept == result.kept and {r["id"]: r["reason"] for r in dropped} == reasons


def test_datasets_path_accepts_an_unknown_code_without_language_id():
    datasets = pytest.importorskip("datasets")
    from govtune.governance.hf import curate_dataset

    ds = datasets.Dataset.from_list(_records())
    result = curate_dataset(ds, ["tok", "xx-custom"], "c1", config=OFF, progress=False, labels=None)
    assert len(result.kept) == 16
    with pytest.raises(ValueError, match=rf"'tok': unknown language .*{FIX}"):
        curate_dataset(ds, ["tok", "xx-custom"], "c1", progress=False, labels=None)


def test_datatrove_reader_takes_the_flag():
    pytest.importorskip("datatrove")
    from govtune.governance.datatrove_steps import make_record_reader_adapter

    row = _records()[0]
    doc = make_record_reader_adapter(labels="any", langid=None)(None, row, "pool.jsonl", 0)
    assert doc["metadata"]["record"]["lang"] == "tok"
    with pytest.raises(ValueError, match=r"pool.jsonl, record 0: `lang` is 'tok': unknown language"):
        make_record_reader_adapter(labels="any")(None, row, "pool.jsonl", 0)


def test_the_backend_decides_which_codes_it_checks():
    # langid.py identifies Luxembourgish, lingua does not: each backend accepts the codes it covers
    assert "lb" in known_languages("langid") and "lb" not in known_languages("lingua")
    assert check_languages(["lb"], "langid") == ["lb"] and check_languages(["ltz_Latn"], "auto") == ["lb"]
    with pytest.raises(ValueError, match=r"language ID \(lingua\) does not cover lb: .*backend: fasttext.*"
                                         r"uncovered: skip"):
        check_languages(["lb"], "lingua")
    config = CurationConfig()
    config.langid.backend = "langid"
    assert config.language_check is config.langid and OFF.language_check is None


def test_curate_cli_skip_langid_accepts_any_code(tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in _records()), encoding="utf-8")
    out = tmp_path / "out"
    args = ["curate", "--input", str(pool), "--langs", "tok,xx-custom", "--labels", "any", "--stage", "c1",
            "--shots", "2", "--no-progress", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "language 'tok': unknown language" in err and "--skip langid" in err
    assert not out.exists()  # refused before anything was read or written
    assert main([*args, "--skip", "langid"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kept_by_language"] == {"tok": 8, "xx-custom": 8}
    shots = [json.loads(line) for line in (out / "shots.jsonl").read_text().splitlines()]
    assert sorted(r["lang"] for r in shots) == ["tok", "tok", "xx-custom", "xx-custom"]
