"""Reading a study config: the YAML file, then `key=value` overrides from the command line, every value typed
by the schema (govtune.study.config.StudyConfig) and every unknown key named with the closest valid one."""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from govtune.builtin_configs import resolve_config

from govtune.study.config import FIELDS, PER_METHOD_KEYS, StudyConfig, _default, _unknown_key
from govtune.tasks.registry import is_task_file, task_spec


def _coerce(name: str, value: Any) -> Any:
    """Type a YAML or command-line value by the schema: '0,1' -> [0, 1] for list[int], and so on."""
    hint = typing.get_type_hints(StudyConfig)[name]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    optional = origin in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "")):
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if origin is list:
            if isinstance(value, str) and value.strip().startswith("["):  # methods=[lora, boft], as in YAML
                value = yaml.safe_load(value)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            elif not isinstance(value, (list, tuple)):
                value = [value]
            return [_coerce_scalar(args[0], v) for v in value]
        if origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise TypeError
            if name in PER_METHOD_KEYS:  # lr_per_method: {lora: 1e-4} (YAML reads 1e-4 as a string)
                return {k: _coerce_scalar(args[1], v) for k, v in value.items()}
            return dict(value)
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise TypeError
            return bool(value)
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise TypeError
        typed = hint(value)
    except (TypeError, ValueError):
        raise ValueError(f"config key {name!r} expects {_type_name(hint)}, got {value!r}") from None
    if hint is float and not math.isfinite(typed):
        raise ValueError(f"config key {name!r} must be a finite number, got {value!r}; e.g. "
                         f"{name}={_default(name)}")
    return typed


def _coerce_scalar(kind, v):
    if kind is int and isinstance(v, float) and not v.is_integer():
        raise TypeError
    return kind(v)


def _type_name(hint) -> str:
    if typing.get_args(hint):
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`['methods=lora,hybrid', 'adapter.r=8']` -> {'methods': 'lora,hybrid', 'adapter': {'r': 8}}."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value (e.g. seeds=0,1 or adapter.r=8)")
        key, raw = item.split("=", 1)
        key = key.strip()
        top, _, sub = key.partition(".")
        if top not in FIELDS:
            raise _unknown_key(top, "the command line")
        if sub:
            if typing.get_origin(typing.get_type_hints(StudyConfig)[top]) is not dict:
                raise ValueError(f"{top!r} has no sub-keys; write {top}=VALUE")
            out.setdefault(top, {})[sub] = yaml.safe_load(raw)
        else:
            out[top] = raw
    return out


def build_config(raw: dict[str, Any], overrides: dict[str, Any] | None = None,
                 where: str = "the config file") -> StudyConfig:
    raw = dict(raw or {})
    for key in raw:
        if key not in FIELDS:
            raise _unknown_key(key, where)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}  # adapter.r=8 updates one option, keeps the rest
        else:
            raw[key] = value
    _inline_task_options(raw)
    return StudyConfig(**{k: _coerce(k, v) for k, v in raw.items()})


def _inline_task_options(raw: dict[str, Any]) -> None:
    """`tasks: [xnli, {sib200: {languages: [yor_Latn]}}]`: an entry with settings is the task, its settings
    under `task_options` (which, and the command line, win over them), so both forms are one study (one hash)."""
    tasks = raw.get("tasks")
    if not isinstance(tasks, list) or not any(isinstance(t, dict) for t in tasks):
        return
    entries, inline = [], {}
    for t in tasks:
        if not isinstance(t, dict):
            entries.append(t)
            continue
        if len(t) != 1 or not isinstance(next(iter(t.values())), dict):
            raise ValueError(f"tasks: entry {t!r} must be a task or one task with its settings, e.g. "
                             f"{{sib200: {{languages: [yor_Latn], eval_limit: 20}}}}")
        (entry, options), = t.items()
        entries.append(entry)
        inline[task_spec(entry).name] = options
    given = raw.get("task_options") or {}
    if not isinstance(given, dict):
        raise ValueError(f"config key 'task_options' expects a mapping of task names to settings, got {given!r}")
    merged = {name: dict(options) for name, options in inline.items()}
    for key, value in given.items():  # dotted keys (task_options.xnli.eval_limit=20) stay for StudyConfig
        if key in merged and isinstance(value, dict):
            merged[key].update(value)
        else:
            merged[key] = value
    raw["tasks"], raw["task_options"] = entries, merged


def load_config(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    path = resolve_config(path)  # a file, or a shipped config's name (demo, cpu_method_study, paper/flores)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(raw).__name__}")
    overrides = parse_overrides(overrides or [])
    _task_paths_from(path.parent, raw, overrides)
    return build_config(raw, overrides, where=str(path))


def _task_paths_from(config_dir: Path, raw: dict, overrides: dict) -> None:
    """A task file named relative to the config file (and not to the working directory) is read from there."""
    for where in (raw, overrides):
        tasks = where.get("tasks")
        if isinstance(tasks, str):
            tasks = [t.strip() for t in tasks.split(",") if t.strip()]
        if isinstance(tasks, list):
            where["tasks"] = [{_near(config_dir, k): v for k, v in t.items()} if isinstance(t, dict)
                              else _near(config_dir, t) for t in tasks]


def _near(config_dir: Path, t):
    return (str(config_dir / t) if is_task_file(t) and not Path(t).expanduser().exists()
            and (config_dir / t).exists() else t)
