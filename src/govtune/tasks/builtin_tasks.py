"""The papers' two benchmarks as tasks: XNLI (classification) and FLORES-200 (translation), each behind the
`Task` interface with the data, prompts and evaluation they always had (their task files are
`govtune/tasks/builtin/*.yaml`). Their rows come from the shipped samples (or `data_dir`) by the study's row
ranges; everything else a study does with them goes through the same calls as a task file's task.

Torch, the evaluators and the curation pipeline are imported inside the methods: a study config names its
tasks before any of them is needed."""

from __future__ import annotations

import random

from govtune.data import FLORES_DEV
from govtune.data.flores import load_flores
from govtune.data.xnli import LABELS, load_xnli
from govtune.text.prompts import flores_training_pair, xnli_training_pair
from govtune.tasks.task import Sample, Task, transferred, validation_sample
from govtune.text.prompts import flores_training_pair, xnli_continuations, xnli_training_pair


def xnli_record_key(record: dict) -> tuple:
    return (record.get("lang"), record.get("id"), record.get("premise"), record.get("hypothesis"))


class XnliTask(Task):
    """XNLI: premise/hypothesis pairs in the study's `languages`; pool rows `xnli_pool_rows`, test rows
    `xnli_eval_rows` (the first `eval_limit` per language)."""

    kind = "classification"
    calibrates = True
    settings_read = ("languages", "train_languages", "data_dir", "xnli_pool_rows", "xnli_eval_rows", "eval_limit",
                     "val_per_language", "robustness", "eval_batch_size")
    curation_dir = None  # its curation cache predates tasks: OUT/curation/<stage>.jsonl

    def _prepare(self, workdir) -> None:
        self._pool: list[dict] | None = None
        self._tests: dict[str, list[dict]] | None = None

    @property
    def units(self) -> list[str]:
        return list(self.settings.languages)

    def planned_units(self, settings):
        return list(settings.languages)

    def pool(self) -> list[dict]:
        """The pool rows of the tuning languages (`train_units`)."""
        if self._pool is None:
            c = self.settings
            self._pool = [r for lang in self.train_units
                          for r in load_xnli(lang, data_dir=c.data_dir, rows=range(*c.xnli_pool_rows))]
        return self._pool

    def test_sets(self) -> dict[str, list[dict]]:
        if self._tests is None:
            c = self.settings
            self._tests = {lang: load_xnli(lang, data_dir=c.data_dir, rows=range(*c.xnli_eval_rows),
                                           limit=c.eval_limit) for lang in c.languages}
        return self._tests

    def sample(self, kept, report, shots, seed) -> Sample:
        """k-shot sample per tuning language (balanced across labels) and a disjoint validation sample."""
        from govtune.governance import sample_kshot  # here: the curation pipeline takes ~1 s to import

        train = sample_kshot(kept, self.train_units, k=shots, seed=seed, report=report)
        val = validation_sample(kept, {xnli_record_key(r) for r in train}, self.train_units,
                                self.settings.val_per_language, seed, xnli_record_key)
        return Sample(train, val, {f"{self.name}_train": len(train), f"{self.name}_val": len(val)})

    def calibration_rows(self, kept, shots, seed):
        """The run's validation rows, or for the base model (shots 0, no curation) as many from the raw
        pool. Pool rows only, so never a test row; of the tuning languages only (`borrowed`)."""
        if shots > 0:
            val = self.sample(kept, None, shots, seed).val
        else:
            val = validation_sample(self.pool(), set(), self.train_units, self.settings.val_per_language, seed,
                                    xnli_record_key)
        return {lang: [r for r in val if r.get("lang") == lang] for lang in self.train_units}

    def training_pair(self, row):
        return xnli_training_pair(row)

    head_labels = LABELS  # the evaluator's class order, which classify_pairs maps a head's columns to

    def head_example(self, row):
        """(premise, hypothesis, class index in LABELS): the row a head trains on, scored as classify_pairs
        scores the test rows."""
        from govtune.text.class_encoding import ClassExample  # here: imports torch

        if row.get("label") not in LABELS:
            raise ValueError(f"XNLI example {row.get('id')} has label {row.get('label')!r}: expected one of {LABELS}")
        return ClassExample(row["premise"], row["hypothesis"], LABELS.index(row["label"]))

    def choices(self, row):
        return list(xnli_continuations(row["lang"])), LABELS.index(row["label"])

    def incontext(self, kept, report, k, seed):
        """For each language the k-shot sample a fine-tuning run with as many shots and the same seed
        trains on; the validation rows (the rest of the curated pool) carry the same demonstrations."""
        # here: it imports the curation package (~1 s)
        from govtune.tasks.incontext import attach

        s = self.sample(kept, report, k, seed)
        demos = transferred({lang: [r for r in s.train if r.get("lang") == lang] for lang in self.train_units},
                            self.units, k, seed)
        tests = attach(self.test_sets(), demos, self.name)
        val = {lang: [{**r, "context": tests[lang][0]["context"]} for r in s.val if r.get("lang") == lang]
               for lang in self.train_units}
        return tests, val

    def evaluate(self, model, tokenizer, tests, *, seed, progress, calibration=None):
        from govtune.evaluation import evaluate_xnli  # here: the evaluators import torch

        c = self.settings
        return evaluate_xnli(model, tokenizer, tests, batch_size=c.eval_batch_size, robustness=c.robustness,
                             seed=seed, progress=progress, calibration=calibration,
                             borrowed=self.borrowed(tests, calibration))

    def intervals(self, predictions):
        from govtune.evaluation.bootstrap import task_intervals  # here: the evaluators import torch

        return task_intervals(self.name, predictions)


