"""`govtune eval --task FILE` (or `--task sib200`, its languages from `--langs`): a task's test split, scored
by the task's own evaluation (the same call a study makes), with `--shots K` demonstrations from its train
split or from `--shots-pool`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from govtune.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from govtune.cli.load import load_for_eval
from govtune.tasks.registry import load_task
from govtune.tasks.rows import to_rows
from govtune.tasks.settings import TaskSettings


def task_settings(args) -> TaskSettings:
    """The settings a task reads, from the command line (the rest: a study's defaults)."""
    return TaskSettings(eval_limit=args.limit, robustness=not args.no_robustness, eval_batch_size=args.batch_size,
                        max_new_tokens=args.max_new_tokens, data_dir=args.data,
                        languages=[x.strip() for x in args.langs.split(",") if x.strip()],
                        flores_pairs=[x.strip() for x in args.pairs.split(",") if x.strip()])


def _shots_pool(task, path: str) -> list[dict]:
    """A pool file's rows, read through the task's columns, as curation records of the task."""
    raw = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [task.to_record(r) for r in to_rows(task.spec, raw, f"--shots-pool {path}")]


def _markdown(task, metrics: dict) -> str:
    lines = [f"# {task.name} ({task.kind})", "", "| Language | Metric | Value |", "|---|---|---|"]
    for lang, block in metrics["languages"].items():
        lines += [f"| {lang} | {k} | {v:.2f} |" for k, v in block.items() if isinstance(v, float)]
    lines += [f"| all | {k} | {v:.2f} |" for k, v in metrics.items() if isinstance(v, float)]
    return "\n".join(lines) + "\n"


def run_task_file(args) -> int:
    if args.batch_size < 1 or args.shots < 0:
        raise ValueError(f"--batch-size must be >= 1 and --shots >= 0, got {args.batch_size} and {args.shots}")
    out = Path(args.out)
    task = load_task(args.task).prepare(task_settings(args), out)  # a carved split is written to OUT
    kept = _shots_pool(task, args.shots_pool) if args.shots_pool else None
    if args.shots:
        tests, calibration = task.incontext(kept, None, args.shots, args.seed)
    else:
        tests, calibration = task.test_sets(), task.calibration_rows(None, 0, args.seed) if task.calibrates else None
    if args.calibrate_on is None:
        calibration = None  # as for the built-in tasks: temperature scaling when asked for
    model, tok = load_for_eval(args.model, args.adapter, args.quantize)
    t0 = time.perf_counter()
    with torch.no_grad():
        metrics, preds = task.evaluate(model, tok, tests, seed=args.seed, progress=not args.no_progress,
                                       calibration=calibration)
    metrics["ci95"] = task.intervals(preds)
    metrics["run"] = {"model": args.model, "adapter": args.adapter, "task": str(args.task), "limit": args.limit,
                      "shots": args.shots, "shots_pool": args.shots_pool or ("train split" if args.shots else None),
                      "seed": args.seed, "total_seconds": time.perf_counter() - t0}
    atomic_write_jsonl(out / "predictions.jsonl", preds)
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "report.md", _markdown(task, metrics))
    print(f"wrote {out / 'metrics.json'}, {out / 'predictions.jsonl'}, {out / 'report.md'}")
    return 0
