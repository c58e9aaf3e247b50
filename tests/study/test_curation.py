"""The study's curation step: one explicit writer of OUT/curation/, the base model loaded only when a stage
scores perplexity, and readers that refuse a pool nobody curated."""

import pytest

from govtune.models import tiny_model
from govtune.results.layout import StudyLayout
from govtune.study.data import StudyData, curate_study

NO_PPL = {"c2_no_ppl": {"stage": "c2", "perplexity": False}}


class CountingLoader:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return tiny_model()


def test_a_pool_not_curated_yet_is_an_error_naming_the_stage_the_path_and_the_fix(tmp_path, study):
    data = StudyData(study(), StudyLayout(tmp_path), progress=False)
    with pytest.raises(FileNotFoundError) as err:
        data.training_examples("c0", 8, seed=0)
    message = str(err.value)
    assert "'c0'" in message and str(tmp_path / "curation" / "c0.jsonl") in message and "--resume" in message
    assert not (tmp_path / "curation").exists()  # reading never curates


def test_stages_without_perplexity_never_load_the_model(tmp_path, study):
    config = study(curation=["c0", "c1"])
    layout = StudyLayout(tmp_path)
    loader = CountingLoader()
    assert curate_study(StudyData(config, layout, progress=False), ["c1", "c0"], loader) == ["c0", "c1"]
    assert loader.calls == 0 and layout.curated_stages() == ["c0", "c1"]
    for stage in ("c0", "c1"):
        assert layout.dropped(stage).exists() and layout.curation_report(stage).exists()


def test_perplexity_stages_score_with_the_base_model_loaded_once_whoever_reads_first(tmp_path, study):
    config = study(curation=["c2_no_ppl", "c2"], curation_variants=NO_PPL)
    layout = StudyLayout(tmp_path)
    loader = CountingLoader()
    data = StudyData(config, layout, progress=False)
    assert curate_study(data, ["c2_no_ppl", "c2"], loader) == ["c2", "c2_no_ppl"]
    assert loader.calls == 1
    reasons = {stage: {r["reason"] for r in data.curation_dropped(stage)} for stage in ("c2", "c2_no_ppl")}
    assert "high_perplexity" in reasons["c2"] and "high_perplexity" not in reasons["c2_no_ppl"]
    assert not any("without the perplexity filter" in n for n in data.curation_report("c2").get("notes", []))
    # cached: a second call (a resumed study) curates nothing and loads nothing
    assert curate_study(StudyData(config, layout, progress=False), ["c2"], loader) == [] and loader.calls == 1
    kept = StudyData(config, layout, progress=False).curated("c2")
    assert len(kept) == data.curation_report("c2")["kept"]
