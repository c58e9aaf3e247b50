"""From a study's `tasks:` entry (a built-in name or a task file's path) to its `Task`.

The built-in names are the task files shipped in `govtune/tasks/builtin/`; a task type is a class in
`TYPES`, so a new type is added here and in its own module, and nowhere in the runner."""

from __future__ import annotations

from pathlib import Path

from govtune.tasks.builtin_tasks import FloresTask, XnliTask
from govtune.tasks.classification import ClassificationTask
from govtune.tasks.completion import ChatTask, CompletionTask
from govtune.tasks.spec import TaskSpec, load_spec, read_task_file, spec_from_dict, suggest
from govtune.tasks.task import Task

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
# What a task file may set over a built-in task (`builtin: sib200` plus some of these keys): the settings each
# built-in task reads from its spec. XNLI and FLORES read their languages and rows from the study's settings.
OVERRIDABLE = {
    "xnli": ("description", "langid"),
    "flores": ("description",),
    "sib200": ("description", "languages", "train_languages", "seed", "test_size", "val_size", "langid", "dataset",
               "path", "data_files", "doc_to_text", "label_words", "target_delimiter"),
}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def is_task_file(entry: str) -> bool:
    return str(entry).endswith((".yaml", ".yml")) or "/" in str(entry)


def task_spec(entry: str | Path, base: Path | None = None) -> TaskSpec:
    """The checked spec of a built-in name or a task file (a relative path is tried from `base`, then from
    the working directory)."""
    entry = str(entry)
    if not is_task_file(entry):
        if entry not in builtin_names():
            raise ValueError(f"unknown task {entry!r}{suggest(entry, builtin_names())}: use a built-in task "
                             f"({', '.join(builtin_names())}) or the path of a task file (see docs/tasks.md)")
        return load_spec(BUILTIN_DIR / f"{entry}.yaml")
    path = Path(entry).expanduser()
    if not path.is_absolute() and base is not None and (base / path).is_file():
        path = base / path
    raw = read_task_file(path)
    return spec_from_dict(over_builtin(raw, path) if raw.get("builtin") is not None else raw, path)


def over_builtin(raw: dict, path: Path) -> dict:
    """A task file naming a built-in task (`builtin: sib200`): the built-in task file with the keys this file
    sets in place of its own, e.g. `{builtin: sib200, languages: all}` is SIB-200 in every shipped language."""
    name = raw["builtin"]
    if name not in OVERRIDABLE:
        raise ValueError(f"{path}: `builtin: {name}` is not a built-in task{suggest(str(name), OVERRIDABLE)}; use "
                         f"one of {', '.join(OVERRIDABLE)}")
    base = read_task_file(BUILTIN_DIR / f"{name}.yaml")
    bad = [k for k in raw if k not in OVERRIDABLE[name] and raw[k] != base.get(k)]  # a copied key is no change
    if bad:
        raise ValueError(f"{path}: `{bad[0]}` cannot be set over the built-in task {name!r} (it reads "
                         f"{', '.join(OVERRIDABLE[name])} from its task file; the rest from the study's settings): "
                         f"remove it")
    return {**base, **raw}


def make_task(spec: TaskSpec) -> Task:
    from govtune.tasks.builtin_sib200 import Sib200Task  # its data module loads SIB-200's 205 languages' files lazily

    builtins = {"xnli": XnliTask, "flores": FloresTask, "sib200": Sib200Task}
    types = {"classification": ClassificationTask, "completion": CompletionTask, "chat": ChatTask}
    return (builtins[spec.builtin] if spec.builtin else types[spec.type])(spec)


def load_task(entry: str | Path, base: Path | None = None) -> Task:
    return make_task(task_spec(entry, base))
