"""The record and step contract shared by every curation step.

A record is a plain dict: `text` (or `premise` and `hypothesis` for a pair), `lang` (a language code:
ISO 639-1, ISO 639-3 or FLORES-200, normalised by govtune.languages where the record is read), optional
`label` and `id`, plus any other fields, which every step carries through unchanged. A step reads a batch of records
and returns, for each, `None` (keep) or the name of the reason it drops it, in the manner of datatrove's
filters; the pipeline counts the verdicts per stage, language and reason. A transforming step (PII
redaction) may also keep a record rewritten: its verdict is then a `Change`, which the pipeline counts per
stage, language and tag apart from the drops.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from lingua import Language

from govtune.data.xnli import LABELS, label_name
from govtune.languages import normalize, normalize_or_keep

Record = dict[str, Any]

TEXT_FIELD = "text"
PAIR_FIELDS = ("premise", "hypothesis")
LABEL_FIELD = "label"

# ISO 639-1 codes of the 75 languages lingua identifies: a declared language outside it cannot be checked.
KNOWN_LANGUAGES = frozenset(language.iso_code_639_1.name.lower() for language in Language.all())

LANGID_OFF = ("turn language ID off for it: `langid: false` in the task file, --skip langid on the command "
              "line, or CurationConfig(skip=(\"langid\",))")


@functools.lru_cache(maxsize=4)
def known_languages(backend: str = "lingua") -> frozenset[str]:
    """The languages (internal forms of govtune.languages) a language-ID backend covers."""
    from govtune.governance.langid_backends import coverage  # loads the backend's model list: only when asked

    return coverage(backend)


@functools.lru_cache(maxsize=4096)
def _normalized(lang: str) -> str:
    return normalize_or_keep(lang)


def record_language(record: Record) -> Any:
    """The record's `lang` in internal form (a code govtune.languages does not know stays as it is)."""
    lang = record.get("lang")
    return _normalized(lang) if isinstance(lang, str) else lang


def with_language(record: Record) -> Record:
    """The record with `lang` in internal form (`eng` -> `en`); the record itself when it already is."""
    lang = record_language(record)
    return record if lang == record.get("lang") else {**record, "lang": lang}


def language_problem(lang: Any, langid: Any = "lingua") -> str | None:
    """What is wrong with a declared language code (said after the code), or None. `langid`: the language-ID
    settings (a LangIdConfig or a backend name) that will check the records, or None when language ID is off:
    then any non-empty code is a language (the step that needs to know it is not run). Whether the backend
    covers the language is checked once for the pool's languages (`langid.plan`), not per record."""
    if not isinstance(lang, str) or not lang.strip():
        return "give the language's code, e.g. en, zh, hi"
    if langid is not None:
        try:
            normalize(lang)
        except ValueError as e:
            said = str(e).replace(f"language {lang!r} is ", "", 1).replace(f"language {lang!r}", "language", 1)
            return f"{said}; or {LANGID_OFF}"  # the caller names the code
    return None


STAGES = ("c0", "c1", "c2")

XNLI_LABELS = "xnli"  # the `labels` value meaning XNLI's three classes (the default everywhere)
# Which labels a pool may carry: "xnli" (entailment, neutral, contradiction, or 0/1/2 read as those names),
# None (any value: the label is not checked) or a tuple of the task's label values.
Labels = Union[str, tuple, None]


def check_labels(labels: str | Sequence | None) -> Labels:
    """`labels` in its canonical form; a string is "xnli", "any" or a comma-separated list of labels."""
    if labels is None or labels == "any":
        return None
    if labels == XNLI_LABELS:
        return XNLI_LABELS
    if isinstance(labels, str):
        labels = [x.strip() for x in labels.split(",") if x.strip()]
    labels = tuple(dict.fromkeys(labels))
    if not labels:
        raise ValueError("labels: give the task's labels (e.g. billing,refund,shipping), 'xnli' or 'any'")
    return labels

# Every reason a record can be dropped for, with the stage that owns it.
REASONS: dict[str, str] = {
    # c0: the record itself is unusable (only with skip_invalid; otherwise these raise)
    "invalid_json": "c0",
    "undecodable": "c0",
    "missing_text": "c0",
    "empty_text": "c0",
    "unknown_language": "c0",
    "language_not_selected": "c0",
    "invalid_label": "c0",
    "missing_field": "c0",
    "ragged_row": "c0",
    # c1: language identification and deduplication
    "wrong_language": "c1",
    "low_language_confidence": "c1",
    "exact_duplicate": "c1",
    "near_duplicate": "c1",
    "leakage": "c1",
    # c1: personal data, with the PII step's action `drop` (its `redact` keeps records, rewritten)
    "pii_url_credentials": "c1",
    "pii_email": "c1",
    "pii_iban": "c1",
    "pii_credit_card": "c1",
    "pii_ip_address": "c1",
    "pii_phone": "c1",
    "pii_person": "c1",
    "pii_location": "c1",
    "contamination": "c1",
    # c2: quality
    "too_short": "c2",
    "too_long": "c2",
    "symbol_ratio": "c2",
    "digit_ratio": "c2",
    "repetition": "c2",
    "boilerplate": "c2",
    "high_perplexity": "c2",
}


def is_pair(record: Record) -> bool:
    # A `datasets` row mixing both layouts has every column, the unused ones None.
    return record.get(TEXT_FIELD) is None and all(record.get(f) is not None for f in PAIR_FIELDS)


def text_fields(record: Record) -> tuple[str, ...]:
    """The fields holding the record's text: `("text",)` or `("premise", "hypothesis")`."""
    return PAIR_FIELDS if is_pair(record) else (TEXT_FIELD,)


