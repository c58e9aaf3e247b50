"""`govtune curate --task FILE`: a task's few-shot pool (its train split, read through its columns) through
the curation pipeline, against its validation and test rows (leakage), written as `govtune curate` writes
any pool, plus the kept rows in the task's own form (kept_rows.jsonl) and, with --shots, the k-shot draw."""

from __future__ import annotations

from pathlib import Path

from govtune.governance.io import write_json, write_jsonl, write_text
from govtune.governance.pipeline import curate
from govtune.governance.report import report_markdown
from govtune.governance.sampling import sample_kshot
from govtune.languages import normalize_or_keep
from govtune.tasks.filetask import LABEL, ROW
from govtune.tasks.registry import load_task
from govtune.tasks.settings import TaskSettings


def curate_task_cli(args, config) -> int:
    out = Path(args.out)
    # A study's default settings (so the pool is the one a study with these languages curates); --langs: the
    # languages of XNLI, and of SIB-200 or a task file over it that names none (default: a study's, en,zh,hi).
    asked = [normalize_or_keep(x.strip()) for x in args.langs.split(",") if x.strip()] if args.langs else None
    task = load_task(args.task).prepare(TaskSettings(languages=asked) if asked else TaskSettings(), out)
    if not task.curates:
        raise ValueError(f"task {task.name!r} has no pool to curate (its training lines are aligned translations)")
    config = task.curation_config(config)  # `langid: false` in the task file leaves language ID out
    task.check_language_codes(config)
    langs = asked or task.train_units
    model = tokenizer = None
    if args.ppl_model and args.stage == "c2":
        from govtune.models import load_model  # torch and transformers: only for the perplexity model

        model, tokenizer = load_model(args.ppl_model)
    result = curate(task.pool(), langs, args.stage, reference_model=model, reference_tokenizer=tokenizer,
                    protected=task.protected(), config=config, progress=not args.no_progress)
    empty = [lang for lang in langs if not any(r["lang"] == lang for r in result.kept)]
    write_jsonl(out / "kept.jsonl", result.kept)
    write_jsonl(out / "dropped.jsonl", result.dropped)
    write_json(out / "report.json", result.report)
    write_text(out / "report.md", report_markdown(result.report))
    write_jsonl(out / "kept_rows.jsonl", [_row(r) for r in result.kept])
    r = result.report
    print(f"task {task.name}: {r['input']} pool rows, kept {r['kept']}, dropped {r['dropped']} -> {out}")
    if empty:
        raise ValueError(f"task {task.name!r}: curation left language {empty[0]!r} with no rows (see "
                         f"{out / 'report.md'}); relax the filters (--skip, --min-lang-confidence) or add "
                         f"{empty[0]} rows")
    if args.shots:
        shots = sample_kshot(result, langs, args.shots, args.seed, label_field=LABEL)
        write_jsonl(out / "shots.jsonl", [_row(s) for s in shots])
        print(f"{len(shots)} shots ({args.shots} per language, seed {args.seed}) -> {out / 'shots.jsonl'}")
    return 0


def _row(record: dict) -> dict:
    """A kept record in the task's own form: a task file's row it was read from; an XNLI record is its row."""
    return record.get(ROW, record)
