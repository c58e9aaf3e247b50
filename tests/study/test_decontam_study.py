"""A study's curation drops the pool records that contain text of any of its evaluation sets: its tasks'
test (and validation) rows, and the documents of the lm-eval tasks it runs (a local task YAML through
`lm_eval_include_path`); counted per evaluation set and language in the ledger. An lm-eval task that cannot
be loaded here stops the study before any curation."""

import json

import pytest
import yaml

from govtune.study.loading import build_config
from govtune.study.data import StudyData, curate_study
from govtune.results.layout import StudyLayout
from govtune.report.ledger import contamination_text
from govtune.study.ledger import record_curation
from govtune.results.store import load_curation

TEST_EN = "The old lighthouse keeper hid the brass telescope in the cellar before the winter storm arrived"
TEST_ZH = "老灯塔看守人在冬季风暴到来之前把黄铜望远镜藏在了地窖里，然后锁上了门，又去码头检查了所有的渔船是否已经系好缆绳。"
LM_EVAL_EN = "Every student in the small mountain village walked two hours to reach the school on the hill"


def _rows(lang, texts, start=0):
    return [{"id": f"{lang}-{start + i}", "text": t, "label": ("a", "b")[i % 2], "lang": lang} for i, t in enumerate(texts)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _task(tmp_path, test_en):
    """A task file (en, zh) whose pool embeds TEST_EN, TEST_ZH and LM_EVAL_EN in longer records."""
    notes_en = ["The parcel arrived late", "My invoice shows a double charge", "Please reset my password today",
                "Where is the nearest store", "The app crashes on start", "I want to change my address"]
    notes_zh = ["包裹迟到了", "发票上重复扣款", "请今天重置我的密码", "最近的商店在哪里", "应用一启动就崩溃", "我想修改我的地址"]
    train = (_rows("en", notes_en
                    + [f"Yesterday somebody told me that {TEST_EN.lower()}, which I found odd.",
                       f"In the essay she wrote that {LM_EVAL_EN}, every day."])
             + _rows("zh", notes_zh + ["据说" + TEST_ZH + "大家都很惊讶。"]))
    _write_jsonl(tmp_path / "train.jsonl", train)
    _write_jsonl(tmp_path / "validation.jsonl", _rows("en", ["A short validation row here", "Another validation row"], 50)
                 + _rows("zh", ["验证行一", "验证行二"], 50))
    _write_jsonl(tmp_path / "test.jsonl", _rows("en", [test_en, "A plain test row about billing"], 60)
                 + _rows("zh", [TEST_ZH, "一个普通的测试行"], 60))
    spec = {"type": "classification", "name": "notes", "labels": ["a", "b"], "langid": False,
            "splits": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}}
    (tmp_path / "notes.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return str(tmp_path / "notes.yaml")


def _lm_eval_task(tmp_path, name="decontam-probe", dataset=None):
    """A local lm-eval task: a multiple-choice YAML over a small JSONL file."""
    folder = tmp_path / "lm_eval_tasks"
    folder.mkdir(exist_ok=True)
    _write_jsonl(tmp_path / "docs.jsonl", [{"question": LM_EVAL_EN, "choices": ["yes", "no"], "answer": 0},
                                           {"question": "Who painted the mural?", "choices": ["a", "b"], "answer": 1}])
    config = {"task": name, "output_type": "multiple_choice", "test_split": "test",
              "doc_to_text": "Question: {{question}}\nAnswer:", "doc_to_choice": "{{choices}}",
              "doc_to_target": "answer", "metric_list": [{"metric": "acc"}]}
    if dataset is None:
        config.update(dataset_path="json", dataset_kwargs={"data_files": {"test": str(tmp_path / "docs.jsonl")}})
    else:
        config["dataset_path"] = dataset
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(folder)


def _study(tmp_path, task, **kw):
    config = build_config({"name": "d", "model": "tiny-llama", "methods": ["lora"], "seeds": [0], "shots": [2],
                           "curation": ["c1"], "tasks": [task], "val_per_language": 1, **kw})
    return StudyData(config, StudyLayout(tmp_path / "out"), progress=False)


def _no_model():
    raise AssertionError("C1 needs no model")


def test_pool_records_containing_test_rows_are_dropped_and_ledgered_per_set_and_language(tmp_path):
    data = _study(tmp_path, _task(tmp_path, TEST_EN))
    assert curate_study(data, ["c1"], _no_model) == ["c1"]
    dropped = {r["id"]: r["reason"] for r in data.curation_dropped("c1", "notes")}
    assert dropped == {"en-6": "contamination", "zh-6": "contamination"}  # LM_EVAL_EN's record stays
    step = next(s for s in data.curation_report("c1", "notes")["steps"] if s["name"] == "decontam")
    assert step["contaminated_by_set"] == {"notes:validation": {}, "notes:test": {"en": 1, "zh": 1}}
    assert step["eval_sets"]["notes:test"]["rows"] == 4
    record_curation(data)
    rows = [r for r in load_curation(data.layout.root)["curation_counts"] if r["kind"] == "contamination"]
    assert {(r["curation"], r["reason"], r["language"], r["n"]) for r in rows} == {
        ("notes:c1", "notes:test (13 words / 50 characters)", lang, 1) for lang in ("en", "zh")}
    assert "| notes:c1 | C1 | notes:test (13 words / 50 characters) | zh | 1 |" in contamination_text(
        load_curation(data.layout.root))


def test_an_lm_eval_task_alone_holding_the_sentence_gets_it_dropped(tmp_path):
    pytest.importorskip("lm_eval")
    task = _task(tmp_path, "An unrelated English test row about shipping")
    data = _study(tmp_path, task, lm_eval_tasks=["decontam-probe"], lm_eval_include_path=[_lm_eval_task(tmp_path)],
                  lm_eval_lang_map={"decontam-probe": "en"})
    curate_study(data, ["c1"], _no_model)
    dropped = {r["id"]: r["reason"] for r in data.curation_dropped("c1", "notes")}
    assert dropped == {"en-7": "contamination", "zh-6": "contamination"}  # LM_EVAL_EN's record; TEST_ZH (test)
    step = next(s for s in data.curation_report("c1", "notes")["steps"] if s["name"] == "decontam")
    assert step["contaminated_by_set"]["lm-eval:decontam-probe"] == {"en": 1}
    # per document: the rendered prompt, the two choices and the question field the prompt contains; the
    # choices ("yes", "a", ...) are under 4 words, too short to check
    assert step["eval_sets"]["lm-eval:decontam-probe"] == {"rows": 2, "texts": 8, "too_short": 4}


def test_an_lm_eval_task_that_cannot_be_loaded_stops_the_curation_naming_it_and_the_fix(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying the network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    folder = _lm_eval_task(tmp_path, "decontam-hub", dataset="govtune-offline/no-such-dataset")
    data = _study(tmp_path, _task(tmp_path, TEST_EN), lm_eval_tasks=["decontam-hub"], lm_eval_include_path=[folder])
    with pytest.raises(ValueError, match=r"lm-eval task 'decontam-hub' cannot be loaded on this machine.*local task "
                                         r"YAML.*lm_eval_include_path.*or drop it from lm_eval_tasks"):
        curate_study(data, ["c1"], _no_model)
    assert not (tmp_path / "out" / "curation").exists()  # nothing curated, nothing written
