"""Curation variants and the governance ledger: variants build the right CurationConfig, the "would have been
drawn" counts match a hand count, and a tiny study's ledger equals its curation reports and the paired
differences of its cells."""

import json
import sqlite3
from pathlib import Path

import pytest

from govtune.evaluation import bootstrap as bs
from govtune.report.document import Study
from govtune.report.ledger import build_ledger, ledger_pairs, metric_columns
from govtune.results.layout import StudyLayout
from govtune.results.store import load_curation, load_predictions
from govtune.study.data import StudyData, record_key
from govtune.study.grid import run_study
from govtune.study.ledger import drawn_removed
from govtune.study.loading import build_config, load_config

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"c1_no_langid": {"stage": "c1", "langid": False}}


def test_curation_variants_parse_and_build_their_curation_config():
    c = build_config({"curation": ["c2", "c2_no_ppl", "c1_no_dedup"],
                      "curation_options": {"perplexity": {"drop_top_percent": 5}, "skip_invalid": True},
                      "curation_variants": {"c2_no_ppl": {"stage": "c2", "perplexity": False},
                                            "c1_no_dedup": {"stage": "c1", "dedup": False,
                                                            "langid": {"min_confidence": 0.5}}}})
    assert [c.curation_stage(n) for n in c.curation] == ["c2", "c2", "c1"]
    full, no_ppl, no_dedup = (c.curation_config(n) for n in c.curation)
    assert full.skip == () and full.perplexity.drop_top_percent == 5 and full.skip_invalid
    assert no_ppl.skip == ("perplexity",) and no_ppl.steps("c2") == ("langid", "pii", "dedup", "decontam", "quality")
    assert no_ppl.skip_invalid and no_ppl.quality == full.quality  # the study's options still apply
    assert no_dedup.skip == ("dedup",) and no_dedup.langid.min_confidence == 0.5 and no_dedup.steps("c1") == ("langid", "pii", "decontam")
    assert full.langid.min_confidence == 0.25  # a variant's options stay its own


def test_the_paper_curation_ablation_leaves_each_step_out_once():
    c = load_config(ROOT / "configs" / "paper" / "curation_ablation.yaml")
    steps = {n: c.curation_config(n).steps(c.curation_stage(n)) for n in c.curation}
    assert steps == {"c0": (), "c1": ("langid", "pii", "dedup", "decontam"),
                     "c2": ("langid", "pii", "dedup", "decontam", "quality", "perplexity"),
                     "c1_no_langid": ("pii", "dedup", "decontam"), "c1_no_dedup": ("langid", "pii", "decontam"),
                     "c2_no_quality": ("langid", "pii", "dedup", "decontam", "perplexity"),
                     "c2_no_ppl": ("langid", "pii", "dedup", "decontam", "quality")}
    assert ledger_pairs(c.curation, {n: c.curation_stage(n) for n in c.curation}) == [
        ("c1", "c0"), ("c2", "c1"), ("c1", "c1_no_langid"), ("c1", "c1_no_dedup"), ("c2", "c2_no_quality"),
        ("c2", "c2_no_ppl")]


@pytest.mark.parametrize("raw, message", [
    ({"curation": ["c2_no_pp"], "curation_variants": {"c2_no_ppl": {"stage": "c2", "perplexity": False}}},
     "unknown curation stage 'c2_no_pp'.*did you mean 'c2_no_ppl'"),
    ({"curation": ["c1_nodedup"]}, "unknown curation stage 'c1_nodedup'.*curation_variants"),
    ({"curation": ["x"], "curation_variants": {"x": {"perplexity": False}}}, "variant 'x' has no `stage:`; set `stage:` to one of c0, c1, c2"),
    ({"curation": ["x"], "curation_variants": {"x": "c2"}}, "variant 'x' is 'c2', not a mapping"),
    ({"curation_variants": {"c1": {"stage": "c1"}}}, "variant name 'c1'"),
    ({"curation": ["c2_x"], "curation_variants": {"c2_x": {"stage": "c2", "perplexty": False}}},
     "curation_variants.c2_x: unknown key 'perplexty'.*did you mean 'perplexity'"),
    ({"curation": ["c2_x"], "curation_variants": {"c2_x": {"stage": "c2", "perplexity": {"drop_top_percent": 300}}}},
     "drop_top_percent"),
])
def test_bad_curation_names_and_variants_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        build_config(raw)


