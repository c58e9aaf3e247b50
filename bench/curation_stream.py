"""Streaming curation at scale: `govtune curate` against datatrove on the same JSON-lines pool.

    python bench/curation.py --rows 1000000      (or: python bench/curation_stream.py --rows N)

The pool (`govtune.governance.synthetic.stream_pool`: three sentences of en/zh/hi per record, 2.5% exact
and 2.5% near copies, 1% wrong-language, 1% junk) is written in the user schema body/language/intent, so
govtune reads it through `--columns`. Each engine runs in its own process, one after another:
- govtune dedup + quality: `govtune curate --stage c2 --skip langid` (exact + MinHash near-dedup, quality
  rules), one process, streamed;
- datatrove dedup + quality: MinHash stages 1-4 (HashConfig(hash_fc="sha1")) and the Gopher repetition and
  quality filters, LocalPipelineExecutor with 2 tasks on 2 workers (the pool split in two files);
- govtune C2 with language ID, for reference (datatrove's language filter needs a fastText model
  download, so language ID is left out of the comparison);
- govtune dedup + decontamination + quality: the first run plus the n-gram decontamination step against
  XNLI's evaluation rows and FLORES's devtest-range lines in en/zh/hi (`--eval-set`), as a study would
  check its pool (`--decontam-only` runs just this engine and adds it to the existing results).
Peak memory is measured twice: ru_maxrss (largest single process, workers included) and the peak of the
summed RSS of the engine's whole process tree, sampled from /proc every 0.2 s. The deduplication index size
govtune reports (index_mb) shows what grows with the pool. Writes bench/results/curation_stream.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from govtune.machine_load import MachineLoad, describe  # noqa: E402

LANGS = ["en", "zh", "hi"]
FIELDS = {"text": "body", "lang": "language", "label": "intent"}
COLUMNS = "text=body,lang=language,label=intent"


def write_pool(rows: int, work: Path) -> tuple[Path, Path, dict]:
    """The pool as one file (govtune) and as two halves (datatrove's two tasks read one file each)."""
    from govtune.governance.synthetic import write_stream_pool

    pool = work / "pool.jsonl"
    kinds = write_stream_pool(pool, rows, langs=tuple(LANGS), fields=FIELDS, seed=0)
    halves = work / "halves"
    halves.mkdir()
    with open(pool, "rb") as src, open(halves / "a.jsonl", "wb") as a, open(halves / "b.jsonl", "wb") as b:
        for i, line in enumerate(src):
            (a if i < rows // 2 else b).write(line)
    return pool, halves, kinds


def write_eval_sets(work: Path) -> list[str]:
    """The evaluation sets a study of these languages checks its pool against, as --eval-set files."""
    from govtune.data import FLORES_EVAL_LINES, XNLI_EVAL_ROWS
    from govtune.governance.io import write_jsonl
    from govtune.governance.synthetic import flores_lines, xnli_rows

    sets = {"xnli": [r for lang in LANGS for r in xnli_rows(lang, XNLI_EVAL_ROWS)],
            "flores": [t for lang in LANGS for t in flores_lines(lang, FLORES_EVAL_LINES)]}
    for name, rows in sets.items():
        write_jsonl(work / f"{name}.eval.jsonl", rows)
    return [f"{name}={work / f'{name}.eval.jsonl'}" for name in sets]


def engine_govtune(pool: str, out: str, skip: str, eval_sets: str = "") -> dict:
    from govtune.cli import main

    argv = ["curate", "--input", pool, "--columns", COLUMNS, "--langs", ",".join(LANGS), "--stage", "c2",
            "--out", out, "--no-progress"] + (["--skip", skip] if skip else [])
    for spec in filter(None, eval_sets.split(",")):
        argv += ["--eval-set", spec]
    start = time.perf_counter()
    if main(argv) != 0:
        raise RuntimeError("govtune curate failed")
    seconds = time.perf_counter() - start
    report = json.loads((Path(out) / "report.json").read_text())
    dedup = next(s for s in report["steps"] if s["name"] == "dedup")
    out = {"seconds": seconds, "records": report["input"], "kept": report["kept"],
           "by_reason": report["by_reason"], "index_mb": dedup["index_mb"],
           "step_seconds": {s["name"]: s["seconds"] for s in report["steps"]}}
    decontam = next((s for s in report["steps"] if s["name"] == "decontam"), None)
    if decontam:
        out["decontam"] = {k: decontam[k] for k in ("index_ngrams", "index_mb", "contaminated_by_set", "eval_sets")}
    return out


def _doc_adapter(self, data, path, id_in_file):
    return {"text": data["body"], "id": str(data.get("id", id_in_file)), "metadata": {"lang": data["language"]}}


def engine_datatrove(halves: str, work: str) -> dict:
    from curation import run_datatrove  # the same datatrove steps as the in-memory benchmark

    # two worker processes per stage at most (the bucket stage has 14 tasks), as this benchmark has always run
    seconds, kept = run_datatrove(halves, Path(work), _doc_adapter, max_workers=2)
    records = sum(1 for p in Path(halves).glob("*.jsonl") for _ in open(p, "rb"))
    return {"seconds": seconds, "records": records, "kept": kept}


def child(args) -> None:
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        if args.engine == "datatrove":
            out = engine_datatrove(args.pool, work)
        else:
            out = engine_govtune(args.pool, str(Path(work) / "out"), args.skip, args.eval_sets)
    out["records_per_second"] = out["records"] / out["seconds"]
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time: what the run costs whatever else the machine runs (wall seconds stretch under load)
    out["cpu_seconds"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    out["max_process_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                    resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    print("RESULT " + json.dumps(out))


def _tree_rss_kb(pid: int) -> int:
    """Summed VmRSS of a process and all its descendants (0 for processes that are gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def spawn(engine: str, pool: Path, work: Path, skip: str = "", eval_sets: list[str] = ()) -> dict:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--pool", str(pool), "--work", str(work),
           "--skip", skip, "--eval-sets", ",".join(eval_sets)]
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    lines = [x for x in stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{engine} failed:\n{stderr[-3000:]}")
    result = json.loads(lines[-1][7:])
    result["peak_tree_rss_mb"] = peak[0] / 1024.0
    print(f"{engine:10s} {skip or 'all':8s} {'decontam' if eval_sets else '':8s} {result['records']:8d} rec  {result['seconds']:8.1f} s  "
          f"{result['records_per_second']:7.0f} rec/s  tree peak {result['peak_tree_rss_mb']:6.0f} MB  "
          f"largest process {result['max_process_rss_mb']:6.0f} MB", flush=True)
    return result


def run(rows: int, out: str, with_langid: bool = True, decontam_only: bool = False) -> dict:
    """Every engine on a fresh pool; with decontam_only, only the decontamination run, added to the results
    already in `out`.json (same pool: the generator is seeded)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pool, halves, kinds = write_pool(rows, work)
        print(f"pool: {rows} records {kinds}", flush=True)
        res = json.loads(Path(out + ".json").read_text()) if decontam_only else {}
        if decontam_only and (res.get("rows"), res.get("kinds")) != (rows, kinds):
            # another pool than the full run's: the decontamination run is written on its own
            print(f"{out}.json holds a run on another pool: writing {out}_decontam.*", flush=True)
            out, res = out + "_decontam", {}
        res.update(rows=rows, kinds=kinds)
        machine = MachineLoad()
        if not decontam_only:
            res["govtune_dedup_quality"] = spawn("govtune", pool, work, skip="langid")
            res["datatrove_dedup_quality"] = spawn("datatrove", halves, work)
            if with_langid:
                res["govtune_c2"] = spawn("govtune", pool, work)
        res["govtune_decontam"] = spawn("govtune", pool, work, skip="langid", eval_sets=write_eval_sets(work))
        load = machine.result()
        res["machine_load" if not decontam_only else "machine_load_decontam"] = load
    write_results(res, out)
    return res


def write_results(res: dict, out: str) -> None:
    from govtune.governance.io import write_json, write_text

    if "govtune_dedup_quality" not in res:
        return write_decontam_only(res, out)

    g, d = res["govtune_dedup_quality"], res["datatrove_dedup_quality"]
    res["speed_ratio_govtune_over_datatrove"] = g["records_per_second"] / d["records_per_second"]
    res["tree_memory_ratio_govtune_over_datatrove"] = g["peak_tree_rss_mb"] / d["peak_tree_rss_mb"]
    write_json(out + ".json", res)
    rows = [("govtune dedup + quality (`govtune curate --skip langid`, 1 process)", g),
            ("datatrove MinHash (sha1) + Gopher filters (2 tasks, 2 workers)", d)]
    if "govtune_c2" in res:
        rows.append(("govtune C2 with language ID (lingua), for reference", res["govtune_c2"]))
    if "govtune_decontam" in res:
        rows.append(("govtune dedup + decontamination + quality (`--skip langid --eval-set xnli=... --eval-set "
                     "flores=...`, 1 process)", res["govtune_decontam"]))
    md = [f"# Streaming curation benchmark ({res['rows']} records, {res['machine_load']['cpu_count']} CPUs)", "",
          "| engine | records | seconds | records/s | peak RSS, process tree (MB) | largest process (MB) | "
          "dedup index (MB) | kept |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        md.append(f"| {name} | {r['records']} | {r['seconds']:.1f} | {r['records_per_second']:.0f} | "
                  f"{r['peak_tree_rss_mb']:.0f} | {r['max_process_rss_mb']:.0f} | {r.get('index_mb', '')} | "
                  f"{r['kept']} |")
    md += ["", f"govtune / datatrove on the steps both run offline (exact and near-duplicate removal, quality "
               f"rules): speed x{res['speed_ratio_govtune_over_datatrove']:.2f}, peak memory (process tree) "
               f"x{res['tree_memory_ratio_govtune_over_datatrove']:.2f}.",
           "", "Language ID is not compared: datatrove's language filter needs a fastText model download. "
               "datatrove's MinHash shingles words (its English word tokenizer leaves Chinese unsegmented) and "
               "its Gopher filters are English-centric, so the two keep different records: the work per record "
               "is comparable, the decisions are not. govtune's memory beyond its dedup index does not grow "
               "with the pool: records are read, judged and written one batch at a time.",
           "", describe(res["machine_load"]), "", f"Pool composition: {res['kinds']}."]
    if "govtune_c2" in res:
        md += ["", f"govtune drop reasons (C2 with language ID): {res['govtune_c2']['by_reason']}; seconds per "
                   f"step: {res['govtune_c2']['step_seconds']}."]
    if "govtune_decontam" in res:
        md += _decontam_lines(res)
        if "machine_load_decontam" in res:
            md += ["", "That run alone, after the others: " + describe(res["machine_load_decontam"])]
    write_text(out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))


def _decontam_lines(res: dict) -> list[str]:
    r, d = res["govtune_decontam"], res["govtune_decontam"]["decontam"]
    sets = ", ".join(f"{name} {info['rows']} rows" for name, info in d["eval_sets"].items())
    found = "; ".join(f"{name}: " + (", ".join(f"{lang} {n}" for lang, n in by.items()) or "0")
                      for name, by in d["contaminated_by_set"].items())
    return ["", f"Decontamination (13-word / 50-character n-grams) against {sets}: index {d['index_ngrams']} "
                f"n-grams, {d['index_mb']} MB; {r['step_seconds']['decontam']} s of the run's "
                f"{sum(r['step_seconds'].values()):.1f} s of steps (dedup {r['step_seconds']['dedup']} s, quality "
                f"{r['step_seconds']['quality']} s). Records dropped per evaluation set and language: {found} "
                f"(the pool's wrong-language lines are FLORES sentences of the evaluation range)."]


def write_decontam_only(res: dict, out: str) -> None:
    """The decontamination run alone, on a pool other than the full run's."""
    from govtune.governance.io import write_json, write_text

    write_json(out + ".json", res)
    r = res["govtune_decontam"]
    md = [f"# Streaming curation with decontamination ({res['rows']} records, "
          f"{res['machine_load_decontam']['cpu_count']} CPUs)", "",
          "| engine | records | seconds | records/s | peak RSS, process tree (MB) | largest process (MB) | "
          "dedup index (MB) | kept |", "|---|---|---|---|---|---|---|---|",
          f"| govtune dedup + decontamination + quality (1 process) | {r['records']} | {r['seconds']:.1f} | "
          f"{r['records_per_second']:.0f} | {r['peak_tree_rss_mb']:.0f} | {r['max_process_rss_mb']:.0f} | "
          f"{r['index_mb']} | {r['kept']} |", *_decontam_lines(res), "",
          f"CPU time of the run (user + system): {r['cpu_seconds']:.0f} s, {r['cpu_seconds'] / r['records'] * 1e6:.0f} "
          f"µs a record (wall seconds stretch with the machine's load; CPU time does much less).", "",
          describe(res["machine_load_decontam"]),
          "", f"Pool composition: {res['kinds']}.", "", f"Drop reasons: {r['by_reason']}."]
    write_text(out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--no-langid", action="store_true", help="leave out the reference run with language ID")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "curation_stream"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="")
    p.add_argument("--pool", default="")
    p.add_argument("--work", default="")
    p.add_argument("--skip", default="")
    p.add_argument("--eval-sets", default="", help=argparse.SUPPRESS)
    p.add_argument("--decontam-only", action="store_true",
                   help="run only govtune with decontamination and add it to the results in --out")
    args = p.parse_args()
    if args.child:
        return child(args)
    run(args.rows, args.out, not args.no_langid, args.decontam_only)


if __name__ == "__main__":
    main()
