"""bench/langid_accuracy.py on a small SIB-200-shaped folder the test builds from the shipped sample: per-language
accuracy, group matches counted, uncovered languages marked, written atomically as Markdown and JSON."""

import json
from pathlib import Path

SAMPLE = Path(__file__).parent / "governance" / "data" / "sib200_sample.jsonl"


def test_langid_accuracy_bench_on_a_small_folder(bench_script, tmp_path):
    bench = bench_script("langid_accuracy")
    data = tmp_path / "sib200"
    data.mkdir()
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    for code in ("eng_Latn", "zho_Hant", "aeb_Arab", "dik_Latn"):
        mine = [r for r in rows if r["lang"] == code]
        (data / f"{code}.dev.jsonl").write_text("".join(json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n"
                                                        for r in mine), encoding="utf-8")
    out = tmp_path / "result"
    assert bench.main(["--data", str(data), "--backends", "fasttext", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    per = res["backends"]["fasttext"]["per_language"]
    assert set(per) == {"en", "zho_Hant", "aeb_Arab"}  # Dinka: named by no backend
    assert per["en"]["accuracy"] == 1.0 and per["zho_Hant"]["accuracy"] == 1.0
    assert per["aeb_Arab"]["accuracy"] == 1.0  # lid.176 says `ar`: a match through the Arabic group
    assert res["auto"] == {"aeb_Arab": "lingua", "dik_Latn": "none", "en": "lingua", "zho_Hant": "fasttext"}
    md = out.with_suffix(".md").read_text()
    assert "(4 languages, 3 rows each)" in md
    assert "| dik_Latn | dik_Latn | Southwestern Dinka | ? | not covered | none |" in md
    assert "| zho_Hant | zho_Hant | Chinese (Traditional) | 5 | 1.00 | fasttext |" in md
