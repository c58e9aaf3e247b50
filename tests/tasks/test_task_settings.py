"""The settings a task reads (govtune.tasks.settings.TaskSettings): the study's defaults, a study's per-task
`task_options` over its flat keys, checked before the study starts; `govtune curate --task` on the built-in
tasks (XNLI, SIB-200 with --langs, a task file over SIB-200), which build them from the command line."""

import collections
import dataclasses
import json
from pathlib import Path

import pytest

from govtune.cli import main
from govtune.data import XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.study.config import StudyConfig
from govtune.study.loading import build_config
from govtune.study.loading import load_config
from govtune.tasks.registry import load_task
from govtune.tasks.settings import NAMES, TaskSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_defaults_are_the_study_defaults_and_the_flat_keys_reach_every_task():
    assert StudyConfig().task_settings() == TaskSettings()
    study = StudyConfig(tasks=["xnli", "flores"], eval_limit=20, languages=["eng", "hi"], flores_eval_limit=4)
    for name in ("xnli", "flores"):
        s = study.task_settings(name)
        assert (s.eval_limit, s.languages, s.flores_eval_limit) == (20, ["en", "hi"], 4)
        assert {k: getattr(s, k) for k in NAMES} == {k: getattr(study, k) for k in NAMES}


def test_prepare_takes_task_settings_not_a_study_config():
    with pytest.raises(TypeError, match="TaskSettings"):
        load_task("xnli").prepare(StudyConfig(), None)


def test_task_options_set_one_tasks_settings_over_the_flat_keys():
    study = StudyConfig(tasks=["xnli", "sib200"], eval_limit=50,
                        task_options={"sib200": {"languages": "yor_Latn,eng_Latn", "eval_limit": 5}})
    sib, xnli = study.task_settings("sib200"), study.task_settings("xnli")
    assert (sib.languages, sib.eval_limit) == (["yo", "en"], 5)
    assert (xnli.languages, xnli.eval_limit) == (["en", "zh", "hi"], 50)  # the flat keys, untouched
    assert dataclasses.replace(sib, languages=xnli.languages, eval_limit=50) == xnli


def test_task_options_from_yaml_and_the_command_line(tmp_path):
    cfg = tmp_path / "study.yaml"
    cfg.write_text("tasks: [xnli, sib200]\ntask_options:\n  sib200: {languages: [yor_Latn], eval_limit: 5}\n")
    study = load_config(cfg, ["task_options.sib200.eval_limit=7", "task_options.xnli.languages=[en, sw]",
                              "eval_limit=20"])
    assert (study.task_settings("sib200").languages, study.task_settings("sib200").eval_limit) == (["yo"], 7)
    assert (study.task_settings("xnli").languages, study.task_settings("xnli").eval_limit) == (["en", "sw"], 20)
    with_options = load_config(cfg)
    assert with_options.settings_hash() != load_config(cfg, ["task_options.sib200.eval_limit=7"]).settings_hash()


@pytest.mark.parametrize("options, message", [
    ({"sib20": {"eval_limit": 5}}, "'sib20' is not a task of the study \\(did you mean 'sib200'\\?\\)"),
    ({"sib200": {"eval_limt": 5}}, "unknown task setting 'eval_limt' \\(did you mean 'eval_limit'\\?\\)"),
    ({"sib200": {"eval_limit": "five"}}, "task_options.sib200.eval_limit expects int"),
    ({"sib200": {"eval_limit": 0}}, "task_options.sib200: eval_limit must be >= 1"),
    ({"xnli": {"languages": ["en", "xx"]}}, "task_options.xnli: unknown XNLI language 'xx'"),
    ({"xnli": {"xnli_pool_rows": [0, 2000]}}, "xnli_pool_rows \\[0, 2000\\] overlaps xnli_eval_rows"),
    ({"sib200": 5}, "task_options.sib200 is 5: give a mapping"),
    ({"sib200": {"flores_pairs": ["en-zh"]}}, "task 'sib200' does not read 'flores_pairs'; it reads languages"),
    ({"intents": {"languages": ["en"]}}, "task 'intents' does not read 'languages'.*its task file"),
])
def test_bad_task_options_fail_naming_the_key(options, message):
    intents = str(ROOT / "examples" / "intents" / "intents.yaml")
    with pytest.raises(ValueError, match=message):
        build_config({"tasks": ["xnli", "sib200", intents], "methods": ["lora"], "task_options": options})