def _rec(i, label, lang="en"):
    return {"id": f"{lang}{i}", "lang": lang, "premise": f"p{lang}{i}", "hypothesis": f"h{lang}{i}", "label": label}


def test_drawn_counts_match_a_hand_count_on_a_small_pool():
    # en: two records per label; the curation with the decision drops both entailment records (one for the
    # language, one as a near-duplicate) and one contradiction record. zh has only two records.
    labels = ["entailment", "entailment", "neutral", "neutral", "contradiction", "contradiction"]
    pool = [_rec(i, lab) for i, lab in enumerate(labels)] + [_rec(0, "neutral", "zh"), _rec(1, "neutral", "zh")]
    why = {"en0": ("c1", "wrong_language"), "en1": ("c1", "near_duplicate"), "en4": ("c2", "too_short"),
           "zh1": ("c1", "exact_duplicate")}
    dropped = [{**r, "stage": why[r["id"]][0], "reason": why[r["id"]][1]} for r in pool if r["id"] in why]
    kept = [r for r in pool if r["id"] not in why]

    # k = 6 draws every en record: each removed one is counted once, with its reason; zh (2 < 6) has no draw
    everything = drawn_removed(pool, kept, dropped, ["en", "zh"], k=6, seed=0)
    assert everything == {("en", "c1", "wrong_language"): 1, ("en", "c1", "near_duplicate"): 1,
                          ("en", "c2", "too_short"): 1}
    # k = 3 draws one record per label: exactly one of the two entailment records, whatever the seed; the
    # contradiction record counts when the sampler draws it (checked against a draw of its own)
    from govtune.governance import sample_kshot

    for seed in range(6):
        c = drawn_removed(pool, kept, dropped, ["en", "zh"], k=3, seed=seed)
        assert c["en", "c1", "wrong_language"] + c["en", "c1", "near_duplicate"] == 1
        drawn_ids = {r["id"] for r in sample_kshot(pool, ["en"], k=3, seed=seed)}
        assert c["en", "c2", "too_short"] == ("en4" in drawn_ids)
        assert set(c) == {("en", "c1", "wrong_language"), ("en", "c1", "near_duplicate"), ("en", "c2", "too_short")}
    zh = drawn_removed(pool, kept, dropped, ["zh"], k=2, seed=0)  # both zh records drawn, one removed
    assert zh == {("zh", "c1", "exact_duplicate"): 1}


@pytest.fixture(scope="module")
def ledger_study(tmp_path_factory, study):
    """C0, C1 and C1 without language ID for LoRA, one seed: the ledger's C1 − C0 and C1 − c1_no_langid."""
    config = study(methods=["lora"], seeds=[0], curation=["c0", "c1", "c1_no_langid"],
                        curation_variants=VARIANTS)
    out = tmp_path_factory.mktemp("ledger") / "study"
    run_study(config, out, progress=False)
    return config, out


def test_the_ledger_counts_equal_the_curation_reports_and_the_cells_draws(ledger_study):
    config, out = ledger_study
    reports = {n: json.loads((out / "curation" / f"{n}.report.json").read_text()) for n in config.curation}
    s = Study(out)
    decisions = {(d.with_, d.without): d for d in build_ledger(s, load_curation(out))}
    assert list(decisions) == [("c1", "c0"), ("c1", "c1_no_langid")]
    assert decisions["c1", "c0"].added == ["langid", "pii", "dedup", "decontam"] and decisions["c1", "c1_no_langid"].added == ["langid"]
    data = StudyData(config, StudyLayout(out), progress=False)
    for (with_, without), d in decisions.items():
        expected = {}
        for name, sign in ((with_, 1), (without, -1)):
            for stage, block in reports[name]["stages"].items():
                for lang, reasons in block["dropped_by_language"].items():
                    for reason, n in reasons.items():
                        expected[stage, reason, lang] = expected.get((stage, reason, lang), 0) + sign * n
        assert dict(d.removed) == {k: n for k, n in expected.items() if n}
        # what was removed is what the kept pools lost
        lost = {lang: reports[without]["kept_by_language"][lang] - reports[with_]["kept_by_language"][lang]
                for lang in config.languages}
        assert {lang: sum(n for (_, _, lg), n in d.removed.items() if lg == lang) for lang in lost} == lost
        # drawn: the shots the cell without the decision really trained on, minus the pool with it
        shots, _ = data.training_examples(without, 8, 0)
        kept = {record_key(r) for r in data.curated(with_)}
        reason = {record_key(r): r["reason"] for r in data.curation_dropped(with_)}
        removed_shots = [r for r in shots if record_key(r) not in kept]
        assert sum(d.drawn.values()) == len(removed_shots)
        for (stage, why, lang), n in d.drawn.items():
            assert n == sum(1 for r in removed_shots if r["lang"] == lang and reason[record_key(r)] == why)
    assert decisions["c1", "c0"].removed  # the tiny pool's romanised Hindi rows are dropped by language ID
    # the store holds the reports' counts
    con = sqlite3.connect(out / "results.sqlite")
    stored = {(c, st, lang, reason): n for c, st, lang, reason, n in con.execute(
        "SELECT curation, stage, language, reason, n FROM curation_counts WHERE kind = 'dropped'")}
    assert stored == {(name, st, lang, reason): n for name, rep in reports.items()
                      for st, block in rep["stages"].items()
                      for lang, reasons in block["dropped_by_language"].items() for reason, n in reasons.items()}
    assert dict(con.execute("SELECT curation, kept FROM curations")) == {n: r["kept"] for n, r in reports.items()}


