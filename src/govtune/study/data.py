"""The data of one study: its tasks, prepared once (`govtune.tasks.Task`), their few-shot pools and curated
versions, and each run's (prompt, target) training and validation pairs.

Curation is one explicit step, `curate_study`, run once before any cell: it writes each curation stage's
cache per task in `OUT/curation/` (kept records, dropped records, report), and `StudyData.curated` only
reads that cache. So every cell of a stage, and a resumed study, trains from exactly the same curated pool,
and C2's perplexity cut always scores with the base model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from govtune.atomic import atomic_write_json, atomic_write_jsonl
from govtune.study.eval_sets import study_eval_sets
from govtune.governance import curate
from govtune.results.layout import StudyLayout
from govtune.study.config import StudyConfig
from govtune.tasks.builtin_tasks import xnli_record_key
from govtune.tasks.export import export_task
from govtune.tasks.registry import load_task
from govtune.tasks.task import Task


def prepare_tasks(config: StudyConfig, layout: StudyLayout) -> dict[str, Task]:
    """Every task of the study, loaded and split once, by name, in the config's order."""
    tasks: dict[str, Task] = {}
    for entry in config.tasks:
        task = load_task(entry)
        if task.name in tasks:
            raise ValueError(f"two tasks of the study are named {task.name!r}: give one of them another `name:`")
        tasks[task.name] = task.prepare(config.task_settings(task.name), layout.tasks_dir)
        for stage in (config.curation if task.curates else ()):
            task.check_language_codes(config.curation_config(stage))  # before any curation or model
    exclude_shared_lines(tasks)
    return tasks


def exclude_shared_lines(tasks: dict[str, Task]) -> None:
    """Lines of a shared corpus that one task's rows are (SIB-200's sentences are FLORES-200 dev lines) are
    left out of every other task drawing from that corpus, so no task tests on a sentence another tunes on."""
    for task in tasks.values():
        for corpus, lines in task.reserved_lines().items():
            for other in tasks.values():
                if other is not task:
                    other.exclude_lines(corpus, lines)


class StudyData:
    def __init__(self, config: StudyConfig, layout: StudyLayout, progress: bool = True):
        self.config = config
        self.layout = layout
        self.progress = progress
        self.tasks = prepare_tasks(config, layout)
        self._curated: dict[tuple[str, str], list[dict]] = {}

    @property
    def primary(self) -> Task:
        """The first task whose pool is curated: the one the curation ledger follows."""
        return next(t for t in self.tasks.values() if t.curates)

    def _task(self, task: Task | str | None) -> Task:
        return self.primary if task is None else self.tasks[task] if isinstance(task, str) else task

    def _dir(self, task: Task) -> str | None:
        return task.curation_dir

    # --- the few-shot pools --------------------------------------------------------------------------
    def pool(self, task: Task | str | None = None) -> list[dict]:
        return self._task(task).pool()

    def curated(self, stage: str, task: Task | str | None = None) -> list[dict]:
        """A task's pool after curation `stage` (c0 = as given; or a curation variant's name), as
        `curate_study` cached it."""
        task = self._task(task)
        if (task.name, stage) not in self._curated:
            path = self.layout.curated(stage, self._dir(task))
            if not path.exists():
                raise FileNotFoundError(
                    f"curation stage {stage!r} has not been run in this study ({path} is missing): run the "
                    f"study's curation step first (`govtune run CONFIG --out {self.layout.root} --resume`, or "
                    f"govtune.study.data.curate_study)")
            self._curated[(task.name, stage)] = _read_jsonl(path)
        return self._curated[(task.name, stage)]

    def curation_report(self, stage: str, task: Task | str | None = None) -> dict | None:
        path = self.layout.curation_report(stage, self._dir(self._task(task)))
        return json.loads(path.read_text()) if path.exists() else None

    def curation_dropped(self, stage: str, task: Task | str | None = None) -> list[dict] | None:
        """The records curation `stage` dropped, each with `reason` and `stage`; None if not stored."""
        path = self.layout.dropped(stage, self._dir(self._task(task)))
        return _read_jsonl(path) if path.exists() else None

    def _kept(self, task: Task, stage: str) -> tuple[list[dict] | None, dict | None]:
        if not task.curates or stage == "none":
            return None, None
        return self.curated(stage, task), self.curation_report(stage, task)

    # --- one run's rows and pairs --------------------------------------------------------------------
    def training_examples(self, stage: str, shots: int, seed: int, task: Task | str | None = None
                          ) -> tuple[list[dict], list[dict]]:
        """A task's k-shot sample per language and its disjoint validation sample."""
        task = self._task(task)
        s = task.sample(*self._kept(task, stage), shots, seed)
        return s.train, s.val

    def check_samples(self, draws: Iterable[tuple[str, int]]) -> None:
        """Draw each (curation, shots) sample of the cells about to run, for every task, before any of them
        runs: a language that curation left with fewer than k rows (or none) is refused now, naming the task,
        the language and what removed its rows, not when its cell comes after others have trained. Whether a
        language has k rows does not depend on the seed, so one seed checks them all."""
        seed = self.config.seeds[0]
        for stage, shots in sorted(set(draws)):
            for task in self.tasks.values():
                try:
                    task.sample(*self._kept(task, stage), shots, seed)
                except ValueError as e:
                    raise ValueError(f"task {task.name!r}, curation {stage}, {shots} shots: {e}") from None

    def validation_examples(self, stage: str, shots: int, seed: int, task: Task | str | None = None
                            ) -> dict[str, list[dict]] | None:
        """A task's validation examples per language for temperature scaling (see Task.calibration_rows)."""
        task = self._task(task)
        return task.calibration_rows(self._kept(task, stage)[0], shots, seed)

    def test_sets(self, task: Task | str | None = None) -> dict[str, list[dict]]:
        return self._task(task).test_sets()

    def evaluation_sets(self, task: Task, method_is_incontext: bool, stage: str, shots: int, seed: int
                        ) -> tuple[dict[str, list[dict]], dict[str, list[dict]] | None]:
        """A cell's test rows of a task and its calibration rows: with `incontext_shots` demonstrations in
        every prompt for the in-context baseline."""
        if method_is_incontext:
            return task.incontext(*self._kept(task, stage), self.config.incontext_shots, seed)
        return task.test_sets(), (task.calibration_rows(self._kept(task, stage)[0], shots, seed)
                                  if task.calibrates else None)

    def training_pairs(self, stage: str, shots: int, seed: int, tokenizer=None
                       ) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, int]]:
        """Every task's training and validation pairs, mixed in the config's task order."""
        pairs, val_pairs, counts = [], [], {}
        for task in self.tasks.values():
            if tokenizer is not None:
                task.use_tokenizer(tokenizer)
            s = task.sample(*self._kept(task, stage), shots, seed)
            pairs += [p for r in s.train for p in task.training_pairs(r)]
            val_pairs += [p for r in s.val for p in task.training_pairs(r)]
            counts.update(s.counts)
        return pairs, val_pairs, counts

    def head_examples(self, stage: str, shots: int, seed: int) -> tuple[list, list, dict[str, int]]:
        """Every task's training and validation rows as (premise, hypothesis, class) rows for a
        sequence-classification head (`head: classifier`): the same samples `training_pairs` writes as
        prompts, in the same order."""
        train, val, counts = [], [], {}
        for task in self.tasks.values():
            s = task.sample(*self._kept(task, stage), shots, seed)
            train += [task.head_example(r) for r in s.train]
            val += [task.head_example(r) for r in s.val]
            counts.update(s.counts)
        return train, val, counts

    def head_labels(self) -> tuple[str, ...]:
        """The classes of the study's head: its tasks', which must agree (a head study is XNLI alone)."""
        labels = {task.head_labels for task in self.tasks.values()}
        if len(labels) != 1 or not next(iter(labels)):
            raise ValueError(f"the study's tasks ({', '.join(self.tasks)}) do not share one set of head classes: "
                             f"head: classifier is for XNLI alone")
        return next(iter(labels))


