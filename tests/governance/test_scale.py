"""The same steps at scale: inside a datatrove pipeline with two tasks, and over `datasets` with num_proc=2;
both must agree with the in-memory `curate`."""

import json

import pytest

from govtune.governance import curate, curate_dataset

LANGS = ["en", "zh", "hi"]


@pytest.fixture(scope="module")
def small_pool(pool):
    return pool[:500]


@pytest.mark.timeout(300)
def test_datatrove_two_tasks_match_curate(tmp_path, small_pool):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from govtune.governance.datatrove_steps import (DedupClusters, DedupFilter, DedupSignatures,
                                                    LanguageIdFilter, QualityFilter, dropped_writer_adapter,
                                                    record_reader_adapter, record_writer_adapter)

    src = tmp_path / "in"
    src.mkdir()
    half = len(small_pool) // 2
    for i, part in enumerate((small_pool[:half], small_pool[half:])):  # file order = global record order
        (src / f"part{i}.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in part) + "\n")

    def reader(folder):
        return JsonlReader(str(folder), adapter=record_reader_adapter, glob_pattern="*.jsonl")

    def writer(folder, adapter=record_writer_adapter):
        return JsonlWriter(str(folder), adapter=adapter, compression=None, output_filename="${rank}.jsonl")

    def execute(pipeline, tasks, name):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=tasks, logging_dir=str(tmp_path / "logs" / name),
                              start_method="fork").run()

    execute([reader(src), LanguageIdFilter(LANGS, exclusion_writer=writer(tmp_path / "drop1", dropped_writer_adapter)),
             writer(tmp_path / "c1_langid")], 2, "langid")
    execute([reader(tmp_path / "c1_langid"), DedupSignatures(str(tmp_path / "sigs"))], 2, "sigs")
    execute([DedupClusters(str(tmp_path / "sigs"), str(tmp_path / "drops"))], 1, "clusters")
    execute([reader(tmp_path / "c1_langid"),
             DedupFilter(str(tmp_path / "drops"), exclusion_writer=writer(tmp_path / "drop2", dropped_writer_adapter)),
             QualityFilter(exclusion_writer=writer(tmp_path / "drop3", dropped_writer_adapter)),
             writer(tmp_path / "kept")], 2, "filter")

    def read_all(folder):
        return [json.loads(x) for p in sorted(folder.glob("*.jsonl")) for x in p.read_text().splitlines()]

    kept = read_all(tmp_path / "kept")
    dropped = read_all(tmp_path / "drop1") + read_all(tmp_path / "drop2") + read_all(tmp_path / "drop3")
    assert len(kept) + len(dropped) == len(small_pool)
    ref = curate(small_pool, LANGS, "c2", progress=False)
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in ref.kept)
    assert ({r["id"]: r["reason"] for r in dropped} == {r["id"]: r["reason"] for r in ref.dropped})
    assert all(r in small_pool for r in kept)


def test_datasets_num_proc_matches_curate(small_pool):
    import datasets

    rows = [{k: r.get(k) for k in ("text", "premise", "hypothesis", "label", "lang", "id", "kind")}
            for r in small_pool]
    ds = datasets.Dataset.from_list(rows)
    result = curate_dataset(ds, LANGS, "c1", num_proc=2, progress=False)
    ref = curate([{k: v for k, v in r.items() if v is not None} for r in rows], LANGS, "c1", progress=False)
    assert len(result.kept) + len(result.dropped) == len(ds)
    assert sorted(result.kept["id"]) == sorted(r["id"] for r in ref.kept)
    assert dict(zip(result.dropped["id"], result.dropped["reason"])) == {r["id"]: r["reason"] for r in ref.dropped}
    assert result.report["by_reason"] == ref.report["by_reason"]
    assert result.kept.column_names == ds.column_names
