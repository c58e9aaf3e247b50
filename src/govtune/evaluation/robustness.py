"""Orthographic variants for the robustness protocol: punctuation normalisation, diacritics removal and
whitespace compaction, each defined per script so the perturbed text is a variant a reader of that script
would still read as the same sentence.

| script | punctuation | diacritics | whitespace |
|---|---|---|---|
| Latin, Cyrillic, Greek | typographic -> ASCII quotes/dashes/ellipsis, no space before , . ; : ! ? | Latin, Greek: strip combining marks after NFD (é -> e, ά -> α); Cyrillic: ё -> е and stress accents only (й stays) | collapse runs, drop the space after , . ; : ! ? |
| Han | full-width -> half-width (，-> ,  。-> .  「」-> ") | not applicable | drop spaces next to a Han character |
| Devanagari | danda । and ॥ -> ".", typographic -> ASCII | nukta removed (ज़ -> ज), chandrabindu -> anusvara (माँ -> मां); vowel signs (matras) and virama kept | collapse runs, drop the space after punctuation and before a danda |
| Arabic | ، ؛ ؟ -> , ; ? | harakat (short vowels, shadda, sukun, dagger alef) removed | as Latin |
| other | typographic -> ASCII | not applicable | as Latin |

Each example gets exactly one operation, drawn with a seed from those applicable to its script; if the
drawn one would leave the example unchanged, the next applicable one (in the seeded order) is used, and an
example no operation changes stays clean and is counted as such."""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable

from govtune.languages import script as script_of

OPERATIONS = ("punctuation", "diacritics", "whitespace")

_TYPOGRAPHIC = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "‘": "'", "’": "'",
                              "‚": "'", "‛": "'", "‹": "'", "›": "'", "–": "-", "—": "-", "―": "-", "‐": "-",
                              "′": "'", "″": '"'})
_HAN_PUNCT = str.maketrans({"。": ".", "、": ",", "「": '"', "」": '"', "『": '"', "』": '"', "《": '"', "》": '"',
                            "〈": "'", "〉": "'", "【": "[", "】": "]", "〔": "(", "〕": ")", "～": "~",
                            "—": "-", "…": "...", "“": '"', "”": '"', "‘": "'", "’": "'", "　": " "})
_ARABIC_PUNCT = str.maketrans({"،": ",", "؛": ";", "؟": "?", "٪": "%"})
_SPACE_RUN = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_SPACE_AFTER_PUNCT = re.compile(r"([,.;:!?،؛؟।॥])\s+(?=\S)")
_HAN = r"\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_NEAR_HAN = re.compile(rf"(?<=[{_HAN}])\s+|\s+(?=[{_HAN}])")
_HARAKAT = re.compile("[\u064b-\u0652\u0670]")


def _typographic(text: str) -> str:
    return text.translate(_TYPOGRAPHIC).replace("…", "...")


def _collapse(text: str) -> str:
    return _SPACE_RUN.sub(" ", text).strip()


def _strip_marks(text: str) -> str:
    """Drop every combining mark after canonical decomposition (Latin, Greek)."""
    return unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFD", text)
                                                if unicodedata.category(c) != "Mn"))


# --- punctuation normalisation ---
def punct_latin(text: str) -> str:
    text = re.sub(r"«\s*", "«", re.sub(r"\s*»", "»", text))  # French spacing inside guillemets
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _typographic(text))


def punct_han(text: str) -> str:
    # NFKC maps the full-width ASCII block (，！？：；（）) to half-width; the CJK marks need the table.
    out = []
    for c in text.translate(_HAN_PUNCT):
        out.append(unicodedata.normalize("NFKC", c) if "\uff01" <= c <= "\uff5e" else c)
    return "".join(out)


def punct_devanagari(text: str) -> str:
    text = re.sub(r"\s*[।॥]", ".", _typographic(text))
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def punct_arabic(text: str) -> str:
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _typographic(text).translate(_ARABIC_PUNCT))


