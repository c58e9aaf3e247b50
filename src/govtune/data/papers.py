"""Which of a study's tasks fill the papers' tables, so the report asks by part and never names a task.

The two papers report one classification benchmark in full (accuracy per language, Macro, parity gap and
ECE with Welch's p against LoRA; calibration before and after temperature scaling; robustness to
orthographic variants) and one translation benchmark (corpus BLEU per direction, the direction gap and
chrF++). The built-in tasks that play these parts are named here, with the titles the tables give them;
every other task of a study gets the report's per-task section.

The curation ablation, the few-shot scaling table, the ledger's "what the decisions moved" and the frontier
and scaling figures follow one classification task, the study's `focus`: the papers' classification task when
the study has it, else its first classification task."""

from __future__ import annotations

from collections.abc import Callable, Iterable

CLASSIFICATION = "classification"  # the papers' main table, calibration and robustness tables
TRANSLATION = "translation"  # the papers' translation table (directions `pairs.{pair}.*`)

PARTS = {"xnli": CLASSIFICATION, "flores": TRANSLATION}
TITLES = {"xnli": "XNLI", "flores": "FLORES"}


def paper_task(tasks: Iterable[str], part: str) -> str | None:
    """The first of `tasks` that plays `part` in the papers' tables, or None."""
    return next((t for t in tasks if PARTS.get(t) == part), None)


def is_paper_task(task: str) -> bool:
    return task in PARTS


def classifies(task: str) -> bool:
    """Whether a built-in benchmark is the papers' classification task (class probabilities per language),
    not their translation task (generated text per direction)."""
    return PARTS.get(task) == CLASSIFICATION


def focus_task(tasks: Iterable[str], kind: Callable[[str], str]) -> str | None:
    """The classification task the curation, scaling and ledger tables follow (`kind(task)` gives a task's
    kind); None when the study has no classification task."""
    tasks = list(tasks)
    return paper_task(tasks, CLASSIFICATION) or next((t for t in tasks if kind(t) == "classification"), None)


def title(task: str) -> str:
    """The name tables give a task: the benchmark's own (XNLI) or the task's name in backticks."""
    return TITLES.get(task, f"`{task}`")
