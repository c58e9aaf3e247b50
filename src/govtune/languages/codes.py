"""Language codes normalised to one internal form, from the table `flores200.tsv` beside this file.

The internal form of a language is its ISO 639-1 code where that code names exactly one FLORES-200
language-and-script (`en`, `hi`, `sw` = swh_Latn), or where one of several is the language the code stands
for in practice (PRIMARY: `zh` = zho_Hans, `ar` = arb_Arab, `fa` = pes_Arab, `az` = azj_Latn); every other
FLORES-200 language keeps its FLORES-200 code (`zho_Hant`, `arb_Latn`, `prs_Arab`, `kas_Arab`, `ace_Latn`).
So studies and pools keyed `en`, `zh`, `hi` read as before, and a script is part of the identity wherever a
language is written in several (`kas_Arab` != `kas_Deva`).

Accepted spellings: the internal form, the FLORES-200 code, ISO 639-1, ISO 639-3 (`swh`, `eng`), the ISO 639-3
macrolanguage code (`swa`, `fas`), and `<code>-<Script>` (`zh-Hant`), in any letter case. A code naming
several languages with no main one (`kas`, `ks`, `no`) is refused with the choices listed.

The table was written by hand (no package on the project's machines carries FLORES-200's list with ISO 639-1
codes) and is checked by tests against the SIB-200 file names.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("flores200.tsv")

# ISO 639-1 codes shared by several FLORES-200 rows, and the row the code means when given alone. Each is the
# variety CLDR's likely subtags give for the bare code (zh -> Hans, ar -> standard Arabic, fa -> Iranian
# Persian, az -> Latin-script North Azerbaijani). `ks` (Kashmiri, Arabic and Devanagari) and `kr` (Kanuri,
# Arabic and Latin) have no such main script: they are refused with both listed.
PRIMARY = {"zh": "zho_Hans", "ar": "arb_Arab", "fa": "pes_Arab", "az": "azj_Latn"}

# ISO 639-3 macrolanguage codes (and the bare Norwegian code) that FLORES-200 does not use: each names the
# FLORES rows of its member languages, resolved like an ISO 639-1 code (PRIMARY, else refused when several).
MACROLANGUAGES = {
    "ara": "ar", "fas": "fa", "msa": "ms", "swa": "sw", "lav": "lv", "mon": "mn", "uzb": "uz", "pus": "ps",
    "orm": "om", "mlg": "mg", "nep": "ne", "sqi": "sq", "aze": "az", "que": "qu", "aym": "ay", "kau": "kr",
    "ful": "ff", "yid": "yi", "ori": "or", "cmn": "zh", "kon": "kg", "srd": "sc",
}
AMBIGUOUS = {  # codes of a group of FLORES languages none of which is the group's default
    "no": ("nob_Latn", "nno_Latn"), "nor": ("nob_Latn", "nno_Latn"),
    "kur": ("kmr_Latn", "ckb_Arab"),  # `ku` itself is Northern Kurdish (CLDR), as in the table
}


class UnknownLanguage(ValueError):
    """A code that names no language of the table, or several (then `choices` lists them)."""

    def __init__(self, message: str, choices: tuple[str, ...] = ()):
        super().__init__(message)
        self.choices = choices


@dataclass(frozen=True)
class Language:
    code: str
    """The internal form (ISO 639-1 or FLORES-200 code, see the module's docstring)."""
    flores: str
    iso639_1: str | None
    name: str
    joshi_class: int | None

    @property
    def iso639_3(self) -> str:
        return self.flores.split("_")[0]

    @property
    def script(self) -> str:
        return self.flores.split("_")[1]


def _read_table() -> list[tuple[str, str | None, str, int | None]]:
    rows = []
    lines = [ln for ln in TABLE.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    for line in lines[1:]:  # the first is the header
        flores, iso1, name, joshi = line.split("\t")
        rows.append((flores, None if iso1 == "-" else iso1, name, None if joshi == "-" else int(joshi)))
    return rows


@functools.cache
def table() -> dict[str, Language]:
    """Every language by its internal form, in the table's (FLORES code) order."""
    rows = _read_table()
    shared: dict[str, list[str]] = {}
    for flores, iso1, _, _ in rows:
        if iso1:
            shared.setdefault(iso1, []).append(flores)
    out = {}
    for flores, iso1, name, joshi in rows:
        own = iso1 is not None and (len(shared[iso1]) == 1 or PRIMARY.get(iso1) == flores)
        lang = Language(iso1 if own else flores, flores, iso1, name, joshi)
        out[lang.code] = lang
    return out


@functools.cache
def _index() -> dict[str, tuple[str, ...]]:
    """Every accepted spelling (lower case) -> the internal forms it can mean."""
    groups: dict[str, list[str]] = {}
    for lang in table().values():
        for key in {lang.code, lang.flores, lang.iso639_3, lang.iso639_1}:
            if key:
                groups.setdefault(key.lower(), []).append(lang.code)
    for macro, iso1 in MACROLANGUAGES.items():
        groups.setdefault(macro, list(groups[iso1]))
    for key, members in AMBIGUOUS.items():
        groups[key] = [table_code(m) for m in members]
    return {k: tuple(dict.fromkeys(v)) for k, v in groups.items()}


def table_code(flores: str) -> str:
    """The internal form of a FLORES-200 code as written in the table."""
    return next(lang.code for lang in table().values() if lang.flores == flores)


def _resolve(key: str, candidates: tuple[str, ...], given: str) -> str:
    if len(candidates) == 1:
        return candidates[0]
    iso1 = {table()[c].iso639_1 for c in candidates}
    if len(iso1) == 1 and iso1 <= set(PRIMARY):  # `zh`, `zho`, `cmn`: one language with a main script
        return table_code(PRIMARY[iso1.pop()])
    names = ", ".join(f"{c} ({table()[c].name})" for c in candidates)
    raise UnknownLanguage(f"language {given!r} is ambiguous: it names {len(candidates)} languages or scripts; "
                          f"use one of {names}", candidates)


def normalize(code: str) -> str:
    """The internal form of a language code (see the module's docstring); an unknown or ambiguous code
    raises UnknownLanguage (a ValueError) naming close matches or the choices."""
    if not isinstance(code, str) or not code.strip():
        raise UnknownLanguage(f"language {code!r}: give a language code such as en, swh or zho_Hant")
    given, key = code, code.strip().replace("-", "_").lower()
    if key in _index():
        return _resolve(key, _index()[key], given)
    base, _, script = key.partition("_")
    if len(script) == 4 and base in _index():  # zh-Hant, sr_Cyrl: the language in that script
        in_script = tuple(c for c in _index()[base] if table()[c].script.lower() == script)
        if in_script:
            return _resolve(key, in_script, given)
    raise UnknownLanguage(_unknown_message(given))


def _unknown_message(code: str) -> str:
    names = {lang.name.lower(): lang.code for lang in table().values()}
    close = [names[n] for n in difflib.get_close_matches(code.lower(), list(names), n=2, cutoff=0.7)]
    close += difflib.get_close_matches(code.lower(), list(_index()), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(dict.fromkeys(close))}?)" if close else ""
    return (f"unknown language {code!r}{hint}: use an ISO 639-1 (sw), ISO 639-3 (swh) or FLORES-200 code "
            f"(swh_Latn) of one of the {len(table())} languages in govtune.languages")


def language(code: str) -> Language:
    return table()[normalize(code)]


def flores_code(code: str) -> str:
    """`en` -> `eng_Latn`, `swh` -> `swh_Latn`, `zh-Hant` -> `zho_Hant`."""
    return language(code).flores


def iso639_1(code: str) -> str | None:
    """The ISO 639-1 code of the language or its macrolanguage (`prs_Arab` -> `fa`), None where there is none."""
    return language(code).iso639_1


def iso639_3(code: str) -> str:
    """The ISO 639-3 code FLORES-200 uses (`en` -> `eng`, `zh` -> `zho`, `sw` -> `swh`)."""
    return language(code).iso639_3


def script(code: str) -> str:
    """ISO 15924 script: Latn, Hans/Hant (Han), Deva, Arab, Cyrl, ..."""
    return language(code).script


def language_name(code: str) -> str:
    """English name (the one translation prompts use)."""
    return language(code).name


def resource_level(code: str) -> int | None:
    """Resource class 0 (left behind) to 5 (winners) of Joshi et al. (2020), "The State and Fate of
    Linguistic Diversity and Inclusion in the NLP World" (ACL), read by language name from the paper's
    published taxonomy (lang2tax.txt) and its Table 1; None where that list names no single FLORES language
    with certainty (see the header of flores200.tsv)."""
    return language(code).joshi_class
