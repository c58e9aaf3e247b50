"""Language codes: the 205 FLORES-200 languages (SIB-200's), normalised once to one internal form.

`normalize("swh") == normalize("swh_Latn") == "sw"`; `normalize("zho_Hant") == "zho_Hant"`. The rules, the
accepted spellings and where the table comes from: `govtune.languages.codes`. Every place a user names a
language (governance `--langs` and records' `lang`, study `languages`, task files, evaluation `--langs`)
calls `normalize` once where it reads the value; the rest of govtune compares internal forms.
"""

from __future__ import annotations

from govtune.languages.codes import (PRIMARY, Language, UnknownLanguage, flores_code, iso639_1, iso639_3, language,
                                     language_name, normalize, resource_level, script, table)

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")

# internal form -> (FLORES-200 code, English name), for every language of the table
LANGUAGES: dict[str, tuple[str, str]] = {code: (lang.flores, lang.name) for code, lang in table().items()}


def iso_code(lang: str) -> str:
    """The internal form (`eng_Latn` -> `en`); the name is older than FLORES codes became internal forms."""
    return normalize(lang)


def normalize_or_keep(lang):
    """`normalize(lang)` for a known code, anything else unchanged: for places where any code is a language
    (governance with language ID off accepts codes of the user's own, e.g. `tok`)."""
    try:
        return normalize(lang)
    except UnknownLanguage:
        return lang


__all__ = ["LANGUAGES", "PRIMARY", "XNLI_LANGUAGES", "Language", "UnknownLanguage", "flores_code", "iso639_1",
           "iso639_3", "iso_code", "language", "language_name", "normalize", "normalize_or_keep",
           "resource_level", "script", "table"]