def _split_pair(pair: str) -> tuple[str, str]:
    src, tgt = pair.split("-")
    return src, tgt


class FloresTask(Task):
    """FLORES-200 translation in the study's `flores_pairs`: training and demonstration lines from
    `flores_pool_lines`, test lines `flores_eval_lines` (the first `flores_eval_limit` per direction), less
    the lines another task of the study uses (`exclude_lines`). Its pool is not curated (aligned human
    translations)."""

    kind = "translation"
    curates = False
    settings_read = ("flores_pairs", "data_dir", "flores_pool_lines", "flores_eval_lines", "flores_eval_limit",
                     "flores_train_pairs", "eval_batch_size", "max_new_tokens")

    def _prepare(self, workdir) -> None:
        self._tests: dict[str, list[dict]] | None = None
        self.excluded: set[int] = set()  # dev lines another task of the study uses (SIB-200's sentences)

    def exclude_lines(self, corpus: str, lines: set[int]) -> None:
        if corpus == FLORES_DEV:  # the task reads the dev split
            self.excluded |= set(lines)
            self._tests = None

    def _kept(self, bounds: list[int]) -> list[int]:
        return [i for i in range(*bounds) if i not in self.excluded]

    @property
    def units(self) -> list[str]:
        return list(self.settings.flores_pairs)

    def _lines(self, pair: str) -> list[dict]:
        c = self.settings
        return load_flores(*_split_pair(pair), data_dir=c.data_dir, lines=self._kept(c.flores_pool_lines))

    def pool(self) -> list[dict]:
        return [r for p in self.units for r in self._lines(p)]

    def test_sets(self) -> dict[str, list[dict]]:
        if self._tests is None:
            c = self.settings
            self._tests = {p: load_flores(*_split_pair(p), data_dir=c.data_dir, lines=self._kept(c.flores_eval_lines),
                                          limit=c.flores_eval_limit) for p in self.units}
        return self._tests

    def sample(self, kept, report, shots, seed) -> Sample:
        """`flores_train_pairs` (default: shots) pool lines per direction, seeded; no validation rows."""
        n = self.settings.flores_train_pairs or shots
        rng = random.Random(f"flores-{seed}")
        train, counts = [], {}
        for p in self.units:
            lines = self._lines(p)
            chosen = rng.sample(lines, min(n, len(lines)))
            train += chosen
            counts[f"{self.name}_train.{p}"] = len(chosen)
        return Sample(train, [], counts)

    def training_pair(self, row):
        return flores_training_pair(row)

    def incontext(self, kept, report, k, seed):
        # here: it imports the curation package (~1 s)
        from govtune.tasks.incontext import attach, flores_demonstrations

        tests = self.test_sets()
        demos = {p: flores_demonstrations(self._lines(p), rows, k, seed) for p, rows in tests.items()}
        return attach(tests, demos, self.name), None

    def evaluate(self, model, tokenizer, tests, *, seed, progress, calibration=None):
        from govtune.evaluation import evaluate_flores  # here: the evaluators import torch

        c = self.settings
        return evaluate_flores(model, tokenizer, tests, batch_size=c.eval_batch_size,
                               max_new_tokens=c.max_new_tokens, progress=progress)

    def intervals(self, predictions):
        from govtune.evaluation.bootstrap import task_intervals  # here: the evaluators import torch

        return task_intervals(self.name, predictions)
