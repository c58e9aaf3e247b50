"""The study config: one YAML file (every key has a default), `key=value` overrides typed by the schema
(read by govtune.study.loading: load_config, build_config, parse_overrides).

A study is the grid methods x seeds x shots x curation; every other key is a setting shared by all of its
cells. The settings (not the grid axes) define the study's hash, so `--resume` can extend a finished study
with new seeds or methods while refusing to mix results produced under different settings.

A dataclass with its own typing of values, not a pydantic model: pydantic reports an unknown key without
the closest valid one, does not read `seeds=0,1` or `eval_limit=null` from the command line without
validators of its own, and its error text would need rewriting to name the key and the expected type;
the cross-field checks below would stay as they are. (pydantic is no dependency of govtune either.)"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tempfile
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from govtune.constants import (BASE, BASELINES, CURATION_STAGES, INCONTEXT, LR_SCHEDULES, METHODS, MIXED_PRECISION,
                               check_lr_branches)
from govtune.data import FLORES_EVAL_LINES, FLORES_POOL_LINES, XNLI_EVAL_ROWS, XNLI_POOL_ROWS
from govtune.data.papers import classifies
from govtune.languages import normalize_or_keep
from govtune.study.resources import check_cell_resources
from govtune.tasks.registry import is_task_file, make_task, task_spec
from govtune.tasks.settings import NAMES as TASK_SETTINGS, TaskSettings, task_options
from govtune.tasks.settings import check as check_task_settings

# The untuned baselines (BASE, INCONTEXT, BASELINES) and CURATION_STAGES live in govtune.constants (the report
# reads them without the runner); imported above, they stay names of this module too.
# The adapter methods (govtune.adapters.AdapterConfig).
ADAPTER_METHODS = METHODS
SCHEDULES = LR_SCHEDULES

# The grid axes: each combination is one run. Everything else is a shared setting (hashed).
GRID_KEYS = ("methods", "seeds", "shots", "curation")
# Settings added after studies existed: left out of the hash while at their defaults, so a study run
# before they existed still resumes.
LATER_SETTINGS = ("task_options", "lm_eval_tasks", "lm_eval_limit", "lr_branches", "quantize", "head", "cell_resources",
                  "lm_eval_include_path", "lm_eval_lang_map", "lm_eval_calibrate_on", "lm_eval_per_language",
                  "train_languages")
# How the grid is run, not what it computes: never hashed (a study may resume with other retries).
RUNNER_SETTINGS = ("cell_retries",)
QUANTIZE_SCHEMES = ("int8", "int4", "nf4")  # govtune.quantization.SCHEMES (torch-free here)
# What a trained cell classifies with: the label words' log-likelihood under the LM head, or a
# sequence-classification head trained with the adapter (govtune.heads).
HEADS = ("lm", "classifier")


@dataclass
class StudyConfig:
    """Every field has a default; `configs/demo.yaml` is the embedded default study. The keys, by what they set
    (flat in the YAML, as they always were):

    - the study: name; the grid: methods, seeds, shots, curation (one run per combination; not hashed)
    - the model: model, quantize, head
    - the tasks: tasks, task_options, and every task's settings (govtune.tasks.settings.TaskSettings, which a
      task's task_options entry overrides): languages, train_languages, flores_pairs, data_dir, xnli_pool_rows,
      xnli_eval_rows, flores_pool_lines, flores_eval_lines, eval_limit, flores_eval_limit, flores_train_pairs,
      val_per_language, robustness, eval_batch_size, max_new_tokens
    - general benchmarks: lm_eval_tasks, lm_eval_limit, lm_eval_include_path, lm_eval_lang_map,
      lm_eval_calibrate_on, lm_eval_per_language
    - adapters: adapter, variants, calibration_batches; the in-context baseline: incontext_shots
    - curation: curation_options, curation_variants
    - training: epochs, lr, lr_per_method, lr_branches, batch_size, grad_accum, weight_decay, warmup_ratio,
      schedule, max_grad_norm, max_length, mixed_precision, keep_checkpoints
    - running the grid: cell_resources, cell_retries"""

    name: str = "study"
    model: str = "gemma3-270m"  # hub name, local path, an offline model (gemma3-270m, smollm2-135m-instruct), tiny-llama
    # Train over a quantised base: int8 / int4 weight-only (torchao; int4 needs a CUDA GPU) or nf4
    # (bitsandbytes), applied to the frozen linear layers where each cell loads the model; None = float.
    quantize: str | None = None
    methods: list[str] = field(default_factory=lambda: ["lora", "boft", "lora_ga", "hybrid"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    shots: list[int] = field(default_factory=lambda: [32])  # per language; 0 = the base model, untuned
    curation: list[str] = field(default_factory=lambda: ["c2"])
    # built-in tasks (govtune/tasks/builtin/: xnli, flores) and task files (docs/tasks.md), in this order
    tasks: list[str] = field(default_factory=lambda: ["xnli", "flores"])
    # A task's own settings over the flat keys below (which are every task's): {task name: {key: value}}
    # with keys of govtune.tasks.settings.TaskSettings, e.g. {sib200: {languages: [yor_Latn], eval_limit: 20}}.
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    languages: list[str] = field(default_factory=lambda: ["en", "zh", "hi"])  # XNLI languages
    # Cross-lingual transfer: the classification tasks tune on these (a subset of their languages) and evaluate
    # on all of their languages (govtune.tasks.task); None = tune on every evaluated language.
    train_languages: list[str] | None = None
    flores_pairs: list[str] = field(default_factory=lambda: ["en-zh", "en-es"])
    data_dir: str | None = None  # None = the XNLI/FLORES samples shipped in govtune.data
    # [start, stop) row ranges: the few-shot pool and the evaluation set never share a row (XNLI and
    # FLORES rows are translations of each other across languages). Defaults: govtune.data's split.
    xnli_pool_rows: list[int] = field(default_factory=lambda: _bounds(XNLI_POOL_ROWS))
    xnli_eval_rows: list[int] = field(default_factory=lambda: _bounds(XNLI_EVAL_ROWS))
    flores_pool_lines: list[int] = field(default_factory=lambda: _bounds(FLORES_POOL_LINES))
    flores_eval_lines: list[int] = field(default_factory=lambda: _bounds(FLORES_EVAL_LINES))
    # Evaluation budget: XNLI examples per language and FLORES sentences per direction (None = all).
    eval_limit: int | None = None
    flores_eval_limit: int | None = 32
    robustness: bool = True
    eval_batch_size: int = 8
    # General benchmarks (the companion paper's GLUE/GSM8K-style tables): lm-evaluation-harness task or
    # group names run on every cell's adapted model after training (offline: govtune-xnli), examples per
    # task (None = all).
    lm_eval_tasks: list[str] = field(default_factory=list)
    lm_eval_limit: int | None = None
    # Directories of lm-eval task YAMLs of your own (lm-eval's include_path), for lm_eval_tasks that are not
    # govtune's or lm-eval's built-in ones; curation also checks the pools against their documents.
    lm_eval_include_path: list[str] = field(default_factory=list)
    # govtune's per-language analysis of the multiple-choice lm-eval tasks (govtune.evaluation.lm_eval_analysis):
    # languages of tasks whose names end in none ({task: code}), the tasks (one per language, evaluated too)
    # that fit the temperatures, and a switch for studies whose tasks have no language.
    lm_eval_lang_map: dict[str, str] = field(default_factory=dict)
    lm_eval_calibrate_on: list[str] = field(default_factory=list)
    lm_eval_per_language: bool = True
    max_new_tokens: int = 128
    # `lm`: train the adapter on the label words and score them (verbalised log-likelihood); `classifier`: train
    # a sequence-classification head on the backbone with the adapter, on the same rows, and score its
    # softmax (XNLI only; the base model and the in-context baseline stay scored by their label words).
    head: str = "lm"
    # Training data: k XNLI pool examples per language (k = shots) plus, when flores is a task,
    # flores_train_pairs FLORES pool sentences per direction (None = k).
    flores_train_pairs: int | None = None
    val_per_language: int = 8  # validation examples per language, from the curated pool minus the k shots
    # The in-context baseline: one extra run of the untuned model with this many examples per language
    # (direction) written before every test prompt (the k-shot sample of the last curation stage listed,
    # seed = the first seed); 0 = no such run.
    incontext_shots: int = 0
    adapter: dict[str, Any] = field(default_factory=dict)  # AdapterConfig options: r, alpha, target_modules...
    # Named method variants, e.g. {"hybrid_fixed50": {"method": "hybrid", <AdapterConfig options>}}.
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration_batches: int = 4  # batches for the LoRA-GA / hybrid gradient estimate
    curation_options: dict[str, Any] = field(default_factory=dict)  # passed to govtune.governance.curate
    # Named curation variants for the `curation` axis, e.g. {"c2_no_ppl": {"stage": "c2", "perplexity": false}}:
    # a stage plus CurationConfig options over curation_options (a step set to false is left out).
    curation_variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Optimisation.
    epochs: int = 3
    lr: float = 2e-4
    lr_per_method: dict[str, float] = field(default_factory=dict)
    # The hybrid's branches at rates of their own, e.g. {lora_ga: 2.0e-5, boft: 5.0e-4}, for every method
    # whose adapter is the hybrid; a branch left out trains at the method's rate (lr_for).
    lr_branches: dict[str, float] = field(default_factory=dict)
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    max_length: int = 256
    mixed_precision: str = "auto"
    keep_checkpoints: bool = True
    # What each cell may use (govtune.study.resources): {num_cpus, num_gpus, memory}; the Ray executor asks
    # for it per cell, and num_cpus fixes the cell's torch threads under every executor.
    cell_resources: dict[str, Any] = field(default_factory=dict)
    # Ray executor: attempts after the first for a cell whose worker died (each resumes from the cell's
    # last epoch checkpoint) before the cell is marked failed.
    cell_retries: int = 2

    def __post_init__(self) -> None:
        # Every check runs here, before a study touches its output directory: a bad value anywhere (nested
        # adapter or curation options included) fails before curation or any cell starts.
        self._check_grid()
        self._check_data()
        self._check_training()
        self._check_options()
        self._check_head()
        self.cell_resources = check_cell_resources(self.cell_resources)
        if isinstance(self.cell_retries, bool) or not isinstance(self.cell_retries, int) or self.cell_retries < 0:
            raise ValueError(f"cell_retries must be a whole number >= 0, got {self.cell_retries!r}")

    def _check_grid(self) -> None:
        if self.quantize is not None and self.quantize not in QUANTIZE_SCHEMES:
            raise ValueError(f"quantize: unknown scheme {self.quantize!r}; use one of {', '.join(QUANTIZE_SCHEMES)} "
                             f"or leave it out for a float base")
        if self.quantize is not None and "full" in self.methods:
            raise ValueError(f"methods: 'full' trains every weight and cannot run over a quantised base "
                             f"(quantize: {self.quantize}); drop 'full' or quantize")
        if not self.methods:
            raise ValueError("methods is empty: list at least one of " + ", ".join(ADAPTER_METHODS))
        known = set(ADAPTER_METHODS) | set(self.variants)
        for m in self.methods:
            if m not in known:
                raise ValueError(f"unknown method {m!r}{_suggest(m, known)}; methods are "
                                 f"{', '.join(ADAPTER_METHODS)} or a name defined under `variants`")
        for name, opts in self.variants.items():
            if not isinstance(opts, dict) or opts.get("method") not in ADAPTER_METHODS:
                got = opts.get("method") if isinstance(opts, dict) else None
                hint = _suggest(got, ADAPTER_METHODS) if isinstance(got, str) else ""
                raise ValueError(f"variant {name!r} needs `method:` set to one of {', '.join(ADAPTER_METHODS)}"
                                 + (f", got {got!r}{hint}" if got is not None else ""))
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. seeds=0")
        if any(k < 0 for k in self.shots) or not self.shots:
            raise ValueError(f"shots must be a non-empty list of counts >= 0 (0 = base model), got {self.shots}")
        for name, opts in self.curation_variants.items():
            if name in CURATION_STAGES or name in ("none", "base") or not name.replace("_", "").isalnum():
                raise ValueError(f"curation variant name {name!r}: use letters, digits and _, other than "
                                 f"{', '.join(CURATION_STAGES)}, e.g. c2_no_ppl")
            if not isinstance(opts, dict) or opts.get("stage") not in CURATION_STAGES:
                got = opts.get("stage") if isinstance(opts, dict) else None
                found = (f"is {opts!r}, not a mapping" if not isinstance(opts, dict) else "has no `stage:`"
                         if got is None else f"has stage {got!r}{_suggest(str(got), CURATION_STAGES)}")
                raise ValueError(f"curation variant {name!r} {found}; set `stage:` to one of "
                                 f"{', '.join(CURATION_STAGES)}, e.g. {{stage: c2, perplexity: false}}")
        curations = (*CURATION_STAGES, *self.curation_variants)
        for name in self.curation:
            if name not in curations:
                raise ValueError(f"unknown curation stage {name!r}{_suggest(name, curations)}; use a stage "
                                 f"({', '.join(CURATION_STAGES)}) or a name defined under `curation_variants`")
        if len(set(self.curation)) != len(self.curation):
            raise ValueError(f"curation lists a name twice: {self.curation}")
        for name in ("c2", *self.curation_variants):  # every CurationConfig, used or not: bad options fail now
            self.curation_config(name)
        if not self.curation:
            raise ValueError("curation is empty: use e.g. curation=c2 (c0 = the raw pool)")

    def _check_data(self) -> None:
        if not self.tasks:
            raise ValueError("tasks is empty: list built-in tasks (xnli, flores) and/or task files, e.g. "
                             "tasks=xnli,examples/intents/intents.yaml")

        specs = [task_spec(t) for t in self.tasks]
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks {self.tasks} name the same task twice ({names}): give each task file its own "
                             f"`name:`")
        # Internal form (govtune.languages: `eng`, `eng_Latn` -> `en`), once here: results stay keyed as before.
        self.languages = [normalize_or_keep(lang) if isinstance(lang, str) else lang for lang in self.languages]
        if self.train_languages is not None:
            self.train_languages = [normalize_or_keep(x) if isinstance(x, str) else x for x in self.train_languages]
        check_task_settings(self.task_settings(), builtin="xnli")  # the flat keys: every task's defaults
        for key in ("epochs", "batch_size", "grad_accum", "max_length", "eval_batch_size", "max_new_tokens",
                    "calibration_batches"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.lm_eval_limit is not None and self.lm_eval_limit < 1:
            raise ValueError(f"lm_eval_limit must be >= 1 or null (all), got {self.lm_eval_limit}")
        if self.incontext_shots < 0:
            raise ValueError(f"incontext_shots must be >= 0 (0 = no in-context baseline), got {self.incontext_shots}")
        tasks = {spec.name: make_task(spec) for spec in specs}
        self.task_options = task_options(self.task_options, tasks)
        self._check_train_languages(tasks)

    def _check_train_languages(self, tasks: dict) -> None:
        """train_languages (flat, or a task's) within each reading task's languages, checked now where the
        languages are known before the data is read (else when the task is prepared)."""
        reading = [t for t in tasks.values() if "train_languages" in t.settings_read]
        if self.train_languages is not None and not reading:
            raise ValueError(f"train_languages is set but no task of the study reads it (tasks: "
                             f"{', '.join(tasks)}): it is for classification tasks (xnli, sib200, task files); "
                             f"drop it")
        for task in reading:
            task.check_train_languages(settings=self.task_settings(task.name))

    def _check_training(self) -> None:
        learned = [m for m in self.methods if self.adapter_options(m).get("method") == "hybrid"
                   and self.adapter_options(m).get("lam_schedule") == "learned"]
        if learned and self.val_per_language == 0:
            raise ValueError(f"{', '.join(learned)} use lam_schedule 'learned', which trains the mixer on "
                             f"validation batches, but val_per_language is 0: set val_per_language >= 1 "
                             f"(e.g. 8), or drop those methods")
        _check_positive("lr", self.lr)
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, or null for no clipping, got {self.max_grad_norm}")
        self.lr_branches = check_lr_branches(self.lr_branches)
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}{_suggest(self.schedule, SCHEDULES)} is not one of "
                             f"{', '.join(SCHEDULES)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision {self.mixed_precision!r}{_suggest(self.mixed_precision, MIXED_PRECISION)} "
                             f"is not one of {', '.join(MIXED_PRECISION)}")
        per_language = self.lm_eval_tasks and self.lm_eval_per_language
        if (self.lm_eval_calibrate_on or self.lm_eval_lang_map) and not per_language:
            raise ValueError("lm_eval_calibrate_on and lm_eval_lang_map serve the per-language analysis of "
                             "lm_eval_tasks: give lm_eval_tasks (and keep lm_eval_per_language true), or drop them")
        if self.lm_eval_tasks:  # an unknown name fails here, not after the first cell has trained
            # here: the govtune.evaluation package imports torch, which a config check does not need
            from govtune.evaluation.lm_eval_harness import check_languages, task_manager

            with tempfile.TemporaryDirectory() as tmp:
                manager = task_manager(self.lm_eval_run_tasks(), tmp, self.lm_eval_include_path)
                if self.lm_eval_per_language:
                    check_languages(self.lm_eval_run_tasks(), manager, self.lm_eval_lang_map,
                                    self.lm_eval_calibrate_on)

    def lm_eval_run_tasks(self) -> list[str]:
        """The lm-eval tasks every cell runs: the scored ones, then the calibration ones."""
        return self.lm_eval_tasks + [t for t in self.lm_eval_calibrate_on if t not in self.lm_eval_tasks]

    def _check_options(self) -> None:
        """The nested options: per-method maps keyed by method or variant names, and the AdapterConfig of
        every method and variant, built now (the cells build the same ones)."""
        methods = (*ADAPTER_METHODS, *self.variants)
        for key in PER_METHOD_KEYS:
            for name, value in getattr(self, key).items():
                if name not in methods:
                    raise ValueError(f"{key}: unknown method {name!r}{_suggest(name, methods)}; its keys are "
                                     f"methods ({', '.join(ADAPTER_METHODS)}) or names defined under `variants`")
                _check_positive(f"{key}.{name}", value)
        for name in dict.fromkeys((*self.methods, *self.variants)):
            where = f"variants.{name}" if name in self.variants else "adapter"
            _adapter_config(self.adapter_options(name), where)

    def _check_head(self) -> None:
        """`head: classifier` needs tasks a head classifies and methods that do not start from the LM loss."""
        if self.head not in HEADS:
            raise ValueError(f"head: unknown value {self.head!r}{_suggest(self.head, HEADS)}; use lm (score the "
                             f"label words under the language-model head, the default) or classifier (train a "
                             f"sequence-classification head with the adapter; XNLI only)")
        if self.head == "lm":
            return
        from govtune.adapters.registry import GRADIENT_INIT  # torch: as _check_options' AdapterConfig

        others = [t for t in self.tasks if not classifies(task_spec(t).builtin or "")]
        if others:
            raise ValueError(f"head: classifier trains and scores a head on XNLI's three classes, and XNLI's "
                             f"evaluator alone scores a head; tasks also lists {', '.join(others)}: use "
                             f"tasks=xnli for the study with the head (its other tasks in a head: lm study), "
                             f"or head: lm")
        if self.lm_eval_tasks:
            raise ValueError(f"head: classifier replaces the language-model head the lm_eval_tasks "
                             f"({', '.join(self.lm_eval_tasks)}) score with: drop lm_eval_tasks, or use head: lm")
        for name in self.methods:
            method = self.adapter_options(name).get("method")
            if method in GRADIENT_INIT:
                raise ValueError(f"head: classifier cannot train method {name!r}: {method} initialises its "
                                 f"adapter from the gradient of the language-model loss on the label words, "
                                 f"which a head does not train on; drop {name} (e.g. methods=lora,boft), or "
                                 f"use head: lm")
            if method == "full":
                raise ValueError(f"head: classifier trains an adapter and the head over a frozen backbone, and "
                                 f"method {name!r} trains every weight instead: drop it, or use head: lm")

    # --- derived -------------------------------------------------------------------------------------
    def task_settings(self, task: str | None = None) -> TaskSettings:
        """The settings the task named `task` reads: the study's flat keys, its `task_options` over them."""
        flat = {name: getattr(self, name) for name in TASK_SETTINGS}
        return TaskSettings(**{**flat, **self.task_options.get(task, {})})

    def adapter_options(self, method: str) -> dict[str, Any]:
        """AdapterConfig keyword arguments for a method name or a variant."""
        opts = dict(self.adapter)
        if method in self.variants:
            opts.update(self.variants[method])
        else:
            opts["method"] = method
        return opts

    def curation_stage(self, name: str) -> str:
        """The stage (c0, c1, c2) a curation name runs: itself, or its variant's `stage`."""
        return self.curation_variants[name]["stage"] if name in self.curation_variants else name

    def curation_config(self, name: str):
        """The govtune.governance.CurationConfig of a curation name: curation_options, then the variant's
        options over them (a nested section is updated key by key)."""
        from govtune.governance.config import curation_config  # numpy: `import govtune.study` stays quick

        opts = {k: dict(v) if isinstance(v, dict) else v for k, v in self.curation_options.items()}
        for key, value in self.curation_variants.get(name, {}).items():
            if key == "stage":
                continue
            if isinstance(value, dict) and isinstance(opts.get(key), dict):
                opts[key].update(value)
            else:
                opts[key] = value
        where = f"curation_variants.{name}" if name in self.curation_variants else "curation_options"
        return curation_config(opts, where)

    def lr_for(self, method: str) -> float:
        base = self.variants.get(method, {}).get("method", method)
        return self.lr_per_method.get(method, self.lr_per_method.get(base, self.lr))

    def train_config(self, method: str, seed: int, progress: bool = True):
        """The govtune.training.TrainConfig of one cell: every study setting of the same name (epochs,
        batch_size, schedule, ...), the method's learning rate and the cell's seed. It resumes from the
        cell's last epoch checkpoint, kept when `keep_checkpoints`. A hybrid method also gets `lr_branches`."""
        from govtune.training import TrainConfig  # torch: only when a cell trains, the config stays light

        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig) if f.name in FIELDS}
        hybrid = self.adapter_options(method).get("method") == "hybrid"
        return TrainConfig(**{**shared, "lr": self.lr_for(method), "seed": seed,
                              "lr_branches": dict(self.lr_branches) if hybrid and self.lr_branches else None,
                              "checkpoints": self.keep_checkpoints, "resume": True, "progress": progress})

    def settings(self) -> dict[str, Any]:
        """Everything but the grid axes: what every cell shares and the study hash covers."""
        d = dataclasses.asdict(self)
        for k in GRID_KEYS + RUNNER_SETTINGS + ("name",):
            d.pop(k)
        for k in LATER_SETTINGS:
            if d[k] == _default(k):
                d.pop(k)
        if self.task_files():  # only with task files: a study of the built-in tasks keeps its hash
            d["task_files"] = self.task_files()
        return d

    def task_files(self) -> dict[str, str]:
        """sha256 of each task file the study names (built-in names excluded): part of the settings, so a
        changed task file is a different study."""
        return {t: hashlib.sha256(Path(t).expanduser().read_bytes()).hexdigest()[:16]
                for t in self.tasks if is_task_file(t)}

    def settings_hash(self) -> str:
        blob = json.dumps(self.settings(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(StudyConfig)}


# Maps keyed by method or variant name, whose keys are checked against the methods and variants.
PER_METHOD_KEYS = ("lr_per_method",)


def _check_positive(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{key} must be a finite number > 0, got {value!r}; e.g. {key}=0.0002")


def _adapter_config(options: dict[str, Any], where: str):
    """Build the AdapterConfig a cell will build, saying where a bad option sits (`adapter` or
    `variants.NAME`) and the closest valid option name."""
    from govtune.adapters.config import AdapterConfig  # torch (via govtune.adapters): only when a config is built

    known = {f.name for f in dataclasses.fields(AdapterConfig)}
    for key in options:
        if key not in known:
            raise ValueError(f"{where}: unknown adapter option {key!r}{_suggest(key, known)}; "
                             f"options are {', '.join(sorted(known))}")
    try:
        return AdapterConfig(**options)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def _bounds(rows: range) -> list[int]:
    return [rows.start, rows.stop]


def _default(name: str) -> Any:
    f = FIELDS[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _suggest(key: str, options) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_key(key: str, where: str) -> ValueError:
    return ValueError(f"unknown config key {key!r} in {where}{_suggest(key, FIELDS)}; "
                      f"valid keys: {', '.join(FIELDS)}")
