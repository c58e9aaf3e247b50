"""Every evaluation set of a study, by name, for decontamination (`govtune.governance.decontam`): each
task's rows the study evaluates and calibrates on (the rows `Task.protected()` gives the leakage check:
a task file's validation and test splits, a built-in task's test rows), and the evaluation documents of every
lm-eval task in `lm_eval_tasks`. Every curated pool of the study is checked against all of them."""

from __future__ import annotations

from govtune.tasks.task import Task

# The text fields of govtune's row layouts: task files (text, text_pair; prompt, completion; messages),
# XNLI (premise, hypothesis) and FLORES (src, ref).
TEXT_FIELDS = ("text", "text_pair", "premise", "hypothesis", "prompt", "completion", "src", "ref")


def row_texts(row: dict) -> list[str]:
    """The texts of one task row, each on its own."""
    texts = [row[f] for f in TEXT_FIELDS if isinstance(row.get(f), str) and row[f].strip()]
    texts += [m["content"] for m in row.get("messages") or () if isinstance(m.get("content"), str)]
    return texts


def task_eval_sets(task: Task) -> dict[str, list[list[str]]]:
    """{"<task>:validation": rows, "<task>:test": rows} (built-in tasks: test rows only), each row its texts."""
    splits = getattr(task, "splits", None)
    if splits is not None:  # a task file's task: its validation and test splits, as protected() takes them
        return {f"{task.name}:{s}": [row_texts(r) for r in splits[s]] for s in ("validation", "test") if splits[s]}
    return {f"{task.name}:test": [row_texts(r) for rows in task.test_sets().values() for r in rows]}


def study_eval_sets(tasks: dict[str, Task], config) -> dict[str, list[list[str]]]:
    """The evaluation sets of a study with `tasks` (prepared) and `config` (a StudyConfig): every task's,
    then every lm-eval task's (an lm-eval task that cannot be loaded here is a ValueError naming it)."""
    sets: dict[str, list[list[str]]] = {}
    for task in tasks.values():
        sets.update(task_eval_sets(task))
    if config.lm_eval_tasks:
        from govtune.study.lm_eval_docs import lm_eval_eval_sets  # lm-eval: only when the study asks

        sets.update(lm_eval_eval_sets(config.lm_eval_run_tasks(), config.lm_eval_include_path))
    return sets
