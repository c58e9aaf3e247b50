"""Curation throughput and memory: govtune against datatrove's own pipeline on the same synthetic pool.

    python bench/curation.py [--n 100000] [--ppl-records 300]
    python bench/curation.py --rows 1000000      (the streaming run: bench/curation_stream.py)
    python bench/curation.py --rows 1000000 --decontam-only   (add the run with decontamination to it)

The pool (real XNLI/FLORES sentences, joined in pairs for size, with injected exact/near duplicates,
wrong-language lines and junk) is written once; each engine then runs in its own subprocess, so peak
memory (ru_maxrss, including worker processes) is per engine:
- govtune dedup+quality: the C1 deduplication and the C2 quality rules, one process;
- datatrove dedup+quality: MinHash stages 1-4 (sha1 hashing; its xxhash default needs xxhash<4) and the
  Gopher repetition/quality filters, LocalPipelineExecutor with 2 tasks on 2 workers;
- govtune C1 and C2 end to end (with language ID), for reference;
- language ID alone: lingua (govtune's batched detector) vs langid.py, since datatrove's fastText
  filter needs a model download;
- perplexity throughput under SmolLM2-135M (mostly English) on a few hundred records.
Writes bench/results/curation.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from govtune.machine_load import MachineLoad, describe  # noqa: E402

LANGS = ["en", "zh", "hi"]


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def make_pool(n: int, path: Path) -> dict:
    from govtune.governance.io import write_jsonl
    from govtune.governance.synthetic import build_pool

    pool = build_pool(LANGS, xnli_per_lang=1245, flores_per_lang=500, n_exact=int(n * 0.08),
                      n_near=int(n * 0.06), n_wrong=int(n * 0.03), n_junk_rounds=max(1, int(n * 0.03 / 20)),
                      synthetic_clean=max(0, int(n * 0.80) - 5235), seed=0)
    pool = pool[:n]
    write_jsonl(path, pool)
    from collections import Counter
    return dict(Counter(r["kind"] for r in pool))


def engine_govtune(pool_path: str, mode: str) -> dict:
    from govtune.governance import CurationConfig, curate
    from govtune.governance.dedup import DeduplicationStep
    from govtune.governance.io import read_jsonl
    from govtune.governance.quality import QualityStep

    start = time.perf_counter()
    records, _ = read_jsonl(pool_path, LANGS)
    if mode == "dedup_quality":
        alive = records
        for step in (DeduplicationStep(CurationConfig().dedup), QualityStep()):
            verdicts = step.judge(alive)
            alive = [r for r, v in zip(alive, verdicts) if v is None]
        kept = len(alive)
    else:
        kept = len(curate(records, LANGS, mode, progress=False).kept)
    return {"seconds": time.perf_counter() - start, "records": len(records), "kept": kept}


def _doc_adapter(self, data, path, id_in_file):
    from govtune.governance.records import full_text
    return {"text": full_text(data), "id": str(data.get("id", id_in_file)), "metadata": {"lang": data["lang"]}}


def run_datatrove(input_dir: str, work: Path, adapter, max_workers: int | None = None) -> tuple[float, int]:
    """datatrove's MinHash near-dedup (sha1 hashes: offline) and Gopher filters over the JSON-lines files in
    `input_dir`, the same steps both benchmarks compare; returns (seconds, records kept). `max_workers` caps
    the processes of the 14-task bucket stage (None: one per task)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    cfg = MinhashConfig(hash_config=HashConfig(precision=64, hash_fc="sha1"))

    def reader():
        return JsonlReader(input_dir, adapter=adapter, glob_pattern="*.jsonl")

    def run(pipeline, tasks, name):
        workers = tasks if max_workers is None else min(tasks, max_workers)
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=str(work / "logs" / name),
                              start_method="fork").run()

    start = time.perf_counter()
    run([reader(), MinhashDedupSignature(str(work / "sigs"), config=cfg)], 2, "sigs")
    run([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=cfg)], cfg.num_buckets, "buckets")
    run([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=cfg)], 1, "cluster")
    run([reader(), MinhashDedupFilter(str(work / "remove")), GopherRepetitionFilter(),
         # sentence-level settings: Gopher's defaults (>= 50 words, English stop words) drop every record here
         GopherQualityFilter(min_doc_words=3, min_stop_words=None, max_avg_word_length=None),
         JsonlWriter(str(work / "out"), compression=None)], 2, "filter")
    seconds = time.perf_counter() - start
    kept = sum(1 for p in (work / "out").glob("*.jsonl") for _ in open(p, "rb"))
    return seconds, kept


