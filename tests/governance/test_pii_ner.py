"""Optional NER through Presidio: off by default, never downloads a spaCy model, an injected engine with
Presidio's `analyze` interface is honoured."""

import pytest

from govtune.governance import CurationConfig, curate
from govtune.governance.pii import NerUnavailable, PiiDetector, PiiStep, check_spacy_model, presidio_engine
from govtune.governance.pii_config import PiiConfig

MISSING = "xx_govtune_missing_model"


class StubEngine:
    """Presidio's AnalyzerEngine interface: analyze(text=, language=, entities=) -> [RecognizerResult]."""

    def __init__(self, names):
        self.names, self.calls = names, []

    def analyze(self, text, language, entities, **kwargs):
        from presidio_analyzer import RecognizerResult

        self.calls.append((text, language, tuple(entities)))
        out = []
        for name, kind, score in self.names:
            at = text.find(name)
            if at >= 0 and kind in entities:
                out.append(RecognizerResult(kind, at, at + len(name), score))
        return out


@pytest.fixture
def no_download(monkeypatch):
    import spacy.cli

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a spaCy model download was attempted")

    monkeypatch.setattr(spacy.cli, "download", refuse)
    return calls


def test_presidio_alone_would_download_a_missing_model(no_download):
    """Why govtune checks first: Presidio's spaCy engine calls spacy.cli.download for a missing model."""
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    with pytest.raises(AssertionError, match="download was attempted"):
        SpacyNlpEngine(models=[{"lang_code": "en", "model_name": MISSING}]).load()
    assert no_download == [(MISSING,)]


def test_a_missing_model_is_named_with_its_install_command_and_nothing_is_downloaded(no_download):
    with pytest.raises(NerUnavailable, match=f"spaCy model '{MISSING}'.*python -m spacy download {MISSING}"):
        PiiDetector(PiiConfig(ner=True, ner_models={"en": MISSING}))
    with pytest.raises(NerUnavailable, match="not installed"):
        presidio_engine("en", MISSING)
    with pytest.raises(NerUnavailable, match="en_core_web_lg"):  # the default model, not installed here
        curate([{"text": "Anna lives in Berlin now.", "lang": "en"}], ["en"], "c1",
               config=CurationConfig(skip=("langid",), pii=PiiConfig(ner=True)), progress=False)
    assert no_download == []
    check_spacy_model(__file__)  # a path to a model directory counts as installed


def test_ner_is_off_by_default_and_said_when_on():
    assert PiiDetector().ner_languages() is None and "PERSON" not in PiiConfig().selected()
    step = PiiStep(PiiConfig(ner=True, ner_models={"en": MISSING}), ner_engine=StubEngine([]))
    assert step.details()["ner"] == ["*"] and step.details()["types"][-2:] == ["PERSON", "LOCATION"]


def test_an_injected_engine_finds_names_and_addresses():
    engine = StubEngine([("Anna Schmidt", "PERSON", 0.85), ("12 Hauptstraße, Berlin", "LOCATION", 0.7),
                         ("Maybe", "PERSON", 0.3)])
    config = PiiConfig(ner=True, ner_models={"de": MISSING})
    text = "Maybe Anna Schmidt wohnt in 12 Hauptstraße, Berlin, Tel. +49 30 901820."
    redacted, spans = PiiDetector(config, ner_engine=engine).redact(text, "de")
    assert redacted == "Maybe <PERSON> wohnt in <LOCATION>, Tel. <PHONE>."  # below ner_min_score: kept
    assert engine.calls == [(text, "de", ("PERSON", "LOCATION"))]
    only_names = PiiDetector(PiiConfig(ner=True, types=("PERSON",)), ner_engine=engine)
    assert only_names.redact(text, "de")[0] == "Maybe <PERSON> wohnt in 12 Hauptstraße, Berlin, Tel. +49 30 901820."


def test_ner_in_curation_with_an_engine_counts_the_names(monkeypatch):
    import govtune.governance.pii as pii

    engine = StubEngine([("Anna", "PERSON", 0.9)])
    monkeypatch.setattr(pii, "presidio_engine", lambda lang, model: engine)
    monkeypatch.setattr(pii, "check_spacy_model", lambda model: None)
    records = [{"text": "Anna went to the market on Sunday morning.", "lang": "en", "id": 1},
               {"text": "Anna went to the market on Sunday morning again.", "lang": "hi", "id": 2}]
    result = curate(records, ["en", "hi"], "c1", progress=False,
                    config=CurationConfig(skip=("langid", "dedup"), pii=PiiConfig(ner=True)))
    assert [r["text"] for r in result.kept] == ["<PERSON> went to the market on Sunday morning.",
                                                "Anna went to the market on Sunday morning again."]
    assert result.report["stages"]["c1"]["changed_by_type"] == {"en": {"PERSON": 1}}
    assert any("NER (Presidio) for en only" in note for note in result.report["notes"])
