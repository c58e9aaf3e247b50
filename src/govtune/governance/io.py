"""Reading pools (JSON lines, a saved `datasets` directory or a hub dataset) and writing results atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from govtune.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text
from govtune.governance.records import LABEL_FIELD, Record, invalid_reason, with_label_name


def read_jsonl(path: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False
               ) -> tuple[list[Record], list[Record]]:
    """Records of a JSON-lines file and the lines rejected (empty when not `skip_invalid`).

    Every problem names its line: undecodable bytes, invalid JSON, no text field, empty text, unknown or
    unselected language, a label that is not an XNLI class. Without `skip_invalid` the first one raises
    ValueError; with it the line goes to the rejected list with its reason (a line that is not JSON keeps its
    text as `raw` and its `line`). Labels 0/1/2 are returned as class names. Blank lines are not records
    and are skipped; a file with no records at all raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no pool file at {path}: give a JSON-lines file, a saved dataset directory "
                                f"or a Hugging Face dataset name")
    records: list[Record] = []
    rejected: list[Record] = []

    def reject(line_no: int, reason: str, message: str, record: Record) -> None:
        if not skip_invalid:
            raise ValueError(f"{path}, line {line_no}: {message}. Fix the line, or pass --skip-invalid "
                             f"(skip_invalid=True) to drop such lines with reason {reason!r}")
        rejected.append({**record, "reason": reason, "stage": "c0"})

    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                reject(line_no, "undecodable", f"bytes that are not UTF-8 at column {e.start + 1}",
                       {"line": line_no, "raw": raw.decode("utf-8", errors="replace").rstrip("\r\n")})
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                reject(line_no, "invalid_json", f"invalid JSON ({e})", {"line": line_no, "raw": text.rstrip("\r\n")})
                continue
            if not isinstance(record, dict):
                reject(line_no, "missing_text", f"a record must be a JSON object, got {type(record).__name__}",
                       {"line": line_no, "raw": text.rstrip("\r\n")})
                continue
            problem = invalid_reason(record, langs)
            if problem is not None:
                reject(line_no, problem[0], problem[1], record)
                continue
            records.append(with_label_name(record))
    if not records and not rejected:
        raise ValueError(f"{path} holds no records (the file is empty or has only blank lines): give a "
                         f"JSON-lines file with one record per line")
    return records, rejected


def load_pool(source: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False,
              split: str = "train") -> tuple[list[Record], list[Record]]:
    """A pool from a JSON-lines file, a `datasets` directory saved with `save_to_disk`, or a hub name."""
    path = Path(source)
    if path.is_file():
        return read_jsonl(path, langs, skip_invalid)
    import datasets  # heavy (pyarrow, pandas): only for a saved or hub dataset, never for JSON lines

    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
    elif str(source).endswith((".jsonl", ".json")) or str(source).startswith(("/", ".", "~")):
        raise FileNotFoundError(f"no pool at {source}: check the path (a JSON-lines file or a directory "
                                f"written by datasets' save_to_disk)")
    else:
        ds = datasets.load_dataset(str(source), split=split)
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"dataset {source} has splits {list(ds)}, not {split!r}: choose one with --split")
        ds = ds[split]
    if len(ds) == 0:
        raise ValueError(f"dataset {source} (split {split!r}) has no rows: give a pool with records")
    names = class_names(ds)
    records, rejected = [], []
    for i, record in enumerate(ds):
        if names is not None:
            record = with_class_name(record, names)
        problem = invalid_reason(record, langs)
        if problem is None:
            records.append(with_label_name(record))
        elif not skip_invalid:
            raise ValueError(f"{source}, row {i}: {problem[1]}. Fix the row, or pass --skip-invalid")
        else:
            rejected.append({**record, "reason": problem[0], "stage": "c0"})
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
