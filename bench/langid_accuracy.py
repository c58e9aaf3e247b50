"""Per-language accuracy of each language-ID backend on SIB-200's dev sentences (205 FLORES-200 languages).

    python bench/langid_accuracy.py [--data /work/shared/data/sib200] [--split dev] [--backends lingua,langid,fasttext]

Each backend identifies every dev sentence (47 per language) of every language it covers, choosing among all
the languages it knows (no candidate restriction: the hardest setting, and the one a pool of many languages
meets). A sentence counts as correct when the identified language is its own or in one group with it
(`govtune.governance.langid_backends.GROUPS`), exactly as the curation step decides. "kept" is the share the
step would keep at its default min_confidence (0.25). A language a backend does not cover is "not covered".
The "auto" column is the backend the default setting picks for a pool of that language alone ("none": no
backend covers it).
Writes bench/results/langid_accuracy.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from govtune.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from govtune.governance.config import LangIdConfig  # noqa: E402
from govtune.governance.langid import detect  # noqa: E402
from govtune.governance.langid_backends import (GROUPS, choose_backend, coverage, map_native,  # noqa: E402
                                                named_languages, native_codes, same_language)
from govtune.languages import table  # noqa: E402
from govtune.machine_load import MachineLoad, describe  # noqa: E402

MIN_CONFIDENCE = LangIdConfig().min_confidence


def read_sentences(data: Path, split: str) -> dict[str, list[str]]:
    """internal code -> the split's texts, for every language of the table that has a file."""
    out = {}
    for lang in table().values():
        path = data / f"{lang.flores}.{split}.jsonl"
        if path.exists():
            out[lang.code] = [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()
                              if line.strip()]
    if not out:
        raise SystemExit(f"no SIB-200 files ({{code}}.{split}.jsonl) under {data}: pass --data")
    return out


def run_backend(backend: str, sentences: dict[str, list[str]]) -> dict:
    covered = [code for code in sentences if code in named_languages(backend)]  # UNRELIABLE ones measured too
    every = None if backend == "fasttext" else tuple(sorted({map_native(backend, c) for c in native_codes(backend)}))
    texts = [t for code in covered for t in sentences[code]]
    start = time.perf_counter()
    found = detect(texts, every, backend)
    seconds = time.perf_counter() - start
    per_lang, i = {}, 0
    for code in covered:
        n = len(sentences[code])
        mine = found[i:i + n]
        i += n
        correct = [same_language(code, lang) for lang, _ in mine]
        kept = [ok and p >= MIN_CONFIDENCE for ok, (_, p) in zip(correct, mine)]
        wrong = sorted({lang for (lang, _), ok in zip(mine, correct) if not ok})
        per_lang[code] = {"n": n, "accuracy": sum(correct) / n, "kept": sum(kept) / n, "confused_with": wrong[:5],
                          "covered": code in coverage(backend)}
    return {"seconds": seconds, "sentences": len(texts), "named": covered,
            "covered": [c for c in covered if c in coverage(backend)], "per_language": per_lang}


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def markdown(res: dict) -> str:
    backends = list(res["backends"])
    langs = res["languages"]
    lines = [f"# Language ID accuracy on SIB-200 {res['split']} sentences ({len(langs)} languages, "
             f"{res['per_language_rows']} rows each)", "",
             f"`python bench/langid_accuracy.py` ({res['command']}). Each backend chooses among all the languages "
             f"it knows; a sentence is correct when the identified language is its own or in one of its groups "
             f"({', '.join(GROUPS)}); \"kept\" adds the step's default min_confidence {MIN_CONFIDENCE}.", "",
             "A language a backend names but identifies on fewer than half of these sentences is left out of its "
             "coverage (`langid_backends.UNRELIABLE`); its accuracy is shown with a `*` and counts in neither "
             "summary column.", "",
             "| backend | languages named | covered | macro accuracy (covered) | macro kept (covered) | "
             "covered >= 0.9 | sentences/s |", "|---|---|---|---|---|---|---|"]
    for b in backends:
        r = res["backends"][b]
        mine = [v for v in r["per_language"].values() if v["covered"]]
        acc, kept = [v["accuracy"] for v in mine], [v["kept"] for v in mine]
        lines.append(f"| {b} | {len(r['named'])} | {len(r['covered'])} of {len(langs)} | {_mean(acc):.3f} | "
                     f"{_mean(kept):.3f} | {sum(a >= 0.9 for a in acc)} | {r['sentences'] / r['seconds']:.0f} |")
    auto = res["auto"]
    measured = {c: res["backends"][b]["per_language"][c] for c, b in auto.items()
                if c in res["backends"].get(b, {}).get("covered", [])}
    nowhere = [c for c in langs if not any(c in r["covered"] for r in res["backends"].values())]
    lines += ["", f"auto (the default: lingua where it covers the language, else fasttext): {len(measured)} "
                  f"languages covered, macro accuracy {_mean(v['accuracy'] for v in measured.values()):.3f}. "
                  f"Covered by no backend ({len(nowhere)}; a pool with them needs `uncovered: skip`): "
                  f"{', '.join(nowhere)}.",
              "", describe(res["machine_load"]), "",
              "| FLORES-200 | code | language | Joshi class | " + " | ".join(backends) + " | auto | confused with "
              "(lowest-scoring backend) |", "|---|---|---|---|" + "---|" * len(backends) + "---|---|"]
    for code in langs:
        lang = table()[code]
        cells, worst = [], None
        for b in backends:
            v = res["backends"][b]["per_language"].get(code)
            cells.append("not covered" if v is None else f"{v['accuracy']:.2f}" + ("" if v["covered"] else "*"))
            if v is not None and (worst is None or v["accuracy"] < worst["accuracy"]):
                worst = v
        joshi = "?" if lang.joshi_class is None else str(lang.joshi_class)
        confused = ", ".join(worst["confused_with"]) if worst and worst["confused_with"] else ""
        lines.append(f"| {lang.flores} | {code} | {lang.name} | {joshi} | " + " | ".join(cells) +
                     f" | {auto[code]} | {confused} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/work/shared/data/sib200", help="folder of SIB-200 {code}.{split}.jsonl")
    p.add_argument("--split", default="dev")
    p.add_argument("--backends", default="lingua,langid,fasttext")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "langid_accuracy"))
    args = p.parse_args(argv)
    sentences = read_sentences(Path(args.data), args.split)
    machine = MachineLoad()
    res = {"split": args.split, "languages": list(sentences), "command": f"--split {args.split}",
           "per_language_rows": max(len(v) for v in sentences.values()), "backends": {},
           "auto": {code: _auto(code) for code in sentences}}
    for backend in [normalize_backend(b) for b in args.backends.split(",") if b.strip()]:
        res["backends"][backend] = run_backend(backend, sentences)
        print(f"{backend}: {len(res['backends'][backend]['covered'])} languages, "
              f"{res['backends'][backend]['seconds']:.1f} s", flush=True)
    res["machine_load"] = machine.result()
    atomic_write_json(f"{args.out}.json", res)
    atomic_write_text(f"{args.out}.md", markdown(res))
    print(f"wrote {args.out}.md")
    return 0


def _auto(code: str) -> str:
    backend = choose_backend([code], "auto")
    return backend if code in coverage(backend) else "none"


def normalize_backend(name: str) -> str:
    name = name.strip()
    if name not in ("lingua", "langid", "fasttext"):
        raise SystemExit(f"--backends: unknown backend {name!r}; use lingua, langid, fasttext")
    return name


if __name__ == "__main__":
    raise SystemExit(main())
