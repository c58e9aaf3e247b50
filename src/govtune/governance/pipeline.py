"""`curate`: run the stages C0 -> C1 -> C2 over a pool of records and account for every record.

C0 is the pool as given (only unusable records are removed, and only with `skip_invalid`); C1 adds language
identification and exact/near-duplicate removal (with leakage against protected evaluation records) and
decontamination (n-gram containment of the evaluation sets' text, `govtune.governance.decontam`); C2
adds the quality rules and, given a reference model, the per-language perplexity cut. A record is dropped
by the first step that rejects it, so `kept + dropped == input` always holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from govtune.governance.config import STEPS_OF_STAGE, CurationConfig, LangIdConfig
from govtune.governance.decontam import DecontaminationStep, contamination_index
from govtune.governance.dedup import DeduplicationStep
from govtune.governance.langid import LanguageIdStep, plan
from govtune.governance.quality import QualityStep
from govtune.governance.records import (XNLI_LABELS, STAGES, Labels, Record, Step, invalid_reason, language_problem,
                                        outcome, with_label_name)
from govtune.governance.report import build_report
from govtune.languages import normalize_or_keep

_BATCH = 4096


@dataclass
class CurationResult:
    kept: list[Record]
    dropped: list[Record]
    """Input records with two fields added: `reason` and `stage`."""
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kept) + len(self.dropped)


def check_languages(langs: Sequence[str] | str, langid: LangIdConfig | str | None = "auto") -> list[str]:
    """The selected languages as a list in internal form (govtune.languages; a string is comma-separated).
    `langid`: the language-ID settings (or a backend name) that will check them: each must be a known code
    the backend covers (`langid.plan`, which names a backend that does, and `uncovered: skip`); None when
    language ID is off: then any non-empty code is a language (known codes are still normalised)."""
    if isinstance(langs, str):
        langs = [x.strip() for x in langs.split(",") if x.strip()]
    langs = list(langs)
    if not langs:
        raise ValueError("no languages: give one or more language codes such as en,zh,hi")
    for lang in langs:
        problem = language_problem(lang, langid)
        if problem:
            raise ValueError(f"language {lang!r}: {problem}")
    langs = list(dict.fromkeys(normalize_or_keep(lang) for lang in langs))
    if langid is not None:
        plan(langs, langid if isinstance(langid, LangIdConfig) else LangIdConfig(backend=langid))
    return langs


def check_stage(stage: str) -> str:
    stage = stage.lower()
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: use one of {', '.join(STAGES)}")
    return stage


def build_steps(langs: Sequence[str], stage: str, config: CurationConfig, *, reference_model=None,
                reference_tokenizer=None, protected: Sequence[Record] | None = None,
                progress: bool = True, eval_sets=None) -> tuple[list[Step], list[str]]:
    """The steps of `stage` in order, and notes for the report about steps left out. eval_sets: see
    `curate`."""
    steps: list[Step] = []
    notes = [f"{stage.upper()} ran without the {name} step (skip)" + (
        ": duplicates within the pool stay, evaluation leakage is still removed" if name == "dedup" else "")
        for name in STEPS_OF_STAGE[stage] if name in config.skip]
    run = config.steps(stage)
    if "langid" in run:
        steps.append(LanguageIdStep(langs, config.langid))
        if steps[-1].unchecked:  # `uncovered: skip`: the report's notes say which languages went unchecked
            notes.append(f"{stage.upper()} language ID: {steps[-1].details()['note']}")
    if "pii" in run:
        from govtune.governance.pii import PiiStep, ner_note, redact_records  # phonenumbers, stdnum: when it runs

        steps.append(PiiStep(config.pii))
        notes += [n for n in [ner_note(config.pii)] if n]
        if protected:  # evaluation records are compared with the pool as the pool will be: redacted alike
            protected = redact_records(protected, config.pii)
    if "dedup" in STEPS_OF_STAGE[stage]:
        steps.append(DeduplicationStep(config.dedup, protected, within_pool="dedup" in run))
    index = contamination_index(eval_sets, protected, config.decontam) if "decontam" in run else None
    if index is not None:
        steps.append(DecontaminationStep(index, config.examples_per_reason))
    if "quality" in run:
        steps.append(QualityStep(config.quality))
    if "perplexity" in run:
        if reference_model is None:
            notes.append("C2 ran without the perplexity filter: no reference model was given "
                         "(pass reference_model= and reference_tokenizer=, or --ppl-model on the command line)")
        else:
            if reference_tokenizer is None:
                raise ValueError("reference_model was given without reference_tokenizer: pass both")
            from govtune.governance.perplexity import PerplexityStep  # torch: the rest of curation runs without it

            steps.append(PerplexityStep(reference_model, reference_tokenizer, config.perplexity, progress))
    return steps, notes


def run_step(step: Step, records: Sequence[Record], progress: bool = False) -> list:
    """A step's verdicts (`Step.transform`) for all records; per-record steps go in batches, with a progress bar."""
    if not step.per_record or len(records) <= _BATCH:
        return step.transform(records)
    out: list = []
    with tqdm(total=len(records), desc=step.name, unit="rec", disable=not progress) as bar:
        for lo in range(0, len(records), _BATCH):
            out += step.transform(records[lo:lo + _BATCH])
            bar.update(min(_BATCH, len(records) - lo))
    return out


