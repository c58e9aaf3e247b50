"""From a study's `tasks:` entry (a built-in name or a task file's path) to its `Task`.

The built-in names are the task files shipped in `govtune/tasks/builtin/`; a task type is a class in
`TYPES`, so a new type is added here and in its own module, and nowhere in the runner."""

from __future__ import annotations

from pathlib import Path

from govtune.tasks.builtin_tasks import FloresTask, XnliTask
from govtune.tasks.classification import ClassificationTask
from govtune.tasks.completion import ChatTask, CompletionTask
from govtune.tasks.spec import TaskSpec, load_spec, suggest
from govtune.tasks.task import Task

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


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
    return load_spec(path)


def make_task(spec: TaskSpec) -> Task:
    builtins = {"xnli": XnliTask, "flores": FloresTask}
    types = {"classification": ClassificationTask, "completion": CompletionTask, "chat": ChatTask}
    return (builtins[spec.builtin] if spec.builtin else types[spec.type])(spec)


def load_task(entry: str | Path, base: Path | None = None) -> Task:
    return make_task(task_spec(entry, base))
