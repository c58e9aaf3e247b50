"""A datasheet for the data a run trained on, after the questions of "Datasheets for Datasets" (Gebru et al.,
2021): motivation, composition, collection, preprocessing, uses, distribution, maintenance.

Answered from what the study knows — the task's data and licence, the curation report (what each step
removed, per stage, language and reason, and what it changed in place), the few-shot draw — and marked as
the data owner's to answer where the study cannot know (who collected the data, consent, sensitive
content beyond what the steps detect)."""

from __future__ import annotations

from typing import Any

from govtune.report.facts import dataset_facts
from govtune.report.reading import table

OWNER = "_To be answered by the data's owner._"


def _stage_table(report: dict[str, Any]) -> str:
    """Per stage and language: records in, kept, and dropped per reason."""
    rows = []
    for stage, counts in (report.get("stages") or {}).items():
        for lang, n_in in sorted((counts.get("input_by_language") or {}).items()):
            dropped = (counts.get("dropped_by_language") or {}).get(lang, {})
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(dropped.items())) or "–"
            # the stage report's records rewritten in place (PII redaction), per entity type
            changed = (counts.get("changed_by_type") or {}).get(lang) or {}
            rows.append([stage, lang, str(n_in), str((counts.get("kept_by_language") or {}).get(lang, "–")),
                         reasons, ", ".join(f"{t} {n}" for t, n in sorted(changed.items())) or "–"])
    return table(["stage", "language", "in", "kept", "dropped (reason n)", "changed in place (type n)"], rows)


def datasheet(task: str, report: dict[str, Any] | None, config: dict[str, Any], shots: int, seed: int) -> str:
    """Markdown answers for one task's curated training data (`report`: its curation stage report, None when
    the task does not curate)."""
    facts = dataset_facts(task, config)
    builtin = task in ("xnli", "flores", "sib200")
    steps = "; ".join(_step(s) for s in (report or {}).get("steps") or []) or "none recorded"
    languages = ", ".join(report.get("languages", [])) if report else "as in the task"
    size = (f"{report.get('input')} records entered curation, {report.get('kept')} were kept (stage "
            f"{report.get('stage')})" if report else "the task's rows as given (no curation)")
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(((report or {}).get("by_reason") or {}).items())) or "none"
    blocks = [
        f"# Datasheet: {facts.title} training data of study `{config.get('name', '?')}`",
        "After the questions of *Datasheets for Datasets* (Gebru et al., 2021). Answers come from the study's "
        "files; those the study cannot know are marked as the data owner's.",
        "## Motivation",
        _items(f"For what purpose was the data created? {facts.description} This study trains and evaluates "
               f"adapters per language on it.",
               f"Who created it and who funded it? {facts.citation + '.' if builtin else OWNER}"),
        "## Composition",
        _items(f"What do the instances represent? {facts.description}",
               f"Languages: {languages}.",
               f"How many instances? {size}.",
               f"Is it a sample? Yes: each run draws {shots} records per language from the kept pool, balanced "
               f"across labels where the task has labels, seeded (seed {seed}); validation and test rows are held "
               f"out of the pool ({facts.held_out}).",
               f"Does it contain personal or confidential data? The PII step, where it ran, counts what it found "
               f"in the table below; what it does not detect (names, addresses unless NER ran): {OWNER}"),
        "## Collection process",
        _items(f"Source: {facts.source} (hub: `{facts.hub or 'none'}`).",
               f"How was it collected, by whom, with what consent? {OWNER}"),
        "## Preprocessing, cleaning, labelling",
        _items(f"Steps run: {steps}. Each drops a record with a named reason, or changes it in place (PII "
               f"redaction), counted per language in the table below.",
               f"Dropped in total, by reason: {by_reason}.",
               "Is the raw data kept? Yes: the study keeps the pool as given and every dropped record with its "
               "reason (`curation/<stage>.dropped.jsonl`)."),
    ]
    if report:
        blocks.append(_stage_table(report))
    blocks += [
        "## Uses",
        _items("This data trained the adapter whose model card stands beside this sheet; its evaluation is there.",
               f"Uses to avoid: {OWNER}"),
        "## Distribution",
        _items(f"Licence: {facts.license}.", f"Export controls or other restrictions: {OWNER}"),
        "## Maintenance",
        _items(f"Who maintains it, and how are errata reported? {OWNER}"),
    ]
    return "\n\n".join(blocks) + "\n"


# A step's details that are counts or timings, not settings.
_COUNTS = ("name", "stage", "input", "kept", "seconds", "leakage_examples", "index_records", "index_mb")


def _step(step: dict[str, Any]) -> str:
    """`dedup` (c1: threshold 0.8, num_perm 128): the step and the settings it ran with."""
    settings = ", ".join(f"{k} {v}" for k, v in step.items()
                         if k not in _COUNTS and isinstance(v, (int, float, str, bool)))
    return f"`{step.get('name')}` ({step.get('stage')}{': ' + settings if settings else ''})"


def _items(*lines: str) -> str:
    return "\n".join(f"- {line}" for line in lines)
