"""The built-in sib200 task: one split of index_ids for every language (disjoint, label-stratified, written
and read back), its languages from a task file over the built-in one, and in a study with FLORES its
sentences kept out of FLORES's pool and test lines."""

import collections
import json

import pytest

from govtune.tasks.settings import TaskSettings
from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES
from govtune.data import sib200 as sib
from govtune.data.jsonl import find, read_jsonl
from govtune.study.loading import build_config
from govtune.study.data import prepare_tasks
from govtune.results.layout import StudyLayout
from govtune.tasks.registry import load_task, task_spec
from govtune.languages import normalize

LANGS = ["en", "yor_Latn", "san_Deva", "zho_Hant", "kas_Deva", "hi"]


def _settings(languages=LANGS, **kw):
    return TaskSettings(**{"languages": languages, "data_dir": None, "eval_limit": None, "val_per_language": 2,
                           "robustness": False, "eval_batch_size": 8, "max_new_tokens": 8, **kw})


def _ids(rows):
    return [r["index_id"] for r in rows]


def test_split_by_index_id_is_the_same_in_every_language(tmp_path):
    task = load_task("sib200").prepare(_settings(val_per_language=None), tmp_path)  # every validation id
    assert task.units == [normalize(code) for code in LANGS]  # each in its internal form (yor_Latn is yo)
    ids = task.index_ids
    assert {s: len(v) for s, v in ids.items()} == {"test": 105, "validation": 42, "train": 273}
    assert not ids["test"] & ids["train"] and not ids["test"] & ids["validation"]
    assert not ids["validation"] & ids["train"]
    topics = {r["index_id"]: r["category"] for s in sib.SPLITS for r in sib.load_sib200("en", s)}
    assert set().union(*ids.values()) == set(topics)  # every shipped id, once
    for split, rows in task.splits.items():
        by_lang = {lang: _ids(r for r in rows if r["lang"] == lang) for lang in task.units}
        want = by_lang["en"]
        for lang, mine in by_lang.items():
            if lang == normalize("san_Deva") and split == "train":  # its two duplicated sentences (see below)
                assert set(mine) < set(want) and len(want) - len(mine) <= 2
            else:
                assert mine == want, (split, lang)  # the same ids, in the same order
        assert set(want) == ids[split]
    # label-balanced: 15 test and 6 validation ids per topic (the smallest topic, geography, has 37 ids)
    assert collections.Counter(topics[i] for i in ids["test"]) == {t: 15 for t in sib.LABELS}
    assert collections.Counter(topics[i] for i in ids["validation"]) == {t: 6 for t in sib.LABELS}
    # the test rows of a language start label-interleaved: any prefix as balanced as the topics allow
    first7 = [r["label"] for r in task.test_sets()["en"][:7]]
    assert sorted(first7) == sorted(sib.LABELS)


def test_split_is_recorded_and_read_back(tmp_path):
    task = load_task("sib200").prepare(_settings(["en"]), tmp_path)
    record = json.loads((tmp_path / "sib200.splits.json").read_text())
    assert record["seed"] == 0 and record["test_size"] == 105
    assert [int(i) for i in record["splits"]["test"]] == _ids(task.test_sets()["en"])
    # validation rows: the study's val_per_language (2) first validation ids, of two topics
    val = task.splits["validation"]
    assert _ids(val) == [int(i) for i in record["splits"]["validation"][:2]] and len({r["label"] for r in val}) == 2
    # a rerun with other languages reads the same ids back; another seed is refused, not silently re-carved
    again = load_task("sib200").prepare(_settings(["sw", "de"]), tmp_path)
    assert again.index_ids == task.index_ids
    other = tmp_path / "other.yaml"
    other.write_text("builtin: sib200\nseed: 1\n")
    with pytest.raises(ValueError, match="was carved with seed/val_size/test_size 0/42/105"):
        load_task(str(other)).prepare(_settings(["en"]), tmp_path)
    assert load_task(str(other)).prepare(_settings(["en"]), tmp_path / "fresh").index_ids != task.index_ids


def test_duplicated_sentences_stay_out_of_tuning_rows(tmp_path):
    """san_Deva translates ids 271/272 and 531/532 by one sentence each: a copy of a test or validation
    sentence never stays in the pool."""
    task = load_task("sib200").prepare(_settings(["san_Deva"]), tmp_path)
    held = {r["text"] for s in ("test", "validation") for r in task.splits[s]}
    assert not held & {r["text"] for r in task.splits["train"]}
    rows = {r["index_id"]: r["text"] for s in sib.SPLITS for r in sib.load_sib200("san_Deva", s)}
    pairs = [(271, 272), (531, 532)]
    assert all(rows[a] == rows[b] for a, b in pairs)
    split_of = {i: s for s, ids in task.index_ids.items() for i in ids}
    crossing = sum(split_of[a] != split_of[b] and "train" in (split_of[a], split_of[b]) for a, b in pairs)
    assert task.duplicates.get("sa", 0) == crossing  # san_Deva, in its internal form


def test_languages_from_a_task_file_over_the_builtin(tmp_path):
    over = tmp_path / "sib_all.yaml"
    over.write_text("builtin: sib200\nlanguages: all\n")
    spec = task_spec(str(over))
    assert spec.name == "sib200" and spec.type == "classification" and spec.labels == list(sib.LABELS)
    assert spec.test_size == 105 and spec.langid is False  # the rest from the built-in task file
    task = load_task(str(over)).prepare(_settings(None), tmp_path)
    assert len(task.units) == 205 and {"en", "zh", "zho_Hant", "yo"} <= set(task.units)
    some = tmp_path / "sib_some.yaml"
    some.write_text("builtin: sib200\nlanguages: [yor_Latn, eng_Latn]\n")
    assert load_task(str(some)).prepare(_settings(["de"]), tmp_path).units == ["yo", "en"]


