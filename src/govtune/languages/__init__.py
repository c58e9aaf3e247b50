"""Language codes shared by the tasks: ISO 639-1 -> FLORES-200 code, script and English name.

The XNLI languages are all covered; a few more FLORES languages are listed because translation pairs are
not limited to XNLI. A FLORES-200 code (`eng_Latn`) is accepted wherever an ISO code is."""

from __future__ import annotations

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")

# iso -> (FLORES-200 code, English name)
LANGUAGES: dict[str, tuple[str, str]] = {
    "ar": ("arb_Arab", "Arabic"),
    "bg": ("bul_Cyrl", "Bulgarian"),
    "de": ("deu_Latn", "German"),
    "el": ("ell_Grek", "Greek"),
    "en": ("eng_Latn", "English"),
    "es": ("spa_Latn", "Spanish"),
    "fr": ("fra_Latn", "French"),
    "hi": ("hin_Deva", "Hindi"),
    "ru": ("rus_Cyrl", "Russian"),
    "sw": ("swh_Latn", "Swahili"),
    "th": ("tha_Thai", "Thai"),
    "tr": ("tur_Latn", "Turkish"),
    "ur": ("urd_Arab", "Urdu"),
    "vi": ("vie_Latn", "Vietnamese"),
    "zh": ("zho_Hans", "Chinese"),
    "ja": ("jpn_Jpan", "Japanese"),
    "ko": ("kor_Hang", "Korean"),
    "it": ("ita_Latn", "Italian"),
    "pt": ("por_Latn", "Portuguese"),
    "nl": ("nld_Latn", "Dutch"),
    "pl": ("pol_Latn", "Polish"),
    "id": ("ind_Latn", "Indonesian"),
    "bn": ("ben_Beng", "Bengali"),
    "mr": ("mar_Deva", "Marathi"),
    "ne": ("npi_Deva", "Nepali"),
    "ta": ("tam_Taml", "Tamil"),
    "fa": ("pes_Arab", "Persian"),
    "he": ("heb_Hebr", "Hebrew"),
    "uk": ("ukr_Cyrl", "Ukrainian"),
}
_BY_FLORES = {code: iso for iso, (code, _) in LANGUAGES.items()}


def iso_code(lang: str) -> str:
    """`en` or `eng_Latn` -> `en`; unknown codes raise with the list of known ones."""
    if lang in LANGUAGES:
        return lang
    if lang in _BY_FLORES:
        return _BY_FLORES[lang]
    raise ValueError(f"unknown language {lang!r}: use an ISO 639-1 code or FLORES-200 code among "
                     f"{', '.join(sorted(LANGUAGES))} (or add it to govtune.languages.LANGUAGES)")


def flores_code(lang: str) -> str:
    """`en` -> `eng_Latn`; a FLORES-200 code passes through unchanged (any of the 200, listed or not)."""
    if lang in LANGUAGES:
        return LANGUAGES[lang][0]
    if len(lang) == 8 and lang[3] == "_":
        return lang
    return LANGUAGES[iso_code(lang)][0]


def language_name(lang: str) -> str:
    """English name used in translation prompts."""
    try:
        return LANGUAGES[iso_code(lang)][1]
    except ValueError:
        return lang


def script(lang: str) -> str:
    """ISO 15924 script of the language's FLORES code: Latn, Hans/Hant (Han), Deva, Arab, Cyrl, ..."""
    return flores_code(lang).split("_")[1]
