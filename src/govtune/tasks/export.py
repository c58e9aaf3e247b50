"""A task's splits in the formats other tools read: TRL JSONL (prompt-completion rows; chat tasks'
conversational `messages` rows) and an lm-evaluation-harness task YAML over the same rows.

The lm-eval docs carry govtune's rendered prompt and, for classification, the scored continuations with
their delimiter (`target_delimiter: ""`), so lm-eval scores exactly the requests govtune scores: the same
accuracy on the same model (tests/tasks/test_export.py). `govtune export TASK --out DIR` (govtune.cli.export)
writes a task alone; a study writes each task's curated splits under OUT/export/."""

from __future__ import annotations

from pathlib import Path

import yaml

from govtune.atomic import atomic_write_jsonl, atomic_write_text
from govtune.tasks.filetask import ROW
from govtune.tasks.task import Task

SPLIT_NAMES = ("train", "validation", "test")


def lm_eval_name(task: Task) -> str:
    return f"govtune-{task.name}"


def _trl_row(task: Task, row: dict) -> dict:
    if "messages" in row:
        return {"messages": row["messages"], "lang": row["lang"], "id": row["id"]}
    prompt, completion = task.training_pair(row)
    out = {"prompt": prompt, "completion": completion, "lang": row.get("lang", row.get("tgt_lang")), "id": row["id"]}
    if "label" in row:
        out["label"] = row["label"]
    return out


def _doc(task: Task, row: dict) -> dict:
    prompt, completion = task.training_pair(row)
    doc = {"id": row["id"], "lang": row.get("lang", row.get("tgt_lang")), "prompt": prompt}
    if task.kind == "classification":
        doc["choices"], doc["gold"] = task.choices(row)
    else:
        doc["target"] = completion.strip()
    return doc


def generation_kwargs(task: Task) -> dict:
    """lm-eval's generation_kwargs for the task's answers: its own `until` and `max_gen_toks` when the task
    file sets them, else the newline that ends govtune's default answer line (and lm-eval's own budget)."""
    spec = task.spec
    until = spec.until if spec.until is not None else ["\n"]
    out = {"until": list(until), "do_sample": False}
    if spec.max_gen_toks is not None:
        out["max_gen_toks"] = spec.max_gen_toks
    return out


def task_yaml(task: Task, files: dict[str, Path]) -> dict:
    cfg = {"task": lm_eval_name(task), "dataset_path": "json",
           "dataset_kwargs": {"data_files": {s: str(p.resolve()) for s, p in files.items()}},
           "test_split": "test", "doc_to_text": "prompt"}
    if "train" in files:
        cfg["training_split"] = "train"
        cfg["fewshot_split"] = "train"
    if "validation" in files:
        cfg["validation_split"] = "validation"
    if task.kind == "classification":
        cfg.update(output_type="multiple_choice", doc_to_choice="choices", doc_to_target="gold",
                   target_delimiter="", metric_list=[{"metric": "acc", "aggregation": "mean",
                                                      "higher_is_better": True}])
    else:
        cfg.update(output_type="generate_until", doc_to_target="target", target_delimiter=" ",
                   generation_kwargs=generation_kwargs(task),
                   metric_list=[{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                 "ignore_case": True}])
    cfg["metadata"] = {"version": 1.0}
    return cfg


def export_task(task: Task, out_dir: str | Path, train: list[dict] | None = None) -> Path:
    """Write OUT_DIR/{split}.jsonl (TRL), OUT_DIR/lm_eval/{split}.jsonl (the docs) and
    OUT_DIR/lm_eval/govtune-<task>.yaml; `train`: the rows to export as train (default: the task's pool,
    uncurated). Returns the YAML's path."""
    out_dir = Path(out_dir)
    pool = task.pool() if train is None else train
    splits = {"train": [r.get(ROW, r) for r in pool],
              "validation": list(getattr(task, "splits", {}).get("validation", [])),
              "test": [r for rows in task.test_sets().values() for r in rows]}
    files = {}
    for name in SPLIT_NAMES:
        rows = splits[name]
        if not rows:
            continue
        atomic_write_jsonl(out_dir / f"{name}.jsonl", [_trl_row(task, r) for r in rows])
        files[name] = out_dir / "lm_eval" / f"{name}.jsonl"
        atomic_write_jsonl(files[name], [_doc(task, r) for r in rows])
    path = out_dir / "lm_eval" / f"{lm_eval_name(task)}.yaml"
    atomic_write_text(path, yaml.safe_dump(task_yaml(task, files), allow_unicode=True, sort_keys=False))
    return path
