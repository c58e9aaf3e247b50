"""Each injected defect is removed with the right reason, and clean records survive: precision and recall
per kind, computed against the truth the pool builder records in `kind`."""

from collections import Counter

from govtune.governance.records import REASONS

QUALITY_REASONS = {r for r, s in REASONS.items() if s == "c2"}


def _recall(dropped, pool, kind, reasons):
    """Share of records of `kind` dropped with one of `reasons`."""
    n = sum(1 for r in pool if r["kind"] == kind)
    hit = sum(1 for r in dropped if r["kind"] == kind and r["reason"] in reasons)
    return hit / n


def _precision(dropped, kind, reasons):
    """Share of records dropped with `reasons` that really are of `kind`."""
    flagged = [r for r in dropped if r["reason"] in reasons]
    return sum(r["kind"] == kind for r in flagged) / len(flagged)


def test_nothing_lost(pool, curated):
    assert len(curated.kept) + len(curated.dropped) == len(pool)
    ids = Counter(r["id"] for r in curated.kept + curated.dropped)
    assert ids == Counter(r["id"] for r in pool)
    assert curated.report["input"] == len(pool)
    assert sum(curated.report["by_reason"].values()) == len(curated.dropped)


def test_kept_records_unchanged_and_dropped_annotated(pool, curated):
    by_id = {r["id"]: r for r in pool}
    for r in curated.kept:
        assert r == by_id[r["id"]]
    for r in curated.dropped:
        assert {k: v for k, v in r.items() if k not in ("reason", "stage")} == by_id[r["id"]]
        assert REASONS[r["reason"]] == r["stage"]


def test_wrong_language_precision_recall(pool, curated):
    # Spanish FLORES declared en, Hindi declared zh, Chinese declared hi, ...
    assert _recall(curated.dropped, pool, "wrong_lang", {"wrong_language"}) == 1.0
    flagged = [r for r in curated.dropped if r["reason"] == "wrong_language"]
    # Besides the injected ones, wrong_language only catches real defects of the data: romanised Hindi
    # in XNLI-hi, junk without letters, and copies of those.
    precision = sum(r["kind"] != "clean" for r in flagged) / len(flagged)
    assert precision == 1.0
    # XNLI's romanised Hindi sentences are not Hindi as lingua (and any Devanagari reader) sees it.
    assert _recall(curated.dropped, pool, "romanised", {"wrong_language"}) >= 0.9


def test_exact_duplicates_recall_one(pool, curated):
    kinds = {r["id"]: r["kind"] for r in pool}
    copies = [r for r in pool if r["kind"] == "exact_dup" and kinds[r["source"]] == "clean"]
    dropped = {r["id"]: r["reason"] for r in curated.dropped}
    assert copies
    assert all(dropped.get(r["id"]) == "exact_duplicate" for r in copies)
    assert _precision(curated.dropped, "exact_dup", {"exact_duplicate"}) >= 0.95


def test_near_duplicates_recall(pool, curated):
    kinds = {r["id"]: r["kind"] for r in pool}
    copies = [r for r in pool if r["kind"] == "near_dup" and kinds[r["source"]] == "clean"]
    dropped = {r["id"]: r["reason"] for r in curated.dropped}
    hits = sum(dropped.get(r["id"]) in ("near_duplicate", "exact_duplicate") for r in copies)
    assert hits / len(copies) >= 0.9
    # The originals stay: the first occurrence is kept.
    kept = {r["id"] for r in curated.kept}
    assert sum(r["source"] in kept for r in copies) / len(copies) >= 0.95
    # Precision: near_duplicate drops are injected copies (or copies of repeated junk), not clean records.
    flagged = [r for r in curated.dropped if r["reason"] == "near_duplicate"]
    assert sum(r["kind"] in ("near_dup", "exact_dup", "junk") for r in flagged) / len(flagged) >= 0.95


def test_junk_removed_and_clean_survives(pool, curated):
    junk = [r for r in pool if r["kind"] == "junk"]
    dropped = {r["id"]: r["reason"] for r in curated.dropped}
    assert sum(r["id"] in dropped for r in junk) / len(junk) >= 0.95
    # Later junk rounds are variants of the first (caught as near duplicates); the first round shows the
    # quality rules: most by a C2 rule, the few without letters by language ID.
    from govtune.governance import curate

    first = [r for r in junk if r["id"].split("-")[2] == "0"]
    alone = {r["id"]: r["reason"] for r in curate(first, ["en", "zh", "hi"], "c2", progress=False).dropped}
    assert set(alone) == {r["id"] for r in first}
    assert set(alone.values()) <= QUALITY_REASONS | {"wrong_language"}
    assert sum(v in QUALITY_REASONS for v in alone.values()) / len(first) >= 0.7
    assert {"too_short", "boilerplate", "repetition", "symbol_ratio"} <= set(alone.values())
    clean = [r for r in pool if r["kind"] == "clean"]
    survived = sum(r["id"] not in dropped for r in clean) / len(clean)
    assert survived >= 0.98, survived
    for lang in ("en", "zh", "hi"):
        lc = [r for r in clean if r["lang"] == lang]
        assert sum(r["id"] not in dropped for r in lc) / len(lc) >= 0.95


def test_nli_pair_judged_as_whole_example():
    from govtune.governance import curate

    premise = "The committee met on Tuesday to discuss the annual budget and the new hiring plan for next year."
    records = [
        {"premise": premise, "hypothesis": "The committee discussed the budget.", "lang": "en", "id": "a"},
        {"premise": premise, "hypothesis": "Nobody ever met to talk about money.", "lang": "en", "id": "b"},
        {"premise": premise.upper(), "hypothesis": "the committee discussed the budget!", "lang": "en", "id": "c"},
        # a Spanish hypothesis makes the pair wrong-language even with an English premise
        {"premise": premise, "hypothesis": "El comité no se reunió nunca para hablar del presupuesto.",
         "lang": "en", "id": "d"},
    ]
    result = curate(records, ["en"], "c1", progress=False)
    reasons = {r["id"]: r["reason"] for r in result.dropped}
    assert reasons == {"c": "near_duplicate", "d": "wrong_language"}  # a shared premise alone is no duplicate


def test_leakage_against_protected(pool):
    from govtune.governance import curate

    clean = [r for r in pool if r["kind"] == "clean"]
    protected = [dict(r, id=f"eval-{i}") for i, r in enumerate(clean[:25])]
    protected[0] = {**protected[0], "hypothesis" if "hypothesis" in protected[0] else "text":
                    protected[0].get("hypothesis", protected[0].get("text")).upper()}
    result = curate(clean[:200], ["en", "zh", "hi"], "c1", protected=protected, progress=False)
    leaked = {r["id"] for r in result.dropped if r["reason"] == "leakage"}
    assert leaked == {r["id"] for r in clean[:25]}
    assert result.report["leakage"] == 25
    assert "leakage" in result.report["by_reason"]