def test_an_unchanged_study_keeps_its_settings_hash():
    # configs/demo.yaml's hash before tasks had settings of their own (when it scored in batches of 8): its
    # studies still resume
    assert load_config(ROOT / "configs" / "demo.yaml", ["eval_batch_size=8"]).settings_hash() == "3f3e51f74f2e0ea4"
    flat = ["eval_batch_size=8", "eval_limit=20", "methods=lora,hybrid", "xnli_eval_rows=[1245,1400]"]
    assert load_config(ROOT / "configs" / "demo.yaml", flat).settings_hash() == "dc8e8d3cf65313ea"


def test_curate_the_builtin_xnli_task(tmp_path):
    out = tmp_path / "xnli"
    assert main(["curate", "--task", "xnli", "--langs", "eng,hi", "--stage", "c1", "--shots", "2",
                 "--no-progress", "--out", str(out)]) == 0
    kept, dropped = _jsonl(out / "kept_rows.jsonl"), _jsonl(out / "dropped.jsonl")
    report = json.loads((out / "report.json").read_text())
    assert report["input"] == 2 * len(XNLI_POOL_ROWS) == len(kept) + len(dropped) and report["kept"] == len(kept)
    assert {r["lang"] for r in kept} == {"en", "hi"}
    assert all(r["row"] in XNLI_POOL_ROWS and r["row"] not in XNLI_EVAL_ROWS for r in kept)  # never a test row
    shots = _jsonl(out / "shots.jsonl")
    assert collections.Counter(r["lang"] for r in shots) == {"en": 2, "hi": 2}
    assert {r["id"] for r in shots} <= {r["id"] for r in kept}


def test_curate_sib200_with_langs_and_a_task_file_over_it(tmp_path):
    out = tmp_path / "sib"
    assert main(["curate", "--task", "sib200", "--langs", "en,yor_Latn", "--stage", "c0", "--no-progress",
                 "--out", str(out)]) == 0
    split = json.loads((out / "sib200.splits.json").read_text())["splits"]
    kept = _jsonl(out / "kept_rows.jsonl")
    assert collections.Counter(r["lang"] for r in kept) == {"en": len(split["train"]), "yo": len(split["train"])}
    assert {str(r["index_id"]) for r in kept} == set(split["train"])  # the pool ids, never a test id

    over = tmp_path / "sib_hi.yaml"
    over.write_text("builtin: sib200\nlanguages: [hin_Deva]\n")
    out2 = tmp_path / "sib_file"
    assert main(["curate", "--task", str(over), "--stage", "c0", "--no-progress", "--out", str(out2)]) == 0
    assert {r["lang"] for r in _jsonl(out2 / "kept_rows.jsonl")} == {"hi"}


def test_curate_flores_says_it_has_no_pool(tmp_path, capsys):
    assert main(["curate", "--task", "flores", "--stage", "c1", "--no-progress", "--out", str(tmp_path)]) != 0
    assert "task 'flores' has no pool to curate" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_a_study_prepares_each_task_with_its_own_settings(tmp_path):
    from govtune.results.layout import StudyLayout
    from govtune.study.data import prepare_tasks

    study = build_config({"tasks": ["xnli", "sib200"], "methods": ["lora"], "eval_limit": 6,
                          "task_options": {"sib200": {"languages": ["yor_Latn", "en"], "eval_limit": 3}}})
    layout = StudyLayout(tmp_path)
    layout.tasks_dir.mkdir(parents=True)
    tasks = prepare_tasks(study, layout)
    assert tasks["xnli"].units == ["en", "zh", "hi"] and tasks["sib200"].units == ["yo", "en"]
    assert {lang: len(rows) for lang, rows in tasks["xnli"].test_sets().items()} == {"en": 6, "zh": 6, "hi": 6}
    assert {lang: len(rows) for lang, rows in tasks["sib200"].test_sets().items()} == {"yo": 3, "en": 3}


