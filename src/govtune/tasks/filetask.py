"""What every task read from a task file shares: its rows and splits, the curation records of its pool, and
the k-shot draw. The types differ only in prompts and evaluation (classification.py, completion.py)."""

from __future__ import annotations

from pathlib import Path

from govtune.tasks.rows import read_table, to_rows
from govtune.tasks.spec import SPLITS, TaskSpec
from govtune.tasks.splits import carved_splits, check_languages, check_leakage, input_key
from govtune.tasks.task import Sample, Task, limited, per_language, transferred, validation_sample

# Curation judges texts; a task's label is the task's business (curation's own `label` means an XNLI
# class), so the row travels under this key and comes back unchanged.
ROW = "task_row"
LABEL = "task_label"


def row_key(record: dict) -> str:
    return record.get("id") or record[ROW]["id"]


def load_splits(spec: TaskSpec, workdir: Path | None, train_langs: list[str] | None = None) -> dict[str, list[dict]]:
    """The rows of each split: from `splits:` files, or carved from the data (written to
    `workdir/<name>.splits.json`), then checked for empty languages and leakage. `train_langs`: the languages
    tuned on (None: all), the only ones that need train rows (an evaluation-only language needs test rows)."""
    if spec.splits:
        splits = {s: to_rows(spec, read_table(spec, spec.splits[s]), f"split {s!r}") if s in spec.splits else []
                  for s in SPLITS}
        if not splits["train"]:
            raise ValueError(f"{spec.where('splits')}: no train split: give `splits.train` (the few-shot pool)")
    else:
        source = "train" if spec.dataset else spec.data_files
        rows = to_rows(spec, read_table(spec, source), str(spec.data_files or spec.dataset))
        path = None if workdir is None else Path(workdir) / f"{spec.name}.splits.json"
        splits = carved_splits(spec, rows, path)
    if spec.languages:
        splits = {s: [r for r in rows if r["lang"] in spec.languages] for s, rows in splits.items()}
    langs = spec.languages or sorted({r["lang"] for r in splits["train"]} | {r["lang"] for r in splits["test"]})
    check_languages(spec.name, splits, langs, "after splitting", train_langs)
    check_leakage(spec.name, splits)
    return splits


class FileTask(Task):
    """A task file's task: rows from its data, splits fixed once, the few-shot pool = its train split."""

    def _prepare(self, workdir) -> None:
        self.splits = load_splits(self.spec, workdir, self._train_languages(self.settings))
        # every language with train or test rows (an evaluation-only language may have test rows alone)
        self._langs = self.spec.languages or sorted({r["lang"] for s in ("train", "test") for r in self.splits[s]})

    @property
    def units(self) -> list[str]:
        return list(self._langs)

    def curation_text(self, row: dict) -> str:
        return input_key(row)

    def to_record(self, row: dict) -> dict:
        """A row as a curation record: its text to judge, its language and id, the row itself carried along."""
        rec = {"text": self._text(row), "lang": row["lang"], "id": row["id"], ROW: row}
        if "label" in row:
            rec[LABEL] = row["label"]
        return rec

    def _text(self, row: dict) -> str:
        if "messages" in row:
            return "\n".join(m["content"] for m in row["messages"])
        if "prompt" in row:
            return f"{row['prompt']}\n{row['completion']}"
        return "\n".join(str(row[f]) for f in ("text", "text_pair") if row.get(f))

    def planned_units(self, settings):
        return self.spec.languages  # None: the data's languages, checked once it is read

    def pool(self) -> list[dict]:
        """The train split of the tuning languages (`train_units`): an evaluation-only language has no pool."""
        tuned = set(self.train_units)
        return [self.to_record(r) for r in self.splits["train"] if r["lang"] in tuned]

    def validation_rows(self) -> list[dict]:
        """The validation split's rows of the tuning languages (empty: the task has no validation split)."""
        tuned = set(self.train_units)
        return [r for r in self.splits["validation"] if r["lang"] in tuned]

    def protected(self) -> list[dict]:
        return [self.to_record(r) for s in ("validation", "test") for r in self.splits[s]]

    def test_sets(self) -> dict[str, list[dict]]:
        return {lang: limited(rows, self.settings.eval_limit)
                for lang, rows in per_language(self.splits["test"], self.units).items()}

    def sample(self, kept, report, shots, seed) -> Sample:
        """k rows per tuning language (label-balanced for classification); validation rows: the task's
        validation split, else `val_per_language` per language from the rest of the curated pool (of the tuning
        languages only, `train_units`)."""
        from govtune.governance import sample_kshot  # here: the curation pipeline takes ~1 s to import

        kept = self.pool() if kept is None else kept
        langs = self.train_units
        train = [r[ROW] for r in sample_kshot(kept, langs, k=shots, seed=seed, report=report, label_field=LABEL)]
        if self.splits["validation"]:
            val = self.validation_rows()
        else:
            taken = {r["id"] for r in train}
            val = [r[ROW] for r in validation_sample(kept, taken, langs, self.settings.val_per_language, seed,
                                                     row_key)]
        return Sample(train, val, {f"{self.name}_train": len(train), f"{self.name}_val": len(val)})

    def _demos(self, kept, report, k, seed) -> dict[str, list[dict]]:
        from govtune.governance import sample_kshot  # here: the curation pipeline takes ~1 s to import

        kept = self.pool() if kept is None else kept
        drawn = [r[ROW] for r in sample_kshot(kept, self.train_units, k=k, seed=seed, report=report,
                                              label_field=LABEL)]
        return transferred(per_language(drawn, self.train_units), self.units, k, seed)

    def incontext(self, kept, report, k, seed):
        # here: it imports the curation package (~1 s)
        from govtune.tasks.incontext import attach

        tests = attach(self.test_sets(), self._demos(kept, report, k, seed), self.training_pair)
        val = None
        if self.calibrates:
            cal = self.calibration_rows(kept, k, seed) or {}
            val = {lang: [{**r, "context": tests[lang][0]["context"]} for r in rows] for lang, rows in cal.items()}
        return tests, val
