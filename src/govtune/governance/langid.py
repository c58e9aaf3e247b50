"""Language identification: drop a record whose text is not in its declared language, or is too uncertain.

The backend (lingua, langid.py or fastText's lid.176, see `langid_backends`) is chosen from the pool's
languages unless the config names one; a language it does not cover is refused before any work, or, with
`uncovered: skip`, passes this step unchecked (the step's details say which). A record is accepted when the
identified language is its own or lies in one group with it (`langid_backends.GROUPS`).

lingua restricted to a candidate set is accurate on sentence-length text; its detector is built once per
candidate set and process (building loads the n-gram models, about a second) and scores a whole batch in
parallel Rust threads. Every text field is checked: an NLI pair with a Spanish hypothesis is dropped.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

from govtune.governance.config import LangIdConfig
from govtune.governance.langid_backends import (GROUP_OF, GROUPS, choose_backend, coverage, detect_fasttext,
                                                map_native, native_codes, same_language)
from govtune.governance.records import LANGID_OFF, Record, Step, record_language, text_fields
from govtune.languages import normalize_or_keep


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


def detect(texts: Sequence[str], candidates: tuple[str, ...] | None, backend: str = "lingua"
           ) -> list[tuple[str, float]]:
    """(top language in internal form, its confidence in [0, 1]) for every text. `candidates`: internal
    forms the detector chooses among (fasttext: None = all its labels)."""
    if not texts:
        return []
    if backend == "fasttext":
        return detect_fasttext(texts, candidates)
    candidates = native_candidates(backend, candidates)
    if backend == "langid":
        ident = langid_identifier(candidates)
        return [(map_native("langid", lang), float(p)) for lang, p in map(ident.classify, texts)]
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
            out.append((map_native("lingua", values[0].language.iso_code_639_1.name.lower()),
                        float(values[0].value)))
    return out


def native_candidates(backend: str, candidates: Sequence[str]) -> tuple[str, ...]:
    """The backend's own codes for internal-form candidates, with the group mates it names (a pool of
    Tunisian Arabic is checked against lingua's `ar`)."""
    wanted = set(candidates) | {m for c in candidates if c in GROUP_OF for m in GROUPS[GROUP_OF[c]]}
    return tuple(sorted(c for c in native_codes(backend) if map_native(backend, c) in wanted))


def plan(langs: Sequence[str], config: LangIdConfig) -> tuple[str, list[str]]:
    """(the backend that checks `langs`, the languages it does not cover). Uncovered languages are refused
    unless `config.uncovered` is "skip", naming them, a backend that covers them and the setting."""
    backend = choose_backend(langs, config.backend)
    missing = [lang for lang in langs if lang not in coverage(backend)]
    if missing and config.uncovered != "skip":
        others = sorted((b for b in ("lingua", "fasttext", "langid") if b != backend and set(missing) <= coverage(b)),
                        key=lambda b: not set(langs) <= coverage(b))  # one covering the whole pool first
        use = f"choose a backend that covers them (backend: {others[0]}), or " if others else ""
        raise ValueError(f"language ID ({backend}) does not cover {', '.join(missing)}: {use}set "
                         f"`uncovered: skip` (LangIdConfig.uncovered=\"skip\", `langid: {{uncovered: skip}}` in "
                         f"curation options, --langid-uncovered skip on the command line) to curate them "
                         f"without language ID, or {LANGID_OFF}")
    return backend, missing


class LanguageIdStep(Step):
    name = "langid"
    stage = "c1"
    per_record = True

    def __init__(self, langs: Sequence[str], config: LangIdConfig | None = None):
        self.config = config or LangIdConfig()
        langs = [normalize_or_keep(lang) for lang in langs]  # built directly (datatrove, benches): codes as given
        self.backend, self.unchecked = plan(langs, self.config)
        checked = [lang for lang in langs if lang not in self.unchecked]
        # fastText scores all its labels unless candidates are given: with 176 of them, a fixed extra set
        # would leave out most of the languages a record can really be in.
        self.candidates = (None if self.backend == "fasttext" and self.config.candidates is None
                           else self.config.candidate_set(checked))

    def judge(self, records: Sequence[Record]) -> list[str | None]:
        # One flat batch over every text field of every record: the detector parallelises across it.
        owners, texts = [], []
        declared = [record_language(record) for record in records]
        for i, record in enumerate(records):
            if declared[i] in self.unchecked:  # `uncovered: skip`: kept unchecked, counted as usual
                continue
            for f in text_fields(record):
                owners.append(i)
                texts.append(record[f])
        verdicts: list[str | None] = [None] * len(records)
        for i, (lang, conf) in zip(owners, detect(texts, self.candidates, self.backend)):
            if verdicts[i] == "wrong_language":
                continue
            if not same_language(declared[i], lang):
                verdicts[i] = "wrong_language"
            elif conf < self.config.min_confidence:
                verdicts[i] = "low_language_confidence"
        return verdicts

    def details(self) -> dict:
        details = {"backend": self.backend, "candidates": "all" if self.candidates is None else list(self.candidates),
                   "min_confidence": self.config.min_confidence}
        if self.unchecked:
            details["unchecked_languages"] = list(self.unchecked)
            details["note"] = (f"{', '.join(self.unchecked)}: not covered by {self.backend}, curated without "
                               f"language ID (uncovered: skip)")
        return details