def texts_of(record: Record) -> list[str]:
    """Each text of the record on its own (language ID checks each side of an NLI pair)."""
    return [record[f] for f in text_fields(record)]


def full_text(record: Record) -> str:
    """The whole example as one string (deduplication and perplexity judge an NLI pair as one example)."""
    return "\n".join(texts_of(record))


def invalid_reason(record: Any, langs: Sequence[str] | None = None, labels: Labels = XNLI_LABELS,
                   langid: str | None = "lingua") -> tuple[str, str] | None:
    """Why a record cannot be curated, as (reason, message saying what to fix), or None if it is usable.
    `labels`: which label values are valid (see `check_labels`; XNLI's by default); `langid`: the
    language-ID settings or backend, None when language ID is off (`language_problem`)."""
    if not isinstance(record, dict):
        return "missing_text", f"a record must be a JSON object, got {type(record).__name__}"
    if record.get(TEXT_FIELD) is None and not is_pair(record):
        have = sorted(record)[:8]
        return ("missing_text", f"no text field: give `text`, or `premise` and `hypothesis` "
                                f"(the record has {have})")
    for field in text_fields(record):
        value = record[field]
        if not isinstance(value, str):
            return "missing_text", f"field `{field}` must be a string, got {type(value).__name__}"
        if not value.strip():
            return "empty_text", f"field `{field}` is empty"
    lang = record.get("lang")
    problem = language_problem(lang, langid)
    if problem:
        return "unknown_language", f"`lang` is {lang!r}: {problem}"
    if langs is not None and record_language(record) not in langs:
        return "language_not_selected", f"language {lang!r} is not among the selected languages {list(langs)}"
    if record.get(LABEL_FIELD) is not None:
        problem = label_problem(record[LABEL_FIELD], labels)
        if problem:
            # The k-shot sampler balances over label values: an unknown one would become a class of its own.
            return "invalid_label", problem
    return None


def label_problem(value: Any, labels: Labels) -> str | None:
    """What is wrong with a label value under `labels` (see `check_labels`), or None."""
    if labels is None:
        return None
    if labels == XNLI_LABELS:
        try:
            label_name(value)
        except ValueError as e:
            return (f"{e}; for a task of your own give its labels (--labels billing,refund,... or "
                    f"labels=[...]) or --labels any, or leave `label` out")
        return None
    if value not in labels:
        return f"label {value!r} is not one of the labels {list(labels)}: fix the label or add it to the list"
    return None


def with_label_name(record: Record, labels: Labels = XNLI_LABELS) -> Record:
    """The record with an XNLI label as a class name (0/1/2 -> entailment/neutral/contradiction) and `lang`
    in internal form; the record itself when nothing changes. Call on records `invalid_reason` accepted."""
    record = with_language(record)
    value = record.get(LABEL_FIELD)
    if labels != XNLI_LABELS or value is None or value in LABELS:
        return record
    return {**record, LABEL_FIELD: label_name(value)}


@dataclass(frozen=True)
class Change:
    """A transforming step's verdict that keeps a record rewritten: the new record, and what changed in it
    as counts per tag (the PII step: entities per type, {"EMAIL": 2}), which the report counts per language."""

    record: Record
    tags: Mapping[str, int] = field(default_factory=dict)


Verdict = Union[str, Change, None]  # None: keep as is; a reason (a key of REASONS): drop; a Change: keep rewritten


def outcome(record: Record, verdict: Verdict) -> tuple[Record, str | None, Mapping[str, int] | None]:
    """(the record that goes on, the drop reason or None, the change's tags or None) of one verdict."""
    if isinstance(verdict, Change):
        return verdict.record, None, verdict.tags
    return record, verdict, None


class Step(ABC):
    """One curation step: keeps or drops each record with a named reason.

    `per_record` says whether a record's verdict depends on that record alone (language ID, quality
    rules): such steps can run on shards in parallel (datatrove tasks, `datasets.map(num_proc=...)`).
    Steps that compare records (deduplication, perplexity percentiles) must see the whole corpus.
    `transforms` says that the step may rewrite the records it keeps (`transform` returns `Change`s); every
    runner (curate, the stream, datasets, datatrove) calls `transform`, which is `judge` for the others.
    A transforming step is per record."""

    name: str = "step"
    stage: str = "c1"
    per_record: bool = True
    transforms: bool = False

    @abstractmethod
    def judge(self, records: Sequence[Record]) -> list[str | None]:
        """For each record, None to keep it or the reason (a key of REASONS) to drop it."""

    def judge_stream(self, records: Sequence[Record], start: int) -> list[str | None]:
        """Verdicts for the next batch of a stream whose first record is at position `start`. Per-record
        steps judge the batch alone; a step comparing records keeps its state across batches, or refuses
        (a percentile over a whole language cannot be taken batch by batch)."""
        if not self.per_record:
            raise NotImplementedError(f"the {self.name} step needs the whole pool: run `curate` for it")
        return self.judge(records)

    def transform(self, records: Sequence[Record]) -> list[Verdict]:
        """For each record: None (keep), a reason (drop) or a Change (keep rewritten)."""
        return self.judge(records)

    def transform_stream(self, records: Sequence[Record], start: int) -> list[Verdict]:
        """`transform` for the next batch of a stream (see `judge_stream`)."""
        return self.transform(records) if self.transforms else self.judge_stream(records, start)

    def details(self) -> dict[str, Any]:
        """Settings and measurements the stage report shows for this step."""
        return {}
