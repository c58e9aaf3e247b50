"""Settings of the PII step (`CurationConfig.pii`), checked on creation."""

from __future__ import annotations

from dataclasses import dataclass, field

from govtune.governance.pii_patterns import FALLBACK_REGIONS, LANGUAGE_REGIONS, PATTERN_TYPES

PERSON, LOCATION = "PERSON", "LOCATION"
NER_TYPES = (PERSON, LOCATION)  # names and addresses: Presidio's NER, only with `ner=True`
ALL_TYPES = PATTERN_TYPES + NER_TYPES
ACTIONS = ("redact", "drop")
# Presidio's spaCy model per language. Not on PyPI: `python -m spacy download en_core_web_lg`.
DEFAULT_NER_MODELS = {"en": "en_core_web_lg"}


def placeholder(kind: str) -> str:
    """What `redact` writes in place of an entity of type `kind`: `<EMAIL>`, `<PHONE>`, ..."""
    return f"<{kind}>"


def drop_reason(kind: str) -> str:
    """The reason `drop` gives for a record holding an entity of type `kind`: pii_email, pii_phone, ..."""
    return f"pii_{kind.lower()}"


@dataclass
class PiiConfig:
    types: tuple[str, ...] | None = None
    """Entity types to find: any of EMAIL, PHONE, IP_ADDRESS, CREDIT_CARD, IBAN, URL_CREDENTIALS, and with
    `ner` PERSON, LOCATION. None: every pattern type, plus PERSON and LOCATION when `ner` is on."""
    action: str = "redact"
    """redact: keep the record with each entity replaced by its placeholder (<EMAIL>, ...); drop: remove the
    record, with reason pii_<type> (of the first type in priority order it holds)."""
    ner: bool = False
    """Names and addresses through Presidio (extra `pii-ner`) and a spaCy model per language (`ner_models`);
    off by default. Languages without a model get the pattern types only, and the report says so."""
    ner_models: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_NER_MODELS))
    """Language code -> installed spaCy model for Presidio's NER."""
    ner_min_score: float = 0.5
    """Presidio's confidence at or above which a name or address counts."""
    regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Phone regions per language, over LANGUAGE_REGIONS (pii_patterns.py): national numbers are read under
    them; an empty tuple means international numbers (+country code) only, as for unlisted languages."""
    fallback_regions: tuple[str, ...] = FALLBACK_REGIONS
    """Regions whose national numbers are found in every language, when grouped exactly as the country writes
    them (US, GB, IN by default); () for none."""

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"PiiConfig.action={self.action!r}: use one of {', '.join(ACTIONS)}")
        if isinstance(self.types, str):
            self.types = tuple(t.strip() for t in self.types.split(",") if t.strip())
        if self.types is not None:
            self.types = tuple(dict.fromkeys(t.upper() for t in self.types))
            bad = [t for t in self.types if t not in ALL_TYPES]
            if bad or not self.types:
                raise ValueError(f"PiiConfig.types has unknown types {bad}: use some of {', '.join(ALL_TYPES)}")
            ner_wanted = [t for t in self.types if t in NER_TYPES]
            if ner_wanted and not self.ner:
                raise ValueError(f"PiiConfig.types asks for {ner_wanted}, which need NER: set ner=True (extra "
                                 f"pii-ner and a spaCy model), or leave them out")
        if not 0.0 <= self.ner_min_score <= 1.0:
            raise ValueError(f"PiiConfig.ner_min_score={self.ner_min_score}: use a value in [0, 1]")
        self.ner_models = dict(self.ner_models)
        if self.ner and not self.ner_models:
            raise ValueError("PiiConfig.ner is on but ner_models is empty: give {language: spaCy model}")
        self.regions = {lang: tuple(r.upper() for r in value) for lang, value in self.regions.items()}
        import phonenumbers  # the regions it knows

        self.fallback_regions = tuple(r.upper() for r in self.fallback_regions)
        bad = sorted({r for value in [*self.regions.values(), self.fallback_regions] for r in value
                      if r not in phonenumbers.SUPPORTED_REGIONS})
        if bad:
            raise ValueError(f"PiiConfig.regions or fallback_regions has unknown regions {bad}: use ISO 3166 "
                             f"alpha-2 codes such as IN, DE, BR")

    def selected(self) -> tuple[str, ...]:
        """The entity types the step finds, in priority order."""
        wanted = self.types or (ALL_TYPES if self.ner else PATTERN_TYPES)
        return tuple(t for t in ALL_TYPES if t in wanted)

    def regions_for(self, lang: str | None) -> tuple[str, ...]:
        if lang in self.regions:
            return self.regions[lang]
        return LANGUAGE_REGIONS.get(lang or "", ())
