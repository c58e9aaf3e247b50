"""`govtune export TASK --out DIR`: a task's splits as TRL JSONL and an lm-evaluation-harness task YAML
(govtune.tasks.export)."""

from __future__ import annotations

import json
from pathlib import Path

from govtune.tasks import export as task_export
from govtune.tasks.export import export_task, lm_eval_name
from govtune.tasks.registry import load_task
from govtune.tasks.settings import TaskSettings


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a task's splits as TRL JSONL and an lm-eval task YAML",
                              description=task_export.__doc__.splitlines()[0])
    p.add_argument("task", help="a task file (or a built-in task: xnli, flores)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--train", default=None,
                   help="JSON-lines rows to export as the train split, e.g. `govtune curate --task` kept_rows.jsonl "
                        "(default: the task's train split as given)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    task = load_task(args.task)
    task.prepare(TaskSettings(), out)  # a study's default settings: the built-in tasks' languages and row ranges
    train = None
    if args.train:  # rows in the task's fields (what `govtune curate --task` writes to kept_rows.jsonl)
        train = [json.loads(line) for line in Path(args.train).read_text(encoding="utf-8").splitlines() if line]
    path = export_task(task, out, train)
    print(f"wrote {out}/{{train,validation,test}}.jsonl (TRL) and {path} (lm-eval: --include_path {path.parent} "
          f"--tasks {lm_eval_name(task)})")
    return 0
