"""Decontamination: a pool record sharing a 13-word (scripts with spaces) or 50-character (scripts without)
n-gram with an evaluation text, or containing a shorter evaluation text whole, is dropped and counted per
evaluation set and language, the same on every curation path; near misses stay."""

import json
import random

import pytest

from govtune.data import XNLI_EVAL_ROWS
from govtune.governance import CurationConfig, curate
from govtune.governance.config import DecontamConfig
from govtune.governance.decontam import (ContaminationIndex, char_form, word_form, written_without_spaces)
from govtune.governance.report import report_markdown
from govtune.governance.stream import curate_stream
from govtune.governance.synthetic import xnli_rows

NO_LANGID = CurationConfig(skip=("langid", "dedup"))  # the records below share filler text on purpose
LONG_EN = "The committee agreed that the new bridge across the northern river would open to traffic next spring"
FILLER = "Local reporters spent the whole afternoon asking residents what they thought about it, and"
THAI = "ฉันชอบกินข้าวผัดกับไข่ดาวทุกเช้าก่อนออกไปทำงานที่สำนักงาน"


def _decontam(report):
    return next(s for s in report["steps"] if s["name"] == "decontam")


# --- the matching rule, against a brute-force reference -------------------------------------------------
def _reference(eval_sets, records, c=DecontamConfig()):
    """Which sets each record touches, by plain string and list search over the normalised texts."""
    grams = []  # (set, way, gram)
    for name, rows in eval_sets.items():
        for text in rows:
            if written_without_spaces(text):
                s = char_form(text)
                if len(s) >= c.min_chars:
                    m = min(len(s), c.char_ngram)
                    grams += [(name, "c", s[i:i + m]) for i in range(len(s) - m + 1)]
            else:
                w = word_form(text).split()
                if len(w) >= c.min_words:
                    m = min(len(w), c.word_ngram)
                    grams += [(name, "w", tuple(w[i:i + m])) for i in range(len(w) - m + 1)]
    out = []
    for r in records:
        words = word_form(r["text"]).split()
        chars = char_form(r["text"]) if any(written_without_spaces(ch) for ch in r["text"]) else None
        hit = set()
        for name, way, g in grams:
            if way == "w" and any(tuple(words[i:i + len(g)]) == g for i in range(len(words) - len(g) + 1)):
                hit.add(name)
            if way == "c" and chars is not None and g in chars:
                hit.add(name)
        out.append(tuple(n for n in eval_sets if n in hit))
    return out


def test_index_matches_a_brute_force_search_on_random_text():
    rng = random.Random(0)
    vocab, han = ["a", "b", "cc"], "甲乙"  # small alphabets: n-grams recur by chance
    def words(k):
        return " ".join(rng.choice(vocab) for _ in range(k))

    def chars(k):
        return "".join(rng.choice(han) for _ in range(k))

    eval_sets = {"s1": [words(rng.randint(2, 20)) for _ in range(30)] + [chars(rng.randint(5, 70)) for _ in range(10)],
                 "s2": [words(rng.randint(12, 16)) for _ in range(20)] + [chars(rng.randint(40, 60)) for _ in range(10)]}
    records = ([{"text": words(rng.randint(3, 40)), "lang": "en"} for _ in range(300)]
               + [{"text": chars(rng.randint(10, 120)), "lang": "zh"} for _ in range(150)]
               + [{"text": words(rng.randint(3, 15)) + " " + chars(rng.randint(10, 60)), "lang": "zh"}
                  for _ in range(50)])
    for text in eval_sets["s2"]:  # long texts: a random n-gram window planted whole, or with one token changed
        cut = text.split() if " " in text else list(text)
        n = 13 if " " in text else 50
        i = rng.randint(0, max(0, len(cut) - n))
        window = cut[i:i + n]
        if rng.random() < 0.5:
            j = rng.randrange(len(window))
            window[j] = "zz" if " " in text else "丙"
        joined = " ".join(window) if " " in text else "".join(window)
        records.append({"text": words(5) + " " + joined + " " + words(3), "lang": "en"})
    got = ContaminationIndex(eval_sets).match(records)
    want = _reference(eval_sets, records)
    assert got == want
    assert 100 < sum(map(bool, want)) < len(records) - 100  # both outcomes occur often
    assert {s for sets in want for s in sets} == {"s1", "s2"}


def test_normalisation_case_width_punctuation_and_word_boundaries():
    index = ContaminationIndex({"t": ["The man is sleeping on the couch."]})
    matches = index.match([{"text": "Then THE MAN, is sleeping on the couch!! Really.", "lang": "en"},
                           {"text": "Ｔｈｅ ｍａｎ ｉｓ ｓｌｅｅｐｉｎｇ ｏｎ ｔｈｅ ｃｏｕｃｈ", "lang": "en"},  # full width (NFKC)
                           {"text": "Athe man is sleeping on the couches", "lang": "en"},  # not on word boundaries
                           {"text": "the man is sleeping on a couch", "lang": "en"}])
    assert matches == [("t",), ("t",), (), ()]