def engine_datatrove(pool_path: str, workdir: str) -> dict:
    work = Path(workdir)
    src = work / "in"
    src.mkdir(parents=True)
    lines = Path(pool_path).read_text(encoding="utf-8").splitlines()
    half = len(lines) // 2  # two input files so that two tasks share the work
    (src / "a.jsonl").write_text("\n".join(lines[:half]) + "\n", encoding="utf-8")
    (src / "b.jsonl").write_text("\n".join(lines[half:]) + "\n", encoding="utf-8")
    seconds, kept = run_datatrove(str(src), work, _doc_adapter)
    return {"seconds": seconds, "records": len(lines), "kept": kept}


def engine_langid(pool_path: str, backend: str) -> dict:
    from govtune.governance.io import read_jsonl
    from govtune.governance.langid import LanguageIdStep
    from govtune.governance.config import LangIdConfig

    records, _ = read_jsonl(pool_path, LANGS)
    records = records[:20000]
    step = LanguageIdStep(LANGS, LangIdConfig(backend=backend))
    start = time.perf_counter()
    step.judge(records[:10])  # detector construction counted apart
    build = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = step.judge(records)
    seconds = time.perf_counter() - start
    # recall over records really not in their declared language; precision counts a flag on junk without
    # letters (URLs, numbers) as right too, since it has no language
    truth = [r["kind"] in ("wrong_lang", "romanised") for r in records]
    flagged = [v == "wrong_language" for v in verdicts]
    tp = sum(t and f for t, f in zip(truth, flagged))
    flag_ok = sum(f and r["kind"] != "clean" for f, r in zip(flagged, records))
    return {"seconds": seconds, "records": len(records), "build_seconds": build,
            "recall_wrong_language": tp / max(1, sum(truth)),
            "precision_wrong_language": flag_ok / max(1, sum(flagged))}


def engine_perplexity(pool_path: str, n: int) -> dict:
    from govtune.governance.io import read_jsonl
    from govtune.governance.perplexity import perplexities
    from govtune.governance.records import full_text
    from govtune.models import load_model

    import torch
    torch.set_num_threads(2)
    records, _ = read_jsonl(pool_path, LANGS)
    texts = [full_text(r) for r in records if r["kind"] == "clean"][:n]
    model, tok = load_model("smollm2-135m-instruct")
    start = time.perf_counter()
    perplexities(model, tok, texts, batch_size=16, max_length=128, progress=False)
    return {"seconds": time.perf_counter() - start, "records": len(texts)}


def child(args) -> None:
    if args.engine == "govtune":
        out = engine_govtune(args.pool, args.mode)
    elif args.engine == "datatrove":
        with tempfile.TemporaryDirectory() as work:
            out = engine_datatrove(args.pool, work)
    elif args.engine == "langid":
        out = engine_langid(args.pool, args.mode)
    else:
        out = engine_perplexity(args.pool, args.ppl_records)
    out["records_per_second"] = out["records"] / out["seconds"]
    out["peak_rss_mb"] = peak_mb()
    print("RESULT " + json.dumps(out))


