"""The settings a task reads when it is prepared (`Task.prepare(settings)`): its languages, data, row ranges,
evaluation budget. A study builds them from its config (`StudyConfig.task_settings(name)`, its flat keys
with the task's `task_options` over them); `govtune eval/curate/export --task` build them from the command
line. A typed object, so a task never reads a study config it does not know, and a command cannot leave out
a setting a task needs (the defaults are the study's)."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from typing import Any

from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES, XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.languages import XNLI_LANGUAGES, UnknownLanguage, normalize, normalize_or_keep


def _bounds(rows: range) -> list[int]:
    return [rows.start, rows.stop]


@dataclass
class TaskSettings:
    """Defaults: the study config's (tests/tasks/test_task_settings.py holds them equal)."""

    # XNLI's languages, and a task file's or SIB-200's when it names none
    languages: list[str] = field(default_factory=lambda: ["en", "zh", "hi"])
    # The languages a classification task is tuned on, a subset of those it evaluates (None: all of them).
    # Cross-lingual transfer: the pool, the shots, the validation and calibration rows hold only these.
    train_languages: list[str] | None = None
    flores_pairs: list[str] = field(default_factory=lambda: ["en-zh", "en-es"])  # FLORES directions src-tgt
    data_dir: str | None = None  # None: the samples shipped in govtune.data
    # [start, stop) row ranges of the built-in benchmarks: the few-shot pool and the test rows are disjoint
    xnli_pool_rows: list[int] = field(default_factory=lambda: _bounds(XNLI_POOL_ROWS))
    xnli_eval_rows: list[int] = field(default_factory=lambda: _bounds(XNLI_EVAL_ROWS))
    flores_pool_lines: list[int] = field(default_factory=lambda: _bounds(FLORES_POOL_LINES))
    flores_eval_lines: list[int] = field(default_factory=lambda: _bounds(FLORES_EVAL_LINES))
    eval_limit: int | None = None  # test rows per language (None: all)
    flores_eval_limit: int | None = 32  # FLORES test lines per direction (None: all)
    flores_train_pairs: int | None = None  # FLORES training lines per direction (None: the run's shots)
    val_per_language: int = 8  # validation rows per language
    robustness: bool = True  # the orthographic robustness pass of a classification task
    eval_batch_size: int = 8
    max_new_tokens: int = 128  # generation budget of a translation or completion


NAMES = tuple(f.name for f in dataclasses.fields(TaskSettings))
HINTS = typing.get_type_hints(TaskSettings)
OPTIONAL = ("eval_limit", "flores_eval_limit", "flores_train_pairs")  # None: all (or, for the last, the shots)
LANGUAGE_LISTS = ("languages", "train_languages")  # normalised through govtune.languages where they are read
RANGES = (("xnli_pool_rows", "xnli_eval_rows"), ("flores_pool_lines", "flores_eval_lines"))


