"""`curate_stream`: the pool-scale steps (language ID, exact and near-duplicate removal, quality rules) over
an iterator of records, in batches, in memory that does not grow with the pool beyond the deduplication
index (about 0.7 KB per kept record, see `govtune.governance.dedup.DuplicateIndex`).

Records are pulled one batch at a time; each batch goes through the steps in order (language ID and the
quality rules judge a record alone; deduplication compares it with every earlier record kept, through an
index that lives across batches; decontamination looks each record up in the index of the evaluation
n-grams, built once), and every record leaves through `keep` or `drop` before the next batch
is read. The report is counted on the way (small dicts per stage, language and reason). The verdicts are
those of the in-memory `curate` on the same pool: same kept records, same drop reasons (tested).

The per-language perplexity cut needs a percentile over a whole language and a model: run `curate` on the
kept records for it (`govtune curate --ppl-model` does). The k-shot draw reads the curated file
(`sampling.sample_kshot_file`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from govtune.atomic import atomic_open, jsonl_line
from govtune.governance.config import CurationConfig
from govtune.governance.pipeline import (build_steps, check_languages, check_stage, empty_language_notes,
                                         validate, validate_one)
from govtune.governance.records import XNLI_LABELS, Labels, Record, Step, outcome
from govtune.governance.report import ReportCounts
from govtune.governance.sources import Rejected

BATCH = 4096


def curate_stream(records: Iterable[Record], langs: Sequence[str] | str, stage: str = "c2", *,
                  keep: Callable[[Record], None], drop: Callable[[Record], None],
                  protected: Sequence[Record] | None = None, config: CurationConfig | None = None,
                  labels: Labels = XNLI_LABELS, batch_size: int = BATCH, progress: bool = False,
                  eval_sets=None) -> dict:
    """Curate a stream of records up to `stage` without the perplexity cut; returns the report.

    records: any iterable (a generator reading a file: `sources.iter_pool`); `Rejected` items (rows the
    reader could not use) go straight to `drop`. keep/drop: called once per record, in input order within
    each of them; dropped records carry `reason` and `stage`. Other arguments as for `curate`."""
    config = config or CurationConfig()
    langs = check_languages(langs, config.language_check)
    stage = check_stage(stage)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: give a positive number of records per batch")
    if protected is not None:
        protected, _ = validate(protected, None, skip_invalid=False, labels=labels, langid=config.language_check)
    steps, notes = build_steps(langs, stage, config, protected=protected, progress=False, eval_sets=eval_sets)
    counts = ReportCounts(config.examples_per_reason)
    log = [{"name": s.name, "stage": s.stage, "input": 0, "kept": 0, "seconds": 0.0} for s in steps]

    def dropped(record: Record) -> None:
        counts.drop(record)
        drop(record)

    n_input, batch = 0, []
    with tqdm(desc="curate", unit="rec", disable=not progress) as bar:
        for item in records:
            n_input += 1
            if isinstance(item, Rejected):
                dropped(dict(item))
                continue
            record, ok = validate_one(item, n_input - 1, langs, config.skip_invalid, labels, config.language_check)
            if not ok:
                dropped(record)
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                _run_batch(steps, log, batch, counts, keep, dropped)
                bar.update(len(batch))
                batch = []
        _run_batch(steps, log, batch, counts, keep, dropped)
        bar.update(len(batch))
    if n_input == 0:
        raise ValueError("the pool is empty: give at least one record (a dict with `text` or `premise` and "
                         "`hypothesis`, and `lang`)")
    n_out = sum(counts.kept_by_lang.values()) + sum(counts.dropped.values())
    if n_out != n_input:  # the accounting invariant; a failure here is a bug
        raise RuntimeError(f"curation lost records: {n_out} kept or dropped != {n_input} read")
    notes += empty_language_notes(langs, {lang for lang, n in counts.kept_by_lang.items() if n})
    step_log = [{**entry, "seconds": round(entry["seconds"], 3), **step.details()} for step, entry in zip(steps, log)]
    return counts.report(n_input, langs, stage, step_log, notes)


def _run_batch(steps: Sequence[Step], log: list[dict], batch: list[Record], counts: ReportCounts,
               keep: Callable[[Record], None], dropped: Callable[[Record], None]) -> None:
    alive = batch
    for step, entry in zip(steps, log):
        if not alive:
            break
        start = time.perf_counter()
        verdicts = step.transform_stream(alive, entry["input"])  # entry["input"]: records this step has seen
        survivors = []
        for record, verdict in zip(alive, verdicts):
            record, reason, tags = outcome(record, verdict)
            if tags is not None:
                counts.change(record, step.stage, tags)
            if reason is None:
                survivors.append(record)
            else:
                dropped({**record, "reason": reason, "stage": step.stage})
        entry["input"] += len(alive)
        entry["kept"] += len(survivors)
        entry["seconds"] += time.perf_counter() - start
        alive = survivors
    for record in alive:
        counts.kept(record)
        keep(record)


def curate_to_files(records: Iterable[Record], langs: Sequence[str] | str, stage: str, out: str | Path,
                    **kwargs) -> dict:
    """`curate_stream` writing `out/kept.jsonl` and `out/dropped.jsonl` as it goes (each renamed into place
    only when the whole pool went through: an interrupted run leaves no half file behind)."""
    out = Path(out)
    created = not out.exists()
    try:
        with atomic_open(out / "kept.jsonl") as kept, atomic_open(out / "dropped.jsonl") as dropped:
            return curate_stream(records, langs, stage, keep=lambda r: kept.write(jsonl_line(r)),
                                 drop=lambda r: dropped.write(jsonl_line(r)), **kwargs)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves nothing behind, not even the directory it made
        raise
