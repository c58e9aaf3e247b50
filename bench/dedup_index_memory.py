"""Memory and time of the deduplication index alone as it grows to N entries (default a million), the part of
a streamed curation that grows with the pool.

    python bench/dedup_index_memory.py [--entries 1000000]

Random signatures (128 permutations) and exact keys in three language groups are checked and indexed in
batches of 4096, as `govtune curate` does; no two are duplicates, so every record is indexed (the worst
case). Reported every ~200k entries: the growth of the process's RSS, the index's own size (nbytes) and
the elapsed time. Writes bench/results/dedup_index_memory.json and .md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from govtune.machine_load import MachineLoad, describe  # noqa: E402

BATCH = 4096


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024.0


def measure(entries: int) -> dict:
    from govtune.governance.dedup import DuplicateIndex

    index, rng, langs = DuplicateIndex(), np.random.default_rng(0), ("en", "zh", "hi")
    base, start, rows = rss_mb(), time.perf_counter(), []
    for lo in range(0, entries, BATCH):
        n = min(BATCH, entries - lo)
        sigs = rng.integers(0, 2**32, size=(n, 128), dtype=np.uint32)
        exact = [x.tobytes() for x in rng.integers(0, 2**63, size=(n, 2), dtype=np.int64)]
        verdicts = index.check([(langs[i % 3], 1) for i in range(n)], exact, list(sigs), list(range(lo, lo + n)))
        assert not any(verdicts)
        if (lo // BATCH) % 49 == 48 or lo + n == entries:
            rows.append({"entries": lo + n, "rss_growth_mb": rss_mb() - base, "index_mb": index.nbytes() / 2**20,
                         "seconds": time.perf_counter() - start})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"entries": entries, "rows": rows, "peak_rss_mb": peak, "baseline_rss_mb": base}


def write_results(res: dict, out: str) -> None:
    from govtune.governance.io import write_json, write_text

    write_json(out + ".json", res)
    md = [f"# Deduplication index memory ({res['entries']} entries, {res['machine_load']['cpu_count']} CPUs)", "",
          "| entries | RSS growth (MB) | index nbytes (MB) | bytes per entry (RSS) | seconds |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        md.append(f"| {r['entries']} | {r['rss_growth_mb']:.0f} | {r['index_mb']:.0f} | "
                  f"{r['rss_growth_mb'] * 2**20 / r['entries']:.0f} | {r['seconds']:.1f} |")
    md += ["", f"Peak RSS of the process {res['peak_rss_mb']:.0f} MB (baseline after imports "
               f"{res['baseline_rss_mb']:.0f} MB).", "", describe(res["machine_load"])]
    write_text(out + ".md", "\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "dedup_index_memory"))
    args = p.parse_args()
    machine = MachineLoad()
    res = measure(args.entries)
    res["machine_load"] = machine.result()
    write_results(res, args.out)


if __name__ == "__main__":
    main()