def task_options(options: dict, tasks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A study's `task_options` checked and typed: {task name: {setting: value}}, for the study's tasks
    (`tasks`: task name -> its unprepared `Task`). `xnli.eval_limit: 20` (a command line's
    `task_options.xnli.eval_limit=20`) is read as {xnli: {eval_limit: 20}}; every task's settings are built
    now, so a bad value fails before the study starts."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in (options or {}).items():
        name, _, sub = str(key).partition(".")
        if sub:
            value = {sub: value}
        if not isinstance(value, dict):
            raise ValueError(f"task_options.{name} is {value!r}: give a mapping of settings, e.g. "
                             f"task_options: {{{name}: {{eval_limit: 20}}}}")
        if name not in tasks:
            raise ValueError(f"task_options: {name!r} is not a task of the study{_suggest(name, tasks)}; its "
                             f"tasks are {', '.join(tasks)} (a task file's `name:`)")
        nested.setdefault(name, {}).update(value)
    for name, opts in nested.items():
        task = tasks[name]
        for key in list(opts):
            opts[key] = _typed(f"task_options.{name}.{key}", key, opts[key])
            if key not in task.settings_read:
                own = "" if "languages" in task.settings_read else " (its languages and data: its task file)"
                raise ValueError(f"task_options.{name}: task {name!r} does not read {key!r}; it reads "
                                 f"{', '.join(task.settings_read)}{own}")
        check(TaskSettings(**opts), f"task_options.{name}", task.spec.builtin)
    return nested


def _typed(where: str, key: str, value: Any) -> Any:
    if key not in HINTS:
        raise ValueError(f"{where}: unknown task setting {key!r}{_suggest(key, NAMES)}; settings are "
                         f"{', '.join(NAMES)}")
    hint = HINTS[key]
    args = typing.get_args(hint)
    if value is None and type(None) in args:
        return None
    hint = next((a for a in args if typing.get_origin(a) is list), hint)  # `list[str] | None`: the list
    args = typing.get_args(hint) if typing.get_origin(hint) is list else args
    if typing.get_origin(hint) is list:
        value = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(value, list):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if key in LANGUAGE_LISTS:  # govtune's internal codes, as the study's `languages` (eng_Latn -> en)
            return [normalize_or_keep(v) if isinstance(v, str) else v for v in value]
        try:
            return [args[0](v) for v in value]
        except (TypeError, ValueError):
            raise ValueError(f"{where} expects a list of {args[0].__name__}, got {value!r}") from None
    kind = next(a for a in args if a is not type(None)) if args else hint
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise ValueError(f"{where} expects {kind.__name__}, got {value!r}")
    return value


def check(settings: TaskSettings, where: str = "", builtin: str | None = None) -> None:
    """A task's settings checked: the study's flat keys (`where` empty) or one task's `task_options` (`where`
    names them in the error); `builtin="xnli"`: the languages are XNLI's."""
    at = f"{where}: " if where else ""
    if builtin == "xnli":
        for lang in (*settings.languages, *(settings.train_languages or ())):
            if lang not in XNLI_LANGUAGES:
                raise ValueError(f"{at}unknown XNLI language {lang!r}{_suggest(str(lang), XNLI_LANGUAGES)}; "
                                 f"use some of {', '.join(XNLI_LANGUAGES)}")
    for pair in settings.flores_pairs:
        if str(pair).count("-") != 1:
            raise ValueError(f"{at}flores pair {pair!r} must look like src-tgt, e.g. en-zh")
    for a, b in RANGES:
        for key in (a, b):
            v = getattr(settings, key)
            if len(v) != 2 or not 0 <= v[0] < v[1]:
                raise ValueError(f"{at}{key} must be [start, stop) with 0 <= start < stop, got {v}")
        (s1, e1), (s2, e2) = getattr(settings, a), getattr(settings, b)
        if s1 < e2 and s2 < e1:
            raise ValueError(f"{at}{a} {[s1, e1]} overlaps {b} {[s2, e2]}: training rows would leak into "
                             f"the evaluation; make the ranges disjoint")
    for key in ("eval_limit", "flores_eval_limit", "flores_train_pairs", "eval_batch_size", "max_new_tokens"):
        v = getattr(settings, key)
        if v is not None and v < 1:
            null = " or null (all)" if key in OPTIONAL else ""
            raise ValueError(f"{at}{key} must be >= 1{null}, got {v}")
    if settings.val_per_language < 0:
        raise ValueError(f"{at}val_per_language must be >= 0, got {settings.val_per_language}")


def check_train_languages(train: list[str] | None, languages: list[str], where: str = "") -> None:
    """Refuse train languages a task does not evaluate (`languages`: its evaluated languages, internal form):
    a code govtune.languages does not know gets its error, a known one outside `languages` names the fix."""
    if train is None:
        return
    at = f"{where}: " if where else ""
    if not train:
        raise ValueError(f"{at}train_languages is empty: list the languages to tune on (some of the task's "
                         f"languages), or leave it out to tune on every language the task evaluates")
    outside = [lang for lang in dict.fromkeys(train) if lang not in languages]
    for lang in outside:
        try:
            normalize(lang)
        except UnknownLanguage as e:
            raise ValueError(f"{at}train_languages: {e}") from None
    if outside:
        raise ValueError(f"{at}train_languages {', '.join(map(repr, outside))} not among the languages the task "
                         f"evaluates ({', '.join(languages)}): every language tuned on is evaluated too; add "
                         f"{'it' if len(outside) == 1 else 'them'} to the task's languages or drop "
                         f"{'it' if len(outside) == 1 else 'them'} from train_languages")


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, [str(o) for o in options], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
