"""The leave-one-step-out switches (`CurationConfig.skip`): each removes exactly its step's reasons, and the
options mapping (`curation_config`) turns `{step: false}` into a skip."""

import pytest

from govtune.governance import CurationConfig, curate
from govtune.governance.config import curation_config
from govtune.governance.pipeline import build_steps
from govtune.governance.records import REASONS

LANGS = ["en", "zh", "hi"]
STEP_REASONS = {"langid": {"wrong_language", "low_language_confidence"},
                "dedup": {"exact_duplicate", "near_duplicate"},
                "quality": {r for r, s in REASONS.items() if s == "c2"} - {"high_perplexity"}}


@pytest.fixture(scope="module")
def sample(pool):
    """A slice of the defect pool with every kind of defect, curated to C2 with all steps."""
    records = pool[:700]
    assert {"wrong_lang", "exact_dup", "near_dup", "junk"} <= {r["kind"] for r in records}
    return records, curate(records, LANGS, "c2", progress=False)


@pytest.mark.parametrize("step", ["langid", "dedup", "quality"])
def test_a_skipped_step_drops_nothing_and_the_others_still_run(sample, step):
    records, full = sample
    result = curate(records, LANGS, "c2", config=CurationConfig(skip=(step,)), progress=False)
    reasons = {r["reason"] for r in result.dropped}
    full_reasons = {r["reason"] for r in full.dropped}
    assert STEP_REASONS[step] & full_reasons  # the full run did drop records for this step
    assert not reasons & STEP_REASONS[step]
    for other, theirs in STEP_REASONS.items():
        if other != step:
            assert reasons & theirs, other
    assert step not in [s["name"] for s in result.report["steps"] if s.get("within_pool", True)]
    assert any(f"without the {step} step" in note for note in result.report["notes"])
    assert len(result.kept) + len(result.dropped) == len(records)
    # leaving langid out: the records it dropped survive unless a later step catches them
    if step == "langid":
        assert {r["id"] for r in full.dropped if r["reason"] == "wrong_language"} - {
            r["id"] for r in result.dropped} <= {r["id"] for r in result.kept}


def test_skipping_dedup_keeps_pool_duplicates_but_still_removes_leakage(pool):
    # single sentences: an XNLI pair shares its premise with two others, which decontamination would drop
    clean = [r for r in pool if r["kind"] == "clean" and "text" in r][:60]
    protected = [dict(r, id=f"eval-{i}") for i, r in enumerate(clean[:5])]
    copies = [dict(r, id=f"copy-{i}") for i, r in enumerate(clean[10:14])]
    records = clean + copies
    result = curate(records, LANGS, "c1", protected=protected, config=CurationConfig(skip=("dedup",)),
                    progress=False)
    dropped = {r["id"]: r["reason"] for r in result.dropped}
    assert {i for i, reason in dropped.items() if reason == "leakage"} == {r["id"] for r in clean[:5]}
    assert not {i for i, reason in dropped.items() if reason.endswith("duplicate")}
    kept = {r["id"] for r in result.kept}
    assert {r["id"] for r in copies} <= kept and {r["id"] for r in clean[10:14]} <= kept
    with_dedup = curate(records, LANGS, "c1", protected=protected, progress=False)
    assert {r["id"] for r in with_dedup.dropped if r["reason"] == "exact_duplicate"} == {r["id"] for r in copies}


def test_skipping_perplexity_leaves_the_step_out_even_with_a_reference_model(tiny_llama):
    model, tok = tiny_llama
    names = [s.name for s in build_steps(LANGS, "c2", CurationConfig(), reference_model=model,
                                         reference_tokenizer=tok)[0]]
    assert names == ["langid", "pii", "dedup", "quality", "perplexity"]
    steps, notes = build_steps(LANGS, "c2", CurationConfig(skip=("perplexity",)), reference_model=model,
                               reference_tokenizer=tok)
    assert [s.name for s in steps] == ["langid", "pii", "dedup", "quality"]
    assert notes == ["C2 ran without the perplexity step (skip)"]
    assert [s.name for s in build_steps(LANGS, "c1", CurationConfig(skip=("langid",)))[0]] == ["pii", "dedup"]
    assert [s.name for s in build_steps(LANGS, "c1", CurationConfig(skip=("pii",)))[0]] == ["langid", "dedup"]


def test_options_map_onto_the_curation_config():
    c = curation_config({"perplexity": False, "quality": {"max_digit_ratio": 0.3}, "skip_invalid": True})
    assert c.skip == ("perplexity",) and c.quality.max_digit_ratio == 0.3 and c.skip_invalid
    assert c.steps("c2") == ("langid", "pii", "dedup", "decontam", "quality")
    assert c.steps("c1") == ("langid", "pii", "dedup", "decontam")
    assert curation_config({"dedup": True, "langid": False}).skip == ("langid",)
    assert curation_config({"skip": ["dedup"], "quality": False}).skip == ("dedup", "quality")
    with pytest.raises(ValueError, match="unknown key 'perplexty'.*did you mean 'perplexity'"):
        curation_config({"perplexty": False})
    with pytest.raises(ValueError, match="skip has unknown steps \\['ppl'\\]"):
        CurationConfig(skip=("ppl",))
    with pytest.raises(ValueError, match="drop_top_percent"):
        curation_config({"perplexity": {"drop_top_percent": 200}})
