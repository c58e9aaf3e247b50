"""Streaming curation: the same verdicts as the in-memory pipeline, records pulled lazily, outputs written
atomically, the k-shot draw from the curated file equal to the in-memory draw."""

import json

import numpy as np
import pytest

from govtune.data.xnli import load_xnli
from govtune.governance import CurationConfig, curate, sample_kshot
from govtune.governance.lsh import CompactLSH, band_keys
from govtune.governance.sampling import sample_kshot_file
from govtune.governance.sources import iter_pool
from govtune.governance.stream import curate_stream, curate_to_files
from govtune.governance.synthetic import stream_pool

LANGS = ["en", "zh", "hi"]


def _without_seconds(report):
    return {**report, "steps": [{k: v for k, v in s.items() if k != "seconds"} for s in report["steps"]]}


@pytest.fixture(scope="module")
def mixed_pool(pool):
    """The defect pool plus unusable records (kept in with skip_invalid) and evaluation records to leak."""
    protected = load_xnli("en", rows=range(1245, 1265))
    leaked = [{**protected[i], "id": f"leak-{i}"} for i in (0, 5)]
    broken = [{"text": "   ", "lang": "en", "id": "empty"}, {"text": "fine text here", "lang": "xx", "id": "badlang"}]
    records = pool[:700] + leaked + broken + pool[700:]
    return records, protected


def test_stream_equals_in_memory_curation(mixed_pool):
    records, protected = mixed_pool
    config = CurationConfig(skip_invalid=True)
    reference = curate(records, LANGS, "c2", protected=protected, config=config, progress=False)
    kept, dropped = [], []
    # A batch size that splits duplicates from their sources across batches.
    report = curate_stream(iter(records), LANGS, "c2", keep=kept.append, drop=dropped.append,
                           protected=protected, config=config, batch_size=37)
    assert [r["id"] for r in kept] == [r["id"] for r in reference.kept]
    assert kept == reference.kept
    assert sorted((r["id"], r["reason"], r["stage"]) for r in dropped) == \
        sorted((r["id"], r["reason"], r["stage"]) for r in reference.dropped)
    reasons = {r["reason"] for r in dropped}
    assert {"exact_duplicate", "near_duplicate", "leakage", "wrong_language", "empty_text",
            "unknown_language"} <= reasons
    assert _without_seconds(report) == _without_seconds(reference.report)


def test_stream_pulls_records_lazily():
    pulled = 0
    out = 0
    batch = 50

    def rows():
        nonlocal pulled
        for record in stream_pool(600, LANGS, seed=3):
            pulled += 1
            yield record

    def sink(record):
        nonlocal out
        out += 1
        # Every record written was pulled, and no more than one batch is held at any time.
        assert out <= pulled <= out + batch + 1

    config = CurationConfig(skip=("langid",))
    report = curate_stream(rows(), LANGS, "c2", keep=sink, drop=sink, config=config, batch_size=batch, labels=None)
    assert pulled == out == report["input"] == 600
    assert report["by_reason"].get("exact_duplicate", 0) > 0


def test_interrupted_stream_leaves_no_output(tmp_path):
    def rows():
        yield from stream_pool(120, LANGS, seed=1)
        raise RuntimeError("disk went away")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk went away"):
        curate_to_files(rows(), LANGS, "c1", out, config=CurationConfig(skip=("langid",)), labels=None,
                        batch_size=16)
    assert not out.exists()


def test_kshot_from_file_equals_in_memory_draw(tmp_path, curated):
    path = tmp_path / "kept.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in curated.kept), encoding="utf-8")
    for k, seed in ((4, 0), (9, 7)):
        assert sample_kshot_file(path, LANGS, k, seed) == sample_kshot(curated, LANGS, k, seed)
    with pytest.raises(ValueError, match="fewer than k=100000"):
        sample_kshot_file(path, LANGS, 100_000, 0)


