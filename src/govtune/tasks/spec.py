"""A task file: what a study needs to know about a user's data, in the conventions users already know.

    type: classification            # classification | completion | chat
    name: intents                   # results, the store and the report key the task by it (default: file stem)
    data_files: intents.jsonl       # JSONL, CSV or Parquet (HF `datasets`), or `dataset: owner/name` on the hub
    columns: {text: message, label: intent, lang: language}   # our field <- the file's column (LLaMA-Factory)
    labels: [billing, delivery, refund]                      # lm-eval's doc_to_choice
    test_size: 6                    # rows per language (or a fraction), carved per language and label
    val_size: 3
    seed: 0

Everything is checked when the file is read, before any data or model is loaded, and every error names
the field and the fix. The fields a row of each type carries follow TRL's dataset rows: `prompt` /
`completion` for completion, `messages` (role, content) for chat; classification rows have `text`,
optional `text_pair` and `label`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from govtune.languages import normalize_or_keep

TYPES = ("classification", "completion", "chat")
# The fields a row has, per type; `lang` and `id` are common to all.
FIELDS = {"classification": ("text", "text_pair", "label"), "completion": ("prompt", "completion"),
          "chat": ("messages",)}
REQUIRED = {"classification": ("text", "label"), "completion": ("prompt", "completion"), "chat": ("messages",)}
COMMON = ("lang", "id")
SPLITS = ("train", "validation", "test")
KEYS = ("type", "name", "description", "builtin", "path", "data_files", "dataset", "dataset_config", "columns",
        "lang", "languages", "train_languages", "labels", "label_words", "doc_to_text", "target_delimiter", "splits",
        "val_size", "test_size", "seed", "langid", "generation_kwargs")
# lm-eval's generation_kwargs that a completion or chat task may set (generation is greedy: no sampling keys).
GENERATION_KEYS = ("until", "max_gen_toks")


def suggest(value: str, options) -> str:
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass
class TaskSpec:
    """A task file, checked. `source` is the file it came from (relative data paths are relative to it)."""

    type: str
    name: str
    source: Path | None = None
    description: str = ""
    builtin: str | None = None  # xnli / flores / sib200: the shipped benchmarks, read by their own loaders
    data_files: Any = None  # a path, a list of paths, or {split: path(s)} (the `splits` of a file)
    dataset: str | None = None
    dataset_config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    lang: str | None = None
    languages: list[str] | None = None
    train_languages: list[str] | None = None  # tuned on (a subset of languages); None: every language
    labels: list[str] = field(default_factory=list)
    label_words: dict[str, dict[str, str]] = field(default_factory=dict)
    doc_to_text: str | dict[str, str] | None = None
    target_delimiter: str = " "
    splits: dict[str, Any] = field(default_factory=dict)  # split -> file(s) or hub split name
    val_size: float | int = 0
    test_size: float | int = 0
    seed: int = 0
    langid: bool = True
    generation_kwargs: dict[str, Any] | None = None  # {until: [stop strings], max_gen_toks: N}, as lm-eval's

    @property
    def until(self) -> list[str] | None:
        """The stop strings of a completion or chat task's answers; None = the default rule (first line)."""
        return (self.generation_kwargs or {}).get("until")

    @property
    def max_gen_toks(self) -> int | None:
        """New tokens an answer may take; None = the study's `max_new_tokens`."""
        return (self.generation_kwargs or {}).get("max_gen_toks")

    def where(self, key: str) -> str:
        return f"{self.source or 'task ' + repr(self.name)}: `{key}`"

    def resolve_path(self, p: str) -> str:
        path = Path(p).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return str(path)


def load_spec(path: str | Path) -> TaskSpec:
    """Read and check a task file."""
    return spec_from_dict(read_task_file(path), Path(path))


