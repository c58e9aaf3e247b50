"""The one task interface a study talks to (as lm-evaluation-harness's `Task`: training / validation / test
docs, doc_to_text, doc_to_target, metrics; prepared once per study, as torchtune's recipe sets up its data
before the loop). The runner, the store and the report reach a task's data, prompts, training pairs,
evaluation and metric entries only through it, so a new task type is a new subclass here and an entry in
`TYPES` (govtune.tasks.registry), nothing else.

The settings a task reads (languages, data, row ranges, evaluation budget) are a `TaskSettings`
(govtune.tasks.settings): built by the study from its config, or by a command from its arguments.

Cross-lingual transfer (a classification task's `train_languages`, a subset of the languages it evaluates):
the zero-shot cross-lingual protocol. The few-shot pool (what curation sees), the k shots per language, the
validation rows (validation loss, early stopping, the learned mixer) and the calibration rows hold only the
tuning languages (`train_units`), so no labelled row of an evaluation-only language is used for tuning,
selection or calibration; the test rows cover every evaluated language (`units`). An evaluation-only
language's temperature is the one fit on the tuning languages' validation rows together (`borrowed`)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

from govtune.languages import normalize_or_keep
from govtune.tasks.settings import TaskSettings, check_train_languages
from govtune.tasks.spec import TaskSpec


@dataclass
class Sample:
    """One run's data from a task: the rows it trains on, its validation rows (validation loss and
    temperature scaling), and the counts the run's result records."""

    train: list[dict]
    val: list[dict]
    counts: dict[str, int] = field(default_factory=dict)


class Task(ABC):
    """A task of a study. `kind` picks its metric-registry entries (`classification`, `completion`, or
    FLORES's `translation`); `curates` whether the study's curation stages apply to its pool."""

    kind: str = "classification"
    curates: bool = True
    calibrates: bool = False  # class probabilities: temperature scaling on validation rows
    # The TaskSettings keys it reads: a study's task_options may set these for it, and no others
    settings_read: tuple[str, ...] = ()

    def __init__(self, spec: TaskSpec):
        self.spec = spec
        self.name = spec.name
        self.settings: TaskSettings | None = None

    # --- set up once per study -----------------------------------------------------------------------
    def prepare(self, settings: TaskSettings, workdir=None) -> "Task":
        """Load the rows and fix the splits (written under `workdir` when the task carves them)."""
        if not isinstance(settings, TaskSettings):  # a study config passed whole: its flat keys are not the task's
            raise TypeError(f"task {self.name!r}: prepare() takes a govtune.tasks.settings.TaskSettings (e.g. "
                            f"StudyConfig.task_settings(name)), got {type(settings).__name__}")
        self.settings = settings
        self._prepare(workdir)
        self.check_train_languages(self.units)
        return self

    # --- cross-lingual transfer ----------------------------------------------------------------------
    def _train_languages(self, settings: TaskSettings) -> list[str] | None:
        """The languages asked to tune on: the task file's own `train_languages` (as its `languages`, over the
        study's), else the settings'; None: every evaluated language. Only tasks that read it have any."""
        if "train_languages" not in self.settings_read:
            return None
        chosen = self.spec.train_languages if self.spec.train_languages is not None else settings.train_languages
        return None if chosen is None else [normalize_or_keep(x) for x in chosen]  # settings built by hand too

    def planned_units(self, settings: TaskSettings) -> list[str] | None:
        """The languages the task will evaluate under `settings`, known before its data is read (None: only
        the data says): lets a study refuse bad train_languages before it starts."""
        return None

    def check_train_languages(self, units: list[str] | None = None, settings: TaskSettings | None = None) -> None:
        """Refuse train languages the task does not evaluate, or codes govtune.languages does not know."""
        settings = settings or self.settings
        units = self.planned_units(settings) if units is None else units
        if units is not None:
            check_train_languages(self._train_languages(settings), list(units), f"task {self.name!r}")

    @property
    def train_units(self) -> list[str]:
        """The languages the task is tuned on (pool, shots, validation and calibration rows), in `units` order."""
        chosen = self._train_languages(self.settings)
        return list(self.units) if chosen is None else [u for u in self.units if u in set(chosen)]

    def borrowed(self, tests: dict[str, list], calibration: dict[str, list] | None) -> dict[str, list[str]] | None:
        """{evaluation-only language: the tuning languages whose validation rows fit its temperature}. Such a
        language has no validation rows by design (none of its labelled rows may be used), so its temperature
        is the one fit on the tuning languages' rows together; None when every language has its own."""
        if calibration is None:
            return None
        tuned = set(self.train_units)
        out = {lang: [u for u in self.train_units if u in calibration] for lang in tests
               if lang not in calibration and lang not in tuned}
        return out or None

    @abstractmethod
    def _prepare(self, workdir) -> None: ...

    @property
    @abstractmethod
    def units(self) -> list[str]:
        """What the report's columns are: languages, or FLORES directions."""

    def curation_config(self, config):
        """The curation settings (`govtune.governance.CurationConfig`) for this task's pool: `config`, without
        language ID when the task file turns it off (`langid: false`)."""
        if self.spec.langid or "langid" in config.skip:
            return config
        return replace(config, skip=(*config.skip, "langid"))

    def check_language_codes(self, config) -> None:
        """Refuse, before any curation, a language the curation's language ID cannot identify (the error names
        it and says how to turn language ID off for the task)."""
        from govtune.governance.pipeline import check_languages  # here: the curation pipeline takes ~1 s to import

        try:
            check_languages(self.units, self.curation_config(config).language_check)
        except ValueError as e:
            raise ValueError(f"task {self.name!r}: {e}") from None

    @property
    def curation_dir(self) -> str | None:
        """The folder of its curated pools under OUT/curation/ (None: OUT/curation/ itself)."""
        return self.name

    # --- data ----------------------------------------------------------------------------------------
    @abstractmethod
    def pool(self) -> list[dict]:
        """The few-shot pool (the train split) as curation records."""

    def protected(self) -> list[dict]:
        """Rows curation drops pool duplicates of (leakage): the evaluation rows."""
        return [r for rows in self.test_sets().values() for r in rows]

    @abstractmethod
    def test_sets(self) -> dict[str, list[dict]]:
        """Test rows per unit."""

    def reserved_lines(self) -> dict[str, set[int]]:
        """Lines of a shared corpus (by its name, e.g. govtune.data.FLORES_DEV) that this task's rows are: the
        study keeps them out of the other tasks drawing from that corpus (`exclude_lines`)."""
        return {}

    def exclude_lines(self, corpus: str, lines: set[int]) -> None:
        """Leave these lines of `corpus` out of this task's pool and test rows, because another task of the
        study uses them. Called once the tasks are prepared, before any row is read; a task that draws from
        no shared corpus has nothing to leave out."""

    @abstractmethod
    def sample(self, kept: list[dict] | None, report: dict | None, shots: int, seed: int) -> Sample:
        """A run's training and validation rows, from the curated pool `kept` (None: the task does not curate)."""

    def calibration_rows(self, kept: list[dict] | None, shots: int, seed: int) -> dict[str, list[dict]] | None:
        """Validation rows per language for temperature scaling (classification tasks only)."""
        return None

    # --- prompts -------------------------------------------------------------------------------------
    @abstractmethod
    def training_pair(self, row: dict) -> tuple[str, str]:
        """(prompt, target); the loss is on the target only."""

    def training_pairs(self, row: dict) -> list[tuple[str, str]]:
        """Every training pair of a row (a chat row gives one per assistant turn)."""
        return [self.training_pair(row)]

    # The classes of a sequence-classification head trained on this task (`head: classifier`), in the head's
    # output order; empty: the task has no head rows.
    head_labels: tuple[str, ...] = ()

    def head_example(self, row: dict):
        """A training row for a sequence-classification head: `govtune.text.class_encoding.ClassExample`."""
        raise ValueError(f"task {self.name!r} has no rows for a sequence-classification head: head: classifier "
                         f"is for XNLI")

    def use_tokenizer(self, tokenizer) -> None:
        """Called with the model's tokenizer before pairs are made (a chat template needs it)."""

    def choices(self, row: dict) -> tuple[list[str], int]:
        """A classification row's scored continuations (delimiter included) and the gold one's index."""
        raise NotImplementedError(f"task {self.name!r} is not a classification task")

    @abstractmethod
    def incontext(self, kept: list[dict] | None, report: dict | None, k: int, seed: int
                  ) -> tuple[dict[str, list[dict]], dict[str, list[dict]] | None]:
        """Test rows (and calibration rows) with k demonstrations each written before the prompt."""

    # --- evaluation ----------------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, model, tokenizer, tests: dict[str, list[dict]], *, seed: int, progress: bool,
                 calibration: dict[str, list[dict]] | None = None) -> tuple[dict, list[dict]]:
        """(metrics, prediction records); metric keys are this kind's metric-registry entries."""

    @abstractmethod
    def intervals(self, predictions: list[dict]) -> dict[str, list[float]]:
        """95% bootstrap intervals of the metrics, from the prediction records."""


