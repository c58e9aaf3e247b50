"""Curation of a Hugging Face `datasets.Dataset` with `num_proc` workers.

The per-record steps (language ID, decontamination, quality rules) run through `Dataset.map` in parallel
processes, each building its own detector once (the decontamination index is built once and passed in); the steps that compare records (deduplication, perplexity percentiles) then
run once over the survivors in the main process, which is what makes them exact. Results match `curate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from govtune.governance.config import CurationConfig
from govtune.governance.decontam import DecontaminationStep, contamination_index
from govtune.governance.io import class_names, with_class_name
from govtune.governance.pipeline import build_steps, check_languages, check_stage
from govtune.governance.records import (PAIR_FIELDS, TEXT_FIELD, XNLI_LABELS, Labels, Record, check_labels,
                                        invalid_reason, outcome)
from govtune.governance.report import build_report

REASON_COLUMN = "reason"
STAGE_COLUMN = "stage"
CHANGES_COLUMN = "govtune_changes"  # a transforming step's tags and stage (JSON), while the report is counted


@dataclass
class DatasetCurationResult:
    kept: Any
    """`datasets.Dataset` of the kept rows, columns unchanged."""
    dropped: Any
    """`datasets.Dataset` of the dropped rows with `reason` and `stage` columns added."""
    report: dict


def _judge_batch(batch: dict[str, list], langs: list[str], stage: str, config: CurationConfig,
                 label_names: list[str] | None = None, labels: Labels = XNLI_LABELS, index=None) -> dict:
    columns = list(batch)
    rows = [dict(zip(columns, values)) for values in zip(*batch.values())]
    if label_names is not None:  # a ClassLabel column: judge the class each integer names
        rows = [with_class_name(row, label_names) for row in rows]
    reasons: list[str | None] = [None] * len(rows)
    stages: list[str | None] = [None] * len(rows)
    alive = []
    for i, row in enumerate(rows):
        problem = invalid_reason(row, langs, labels, config.language_check)
        if problem is None:
            alive.append(i)
        elif not config.skip_invalid:
            raise ValueError(f"row {row.get('id', i)}: {problem[1]}. Fix the row or set skip_invalid=True")
        else:
            reasons[i], stages[i] = problem[0], "c0"
    steps, _ = build_steps(langs, stage, config, progress=False, eval_sets=index)
    changes: list[str | None] = [None] * len(rows)
    for step in (s for s in steps if s.per_record):
        alive = _apply(step, [rows[i] for i in alive], alive, reasons, stages, rows, changes)
    out = {REASON_COLUMN: reasons, STAGE_COLUMN: stages, CHANGES_COLUMN: changes}
    for f in (TEXT_FIELD, *PAIR_FIELDS):  # text a step rewrote (PII redaction) replaces the column's value
        if f in batch:
            out[f] = [row.get(f) for row in rows]
    return out


def _apply(step, rows: list[Record], alive: list[int], reasons: list, stages: list, out_rows: list | None = None,
           changes: list | None = None) -> list[int]:
    """Run `step` over `rows` (the records at indices `alive`); record each drop's reason and stage in
    place, and each rewritten record in `out_rows` with its tags in `changes`; return the surviving indices."""
    survivors = []
    for i, row, verdict in zip(alive, rows, step.transform(rows)):
        new, reason, tags = outcome(row, verdict)
        if tags is not None:
            if out_rows is None:
                raise RuntimeError(f"the {step.name} step rewrites records: run it among the per-record steps")
            out_rows[i] = {**out_rows[i], **{f: new[f] for f in (TEXT_FIELD, *PAIR_FIELDS) if f in new}}
            changes[i] = json.dumps({"stage": step.stage, "tags": dict(tags)})
        if reason is None:
            survivors.append(i)
        else:
            reasons[i], stages[i] = reason, step.stage
    return survivors


def _decontam_log(ds, steps, reasons: list) -> list[dict]:
    """The decontamination step's report entry: it ran in the workers, so the records it dropped are looked
    up again here to count them per evaluation set and language."""
    step = next((s for s in steps if isinstance(s, DecontaminationStep)), None)
    if step is None:
        return []
    dropped = [i for i, r in enumerate(reasons) if r == "contamination"]
    if dropped:
        step.judge(ds.select(dropped).to_list())
    return [{"name": step.name, "stage": step.stage, "input": None, "kept": None, "seconds": None, **step.details()}]


def curate_dataset(ds, langs: Sequence[str] | str, stage: str = "c2", *, num_proc: int | None = None,
                   batch_size: int = 1000, reference_model=None, reference_tokenizer=None,
                   protected: Sequence[Record] | None = None, config: CurationConfig | None = None,
                   progress: bool = True, labels: Labels = XNLI_LABELS, eval_sets=None) -> DatasetCurationResult:
    """`curate` for a `datasets.Dataset`: per-record steps run with `num_proc` processes.

    Per-record steps run in pipeline order first, then deduplication and perplexity over their
    survivors. (`curate` runs deduplication before quality; the difference only shows when the first copy
    of a duplicate is itself junk: here the clean later copy survives.)

    Labels are checked as `curate` checks them (`labels`; a ClassLabel column by the names of its classes), but the
    kept dataset keeps its columns and their types: 0/1/2 are not rewritten as names here."""
    config = config or CurationConfig()
    langs = check_languages(langs, config.language_check)
    stage = check_stage(stage)
    if any(c in ds.column_names for c in (REASON_COLUMN, STAGE_COLUMN, CHANGES_COLUMN)):
        raise ValueError(f"the dataset already has a {REASON_COLUMN!r}, {STAGE_COLUMN!r} or {CHANGES_COLUMN!r} "
                         f"column: rename it")
    if len(ds) == 0:
        raise ValueError("the dataset has no rows: give a pool with records")
    # The evaluation n-grams are indexed once, here; the workers receive the index, not the sets.
    index = contamination_index(eval_sets, protected, config.decontam) if "decontam" in config.steps(stage) else None
    judged = ds.map(_judge_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
                    fn_kwargs={"langs": langs, "stage": stage, "config": config, "label_names": class_names(ds),
                               "labels": check_labels(labels), "index": index},
                    desc="govtune per-record filters")
    reasons = list(judged[REASON_COLUMN])
    stages = list(judged[STAGE_COLUMN])
    changes = list(judged[CHANGES_COLUMN])
    ds = judged.remove_columns([REASON_COLUMN, STAGE_COLUMN, CHANGES_COLUMN])  # the rows as the steps left them
    steps, notes = build_steps(langs, stage, config, reference_model=reference_model,
                               reference_tokenizer=reference_tokenizer, protected=protected, progress=progress,
                               eval_sets=index)
    step_log = _decontam_log(ds, steps, reasons)
    alive = [i for i, r in enumerate(reasons) if r is None]
    for step in (s for s in steps if not s.per_record):
        rows = ds.select(alive).to_list() if alive else []
        survivors = _apply(step, rows, alive, reasons, stages)
        step_log.append({"name": step.name, "stage": step.stage, "input": len(alive), "kept": len(survivors),
                         "seconds": None, **step.details()})
        alive = survivors
    dropped_idx = [i for i, r in enumerate(reasons) if r is not None]
    kept_ds = ds.select(alive)
    dropped_ds = (ds.select(dropped_idx).add_column(REASON_COLUMN, [reasons[i] for i in dropped_idx])
                  .add_column(STAGE_COLUMN, [stages[i] for i in dropped_idx]))
    # The report needs languages and reasons of every row but the text of only a few: light rows, with the
    # full row for the first examples of each reason.
    langs_col = ds["lang"] if "lang" in ds.column_names else [None] * len(ds)
    kept_light = [{"lang": langs_col[i]} for i in alive]
    dropped_light, shown = [], {}
    for i in dropped_idx:
        row = {"lang": langs_col[i], "reason": reasons[i], "stage": stages[i]}
        if shown.get(reasons[i], 0) < config.examples_per_reason:
            shown[reasons[i]] = shown.get(reasons[i], 0) + 1
            row = {**ds[i], **row}
        dropped_light.append(row)
    changed = []
    for i, change in enumerate(changes):
        if change is not None:
            change = json.loads(change)
            row = {**ds[i]} if len(changed) < config.examples_per_reason else {"lang": langs_col[i]}
            changed.append((row, change["stage"], change["tags"]))
    report = build_report(len(ds), kept_light, dropped_light, langs, stage, step_log, notes,
                          config.examples_per_reason, changed)
    return DatasetCurationResult(kept=kept_ds, dropped=dropped_ds, report=report)
