"""The documents a study writes beside each tuned adapter (model card, datasheet) and its provenance manifest:
the card loads with huggingface_hub and its model-index equals results.json, it states the limitations the
evaluation measured, and `govtune verify` passes on a fresh study and names a file whose byte changed."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

from govtune.cli import main
from govtune.study.grid import run_study
from govtune.results.layout import StudyLayout
from govtune.report.card import task_kind, units_of
from govtune.results.manifest import Manifest, verify


@pytest.fixture(scope="module")
def documented(tmp_path_factory, study):
    out = tmp_path_factory.mktemp("card") / "study"
    config = study(methods=["lora", "hybrid"], seeds=[0], shots=[0, 8], curation=["c1"])
    run_study(config, out, progress=False)
    return StudyLayout(out)


def tuned(layout: StudyLayout) -> list:
    return [r for r in layout.finished_runs() if json.loads(r.result.read_text())["shots"] > 0]


def test_every_tuned_run_has_its_adapter_card_and_datasheet(documented):
    runs = tuned(documented)
    assert len(runs) == 2
    for run in runs:
        names = {p.name for p in run.adapter.iterdir()}
        assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "DATASHEET.md"} <= names
    assert not documented.run("base-k0-none-s0").adapter.exists()  # nothing trained, no adapter, no card


def _expected(result: dict) -> dict[tuple[str, str], float]:
    """(dataset_config or "", metric_name) -> value, read straight from result.json."""
    from govtune.report.card import AGGREGATES, UNIT_METRICS, _get

    out = {}
    for task, metrics in result["metrics"].items():
        kind = task_kind(metrics)
        if kind is None:
            continue
        for unit, values in units_of(metrics).items():
            for key, title, _ in UNIT_METRICS[kind]:
                if key in values:
                    out[(unit, f"{title} ({unit})")] = values[key]
        for key, title in AGGREGATES[kind]:
            if _get(metrics, key) is not None:
                out[("", title)] = _get(metrics, key)
    return out


def test_model_index_equals_results_json(documented):
    for run in tuned(documented):
        card = ModelCard.load(run.adapter / "README.md")
        result = json.loads(run.result.read_text())
        got = {(r.dataset_config or "", r.metric_name): r.metric_value for r in card.data.eval_results}
        expected = _expected(result)
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-9), key
        assert card.data.library_name == "govtune" and result["method"] in card.data.tags
        assert set(card.data.language) == {"en", "zh", "hi"}


def test_the_card_says_what_the_evaluation_measured(documented):
    run = tuned(documented)[0]
    result = json.loads(run.result.read_text())
    text = (run.adapter / "README.md").read_text()
    ci = result["ci95"]["xnli"]
    at_chance = sorted(lang for lang in result["metrics"]["xnli"]["languages"]
                       if ci[f"languages.{lang}.accuracy"][0] <= 100 / 3)
    if at_chance:  # a random tiny model: its intervals reach chance
        assert f"reaches chance (33.3%): {', '.join(at_chance)}" in text
    macro, (low, high) = result["metrics"]["xnli"]["macro"], ci["macro"]
    assert f"| Macro accuracy | {macro:.1f} [{low:.1f}, {high:.1f}] |" in text
    assert "## Cost" in text and f"{result['footprint']['train_steps']}" in text
    assert "CC BY-NC 4.0" in text  # XNLI's licence, beside the base weights' terms
    base = json.loads(documented.run("base-k0-none-s0").result.read_text())
    assert f"base model scores {base['metrics']['xnli']['macro']:.1f} Macro" in text


def test_the_datasheet_counts_what_curation_removed_per_language(documented):
    run = tuned(documented)[0]
    sheet = (run.adapter / "DATASHEET.md").read_text()
    report = json.loads(documented.curation_report("c1").read_text())
    for lang, n_in in report["stages"]["c1"]["input_by_language"].items():
        kept = report["stages"]["c1"]["kept_by_language"][lang]
        assert f"| c1 | {lang} | {n_in} | {kept} |" in sheet
    assert "_To be answered by the data's owner._" in sheet  # what the study cannot know is marked, not invented


def test_govtune_card_rewrites_the_same_card(documented, tmp_path):
    run = tuned(documented)[0]
    assert main(["card", str(documented.root), "--run", run.dir.name, "--to", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text() == (run.adapter / "README.md").read_text()


def test_manifest_records_inputs_and_versions(documented):
    data = Manifest.load(documented.root).data
    assert set(data["inputs"]["tasks"]["xnli"]["rows"]) == {"test", "pool"}
    env = data["environments"][-1]
    assert env["libraries"]["torch"] and env["python"]
    assert {"report.md", "study.json", "results.json"} <= set(data["files"])


def test_verify_passes_on_a_fresh_study_and_names_a_changed_byte(documented, capsys):
    assert verify(documented.root) == []
    assert main(["verify", str(documented.root)]) == 0
    weights = tuned(documented)[0].adapter / "adapter_model.safetensors"
    original = weights.read_bytes()
    try:
        changed = bytearray(original)
        changed[-1] ^= 0x01
        weights.write_bytes(bytes(changed))
        capsys.readouterr()
        assert main(["verify", str(documented.root)]) == 1
        out = capsys.readouterr().out
        rel = weights.relative_to(documented.root).as_posix()
        assert f"changed: {rel}" in out and out.count("changed:") == 1
    finally:
        weights.write_bytes(original)
    assert verify(documented.root) == []


def test_verify_names_missing_and_unrecorded_files(documented):
    extra = documented.root / "runs" / "notes.txt"
    extra.write_text("added by hand\n")
    results = documented.results_json
    saved = results.read_bytes()
    results.unlink()
    try:
        found = {(p.kind, p.path) for p in verify(documented.root)}
        assert found == {("unrecorded", "runs/notes.txt"), ("missing", "results.json")}
    finally:
        extra.unlink()
        results.write_bytes(saved)


def test_a_resume_that_runs_nothing_keeps_the_manifest_true(documented, study):
    config = study(methods=["lora", "hybrid"], seeds=[0], shots=[0, 8], curation=["c1"])
    outcome = run_study(config, documented.root, resume=True, progress=False)
    assert outcome.ran == [] and verify(documented.root) == []


def test_verify_without_a_manifest_says_how_to_make_one(tmp_path):
    (tmp_path / "study.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="govtune report"):
        verify(tmp_path)


def test_archiving_and_restoring_keep_the_manifest_true(documented, tmp_path):
    import shutil

    from govtune.results.archive import archive_study, restore_study

    copy = tmp_path / "copy"
    shutil.copytree(documented.root, copy)
    assert verify(copy) == []
    archive_study(copy)
    assert verify(copy) == []  # the packed files dropped from the manifest, the archive recorded
    restore_study(copy, tmp_path / "restored")
    assert verify(tmp_path / "restored") == []
    restore_study(copy)
    assert verify(copy) == []