def spawn(engine: str, pool: Path, mode: str = "", ppl_records: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--pool", str(pool), "--mode", mode,
           "--ppl-records", str(ppl_records)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{engine} {mode} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][7:])
    print(f"{engine:10s} {mode:14s} {result['records']:7d} rec  {result['seconds']:8.2f} s  "
          f"{result['records_per_second']:9.0f} rec/s  peak {result['peak_rss_mb']:7.0f} MB", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--rows", type=int, default=None,
                   help="streaming mode: `govtune curate` and datatrove on an N-row JSON-lines pool "
                        "(bench/curation_stream.py; writes bench/results/curation_stream.*)")
    p.add_argument("--no-langid", action="store_true",
                   help="with --rows: leave out govtune's reference run with language ID")
    p.add_argument("--decontam-only", action="store_true",
                   help="with --rows: only govtune with decontamination, added to the existing streaming results")
    p.add_argument("--ppl-records", type=int, default=300)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "curation"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="")
    p.add_argument("--pool", default="")
    p.add_argument("--mode", default="")
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.rows is not None:
        import curation_stream

        curation_stream.run(args.rows, str(ROOT / "bench" / "results" / "curation_stream"), not args.no_langid,
                            args.decontam_only)
        return
    with tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool.jsonl"
        kinds = make_pool(args.n, pool)
        print(f"pool: {sum(kinds.values())} records {kinds}", flush=True)
        res = {"n": sum(kinds.values()), "kinds": kinds}
        machine = MachineLoad()
        res["govtune_dedup_quality"] = spawn("govtune", pool, "dedup_quality")
        res["datatrove_dedup_quality"] = spawn("datatrove", pool)
        res["govtune_c1"] = spawn("govtune", pool, "c1")
        res["govtune_c2_no_ppl"] = spawn("govtune", pool, "c2")
        res["langid_lingua"] = spawn("langid", pool, "lingua")
        res["langid_langid_py"] = spawn("langid", pool, "langid")
        if args.ppl_records:
            res["perplexity_smollm2"] = spawn("perplexity", pool, "", args.ppl_records)
        res["machine_load"] = machine.result()
    write_results(res, args.out)


def write_results(res: dict, out: str) -> None:
    kinds = res["kinds"]
    g, d = res["govtune_dedup_quality"], res["datatrove_dedup_quality"]
    res["speed_ratio_govtune_over_datatrove"] = g["records_per_second"] / d["records_per_second"]
    res["memory_ratio_govtune_over_datatrove"] = g["peak_rss_mb"] / d["peak_rss_mb"]
    from govtune.governance.io import write_json, write_text
    write_json(out + ".json", res)
    rows = [("govtune dedup + quality (1 process)", g), ("datatrove MinHash + Gopher filters (2 tasks, 2 workers)", d),
            ("govtune C1 (langid + dedup)", res["govtune_c1"]), ("govtune C2 without perplexity",
                                                                 res["govtune_c2_no_ppl"]),
            ("language ID: lingua (batched, 20k records)", res["langid_lingua"]),
            ("language ID: langid.py (20k records)", res["langid_langid_py"])]
    if "perplexity_smollm2" in res:
        rows.append(("perplexity, SmolLM2-135M (mostly English), batch 16, <= 128 tokens", res["perplexity_smollm2"]))
    md = [f"# Curation benchmark ({res['n']} records, {res['machine_load']['cpu_count']} CPUs)", "",
          "| engine | records | seconds | records/s | peak RSS (MB) | kept |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        md.append(f"| {name} | {r['records']} | {r['seconds']:.2f} | {r['records_per_second']:.0f} | "
                  f"{r['peak_rss_mb']:.0f} | {r.get('kept', '')} |")
    md += ["", f"govtune / datatrove (same work: near-duplicate removal + quality rules): speed x"
               f"{res['speed_ratio_govtune_over_datatrove']:.2f}, peak memory x{res['memory_ratio_govtune_over_datatrove']:.2f}.",
           "", "Language ID (recall over injected wrong-language and romanised Hindi records; precision: share of "
               "flags on non-clean records): lingua recall "
               f"{res['langid_lingua']['recall_wrong_language']:.3f} / precision "
               f"{res['langid_lingua']['precision_wrong_language']:.3f}; langid.py recall "
               f"{res['langid_langid_py']['recall_wrong_language']:.3f} / precision "
               f"{res['langid_langid_py']['precision_wrong_language']:.3f}.",
           "", "Peak RSS is that of the largest process (ru_maxrss); datatrove runs two worker processes at "
               "once, so its total footprint is about twice its row. datatrove's MinHash shingles word 5-grams "
               "(spaCy English tokenizer, which leaves Chinese unsegmented) and its Gopher filters are "
               "English-centric, so it keeps far fewer records: the work per record is comparable, the "
               "decisions are not. The engines run one after another, each in its own process.",
           "", describe(res["machine_load"]),
           "", f"Pool composition: {kinds}."]
    write_text(out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
