"""Precision and recall of the PII detector per entity type and per script, beside datatrove's PIIFormatter,
and what it finds in the shipped evaluation data.

    python bench/pii_detection.py

1. On the labelled set (tests/governance/data/pii_set.jsonl: 306 real sentences in 17 languages and 9
   scripts with planted personal data and number-like decoys): a detection counts when its type and its
   span are exactly a labelled one; anything else is a false positive (a decoy flagged, a span cut short).
   datatrove's PIIFormatter masks e-mails and IPv4 addresses only (public ones by default); its spans are
   its own regexes' matches that its validator accepts, checked to reproduce its `format` output. Other types
   are "not covered".
2. Over XNLI dev (15 languages, premise and hypothesis, /work/shared/data/xnli; the shipped
   src/govtune/data/xnli holds the en, zh and hi files, byte-identical) and FLORES-200 dev (4 languages):
   every hit, with its context, to be judged by hand in the results.

Writes bench/results/pii_detection.json and .md (the committed .md ends with the hits judged by hand, a
section a rerun does not write).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from govtune.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from govtune.machine_load import MachineLoad, describe  # noqa: E402

SET = ROOT / "tests" / "governance" / "data" / "pii_set.jsonl"
SHARED = Path("/work/shared/data")
FLORES_LANGS = {"eng_Latn": "en", "zho_Hans": "zh", "spa_Latn": "es", "hin_Deva": "hi"}
DATATROVE_TYPES = ("EMAIL", "IP_ADDRESS")


def datatrove_spans(text: str) -> list[tuple[int, int, str]]:
    """The spans datatrove's PIIFormatter (default settings) replaces."""
    from datatrove.pipeline.formatters import PIIFormatter

    formatter = PIIFormatter()
    spans = []
    for replacer, kind in ((formatter.emails_replacer, "EMAIL"), (formatter.ip_replacer, "IP_ADDRESS")):
        for m in replacer.regex.finditer(text):
            if replacer.validator is None or replacer.validator(m.group()):
                spans.append((m.start(), m.end(), kind))
    spans.sort()
    # the spans are exactly what format() replaces: rebuild its output from them (fresh replacers start their
    # rotation of replacement strings at the first)
    out, last, seen = [], 0, Counter()
    for start, end, kind in spans:
        replacer = formatter.emails_replacer if kind == "EMAIL" else formatter.ip_replacer
        out += [text[last:start], replacer.replacements[seen[kind] % len(replacer.replacements)]]
        seen[kind] += 1
        last = end
    assert "".join(out) + text[last:] == PIIFormatter().format(text), text
    return spans


def score(rows: list[dict], find) -> dict:
    """Counts per type and script: tp, fp, fn; and false positives per decoy kind."""
    counts: dict = defaultdict(Counter)
    decoy_fp: Counter = Counter()
    for row in rows:
        gold = {(s["start"], s["end"], s["type"]) for s in row["spans"]}
        found = set(find(row["text"], row["lang"]))
        for span in gold:
            counts[span[2], row["script"]]["tp" if span in found else "fn"] += 1
        for span in found - gold:
            counts[span[2], row["script"]]["fp"] += 1
            for d in row["decoys"]:
                if d["start"] < span[1] and span[0] < d["end"]:
                    decoy_fp[d["type"]] += 1
    return {"counts": {f"{t}|{s}": dict(c) for (t, s), c in counts.items()}, "decoy_fp": dict(decoy_fp)}


def rates(counts: dict[str, dict], key=lambda t, s: t) -> dict[str, dict]:
    total: dict = defaultdict(Counter)
    for name, c in counts.items():
        t, s = name.split("|")
        total[key(t, s)].update(c)
    out = {}
    for k, c in sorted(total.items()):
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        out[k] = {"tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else None,
                  "recall": tp / (tp + fn) if tp + fn else None}
    return out


