"""A multilingual pool with known defects, built from the shipped XNLI and FLORES text: the pool
docs/governance.md gives users to try `govtune curate` on, and the one tests and bench/curation.py measure
with. Every record carries `kind` (clean, exact_dup, near_dup, wrong_lang, junk), so precision and recall
of each step can be computed against the truth."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import regex

from govtune.atomic import atomic_open, jsonl_line
from govtune.data import DATA_DIR, FLORES_EVAL_LINES, FLORES_POOL_LINES, XNLI_POOL_ROWS
from govtune.data.xnli import load_xnli
from govtune.languages import flores_code

# Text in one language declared as another: (source language, declared language).
WRONG_LANGUAGE = (("es", "en"), ("hi", "zh"), ("zh", "hi"), ("en", "hi"), ("es", "zh"))
JUNK = {
    "en": ["Click here to subscribe to our newsletter and get the latest deals today",
           "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor",
           "We use cookies to improve your experience on our website. Accept cookies to continue",
           "http://www.example.com/products/item?id=12345&ref=home",
           "$$$ 555-0199 ### 2024-01-01 12:00 *** 99.99% *** $$$",
           "Great deal!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
           "ok",
           "buy now buy now buy now buy now buy now buy now buy now buy now buy now"],
    "zh": ["点击这里订阅我们的新闻通讯，获取最新优惠信息", "版权所有，保留一切权利，未经许可不得转载本网站内容",
           "https://www.example.cn/page/index.html", "好好好好好好好好好好好好好好好好好好好好",
           "￥￥￥ 12345678 ### 2024年01月01日 ***", "好", "立即购买立即购买立即购买立即购买立即购买立即购买立即购买立即购买"],
    "hi": ["अधिक जानकारी के लिए यहां क्लिक करें और हमारे न्यूज़लेटर की सदस्यता लें",
           "https://www.example.in/hi/page?id=42", "₹₹₹ 9876543210 ### 01-01-2024 *** ₹₹₹",
           "हाँ", "अभी खरीदें अभी खरीदें अभी खरीदें अभी खरीदें अभी खरीदें अभी खरीदें अभी खरीदें"],
}
_PUNCT = {".": "!", ",": ";", "。": "！", "，": "、", "?": ".", "।": "."}


def xnli_rows(lang: str, rows: range = XNLI_POOL_ROWS, data_dir: Path = DATA_DIR) -> list[dict]:
    """XNLI pairs of `lang` at `rows`, as `govtune.tasks.load_xnli` reads them."""
    return load_xnli(lang, data_dir=data_dir, rows=rows)


def flores_lines(lang: str, lines: range = FLORES_POOL_LINES, data_dir: Path = DATA_DIR) -> list[str]:
    with open(Path(data_dir) / "flores" / f"{flores_code(lang)}.dev", encoding="utf-8") as f:
        text = f.read().splitlines()
    return [text[i] for i in lines]


def _xnli_kind(record: dict) -> str:
    """XNLI's Hindi dev set writes some sentences in romanised Hindi (Latin script): a real defect of the
    data that language ID drops; marked apart so that it does not count against clean survival."""
    if record["lang"] == "hi" and any(not regex.search(r"\p{Devanagari}", record[f]) for f in ("premise", "hypothesis")):
        return "romanised"
    return "clean"


def perturb(text: str, rng: random.Random, edits_per_100: float = 1.0) -> str:
    """A near-copy: case changed, punctuation swapped, whitespace doubled, about one letter edit per
    100 characters (none in short text, where one edit already changes most character 5-grams)."""
    chars = list(text.upper() if rng.random() < 0.3 else text.lower() if rng.random() < 0.5 else text)
    chars = [_PUNCT.get(c, c) if rng.random() < 0.7 else c for c in chars]
    for _ in range(int(len(chars) * edits_per_100 / 100)):
        i = rng.randrange(len(chars))
        op = rng.choice("sdi")
        if op == "s" and chars[i].isalpha():
            chars[i] = rng.choice("aeiou")
        elif op == "d" and len(chars) > 20:
            del chars[i]
        elif op == "i":
            chars.insert(i, rng.choice("aeiou"))
    out = "".join(chars)
    return out.replace(" ", "  ", 1) if rng.random() < 0.5 else " " + out


def build_pool(langs=("en", "zh", "hi"), xnli_per_lang: int = 300, flores_per_lang: int = 150,
               n_exact: int = 60, n_near: int = 60, n_wrong: int = 60, n_junk_rounds: int = 3, seed: int = 0,
               synthetic_clean: int = 0) -> list[dict]:
    """Clean XNLI pairs (and `romanised` ones, see `_xnli_kind`) and FLORES sentences plus injected defects, shuffled; each record has `kind`.

    synthetic_clean: extra clean text records made by joining two random sentences of one language
    (for large benchmark pools; the shipped data has a few thousand distinct sentences)."""
    rng = random.Random(seed)
    clean: list[dict] = []
    sentences: dict[str, list[str]] = {}
    for lang in langs:
        rows = xnli_rows(lang)
        clean += [{**r, "kind": _xnli_kind(r)} for r in rows[:xnli_per_lang]]
        lines = flores_lines(lang)
        sentences[lang] = lines + [s for r in rows if _xnli_kind(r) == "clean"
                                   for s in (r["premise"], r["hypothesis"])]
        clean += [{"text": t, "lang": lang, "id": f"flores-{lang}-{i}", "kind": "clean"}
                  for i, t in enumerate(lines[:flores_per_lang])]
    seen = {(r["lang"], r.get("text") or r["premise"] + r["hypothesis"]) for r in clean}
    for i in range(synthetic_clean):
        lang = langs[i % len(langs)]
        a, b = rng.sample(sentences[lang], 2)
        text = a + (" " if lang == "en" else "") + b
        if (lang, text) in seen:
            continue
        seen.add((lang, text))
        clean.append({"text": text, "lang": lang, "id": f"synth-{lang}-{i}", "kind": "clean"})
    rng.shuffle(clean)
    copies: list[tuple[int, dict]] = []  # (index of the source in `clean`, copy): a copy comes after its source
    for i in range(n_exact):
        j = rng.randrange(len(clean))
        copies.append((j, {**clean[j], "id": f"exact-{i}", "kind": "exact_dup", "source": clean[j]["id"]}))
    for i in range(n_near):
        j = rng.randrange(len(clean))
        src = clean[j]
        if "text" in src:
            copy = {**src, "text": perturb(src["text"], rng)}
        else:
            copy = {**src, "premise": perturb(src["premise"], rng),
                    "hypothesis": perturb(src["hypothesis"], rng, edits_per_100=0.0)}
        copies.append((j, {**copy, "id": f"near-{i}", "kind": "near_dup", "source": src["id"]}))
    slots: dict[int, list[dict]] = {}
    for j, copy in copies:
        slots.setdefault(rng.randrange(j + 1, len(clean) + 1), []).append(copy)
    pool = []
    for j in range(len(clean) + 1):
        pool += slots.get(j, [])
        if j < len(clean):
            pool.append(clean[j])
    injected: list[dict] = []
    wrong = [(s, d) for s, d in WRONG_LANGUAGE if d in langs]
    # FLORES lines outside the pool: read once per source language, not once per injected record.
    foreign = {src: flores_lines(src, FLORES_EVAL_LINES) for src, _ in wrong}
    for i in range(n_wrong if wrong else 0):
        src_lang, declared = wrong[i % len(wrong)]
        text = foreign[src_lang][rng.randrange(len(foreign[src_lang]))]
        injected.append({"text": text, "lang": declared, "id": f"wrong-{i}", "kind": "wrong_lang"})
    for round_ in range(n_junk_rounds):
        for lang in langs:
            for j, text in enumerate(JUNK.get(lang, [])):
                if round_:  # make later rounds distinct so they test the quality rules, not dedup
                    text = f"{text} {round_ * 7 + j}" if len(text) > 10 else text + "!" * round_
                injected.append({"text": text, "lang": lang, "id": f"junk-{lang}-{round_}-{j}", "kind": "junk"})
    for record in injected:
        pool.insert(rng.randrange(len(pool) + 1), record)
    return pool


INTENTS = ("billing", "refund", "shipping", "account", "other")


def sentence_bank(langs=("en", "zh", "hi"), data_dir: Path = DATA_DIR) -> dict[str, list[str]]:
    """Distinct clean sentences per language: the FLORES pool lines and both sides of the clean XNLI pool
    pairs (about 2,500 distinct sentences a language)."""
    bank = {}
    for lang in langs:
        rows = [r for r in xnli_rows(lang, data_dir=data_dir) if _xnli_kind(r) == "clean"]
        sentences = flores_lines(lang, data_dir=data_dir) + [s for r in rows for s in (r["premise"], r["hypothesis"])]
        bank[lang] = list(dict.fromkeys(sentences))
    return bank


def stream_pool(n: int, langs=("en", "zh", "hi"), *, exact_rate: float = 0.025, near_rate: float = 0.025,
                wrong_rate: float = 0.01, junk_rate: float = 0.01, seed: int = 0,
                fields: dict[str, str] | None = None, reservoir: int = 10_000):
    """`n` records made one at a time (memory does not grow with n): a pool of any size in `langs` with
    known defects, for the streaming benchmark and tests.

    Clean records join three random sentences of one language (about 2,500^3 combinations a language, so
    clean records are distinct, bar a handful); an `exact_rate` share are copies of an earlier record and a
    `near_rate` share near copies (`perturb`), their source drawn uniformly from the records so far (a
    reservoir sample of `reservoir` of them); `wrong_rate` are sentences in another language declared as
    one of `langs`, `junk_rate` junk lines numbered to be distinct. Each record has `text`, `lang`, `label`
    (an intent of INTENTS), `id` and `kind`; `fields` renames them (e.g. {"text": "body", "lang":
    "language", "label": "intent"}), as a user's own schema would."""
    rng = random.Random(seed)
    bank = sentence_bank(langs)
    wrong = [(s, d) for s, d in WRONG_LANGUAGE if d in langs]
    foreign = {src: flores_lines(src, FLORES_EVAL_LINES) for src, _ in wrong}
    sample: list[dict] = []
    seen = 0
    for i in range(n):
        u = rng.random()
        if sample and u < exact_rate:
            src = rng.choice(sample)
            record = {**src, "id": f"exact-{i}", "kind": "exact_dup"}
        elif sample and u < exact_rate + near_rate:
            src = rng.choice(sample)
            record = {**src, "text": _near_copy(src["text"], rng), "id": f"near-{i}", "kind": "near_dup"}
        elif wrong and u < exact_rate + near_rate + wrong_rate:
            src_lang, declared = wrong[rng.randrange(len(wrong))]
            record = {"text": rng.choice(foreign[src_lang]), "lang": declared, "kind": "wrong_lang"}
            record.update(label=rng.choice(INTENTS), id=f"wrong-{i}")
        elif u < exact_rate + near_rate + wrong_rate + junk_rate:
            lang = langs[rng.randrange(len(langs))]
            text = f"{rng.choice(JUNK.get(lang, JUNK['en']))} {i}"
            record = {"text": text, "lang": lang, "label": rng.choice(INTENTS), "id": f"junk-{i}", "kind": "junk"}
        else:
            lang = langs[rng.randrange(len(langs))]
            text = ("" if lang in ("zh", "ja") else " ").join(rng.sample(bank[lang], 3))
            record = {"text": text, "lang": lang, "label": rng.choice(INTENTS), "id": f"clean-{i}", "kind": "clean"}
            seen += 1
            if len(sample) < reservoir:  # reservoir sampling: every clean record so far equally likely
                sample.append(record)
            else:
                j = rng.randrange(seen)
                if j < reservoir:
                    sample[j] = record
        yield {fields.get(k, k): v for k, v in record.items()} if fields else record


def _near_copy(text: str, rng: random.Random) -> str:
    """`perturb`, redrawn until the copy differs beyond surrounding whitespace (text without letters
    that change case and without punctuation can come back unchanged)."""
    for _ in range(10):
        copy = perturb(text, rng)
        if copy.strip() != text.strip():
            return copy
    return text + ("。" if text[-1:] != "。" else ".")


def write_stream_pool(path: str | Path, n: int, **kwargs) -> dict[str, int]:
    """`stream_pool` written to a JSON-lines file as it is made (atomically); returns the count per kind."""
    kinds: Counter = Counter()
    with atomic_open(path) as f:
        for record in stream_pool(n, **kwargs):
            kinds[record["kind"]] += 1
            f.write(jsonl_line(record))
    return dict(kinds)