def curate_study(data: StudyData, stages: Iterable[str], model_loader: Callable) -> list[str]:
    """Curate each of `stages` not cached yet for every task that curates, before any cell runs; returns
    the stages it curated (of any task). The only writer of `OUT/curation/`. When a stage runs C2's
    perplexity cut, the base model (the model being tuned, from `model_loader`) is loaded once for all of
    them and freed afterwards."""
    config, layout = data.config, data.layout
    todo = [(task, s) for task in data.tasks.values() if task.curates
            for s in sorted(set(stages)) if not layout.curated(s, data._dir(task)).exists()]
    if not todo:
        return []
    # Every evaluation set of the study, loaded before any curation or model (an lm-eval task that cannot be
    # loaded here fails now), checked against every pool (decontamination).
    eval_sets = study_eval_sets(data.tasks, config)
    needs_ref = any("perplexity" in config.curation_config(s).steps(config.curation_stage(s)) for _, s in todo)
    model, tokenizer = model_loader() if needs_ref else (None, None)
    for task, stage in todo:
        where = data._dir(task)
        options = task.curation_config(config.curation_config(stage))  # `langid: false`: no language ID
        # the tuning languages' pool (an evaluation-only language has none); protected: every evaluated one's rows
        result = curate(task.pool(), task.train_units, stage=config.curation_stage(stage),
                        reference_model=model, reference_tokenizer=tokenizer, protected=task.protected(),
                        config=options, progress=data.progress, eval_sets=eval_sets)
        atomic_write_json(layout.curation_report(stage, where), result.report)
        atomic_write_jsonl(layout.dropped(stage, where), result.dropped)
        atomic_write_jsonl(layout.curated(stage, where), list(result.kept))  # last: marks the stage done
    del model, tokenizer
    return sorted({s for _, s in todo})


def export_study(data: StudyData, stages: Iterable[str]) -> None:
    """Each task's splits, its train split as each curation stage kept it, as TRL JSONL and an lm-eval task
    YAML: OUT/export/<task>/<stage>/ (a task that does not curate: OUT/export/<task>/)."""
    for task in data.tasks.values():
        if not task.curates:
            export_task(task, data.layout.export_dir / task.name)
            continue
        for stage in sorted(set(stages)):
            export_task(task, data.layout.export_dir / task.name / stage, data.curated(stage, task))


def record_key(record: dict) -> tuple:
    return xnli_record_key(record)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
