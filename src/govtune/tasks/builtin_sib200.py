"""SIB-200 as a built-in classification task (its task file: `govtune/tasks/builtin/sib200.yaml`).

Rows come from `govtune.data.sib200` (the shipped files, a local directory, or the hub) and are scored as
any classification task file's rows are (prompt, the seven topics as continuations, log-likelihoods
normalised over them). What is its own is the split: SIB-200 is parallel, so the ids of the train+dev rows
are carved once into test, validation and pool ids (label-balanced, seeded, written to
`<workdir>/sib200.splits.json` and read back), and every language takes the same ids. No test sentence is
then the translation of a sentence the model was tuned or calibrated on."""

from __future__ import annotations

from pathlib import Path

from govtune.data import FLORES_DEV
from govtune.data.sib200 import SPLITS as DATA_SPLITS
from govtune.data.sib200 import languages as shipped_languages
from govtune.data.sib200 import load_sib200
from govtune.languages import flores_code, iso_code
from govtune.tasks.classification import ClassificationTask, TaskVerbalizer
from govtune.tasks.settings import TaskSettings
from govtune.tasks.spec import SPLITS
from govtune.tasks.splits import carved_splits, check_languages, input_key

ALL = "all"  # `languages: all`: every language of the source


def unit(lang: str) -> str:
    """A language's internal form: govtune.languages' code, or the FLORES-200 code when it has none yet."""
    try:
        return iso_code(lang)
    except ValueError:
        return flores_code(lang)  # a FLORES-200 code passes through; anything else raises naming it


class Sib200Task(ClassificationTask):
    """SIB-200 in the task file's `languages` (default: the study's `languages`), split by index_id."""

    settings_read = ("languages", "data_dir", *ClassificationTask.settings_read)

    def _source(self, settings: TaskSettings) -> str | None:
        """Where rows come from: the task file's `dataset` (hub) or `path` (a directory in the shipped layout),
        else the study's data_dir (None: the shipped files)."""
        if self.spec.dataset:
            return self.spec.dataset
        if self.spec.data_files:
            return self.spec.resolve_path(str(self.spec.data_files))
        return settings.data_dir

    def planned_units(self, settings: TaskSettings) -> list[str]:
        return self._requested(self._source(settings), settings)

    def _requested(self, source: str | None, settings: TaskSettings) -> list[str]:
        langs = self.spec.languages if self.spec.languages is not None else settings.languages
        if langs in (ALL, [ALL]):
            local = source if source is not None and Path(source).is_dir() else None
            langs = shipped_languages(local)
        if isinstance(langs, str):
            langs = [x.strip() for x in langs.split(",") if x.strip()]
        if not langs:
            raise ValueError(f"task {self.name!r}: no languages: set `languages` (FLORES-200 codes such as yor_Latn, "
                             f"or `all`) in a task file over it ({{builtin: sib200, languages: [...]}}), or the "
                             f"study's `languages`")
        return list(dict.fromkeys(unit(str(lang)) for lang in langs))

    def _prepare(self, workdir) -> None:
        source = self._source(self.settings)
        self._langs = self._requested(source, self.settings)
        rows = {lang: [self._row(r, lang) for split in DATA_SPLITS for r in load_sib200(lang, split, source)]
                for lang in self._langs}
        topics = _aligned(self.name, rows)
        order = self._split_ids(topics, workdir)
        self.index_ids = {s: set(ids) for s, ids in order.items()}
        place = {i: (s, k) for s, ids in order.items() for k, i in enumerate(ids)}  # every id is in one split
        unplaced = sorted(set(topics) - set(place))
        if unplaced:  # a split written for other data (another copy, or data changed since)
            raise ValueError(f"task {self.name!r}: index_ids {unplaced[:5]} of the data are in no split of "
                             f"{Path(workdir) / (self.name + '.splits.json')}: it was written for other data; "
                             f"delete it to carve a new split (results will not compare with the old one)")
        self.splits = {s: [] for s in SPLITS}
        for lang in self._langs:
            for r in sorted(rows[lang], key=lambda r: place[r["index_id"]][1]):
                self.splits[place[r["index_id"]][0]].append(r)
        self.duplicates = _drop_duplicates(self.splits)  # what check_leakage would refuse, left out instead
        check_languages(self.name, self.splits, self._langs, "after splitting by index_id")
        # Validation and calibration rows: the study's val_per_language of each language's validation ids (in
        # carved order, label-balanced), as XNLI takes; all 42 would be scored in every cell, 205 languages over.
        n = self.settings.val_per_language
        self.splits["validation"] = [r for lang in self._langs
                                     for r in [r for r in self.splits["validation"] if r["lang"] == lang][:n]]
        self.has_pair = False
        self.verbalizer = TaskVerbalizer(self)

    def _row(self, r: dict, lang: str) -> dict:
        return {"text": r["text"], "label": r["category"], "lang": lang, "index_id": r["index_id"],
                "id": f"sib200-{lang}-{r['index_id']}"}

    def _split_ids(self, topics: dict[int, str], workdir) -> dict[str, list[int]]:
        """Test, validation and pool (train) ids, each in the carved order (label-interleaved, so any prefix
        is as balanced as the topics allow): the split a task file's rows get, over one row per index_id."""
        ids = [{"id": str(i), "lang": "every language", "label": topics[i]} for i in sorted(topics)]
        path = None if workdir is None else Path(workdir) / f"{self.name}.splits.json"
        carved = carved_splits(self.spec, ids, path)
        return {s: [int(r["id"]) for r in carved[s]] for s in SPLITS}

    def reserved_lines(self) -> dict[str, set[int]]:
        """Every id the split uses is a FLORES-200 dev line (index_id < 997): kept out of a FLORES task's
        pool and test lines in the same study."""
        return {FLORES_DEV: set().union(*self.index_ids.values())}


def _aligned(name: str, rows: dict[str, list[dict]]) -> dict[int, str]:
    """index_id -> topic, the same in every language (SIB-200 is parallel); a language that differs is refused."""
    first = next(iter(rows))
    topics = {r["index_id"]: r["label"] for r in rows[first]}
    for lang, mine in rows.items():
        theirs = {r["index_id"]: r["label"] for r in mine}
        if theirs != topics:
            diff = sorted(set(theirs.items()) ^ set(topics.items()))[:3]
            raise ValueError(f"task {name!r}: the SIB-200 rows of {lang!r} are not aligned with those of {first!r} "
                             f"(index_id and topic differ, e.g. {diff}): every language needs the same ids with "
                             f"the same topics; fix the data of {lang}")
    return topics


def _drop_duplicates(splits: dict[str, list[dict]]) -> dict[str, int]:
    """Leave out of the pool and the validation rows any row whose text equals a later split's row of its
    language (the data has a few: two ids translated by one sentence in bod_Tibt, bug_Latn, dyu_Latn,
    san_Deva and sun_Latn). Returns the count per language."""
    dropped: dict[str, int] = {}
    held: set[tuple[str, str]] = {(r["lang"], input_key(r)) for r in splits["test"]}
    for split in ("validation", "train"):
        keep = []
        for r in splits[split]:
            key = (r["lang"], input_key(r))
            if key in held:
                dropped[r["lang"]] = dropped.get(r["lang"], 0) + 1
            else:
                keep.append((r, key))
        splits[split] = [r for r, _ in keep]
        held |= {key for _, key in keep}
    return dropped