def scan(detector) -> dict:
    """Every hit in XNLI dev (15 languages) and FLORES-200 dev (4), with its context."""
    texts = []
    for path in sorted((SHARED / "xnli").glob("*.dev.jsonl")):
        lang = path.name.split(".")[0]
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            row = json.loads(line)
            texts += [(f"xnli/{lang}", lang, i, f, row[f]) for f in ("premise", "hypothesis")]
    for code, lang in FLORES_LANGS.items():
        for i, line in enumerate((SHARED / "flores" / f"{code}.dev").read_text(encoding="utf-8").splitlines()):
            texts.append((f"flores/{code}", lang, i, "text", line))
    start = time.perf_counter()
    hits, per_source = [], Counter()
    for source, lang, i, field, text in texts:
        per_source[source] += 1
        for span in detector.find(text, lang):
            lo, hi = max(0, span.start - 40), min(len(text), span.end + 40)
            hits.append({"source": source, "row": i, "field": field, "type": span.type,
                         "match": text[span.start:span.end], "context": text[lo:hi]})
    seconds = time.perf_counter() - start
    return {"texts": len(texts), "per_source": dict(per_source), "seconds": round(seconds, 2),
            "texts_per_second": round(len(texts) / seconds), "hits": hits}


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def markdown(res: dict) -> str:
    g, d = res["govtune"], res["datatrove"]
    lines = ["# PII detection: govtune's detector beside datatrove's PIIFormatter", "",
             f"`python bench/pii_detection.py`, on the labelled set `tests/governance/data/pii_set.jsonl` "
             f"({res['rows']} rows, {res['entities']} planted entities, {res['decoys']} decoys; 17 languages, "
             f"{res['scripts']} scripts). A detection is correct when its type and span are exactly a labelled one.", "",
             "## Per entity type", "",
             "| type | entities | govtune precision | govtune recall | datatrove precision | datatrove recall |",
             "|---|---|---|---|---|---|"]
    g_type, d_type = rates(g["counts"]), rates(d["counts"])
    for t in res["types"]:
        gt = g_type.get(t, {"tp": 0, "fn": 0, "precision": None, "recall": None})
        n = gt["tp"] + gt["fn"]
        if t in DATATROVE_TYPES:
            dt = d_type.get(t, {"precision": None, "recall": 0.0})
            dcells = f"{fmt(dt['precision'])} | {fmt(dt['recall'])}"
        else:
            dcells = "not covered | not covered"
        lines.append(f"| {t} | {n} | {fmt(gt['precision'])} | {fmt(gt['recall'])} | {dcells} |")
    lines += ["", "## Per script (all types)", "",
              "| script | entities | govtune precision | govtune recall | datatrove recall on e-mail + IP |",
              "|---|---|---|---|---|"]
    g_script = rates(g["counts"], key=lambda t, s: s)
    d_script = rates({k: v for k, v in d["counts"].items()}, key=lambda t, s: s)
    g_cov = rates({k: v for k, v in g["counts"].items() if k.split("|")[0] in DATATROVE_TYPES}, key=lambda t, s: s)
    for s, r in g_script.items():
        n_cov = g_cov.get(s, {}).get("tp", 0) + g_cov.get(s, {}).get("fn", 0)
        dr = d_script.get(s, {}).get("tp", 0) / n_cov if n_cov else None
        lines.append(f"| {s} | {r['tp'] + r['fn']} | {fmt(r['precision'])} | {fmt(r['recall'])} | {fmt(dr)} |")
    lines += ["", "## Decoys flagged (false positives on number-like text)", "",
              f"govtune: {g['decoy_fp'] or 'none'}; datatrove: {d['decoy_fp'] or 'none'} "
              f"(decoys per kind: {res['decoy_kinds']}).", "",
              "## The shipped evaluation data", "",
              f"{res['scan']['texts']} texts (XNLI dev premises and hypotheses in 15 languages, FLORES-200 dev in "
              f"4), {res['scan']['seconds']} s ({res['scan']['texts_per_second']} texts/s, one process), "
              f"{len(res['scan']['hits'])} hits:", ""]
    if res["scan"]["hits"]:
        lines += ["| source | row | field | type | match | context |", "|---|---|---|---|---|---|"]
        for h in res["scan"]["hits"]:
            ctx = h["context"].replace("|", "\\|")
            lines.append(f"| {h['source']} | {h['row']} | {h['field']} | {h['type']} | `{h['match']}` | {ctx} |")
    lines += ["", describe(res["machine_load"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    from govtune.governance.pii import PiiDetector
    from govtune.governance.pii_patterns import PATTERN_TYPES

    machine = MachineLoad()
    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines()]
    detector = PiiDetector()
    res = {"rows": len(rows), "scripts": len({r["script"] for r in rows}), "entities": sum(len(r["spans"]) for r in rows),
           "decoys": sum(len(r["decoys"]) for r in rows),
           "decoy_kinds": dict(Counter(d["type"] for r in rows for d in r["decoys"])),
           "types": [t for t in PATTERN_TYPES],
           "govtune": score(rows, lambda text, lang: [(s.start, s.end, s.type) for s in detector.find(text, lang)]),
           "datatrove": score(rows, lambda text, lang: datatrove_spans(text))}
    res["scan"] = scan(detector)
    res["machine_load"] = machine.result()
    out = ROOT / "bench" / "results"
    atomic_write_json(out / "pii_detection.json", res)
    atomic_write_text(out / "pii_detection.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