def test_task_file_over_a_builtin_refuses_what_it_does_not_read(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("builtin: sib200\ncolumns: {text: sentence}\n")
    with pytest.raises(ValueError, match=r"`columns` cannot be set over the built-in task 'sib200'"):
        task_spec(str(bad))
    bad.write_text("builtin: xnli\nlanguages: [de]\n")
    with pytest.raises(ValueError, match=r"`languages` cannot be set over the built-in task 'xnli'.*study's settings"):
        task_spec(str(bad))
    bad.write_text("builtin: sib201\n")
    with pytest.raises(ValueError, match=r"not a built-in task \(did you mean 'sib200'\?\)"):
        task_spec(str(bad))
    bad.write_text("builtin: sib200\ntype: classification\nname: sib200\ntest_size: 0.3\n")  # copied keys: fine
    assert task_spec(str(bad)).test_size == 0.3


def test_misaligned_or_missing_languages_are_refused_naming_them(tmp_path):
    data = tmp_path / "data" / "sib200"
    data.mkdir(parents=True)
    for code in ("eng_Latn", "yor_Latn"):
        for split in sib.SPLITS:
            rows = read_jsonl(find(sib.DATA_DIR / "sib200" / f"{code}.{split}.jsonl"))
            if code == "yor_Latn" and split == "dev":
                rows[0]["category"] = "travel" if rows[0]["category"] != "travel" else "sports"
            (data / f"{code}.{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = _settings(["en", "yor_Latn"], data_dir=str(tmp_path / "data"))
    with pytest.raises(ValueError, match="rows of 'yo' are not aligned with those of 'en'"):
        load_task("sib200").prepare(settings, tmp_path)
    with pytest.raises(FileNotFoundError, match="language 'ha' .*hau_Latn.train.jsonl|hau_Latn.train.jsonl.*language 'ha'"):
        load_task("sib200").prepare(_settings(["en", "hau_Latn"], data_dir=str(tmp_path / "data")), tmp_path)
    with pytest.raises(ValueError, match="no languages"):
        load_task("sib200").prepare(_settings([]), tmp_path)


def _study_tasks(tmp_path, tasks, **kw):
    config = build_config({"name": "x", "model": "tiny-llama", "methods": ["lora"], "tasks": tasks,
                           "curation": ["c0"], "flores_eval_limit": None, **kw})
    return prepare_tasks(config, StudyLayout(tmp_path / "out"))


def test_flores_keeps_sib200_sentences_out_of_its_lines(tmp_path):
    alone = _study_tasks(tmp_path, ["flores"])["flores"]
    assert [r["line"] for r in alone.test_sets()["en-zh"]] == list(FLORES_EVAL_LINES)
    tasks = _study_tasks(tmp_path, ["sib200", "flores"])
    sib_ids = set().union(*tasks["sib200"].index_ids.values())
    assert len(sib_ids) == 420
    flores = tasks["flores"]
    pool = {p: [r["line"] for r in flores._lines(p)] for p in flores.units}
    test = {p: [r["line"] for r in rows] for p, rows in flores.test_sets().items()}
    for pair in flores.units:
        assert pool[pair] == [i for i in FLORES_POOL_LINES if i not in sib_ids]
        assert test[pair] == [i for i in FLORES_EVAL_LINES if i not in sib_ids]
    train = flores.sample(None, None, 64, 0).train
    assert train and not {r["line"] for r in train} & sib_ids
    # the sentences themselves: no SIB-200 English text among FLORES's English sources
    sib_text = {r["text"] for rows in tasks["sib200"].splits.values() for r in rows if r["lang"] == "en"}
    assert not sib_text & {r["src"] for rows in flores.test_sets().values() for r in rows}
    # the other order of tasks excludes the same lines
    reverse = _study_tasks(tmp_path, ["flores", "sib200"])["flores"]
    assert [r["line"] for r in reverse.test_sets()["en-zh"]] == test["en-zh"]


def test_govtune_eval_runs_sib200_in_the_languages_given(tmp_path):
    from govtune.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--model", "tiny-llama", "--task", "sib200", "--langs", "yor_Latn,en", "--limit", "2",
                 "--no-robustness", "--no-progress", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["languages"]) == {"yo", "en"} and metrics["languages"]["en"]["n"] == 2
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert set(preds[0]["probs"]) == set(sib.LABELS)
    split = json.loads((out / "sib200.splits.json").read_text())["splits"]["test"]
    assert [p["id"] for p in preds if p["language"] == "en"] == [f"sib200-en-{i}" for i in split[:2]]


def test_a_split_written_for_other_data_is_refused(tmp_path):
    load_task("sib200").prepare(_settings(["en"]), tmp_path)  # writes the split of the shipped ids
    data = tmp_path / "data" / "sib200"
    data.mkdir(parents=True)
    rows = read_jsonl(find(sib.DATA_DIR / "sib200" / "eng_Latn.train.jsonl"))
    shipped = {r["index_id"] for s in sib.SPLITS for r in sib.load_sib200("en", s)}
    extra = min(set(range(997)) - shipped)
    rows.append({"index_id": extra, "category": "travel", "text": "An extra sentence."})
    (data / "eng_Latn.train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "eng_Latn.dev.jsonl.xz").write_bytes((sib.DATA_DIR / "sib200" / "eng_Latn.dev.jsonl.xz").read_bytes())
    with pytest.raises(ValueError, match=rf"index_ids \[{extra}\] of the data are in no split of .*delete it"):
        load_task("sib200").prepare(_settings(["en"], data_dir=str(tmp_path / "data")), tmp_path)