def test_a_task_entry_with_its_settings_is_the_same_study_as_task_options(tmp_path):
    inline = tmp_path / "inline.yaml"
    inline.write_text("tasks: [xnli, {sib200: {languages: [yor_Latn], eval_limit: 5}}]\n")
    options = tmp_path / "options.yaml"
    options.write_text("tasks: [xnli, sib200]\ntask_options: {sib200: {languages: [yor_Latn], eval_limit: 5}}\n")
    a, b = load_config(inline), load_config(options)
    assert a.tasks == b.tasks == ["xnli", "sib200"] and a.task_options == b.task_options
    assert a.settings_hash() == b.settings_hash()
    assert load_config(inline, ["task_options.sib200.eval_limit=9"]).task_settings("sib200").eval_limit == 9
    over = tmp_path / "tasks" / "sib_hi.yaml"  # a task file named relative to the config file
    over.parent.mkdir()
    over.write_text("builtin: sib200\nlanguages: [hin_Deva]\n")
    rel = tmp_path / "rel.yaml"
    rel.write_text("tasks: [{tasks/sib_hi.yaml: {eval_limit: 4}}]\n")
    study = load_config(rel)
    assert study.tasks == [str(over)] and study.task_settings("sib200").eval_limit == 4  # by its name
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [{sib200: 5}]\n")
    with pytest.raises(ValueError, match="must be a task or one task with its settings"):
        load_config(bad)


def test_the_report_reads_the_settings_a_task_ran_with():
    from govtune.report.reading import Study

    study = Study.__new__(Study)  # its config alone: what the report reads these settings from
    study.config = StudyConfig(tasks=["xnli", "flores"], flores_pairs=["en-zh"],
                               task_options={"xnli": {"languages": ["hi", "sw"]}}).to_dict()
    assert study.languages == ["hi", "sw"] and study.pairs == ["en-zh"]
    assert study.task_setting("flores", "flores_eval_limit") == 32
    study.config = {"languages": ["en"]}  # a study saved before task_options
    assert study.languages == ["en"] and study.pairs == ["en-zh", "en-es"]


def test_the_config_docstring_sorts_every_key_and_every_task_setting_is_a_key():
    import re

    from govtune.study.config import FIELDS

    listed = set(re.findall(r"[a-z][a-z0-9_]+", StudyConfig.__doc__.split("flat in the YAML")[1]))
    assert set(FIELDS) <= listed and set(NAMES) <= set(FIELDS)


class _Recording(TaskSettings):
    """TaskSettings that note which of them a task reads."""

    def __getattribute__(self, name):
        if name in NAMES:
            object.__getattribute__(self, "__dict__").setdefault("_read", set()).add(name)
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("entry", ["xnli", "flores", "sib200", "intents", "capitals"])
def test_a_task_reads_exactly_the_settings_it_declares(tmp_path, entry):
    import torch

    from govtune.models import tiny_model

    path = {"intents": EXAMPLES / "intents" / "intents.yaml", "capitals": EXAMPLES / "capitals" / "capitals.yaml"}
    settings = _Recording(languages=["en"], eval_limit=2, flores_eval_limit=2, flores_pairs=["en-zh"],
                          val_per_language=1, eval_batch_size=4, max_new_tokens=2, robustness=True)
    task = load_task(str(path.get(entry, entry))).prepare(settings, tmp_path)
    tests = {unit: rows[:2] for unit, rows in task.test_sets().items()}
    task.sample(task.pool() if task.curates else None, None, 1, 0)
    model, tok = tiny_model()
    with torch.no_grad():
        task.evaluate(model, tok, tests, seed=0, progress=False)
    read = settings.__dict__["_read"]
    assert read <= set(task.settings_read)  # task_options may set no setting a task ignores...
    # ...and each declared one is used (a task file with its own validation split takes no val_per_language)
    assert set(task.settings_read) - read <= ({"val_per_language"} if entry in path else set())