# --- in the pool ------------------------------------------------------------------------------------------
def test_embedded_sentences_are_dropped_and_near_misses_kept():
    hyp = next(r["hypothesis"] for r in xnli_rows("en", XNLI_EVAL_ROWS) if 6 <= len(r["hypothesis"].split()) <= 10)
    zh = next(r["premise"] for r in xnli_rows("zh", XNLI_EVAL_ROWS) if len(r["premise"]) >= 60)
    zh_hyp = next(r["hypothesis"] for r in xnli_rows("zh", XNLI_EVAL_ROWS) if 10 <= len(r["hypothesis"]) <= 20)
    eval_sets = {"xnli:test": [{"premise": zh, "hypothesis": zh_hyp, "lang": "zh"}, {"text": hyp, "lang": "en"}],
                 "other:test": [LONG_EN, THAI]}
    words = LONG_EN.split()
    twelve = " ".join(words[:12]) + " yesterday " + " ".join(words[13:])  # 12 shared words, then a change
    pool = [
        {"id": "en-long", "lang": "en", "text": f"{FILLER} {LONG_EN.lower()}, said the mayor."},
        {"id": "en-hyp", "lang": "en", "text": f"{FILLER} {hyp.rstrip('.')} — or so we heard."},
        {"id": "zh-long", "lang": "zh", "text": "据报道，" + zh + "这是昨天的消息。"},
        {"id": "zh-hyp", "lang": "zh", "text": "记者写道：" + zh_hyp + "大家都很惊讶。"},
        {"id": "th", "lang": "th", "text": "เมื่อวานเขาบอกว่า" + THAI + "แล้วก็กลับบ้าน"},
        {"id": "en-12", "lang": "en", "text": f"{FILLER} {twelve}."},
        {"id": "en-hyp-edit", "lang": "en", "text": f"{FILLER} {hyp.rstrip('.')[:-2]}xx and more."},
        {"id": "zh-49", "lang": "zh", "text": "据报道，" + zh[:49] + "某" + zh[50:60]},
        {"id": "th-cut", "lang": "th", "text": "เมื่อวาน" + THAI[:len(THAI) // 2]},
        {"id": "clean", "lang": "en", "text": FILLER},
    ]
    result = curate(pool, ["en", "zh", "th"], "c1", eval_sets=eval_sets, config=NO_LANGID, progress=False)
    dropped = {r["id"]: r["reason"] for r in result.dropped}
    assert dropped == dict.fromkeys(["en-long", "en-hyp", "zh-long", "zh-hyp", "th"], "contamination")
    step = _decontam(result.report)
    assert step["word_ngram"] == 13 and step["char_ngram"] == 50
    assert step["contaminated_by_set"] == {"xnli:test": {"en": 1, "zh": 2}, "other:test": {"en": 1, "th": 1}}
    assert step["eval_sets"] == {"xnli:test": {"rows": 2, "texts": 3, "too_short": 0},
                                 "other:test": {"rows": 2, "texts": 2, "too_short": 0}}
    c1 = result.report["stages"]["c1"]["dropped_by_language"]
    assert c1 == {"en": {"contamination": 2}, "zh": {"contamination": 2}, "th": {"contamination": 1}}
    md = report_markdown(result.report)
    assert "## Decontamination" in md and "| xnli:test | 2 | 0 | en 1, zh 2 |" in md


def test_a_record_touching_two_sets_counts_under_each_and_short_texts_are_not_checked():
    pool = [{"id": "both", "lang": "en", "text": f"{LONG_EN}. The committee agreed"},
            {"id": "yes", "lang": "en", "text": "Yes, he left the building in the evening."}]
    sets = {"a": [LONG_EN], "b": [LONG_EN + " and more"], "short": ["Yes", "he left"]}
    result = curate(pool, ["en"], "c1", eval_sets=sets, config=NO_LANGID, progress=False)
    assert [r["id"] for r in result.dropped] == ["both"] and [r["id"] for r in result.kept] == ["yes"]
    step = _decontam(result.report)
    assert step["contaminated_by_set"] == {"a": {"en": 1}, "b": {"en": 1}, "short": {}}
    assert step["eval_sets"]["short"] == {"rows": 2, "texts": 2, "too_short": 2}
    # the floor is a setting: at one word, "yes" is checked and found
    low = CurationConfig(skip=("langid",), decontam=DecontamConfig(min_words=1))
    assert len(curate(pool, ["en"], "c1", eval_sets=sets, config=low, progress=False).dropped) == 2


def test_protected_records_are_the_set_when_none_is_named_and_the_step_can_be_skipped():
    protected = [{"text": LONG_EN, "lang": "en", "id": "eval-0"}]
    pool = [{"id": "x", "lang": "en", "text": f"{FILLER} {LONG_EN}"}, {"id": "y", "lang": "en", "text": FILLER}]
    result = curate(pool, ["en"], "c1", protected=protected, config=NO_LANGID, progress=False)
    assert {r["id"]: r["reason"] for r in result.dropped} == {"x": "contamination"}
    assert _decontam(result.report)["contaminated_by_set"] == {"protected": {"en": 1}}
    skipped = curate(pool, ["en"], "c1", protected=protected, progress=False,
                     config=CurationConfig(skip=("langid", "decontam")))
    assert not skipped.dropped and any("without the decontam step" in n for n in skipped.report["notes"])


def test_bad_evaluation_rows_are_refused_before_any_work():
    with pytest.raises(ValueError, match=r"evaluation set 'x', row 1: an evaluation row must have `text`"):
        curate([{"text": FILLER, "lang": "en"}], ["en"], "c1", eval_sets={"x": ["ok text", {"question": "q"}]},
               config=NO_LANGID, progress=False)
    with pytest.raises(ValueError, match="min_words=20 must be in"):
        DecontamConfig(min_words=20)


# --- the same on every path -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_pool(pool):
    """The defect pool with evaluation sentences planted in some records."""
    ev = xnli_rows("en", XNLI_EVAL_ROWS)[:40] + xnli_rows("zh", XNLI_EVAL_ROWS)[:40]
    rng = random.Random(1)
    records = [dict(r) for r in pool[:400]]
    for i in range(0, 400, 9):
        r, e = records[i], rng.choice([x for x in ev if x["lang"] == records[i]["lang"]] or [None])
        if e is not None and "text" in r:
            r["text"] = r["text"] + " " + e[rng.choice(["premise", "hypothesis"])]
    return records, {"xnli:test": ev}


def test_stream_datasets_and_datatrove_agree_with_curate(mixed_pool, tmp_path):
    records, sets = mixed_pool
    config = CurationConfig(skip=("langid",))
    ref = curate(records, ["en", "zh", "hi"], "c1", eval_sets=sets, config=config, progress=False)
    ref_reasons = {r["id"]: r["reason"] for r in ref.dropped}
    assert list(ref_reasons.values()).count("contamination") >= 10
    kept, dropped = [], []
    report = curate_stream(iter(records), ["en", "zh", "hi"], "c1", eval_sets=sets, config=config, batch_size=7,
                           keep=kept.append, drop=dropped.append)
    assert kept == ref.kept and {r["id"]: r["reason"] for r in dropped} == ref_reasons
    assert _decontam(report)["contaminated_by_set"] == _decontam(ref.report)["contaminated_by_set"]

    datasets = pytest.importorskip("datasets")
    from govtune.governance.hf import curate_dataset

    ds = datasets.Dataset.from_list([{k: r.get(k) for k in ("id", "text", "premise", "hypothesis", "lang", "label")}
                                     for r in records])
    hf = curate_dataset(ds, ["en", "zh", "hi"], "c1", eval_sets=sets, config=config, progress=False, num_proc=2)
    hf_reasons = dict(zip(hf.dropped["id"], hf.dropped["reason"]))
    contaminated = {i for i, reason in ref_reasons.items() if reason == "contamination"}
    # datasets runs the per-record steps (decontamination among them) before deduplication: a contaminated
    # record that is also a duplicate is called contamination there
    assert {i for i, reason in hf_reasons.items() if reason == "contamination"} >= contaminated
    assert set(hf.kept["id"]) == {r["id"] for r in ref.kept}
    hf_step = _decontam(hf.report)
    assert sum(hf_step["contaminated_by_set"]["xnli:test"].values()) == list(hf_reasons.values()).count("contamination")

    from datatrove.data import Document

    from govtune.governance.datatrove_steps import DecontaminationFilter

    f = DecontaminationFilter(sets)
    docs = [Document(text="", id=str(r["id"]), metadata={"record": r}) for r in records]
    verdicts = f.filter_batch(docs)
    dt = {d.id for d, v in zip(docs, verdicts) if v is not True}
    assert all(v is True or v == (False, "contamination") for v in verdicts)
    every = {r["id"] for r, sets_ in zip(records, ContaminationIndex(sets).match(records)) if sets_}
    assert dt == {str(i) for i in every} and contaminated <= every
    assert all(d.metadata["contamination"] == ["xnli:test"] for d in docs if d.id in dt)


def test_command_line_eval_sets(tmp_path, capsys):
    from govtune.cli import main

    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": f"{FILLER} {LONG_EN}", "lang": "en", "id": "x"}, {"text": FILLER, "lang": "en", "id": "y"}]))
    (tmp_path / "eval.jsonl").write_text(json.dumps({"text": LONG_EN}) + "\n" + json.dumps("Who painted it?") + "\n")
    argv = ["curate", "--input", str(tmp_path / "pool.jsonl"), "--langs", "en", "--stage", "c1", "--skip", "langid",
            "--out", str(tmp_path / "out"), "--no-progress", "--eval-set", f"mine={tmp_path / 'eval.jsonl'}"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["by_reason"] == {"contamination": 1}
    assert _decontam(report)["contaminated_by_set"] == {"mine": {"en": 1}}
    assert [json.loads(x)["id"] for x in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()] == ["y"]
    assert main(argv[:-1] + ["mine"]) == 2
    assert "--eval-set 'mine': give NAME=FILE" in capsys.readouterr().err