def read_task_file(path: str | Path) -> dict:
    """A task file's mapping, unchecked (load_spec checks it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file {str(path)!r} not found: pass a YAML task file (see docs/tasks.md) or "
                                f"a built-in task name (xnli, flores, sib200)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"task file {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"task file {path} must hold a mapping (type:, data_files:, columns:, ...), got "
                         f"{type(raw).__name__}")
    return raw


def spec_from_dict(raw: dict, source: Path | None = None) -> TaskSpec:
    where = str(source) if source else "the task"
    for key in raw:
        if key not in KEYS:
            raise ValueError(f"{where}: unknown key {key!r}{suggest(key, KEYS)}; task keys are {', '.join(KEYS)}")
    kind = raw.get("type")
    if kind not in TYPES:
        raise ValueError(f"{where}: `type: {kind}` is not a task type{suggest(kind, TYPES)}; use one of "
                         f"{', '.join(TYPES)}")
    name = str(raw.get("name") or (source.stem if source else ""))
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"{where}: `name: {name!r}` must be letters, digits, - and _ (it names the task in "
                         f"results and file names), e.g. name: intents")
    raw = _languages_normalized(raw)
    spec = TaskSpec(type=kind, name=name, source=source, **{k: raw[k] for k in KEYS if k in raw
                                                            and k not in ("type", "name", "path")})
    if "path" in raw:  # `path` is a synonym of data_files (lm-eval's dataset_path for local files)
        if spec.data_files is not None:
            raise ValueError(f"{where}: give `path` or `data_files`, not both")
        spec.data_files = raw["path"]
    _check(spec, where)
    return spec


def _languages_normalized(raw: dict) -> dict:
    """The task file with its language codes in internal form (govtune.languages: `eng` -> `en`), wherever it
    names one: `lang`, `languages`, and the per-language keys of `label_words` and `doc_to_text`. A code
    govtune.languages does not know stays as written (a task without language ID may use codes of its own)."""
    out = dict(raw)
    if isinstance(out.get("lang"), str):
        out["lang"] = normalize_or_keep(out["lang"])
    for key in ("languages", "train_languages"):
        if isinstance(out.get(key), list):
            out[key] = [normalize_or_keep(x) if isinstance(x, str) else x for x in out[key]]
    for key in ("label_words", "doc_to_text"):
        if isinstance(out.get(key), dict):
            out[key] = {normalize_or_keep(k) if isinstance(k, str) else k: v for k, v in out[key].items()}
    return out


def _check(spec: TaskSpec, where: str) -> None:
    allowed = (*FIELDS[spec.type], *COMMON)
    if not isinstance(spec.langid, bool):
        raise ValueError(f"{where}: `langid: {spec.langid!r}` must be true or false (false: curation runs no "
                         f"language ID for this task, and its language codes may be any, e.g. tok or gsw)")
    if not isinstance(spec.columns, dict):
        raise ValueError(f"{where}: `columns` maps our field names to yours, e.g. {{text: message, label: intent}}")
    for ours in spec.columns:
        if ours not in allowed:
            raise ValueError(f"{where}: `columns.{ours}` is not a field of a {spec.type} row{suggest(ours, allowed)}; "
                             f"map some of {', '.join(allowed)} to your column names")
    if spec.train_languages is not None and spec.type != "classification":
        raise ValueError(f"{where}: `train_languages` belongs to classification tasks (tune on some languages, "
                         f"evaluate on all); a {spec.type} task tunes and evaluates on the same languages")
    if spec.train_languages is not None and not (isinstance(spec.train_languages, list) and spec.train_languages
                                                 and all(isinstance(x, str) for x in spec.train_languages)):
        raise ValueError(f"{where}: `train_languages: {spec.train_languages!r}` must list language codes (some of "
                         f"the task's languages), e.g. train_languages: [eng_Latn, hin_Deva]")
    if spec.data_files and spec.dataset:
        raise ValueError(f"{where}: give `data_files` (local files) or `dataset` (a hub name), not both")
    for key in ("val_size", "test_size"):
        v = getattr(spec, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (isinstance(v, float) and v >= 1):
            raise ValueError(f"{where}: `{key}: {v!r}` must be a count of rows per language (e.g. 10) or a "
                             f"fraction in [0, 1) (e.g. 0.2)")
    if spec.builtin is not None:
        return  # the shipped benchmarks: their own loaders, their own checks
    if not (spec.data_files or spec.dataset or spec.splits):
        raise ValueError(f"{where}: give the data as `data_files:` (JSONL, CSV or Parquet), `dataset:` (a hub "
                         f"name) or `splits:` (train/validation/test files)")
    for split in spec.splits:
        if split not in SPLITS:
            raise ValueError(f"{where}: `splits.{split}` is not a split{suggest(split, SPLITS)}; use "
                             f"{', '.join(SPLITS)}")
    if spec.splits and "test" not in spec.splits:
        raise ValueError(f"{where}: `splits` has no `test`: every task is evaluated on its test split")
    if not spec.splits and not spec.test_size:
        raise ValueError(f"{where}: no test rows: set `test_size` (rows per language or a fraction) or give "
                         f"`splits: {{train: ..., test: ...}}`")
    if spec.type == "classification":
        _check_labels(spec, where)
    elif spec.labels or spec.label_words:
        raise ValueError(f"{where}: `labels` belong to classification tasks; a {spec.type} task has none")
    if spec.generation_kwargs is not None:
        _check_generation(spec, where)


def _check_generation(spec: TaskSpec, where: str) -> None:
    """`generation_kwargs` as lm-eval's task YAML writes it: `until` (stop strings) and `max_gen_toks`."""
    gen = spec.generation_kwargs
    if spec.type == "classification":
        raise ValueError(f"{where}: `generation_kwargs` belong to completion and chat tasks; a classification "
                         f"task scores its labels and generates nothing")
    if not isinstance(gen, dict):
        raise ValueError(f"{where}: `generation_kwargs` must be a mapping, e.g. "
                         f"{{until: [\"\\n\\n\"], max_gen_toks: 128}}")
    for key in gen:
        if key not in GENERATION_KEYS:
            raise ValueError(f"{where}: `generation_kwargs.{key}` is not a generation setting"
                             f"{suggest(key, GENERATION_KEYS)}; use {' and '.join(GENERATION_KEYS)} (generation "
                             f"is greedy)")
    until = gen.get("until", [])
    if not isinstance(until, list) or not all(isinstance(x, str) and x for x in until):
        raise ValueError(f"{where}: `generation_kwargs.until: {until!r}` must be a list of non-empty stop "
                         f"strings, e.g. until: [\"\\n\\n\", \"###\"] ([] = no stop string: EOS or max_gen_toks)")
    n = gen.get("max_gen_toks", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: `generation_kwargs.max_gen_toks: {n!r}` must be a positive number of "
                         f"tokens, e.g. max_gen_toks: 128")


def _check_labels(spec: TaskSpec, where: str) -> None:
    labels = spec.labels
    if not isinstance(labels, list) or len(labels) < 2 or len(set(map(str, labels))) != len(labels):
        raise ValueError(f"{where}: `labels` must list two or more distinct classes (lm-eval's doc_to_choice), "
                         f"e.g. labels: [billing, delivery, refund]")
    spec.labels = [str(x) for x in labels]
    for lang, words in (spec.label_words or {}).items():
        if not isinstance(words, dict) or set(map(str, words)) != set(spec.labels):
            have = sorted(map(str, words)) if isinstance(words, dict) else words
            raise ValueError(f"{where}: `label_words.{lang}` must give one word for each label "
                             f"{spec.labels}, got {have}")
        spec.label_words[lang] = {str(k): str(v) for k, v in words.items()}