def limited(rows: list[dict], limit: int | None) -> list[dict]:
    return rows if limit is None else rows[:limit]


def per_language(rows: list[dict], langs: list[str]) -> dict[str, list[dict]]:
    return {lang: [r for r in rows if r["lang"] == lang] for lang in langs}


def validation_sample(records: list[dict], taken: set, langs: list[str], n: int, seed: int, key) -> list[dict]:
    """`n` records per language not in `taken` (by `key`), seeded (the study's validation draw)."""
    rng = random.Random(f"val-{seed}")
    val: list[dict] = []
    for lang in langs:
        rest = [r for r in records if r.get("lang") == lang and key(r) not in taken]
        val += rng.sample(rest, min(n, len(rest)))
    return val


def transferred(demos: dict[str, list[dict]], units: list[str], k: int, seed: int) -> dict[str, list[dict]]:
    """In-context demonstrations of every evaluated language: a tuning language's own (`demos`); an
    evaluation-only language's k label-balanced ones drawn (seeded by the language) from the tuning languages'
    together, each written in its own language, so no labelled row of an evaluation-only language is shown."""
    from govtune.governance import sample_kshot  # here: the curation pipeline takes ~1 s to import

    source = [r for rows in demos.values() for r in rows]
    out = {}
    for lang in units:
        if lang in demos:
            out[lang] = demos[lang]
            continue
        tagged = [{"lang": lang, "label": r.get("label"), "at": i} for i, r in enumerate(source)]
        out[lang] = [source[t["at"]] for t in sample_kshot(tagged, [lang], k, seed)]
    return out
