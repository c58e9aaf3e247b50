"""The governance ledger's records: after curating, the grid copies every curation report of the study into
results.sqlite and counts, per ledger decision (govtune.report.ledger.ledger_pairs), shots and seed, the drawn
shots the decision removes. The report's governance section (govtune.report.ledger) reads them from the store
alone."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from govtune.constants import CURATION_STAGES
from govtune.governance import sample_kshot
from govtune.report.ledger import ledger_pairs
from govtune.results.layout import StudyLayout
from govtune.results.store import record_curation as store_curation
from govtune.study.config import StudyConfig
from govtune.study.data import StudyData, record_key


def drawn_removed(pool: list[dict], kept: list[dict], dropped: list[dict], langs: list[str], k: int,
                  seed: int) -> Counter:
    """The seeded k-shot draw from `pool` (govtune.governance.sample_kshot, as the cell trained on `pool`
    drew its shots), counted per (language, stage, reason) for the drawn records that the curation with
    result (`kept`, `dropped`) removes. Every reason it drops records for in a language gets a key, 0
    included; a language with fewer than k records in `pool` (no cell could draw from it) gets none."""
    kept_keys = {record_key(r) for r in kept}
    why = {record_key(r): (r.get("stage", "?"), r.get("reason", "?")) for r in dropped}
    counts: Counter = Counter()
    for lang in langs:
        try:  # one language at a time draws the same shots: the sampler seeds each language apart
            shots = sample_kshot(pool, [lang], k=k, seed=seed)
        except ValueError:
            continue
        for r in dropped:
            if r.get("lang") == lang:
                counts[lang, r.get("stage", "?"), r.get("reason", "?")] += 0
        for r in shots:
            key = record_key(r)
            if key not in kept_keys:
                counts[(lang, *why.get(key, ("?", "unknown")))] += 1
    return counts


def _curation_names(config: StudyConfig, layout: StudyLayout, task: str | None = None) -> list[str]:
    """Every curated pool of the study (of a task file's task: `task`), a resumed study may have curated more
    than the current grid."""
    known = set(CURATION_STAGES) | set(config.curation_variants)
    names = [n for n in layout.curated_stages(task) if n in known]
    # stages first in stage order, then each stage's variants
    return sorted(names, key=lambda n: (n not in CURATION_STAGES, CURATION_STAGES.index(config.curation_stage(n)), n))


def _grid_union(config: StudyConfig, layout: StudyLayout) -> tuple[list[int], list[int]]:
    """Seeds and shots (> 0) of every grid this output directory has run, the current one included."""
    grids = layout.read_study().get("grids", [])
    seeds = {s for g in grids for s in g.get("seeds", [])} | set(config.seeds)
    shots = {k for g in grids for k in g.get("shots", [])} | set(config.shots)
    return sorted(seeds), sorted(k for k in shots if k > 0)


def record_curation(data: StudyData) -> None:
    """Copy every curation report of the study into results.sqlite (a task file's task under the curation
    name `<task>:<name>`) and count, per ledger decision, shots and seed, the drawn shots the decision
    removes (the pool kept at OUT/curation/: XNLI's). Idempotent: rebuilt on every run of the study."""
    config, layout = data.config, data.layout
    rows: dict[str, list[tuple]] = defaultdict(list)
    for task in data.tasks.values():
        if task.curates:
            where = data._dir(task)
            _curation_rows(data, task, _curation_names(config, layout, where), "" if where is None else f"{task.name}:",
                           rows)
    names = _curation_names(config, layout)
    seeds, shots = _grid_union(config, layout)
    langs = list(config.task_settings("xnli").languages)  # the pool at OUT/curation/ is XNLI's
    for with_, without in ledger_pairs(names, {n: config.curation_stage(n) for n in names}):
        dropped = data.curation_dropped(with_)
        if dropped is None:  # curated by a govtune that did not keep the dropped records
            continue
        kept, pool = data.curated(with_), data.curated(without)
        for k in shots:
            for seed in seeds:
                for (lang, stage, reason), n in drawn_removed(pool, kept, dropped, langs, k, seed).items():
                    rows["curation_shots"].append((with_, without, k, seed, lang, stage, reason, n))
    store_curation(layout, rows)


def _curation_rows(data: StudyData, task, names: list[str], prefix: str, rows: dict[str, list[tuple]]) -> None:
    """The curation tables' rows of one task's curation reports."""
    config = data.config
    for name in names:
        report = data.curation_report(name, task)
        if report is None:
            continue
        stage = config.curation_stage(name)
        steps = config.curation_config(name).steps(stage)
        if report.get("steps"):  # what this pool's curation ran: a pool curated before a step existed lacks it
            ran = {step["name"] for step in report["steps"]}
            steps = tuple(step for step in steps if step in ran)
        label = prefix + name
        rows["curations"].append((label, stage, ",".join(steps), report["input"], report["kept"],
                                  report["dropped"], json.dumps(report.get("notes", []), ensure_ascii=False)))
        for s, block in report["stages"].items():
            for lang, n in block["input_by_language"].items():
                rows["curation_counts"].append((label, s, lang, "input", "", n))
            for lang, n in block["kept_by_language"].items():
                rows["curation_counts"].append((label, s, lang, "kept", "", n))
            for lang, reasons in block["dropped_by_language"].items():
                rows["curation_counts"] += [(label, s, lang, "dropped", reason, n) for reason, n in reasons.items()]
            # records a step kept rewritten (PII redaction): reason "" the records, else entities of that type
            for lang, n in block.get("changed_by_language", {}).items():
                rows["curation_counts"].append((label, s, lang, "changed", "", n))
            for lang, tags in block.get("changed_by_type", {}).items():
                rows["curation_counts"] += [(label, s, lang, "changed", tag, n) for tag, n in tags.items()]
        for step in report.get("steps", []):  # decontamination: records dropped per evaluation set and language
            sizes = f" ({step.get('word_ngram')} words / {step.get('char_ngram')} characters)"
            for name, by_lang in step.get("contaminated_by_set", {}).items():
                rows["curation_counts"] += [(label, step["stage"], lang, "contamination", name + sizes, n)
                                            for lang, n in by_lang.items()]
        for reason, examples in report.get("examples", {}).items():
            rows["curation_examples"] += [(label, reason, i, ex.get("lang"), None if ex.get("id") is None else
                                           str(ex["id"]), ex.get("text", "")) for i, ex in enumerate(examples)]
