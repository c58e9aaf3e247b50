"""Language identification: drop a record whose text is not in its declared language, or is too uncertain.

lingua restricted to a candidate set is accurate on sentence-length text; its detector is built once per
candidate set and process (building loads the n-gram models, about a second) and scores a whole batch in
parallel Rust threads. Every text field is checked: an NLI pair with a Spanish hypothesis is dropped.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from govtune.governance.config import LangIdConfig
from govtune.governance.records import Record, Step, text_fields


@functools.lru_cache(maxsize=4)
def lingua_detector(candidates: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder  # slow to import; only the chosen backend loads

    codes = [getattr(IsoCode639_1, c.upper()) for c in candidates]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_preloaded_language_models().build()


@functools.lru_cache(maxsize=4)
def langid_identifier(candidates: tuple[str, ...]):
    from langid.langid import LanguageIdentifier, model  # unpacks its model on import; only when chosen

    ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    known = set(ident.nb_classes)
    ident.set_languages([c for c in candidates if c in known])
    return ident


# lingua's *_in_parallel methods run on a Rust thread pool created on first use; a process forked after
# that (datasets' num_proc workers, fork-started datatrove tasks) inherits the pool's state but not its
# threads and would wait forever. Such a child scores its batch sequentially; the parallelism then comes
# from the processes themselves.
_PARALLEL_PID: int | None = None


def _parallel_safe() -> bool:
    global _PARALLEL_PID
    if _PARALLEL_PID is None:
        _PARALLEL_PID = os.getpid()
    return _PARALLEL_PID == os.getpid()


def detect(texts: Sequence[str], candidates: tuple[str, ...], backend: str = "lingua"
           ) -> list[tuple[str, float]]:
    """(top language ISO 639-1 code, its confidence in [0, 1]) for every text."""
    if not texts:
        return []
    if backend == "langid":
        ident = langid_identifier(candidates)
        return [(lang, float(p)) for lang, p in map(ident.classify, texts)]
    detector = lingua_detector(candidates)
    if _parallel_safe():
        confidences = detector.compute_language_confidence_values_in_parallel(list(texts))
    else:
        confidences = [detector.compute_language_confidence_values(t) for t in texts]
    out = []
    for values in confidences:
        # Text without letters (digits, symbols) gets no values, or every language at 0.0 in an order
        # that changes from process to process (a Rust hash map): either way it has no language.
        if not values or values[0].value <= 0.0:
            out.append(("", 0.0))
        else:
            out.append((values[0].language.iso_code_639_1.name.lower(), float(values[0].value)))
    return out


class LanguageIdStep(Step):
    name = "langid"
    stage = "c1"
    per_record = True

    def __init__(self, langs: Sequence[str], config: LangIdConfig | None = None):
        self.config = config or LangIdConfig()
        self.candidates = self.config.candidate_set(langs)

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        # One flat batch over every text field of every record: the detector parallelises across it.
        owners, texts = [], []
        for i, record in enumerate(records):
            for f in text_fields(record):
                owners.append(i)
                texts.append(record[f])
        verdicts: list[str | None] = [None] * len(records)
        for i, (lang, conf) in zip(owners, detect(texts, self.candidates, self.config.backend)):
            if verdicts[i] == "wrong_language":
                continue
            if lang != records[i]["lang"]:
                verdicts[i] = "wrong_language"
            elif conf < self.config.min_confidence:
                verdicts[i] = "low_language_confidence"
        return verdicts

    def details(self) -> dict:
        return {"backend": self.config.backend, "candidates": list(self.candidates),
                "min_confidence": self.config.min_confidence}