def validate(records: Iterable[Record], langs: Sequence[str] | None, skip_invalid: bool, labels: Labels = XNLI_LABELS,
             langid: LangIdConfig | str | None = "auto") -> tuple[list[Record], list[Record]]:
    valid, invalid = [], []
    for i, record in enumerate(records):
        checked, ok = validate_one(record, i, langs, skip_invalid, labels, langid)
        (valid if ok else invalid).append(checked)
    return valid, invalid


def validate_one(record: Record, position: int, langs: Sequence[str] | None, skip_invalid: bool,
                 labels: Labels = XNLI_LABELS, langid: LangIdConfig | str | None = "auto") -> tuple[Record, bool]:
    """(the record ready for the steps (XNLI labels named), True), or, with skip_invalid, (a copy with
    `reason` and `stage` c0, False) when it is unusable; without skip_invalid that raises ValueError.
    `langid`: as for `invalid_reason` (`CurationConfig.language_check`)."""
    problem = invalid_reason(record, langs, labels, langid)
    if problem is None:
        return with_label_name(record, labels), True
    reason, message = problem
    if not skip_invalid:
        rid = record.get("id", "") if isinstance(record, dict) else ""
        raise ValueError(f"record {position}{f' (id={rid})' if rid != '' else ''}: {message}. "
                         f"Fix the record, or pass skip_invalid (--skip-invalid) to drop such records "
                         f"with reason {reason!r}")
    base = record if isinstance(record, dict) else {"raw": record}
    return {**base, "reason": reason, "stage": "c0"}, False


def empty_language_notes(langs: Sequence[str], left) -> list[str]:
    return [f"language {lang!r} has no records left after curation: see the dropped counts for {lang} "
            f"below; a k-shot draw for it will fail" for lang in langs if lang not in left]


def curate(records: Iterable[Record], langs: Sequence[str] | str, stage: str = "c2", *,
           reference_model=None, reference_tokenizer=None, protected: Sequence[Record] | None = None,
           config: CurationConfig | None = None, progress: bool = True,
           invalid: Sequence[Record] = (), labels: Labels = XNLI_LABELS, eval_sets=None) -> CurationResult:
    """Curate `records` up to `stage` ("c0", "c1" or "c2") for the languages `langs`.

    protected: evaluation records; a pool record that duplicates one is dropped with reason `leakage`.
    eval_sets: the evaluation sets by name ({"xnli:test": rows, ...}; a row is a record, a string or a list
    of strings): a pool record sharing an n-gram with one is dropped with reason `contamination`
    (`govtune.governance.decontam`); without it, the protected records are that set.
    reference_model/reference_tokenizer: any transformers causal LM for the C2 perplexity cut (by default
    pass the model being tuned); without them C2 skips that filter and the report says so.
    invalid: records already rejected while reading (with `reason` and `stage`), counted in the report.
    labels: the valid label values: "xnli" (default), a list of the task's labels, or None for any.
    Language codes must be ones the language-ID backend identifies, unless `config.skip` leaves language ID
    out: then any non-empty code is a language (`CurationConfig.language_check`).
    Returns kept records (unchanged but for labels 0/1/2, given as class names, and text the PII step
    redacted: the report counts those changes per language and type), dropped records (plus
    `reason`, `stage`) and the report. An empty pool raises ValueError."""
    config = config or CurationConfig()
    langs = check_languages(langs, config.language_check)
    stage = check_stage(stage)
    records = list(records)
    if not records and not invalid:
        raise ValueError("the pool is empty: give at least one record (a dict with `text` or `premise` and "
                         "`hypothesis`, and `lang`)")
    if protected is not None:
        protected, _ = validate(protected, None, skip_invalid=False, labels=labels, langid=config.language_check)
    valid, rejected = validate(records, langs, config.skip_invalid, labels, config.language_check)
    dropped: list[Record] = list(invalid) + rejected
    steps, notes = build_steps(langs, stage, config, reference_model=reference_model,
                               reference_tokenizer=reference_tokenizer, protected=protected, progress=progress,
                               eval_sets=eval_sets)
    step_log, changes = [], []
    alive = valid
    for step in steps:
        start = time.perf_counter()
        verdicts = run_step(step, alive, progress)
        survivors = []
        for record, verdict in zip(alive, verdicts):
            record, reason, tags = outcome(record, verdict)
            if tags is not None:
                changes.append((record, step.stage, tags))
            if reason is None:
                survivors.append(record)
            else:
                dropped.append({**record, "reason": reason, "stage": step.stage})
        step_log.append({"name": step.name, "stage": step.stage, "input": len(alive),
                         "kept": len(survivors), "seconds": round(time.perf_counter() - start, 3),
                         **step.details()})
        alive = survivors
    n_input = len(records) + len(invalid)
    if len(alive) + len(dropped) != n_input:  # the accounting invariant; a failure here is a bug
        raise RuntimeError(f"curation lost records: {len(alive)} kept + {len(dropped)} dropped != {n_input}")
    notes += empty_language_notes(langs, {r["lang"] for r in alive})
    report = build_report(n_input, alive, dropped, langs, stage, step_log, notes,
                          config.examples_per_reason, changes)
    return CurationResult(kept=alive, dropped=dropped, report=report)
