"""Reading whole pools into memory (through `sources.iter_pool`) and writing results atomically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from govtune.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from govtune.governance.records import XNLI_LABELS, LABEL_FIELD, Labels, Record
from govtune.governance.sources import Rejected, iter_pool


def read_jsonl(path: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False, *,
               labels: Labels = XNLI_LABELS, columns: Mapping[str, str] | None = None, langid: str | None = "lingua"
               ) -> tuple[list[Record], list[Record]]:
    """Records of a JSON-lines file and the lines rejected (empty when not `skip_invalid`).

    Every problem names its line: undecodable bytes, invalid JSON, no text field, empty text, unknown or
    unselected language, a label not among `labels` (XNLI's classes by default). Without `skip_invalid` the
    first one raises ValueError; with it the line goes to the rejected list with its reason (a line that is
    not JSON keeps its text as `raw` and its `line`). XNLI labels 0/1/2 are returned as class names. Blank
    lines are not records and are skipped; a file with no records at all raises ValueError. `langid`: the
    language-ID settings or backend (`lang` must be a code govtune.languages knows), None when language ID
    is off (any code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pool file at {path}: give a JSON-lines file, a saved dataset directory "
                                f"or a Hugging Face dataset name")
    return load_pool(path, langs, skip_invalid, labels=labels, columns=columns, langid=langid)


def load_pool(source: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False,
              split: str = "train", *, labels: Labels = XNLI_LABELS, columns: Mapping[str, str] | None = None,
              langid: str | None = "lingua") -> tuple[list[Record], list[Record]]:
    """A whole pool in memory, from anything `iter_pool` reads (JSON lines, CSV, Parquet, a `datasets`
    directory saved with `save_to_disk`, a hub name): (records, rejected rows)."""
    records: list[Record] = []
    rejected: list[Record] = []
    for record in iter_pool(source, langs, labels=labels, columns=columns, skip_invalid=skip_invalid, split=split,
                            langid=langid):
        if isinstance(record, Rejected):
            rejected.append(dict(record))
        else:
            records.append(record)
    return records, rejected


def class_names(ds) -> list[str] | None:
    """The names of a `datasets` ClassLabel `label` column (its integers mean these names, in this order,
    which need not be XNLI's), or None when the column is absent or plain."""
    import datasets  # already loaded: `ds` is a dataset

    feature = ds.features.get(LABEL_FIELD)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def with_class_name(row: Record, names: Sequence[str]) -> Record:
    """The row with its ClassLabel integer replaced by the class's name (-1, "no label", stays as is)."""
    value = row.get(LABEL_FIELD)
    if isinstance(value, int) and 0 <= value < len(names):
        return {**row, LABEL_FIELD: names[value]}
    return row


# The writers every pillar uses (NaN as null, anything else JSON lacks as a string), under this module's names.
write_jsonl = atomic_write_jsonl
write_json = atomic_write_json


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write_text(path, text)