# --- diacritics removal ---
def diacritics_latin(text: str) -> str:
    return _strip_marks(text)


def diacritics_cyrillic(text: str) -> str:
    # й and ї are letters of their own; only ё (commonly written е) and stress accents are optional marks.
    text = unicodedata.normalize("NFD", text.replace("ё", "е").replace("Ё", "Е"))
    return unicodedata.normalize("NFC", text.replace("\u0301", "").replace("\u0300", ""))


def diacritics_devanagari(text: str) -> str:
    # NFD splits the precomposed nukta letters (U+0958-U+095F) into base + nukta first. Vowel signs and the
    # virama change the word and are not optional marks, so they stay.
    text = unicodedata.normalize("NFD", text).replace("\u093c", "").replace("\u0901", "\u0902")
    return unicodedata.normalize("NFC", text)


def diacritics_arabic(text: str) -> str:
    return _HARAKAT.sub("", text)


# --- whitespace compaction ---
def whitespace_spaced(text: str) -> str:
    return _SPACE_AFTER_PUNCT.sub(r"\1", _collapse(text))


def whitespace_devanagari(text: str) -> str:
    return re.sub(r"\s+(?=[।॥])", "", whitespace_spaced(text))


def whitespace_han(text: str) -> str:
    return _collapse(_SPACE_NEAR_HAN.sub("", text))


Op = Callable[[str], str]
# script family -> operation -> function (None: not applicable to that script)
_FAMILIES: dict[str, dict[str, Op | None]] = {
    "latin": {"punctuation": punct_latin, "diacritics": diacritics_latin, "whitespace": whitespace_spaced},
    "greek": {"punctuation": punct_latin, "diacritics": diacritics_latin, "whitespace": whitespace_spaced},
    "cyrillic": {"punctuation": punct_latin, "diacritics": diacritics_cyrillic, "whitespace": whitespace_spaced},
    "han": {"punctuation": punct_han, "diacritics": None, "whitespace": whitespace_han},
    "devanagari": {"punctuation": punct_devanagari, "diacritics": diacritics_devanagari,
                   "whitespace": whitespace_devanagari},
    "arabic": {"punctuation": punct_arabic, "diacritics": diacritics_arabic, "whitespace": whitespace_spaced},
    "other": {"punctuation": lambda t: _typographic(t), "diacritics": None, "whitespace": whitespace_spaced},
}
_SCRIPT_FAMILY = {"Latn": "latin", "Grek": "greek", "Cyrl": "cyrillic", "Hans": "han", "Hant": "han",
                  "Jpan": "han", "Deva": "devanagari", "Arab": "arabic"}


def family(lang: str) -> str:
    try:
        return _SCRIPT_FAMILY.get(script_of(lang), "other")
    except ValueError:  # a task file's language outside govtune's table: the script-independent operations
        return "other"


def operations_for(lang: str) -> dict[str, Op]:
    """The operations applicable to a language's script."""
    return {name: fn for name, fn in _FAMILIES[family(lang)].items() if fn is not None}


def apply(op: str, text: str, lang: str) -> str:
    ops = operations_for(lang)
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}: choose among {OPERATIONS}")
    if op not in ops:
        raise ValueError(f"{op!r} is not applicable to {lang!r} ({family(lang)} script): use one of {sorted(ops)}")
    return ops[op](text)


def perturb(example: dict, seed: int = 0, fields: tuple[str, ...] = ("premise", "hypothesis")
            ) -> tuple[dict, str | None]:
    """(copy of the example with one operation applied to `fields`, operation name or None if none changes it).

    The draw depends only on (seed, language, row/id), not on the order examples are visited."""
    lang = example["lang"]
    ops = operations_for(lang)
    names = sorted(ops)
    rng = random.Random(f"{seed}|{lang}|{example.get('row', example.get('id'))}")
    rng.shuffle(names)
    for name in names:
        new = {k: (ops[name](v) if k in fields else v) for k, v in example.items()}
        if any(new[f] != example[f] for f in fields):
            return new, name
    return dict(example), None