def test_compact_lsh_finds_datasketch_candidates():
    from datasketch import LeanMinHash, MinHashLSH

    from govtune.governance.dedup import _lsh_params

    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(400, 128), dtype=np.uint32)
    for i in range(0, 400, 4):  # every fourth signature a near copy of the one before it
        if i:
            sigs[i] = sigs[i - 1]
            sigs[i, rng.choice(128, 20, replace=False)] = rng.integers(0, 2**32, 20)
    bands, rows = _lsh_params(0.8, 128)
    ours = CompactLSH(128, bands, rows)
    ref = MinHashLSH(num_perm=128, params=(bands, rows))
    stored, queries = sigs[:300], sigs[300:]
    for lo in range(0, 300, 64):  # several runs, merged as they grow
        ours.add(stored[lo:lo + 64], band_keys(stored[lo:lo + 64], bands, rows))
    for i, s in enumerate(stored):
        ref.insert(i, LeanMinHash(seed=1, hashvalues=s, scheme="affine32"), check_duplication=False)
    found = ours.candidates(band_keys(np.concatenate([stored, queries]), bands, rows))
    for i, s in enumerate(np.concatenate([stored, queries])):
        assert found[i] == set(ref.query(LeanMinHash(seed=1, hashvalues=s, scheme="affine32")))
    assert len(ours.runs) < 5 and any(found[i] for i in range(300, 400))


def test_stream_pool_rates_and_copies():
    records = list(stream_pool(4000, LANGS, seed=5))
    assert records == list(stream_pool(4000, LANGS, seed=5))
    kinds = {k: sum(r["kind"] == k for r in records) / len(records) for k in ("exact_dup", "near_dup", "clean")}
    assert kinds["exact_dup"] == pytest.approx(0.025, abs=0.01) and kinds["near_dup"] == pytest.approx(0.025, abs=0.01)
    texts = {r["text"] for r in records if r["kind"] == "clean"}
    assert all(r["text"] in texts for r in records if r["kind"] == "exact_dup")
    assert not any(r["text"] in texts for r in records if r["kind"] == "near_dup")
    assert {r["lang"] for r in records} == set(LANGS)


def test_readers_agree_across_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{k: v for k, v in r.items() if k != "kind"} for r in stream_pool(50, LANGS, seed=2)]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                      encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    import csv
    with open(tmp_path / "p.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for name in ("p.jsonl", "p.parquet", "p.csv"):
        assert list(iter_pool(tmp_path / name, LANGS, labels=None)) == rows, name


def test_a_batch_is_judged_as_its_records_one_by_one():
    """Copies of one record within a batch (and across batches) are found however the batch is cut."""
    from govtune.governance.dedup import DuplicateIndex

    rng = np.random.default_rng(1)
    sigs = []
    for _ in range(60):
        base = rng.integers(0, 2**32, 128, dtype=np.uint32)
        sigs.append(base)
        for _ in range(rng.integers(0, 4)):  # up to three near copies, each 3 values apart from the base
            copy = base.copy()
            copy[rng.choice(128, 3, replace=False)] = rng.integers(0, 2**32, 3)
            sigs.append(copy)
    order = rng.permutation(len(sigs))
    sigs = [sigs[i] for i in order]
    exact = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in sigs]
    groups = [("en", 1)] * len(sigs)

    def verdicts(cut):
        index = DuplicateIndex()
        out = []
        for lo in range(0, len(sigs), cut):
            out += index.check(groups[lo:lo + cut], exact[lo:lo + cut], sigs[lo:lo + cut], list(range(lo, lo + cut)))
        return out

    one_by_one = verdicts(1)
    assert one_by_one.count("near_duplicate") >= 0.95 * (len(sigs) - 60)  # LSH may miss a rare pair
    assert one_by_one.count(None) >= 60
    assert verdicts(len(sigs)) == verdicts(7) == one_by_one
