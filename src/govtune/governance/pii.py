"""The PII step: find personal data in every script and redact it (typed placeholders) or drop the record.

    detector = PiiDetector(PiiConfig())
    detector.find("Call +91 ९८७६५ ४३२१० now", "hi")   # [Span(5, 20, 'PHONE')]: spans in the original text
    detector.redact("Call +91 ९८७६५ ४३२१० now", "hi")  # ('Call <PHONE> now', [...])

The pattern types (`pii_patterns`) need nothing beyond the core dependencies. Names and addresses (PERSON,
LOCATION) come from Presidio's NER (extra `pii-ner`) with a spaCy model that is not on PyPI: it is used
only when `PiiConfig.ner` is on, only when installed (Presidio itself would download a missing model; this
module refuses before it can), and a test can inject any object with Presidio's `analyze` interface.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from govtune.governance.pii_config import NER_TYPES, PiiConfig, drop_reason, placeholder
from govtune.governance.pii_patterns import (EMAIL, IBAN, IP_ADDRESS, PATTERN_TYPES, PHONE, URL_CREDENTIALS,
                                             CREDIT_CARD, Span, find_cards, find_emails, find_ibans, find_ips,
                                             find_phones, find_url_credentials, normalise, resolve_overlaps,
                                             to_original)
from govtune.governance.records import Change, Record, Step, Verdict, outcome, text_fields

_FINDERS = {EMAIL: find_emails, URL_CREDENTIALS: find_url_credentials, IP_ADDRESS: find_ips,
            CREDIT_CARD: find_cards, IBAN: find_ibans}
_PRESIDIO_ENTITIES = {"PERSON": "PERSON", "LOCATION": "LOCATION"}  # Presidio's names for govtune's NER types


class NerUnavailable(RuntimeError):
    """NER was asked for but Presidio or its spaCy model is not installed."""


def check_spacy_model(model: str) -> None:
    """Raise NerUnavailable naming the model and how to install it, unless it is installed. Presidio's
    SpacyNlpEngine would call spacy.cli.download for a missing model: this check runs first, so nothing is
    ever downloaded."""
    try:
        import spacy.util
    except ImportError as e:
        raise NerUnavailable("PII NER needs Presidio and spaCy: pip install 'govtune[pii-ner]'") from e
    if not (spacy.util.is_package(model) or Path(model).exists()):
        raise NerUnavailable(
            f"PII NER needs the spaCy model {model!r}, which is not installed (it is not on PyPI, and govtune "
            f"does not download it): install it with `python -m spacy download {model}` (or pip install its "
            f"wheel from https://github.com/explosion/spacy-models/releases), name another installed model in "
            f"PiiConfig.ner_models, or turn NER off (ner: false)")


@functools.lru_cache(maxsize=4)
def presidio_engine(lang: str, model: str):
    """Presidio's AnalyzerEngine over one installed spaCy model (built once per process)."""
    check_spacy_model(model)
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError as e:
        raise NerUnavailable("PII NER needs Presidio: pip install 'govtune[pii-ner]'") from e
    provider = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy",
                                                    "models": [{"lang_code": lang, "model_name": model}]})
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=[lang])