def test_the_ledger_deltas_are_the_paired_differences_of_the_two_cells(ledger_study):
    config, out = ledger_study
    s = Study(out)
    runs = {r["curation"]: r for r in s.runs}
    moved = False
    for d in build_ledger(s, load_curation(out)):
        diffs = d.deltas["lora"]
        a, b = runs[d.with_], runs[d.without]
        units = {r["curation"]: bs.xnli_units(load_predictions(out, r["run_id"], "xnli")) for r in (a, b)}
        reps = {c: (bs.xnli_replicates(u, bs.identity(u)), bs.xnli_replicates(u)) for c, u in units.items()}
        reference = bs.paired_differences(*reps[d.with_], *reps[d.without], task="xnli")
        for task, key, _ in metric_columns(s):
            diff = diffs[key]
            assert diff.estimate == pytest.approx(a["metrics"][task][key] - b["metrics"][task][key], abs=1e-9)
            assert (diff.estimate, diff.low, diff.high) == pytest.approx(
                (reference[key].estimate, reference[key].low, reference[key].high), abs=1e-9)
            assert diff.low <= diff.high
            moved |= diff.estimate != 0
    assert moved  # dropping 12 Hindi records changed the LoRA cell's numbers

    report = (out / "report.md").read_text()
    gov = report[report.index("### Governance: what curation did"):]
    assert "### Governance ledger" in gov and "![governance ledger](figures/ledger.png)" in gov
    assert (out / "figures" / "ledger.png").stat().st_size > 1000
    d = next(x for x in build_ledger(s, load_curation(out)) if x.without == "c0")
    hi = d.removed["c1", "wrong_language", "hi"]
    assert f"| C1 − C0 (+langid, +pii, +dedup, +decontam) | C1 | wrong_language | 0 (0) | 0 (0) | {hi} " \
           f"({d.drawn['c1', 'wrong_language', 'hi']}) | {hi} |" in gov
    macro = d.deltas["lora"]["macro"]
    assert "| C1 − c1_no_langid (+langid) | LoRA |" in gov
    assert f"| C1 − C0 (+langid, +pii, +dedup, +decontam) | LoRA | {macro.estimate:+.1f} [{macro.low:+.1f}, {macro.high:+.1f}]" \
           in gov.replace("-0.0", "+0.0")


def test_every_report_opens_its_governance_section_with_what_curation_did(tmp_path, study):
    config = study(methods=["lora"], seeds=[0], curation=["c1"])
    out = tmp_path / "study"
    run_study(config, out, progress=False)
    report = (out / "report.md").read_text()
    assert "### Governance: what curation did" in report and "### Governance ledger" not in report
    rep = json.loads((out / "curation" / "c1.report.json").read_text())
    block = rep["stages"]["c1"]
    for lang in config.languages:
        reasons = sorted(block["dropped_by_language"].get(lang, {}).items(), key=lambda x: (-x[1], x[0]))
        n_in, n_kept = block["input_by_language"][lang], block["kept_by_language"][lang]
        by_reason = ", ".join(f"{r} {n}" for r, n in reasons) or "-"
        assert f"| C1 | C1 | {lang} | {n_in} | {n_kept} | {n_in - n_kept} | {by_reason} |" in report
    for reason, examples in rep["examples"].items():
        assert f"- **{reason}**: ({examples[0]['lang']}, id {examples[0]['id']})" in report
