"""The evaluation documents of lm-evaluation-harness tasks as text, for decontamination.

A task is loaded through lm-eval's own TaskManager (govtune's rendered tasks, then `include_path`, then
lm-eval's built-in tasks, as `lm_eval_harness.task_manager` resolves them) and its evaluation documents
(`eval_docs`: the test split, else the validation split: what lm-eval scores) are rendered with the task's
own `doc_to_text`, `doc_to_choice` and `doc_to_target`, so which fields are text is the task's decision.
The texts of one document are its rendered prompt, its choices, a target given as text, and each string
field of the document that the rendering contains (normalised): the prompt wraps the fields in template
words ("Premise: ... Hypothesis: ..."), and a short field such as an XNLI hypothesis is only matched whole
(`govtune.governance.decontam`) when it is a text of its own."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from govtune.evaluation.lm_eval_harness import task_manager
from govtune.governance.dedup import normalise

PREFIX = "lm-eval:"  # evaluation sets of lm-eval tasks are named lm-eval:<task>


def doc_texts(task, doc: dict) -> list[str]:
    """The texts of one lm-eval document, as the task renders them."""
    texts: list[str] = []
    prompt = task.doc_to_text(doc)
    if isinstance(prompt, str):  # an int is an index into the choices (`multiple_input` tasks)
        texts.append(prompt)
    choices = task.doc_to_choice(doc) if task.config.doc_to_choice is not None else []
    texts += [c for c in choices if isinstance(c, str)]
    target = task.doc_to_target(doc)
    for t in target if isinstance(target, list) else [target]:
        if isinstance(t, str):
            texts.append(t)
    rendered = normalise("\n".join(texts))
    for value in doc.values():
        if isinstance(value, str) and value.strip() and value not in texts:
            field = normalise(value)
            if field and field in rendered:
                texts.append(value)
    return texts


def lm_eval_eval_sets(tasks: Sequence[str], include_path: Sequence[str | Path] | None = None) -> dict[str, list]:
    """{"lm-eval:<task>": [the texts of each evaluation document]} for every task (groups: each of their
    tasks). A task that cannot be loaded here (its dataset on a hub this machine cannot reach) is a
    ValueError naming it and the fix, raised before any document is used."""
    out: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        manager = task_manager(list(tasks), tmp, list(include_path or []))
        for name in tasks:
            try:
                loaded = manager.load([name])["tasks"]  # a group's tasks, flat
                leaves = [(leaf, task, list(task.eval_docs)) for leaf, task in loaded.items()]
            except Exception as e:  # noqa: BLE001  (datasets raises many kinds for a dataset it cannot reach)
                raise ValueError(
                    f"lm-eval task {name!r} cannot be loaded on this machine, so the curation cannot check the "
                    f"pool against its documents ({type(e).__name__}: {str(e)[:300]}). Give it a local task YAML "
                    f"whose data files are on this machine (a directory in lm_eval_include_path, lm-eval's "
                    f"include_path), or drop it from lm_eval_tasks") from e
            for leaf, task, docs in leaves:
                out[PREFIX + leaf] = [doc_texts(task, doc) for doc in docs]
    return out