class PiiDetector:
    """Finds the configured entity types in a text; `ner_engine`: an object with Presidio's
    `analyze(text=, language=, entities=)` (None: Presidio's own, built from `config.ner_models` when NER is
    on and the text's language has a model)."""

    def __init__(self, config: PiiConfig | None = None, ner_engine: Any = None):
        self.config = config or PiiConfig()
        self.types = self.config.selected()
        self._ner_engine = ner_engine
        self.ner_types = [t for t in self.types if t in NER_TYPES]
        if self.ner_types and ner_engine is None:
            for model in self.config.ner_models.values():  # fail before any work, not at the first record
                check_spacy_model(model)

    def ner_languages(self) -> list[str] | None:
        """Languages NER runs for (None: NER off; every language with an injected engine: ["*"])."""
        if not self.ner_types:
            return None
        return ["*"] if self._ner_engine is not None else sorted(self.config.ner_models)

    def find(self, text: str, lang: str | None = None) -> list[Span]:
        """Non-overlapping entity spans of `text`, as offsets into `text` itself."""
        norm, origin = normalise(text)
        spans: list[Span] = []
        for kind in self.types:
            if kind in _FINDERS:
                spans += _FINDERS[kind](norm)
            elif kind == PHONE:
                spans += find_phones(norm, self.config.regions_for(lang), self.config.fallback_regions)
        spans = to_original(spans, origin)
        if self.ner_types:
            spans += self._ner(text, lang)
        return resolve_overlaps(spans, self.types)

    def _ner(self, text: str, lang: str | None) -> list[Span]:
        engine = self._ner_engine
        if engine is None:
            if lang not in self.config.ner_models:
                return []
            engine = presidio_engine(lang, self.config.ner_models[lang])
        results = engine.analyze(text=text, language=lang or "en",
                                 entities=[_PRESIDIO_ENTITIES[t] for t in self.ner_types])
        back = {v: k for k, v in _PRESIDIO_ENTITIES.items()}
        return [Span(r.start, r.end, back[r.entity_type]) for r in results
                if r.entity_type in back and r.score >= self.config.ner_min_score]

    def redact(self, text: str, lang: str | None = None) -> tuple[str, list[Span]]:
        """`text` with each entity replaced by its placeholder, and the spans replaced (in `text`)."""
        spans = self.find(text, lang)
        return redact_spans(text, spans), spans


def redact_spans(text: str, spans: Sequence[Span]) -> str:
    out, last = [], 0
    for span in sorted(spans):
        out += [text[last:span.start], placeholder(span.type)]
        last = span.end
    return "".join(out) + text[last:]


class PiiStep(Step):
    """Personal data in a record's text fields: `redact` keeps the record rewritten (a Change tagged with
    the entities found per type), `drop` removes it with reason pii_<type> (the first type in priority
    order among those found)."""

    name = "pii"
    stage = "c1"
    transforms = True

    def __init__(self, config: PiiConfig | None = None, ner_engine: Any = None):
        self.config = config or PiiConfig()
        self.detector = PiiDetector(self.config, ner_engine)
        self.changed = 0

    def transform(self, records: Sequence[Record]) -> list[Verdict]:
        out: list[Verdict] = []
        for record in records:
            new, found = dict(record), Counter()
            for f in text_fields(record):
                new[f], spans = self.detector.redact(record[f], record.get("lang"))
                found.update(s.type for s in spans)
            if not found:
                out.append(None)
            elif self.config.action == "drop":
                out.append(drop_reason(next(t for t in self.detector.types if t in found)))
            else:
                self.changed += 1
                out.append(Change(new, dict(found)))
        return out

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        """The drops alone (a redacted record is kept)."""
        return [v if isinstance(v, str) else None for v in self.transform(records)]

    def details(self) -> dict[str, Any]:
        ner = self.detector.ner_languages()
        return {"action": self.config.action, "types": list(self.detector.types),
                "ner": "off" if ner is None else ner, "changed": self.changed}


def redact_records(records: Sequence[Record], config: PiiConfig | None = None) -> list[Record]:
    """The records as the PII step leaves them (redacted; with `drop`, unchanged): evaluation records to
    compare with a redacted pool for leakage (`curate` does it; pass them so to datatrove's DedupClusters)."""
    step = PiiStep(config)
    return [outcome(r, v)[0] for r, v in zip(records, step.transform(records))]


def ner_note(config: PiiConfig) -> str | None:
    """What the report says about NER (never silently on or off)."""
    if not config.ner:
        return None
    return (f"the PII step ran NER (Presidio) for {', '.join(sorted(config.ner_models))} only: names and "
            f"addresses in other languages are not detected")


__all__ = ["PiiDetector", "PiiStep", "Span", "NerUnavailable", "redact_spans", "redact_records", "check_spacy_model", "ner_note",
           "PATTERN_TYPES"]
