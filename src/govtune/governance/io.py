"""Reading pools (JSON lines, a saved `datasets` directory or a hub dataset) and writing results atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from govtune.atomic import atomic_write_stream, atomic_write_text
from govtune.governance.records import Record, invalid_reason


def read_jsonl(path: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False
               ) -> tuple[list[Record], list[Record]]:
    """Records of a JSON-lines file and the lines rejected (empty when not `skip_invalid`).

    Every problem names its line: undecodable bytes, invalid JSON, no text field, empty text, unknown or
    unselected language. Without `skip_invalid` the first one raises ValueError; with it the line goes to
    the rejected list with its reason (a line that is not JSON keeps its text as `raw` and its `line`).
    Blank lines are not records and are skipped."""
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
            records.append(record)
    return records, rejected


def load_pool(source: str | Path, langs: Sequence[str] | None = None, skip_invalid: bool = False,
              split: str = "train") -> tuple[list[Record], list[Record]]:
    """A pool from a JSON-lines file, a `datasets` directory saved with `save_to_disk`, or a hub name."""
    path = Path(source)
    if path.is_file():
        return read_jsonl(path, langs, skip_invalid)
    import datasets

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
    records, rejected = [], []
    for i, record in enumerate(ds):
        problem = invalid_reason(record, langs)
        if problem is None:
            records.append(record)
        elif not skip_invalid:
            raise ValueError(f"{source}, row {i}: {problem[1]}. Fix the row, or pass --skip-invalid")
        else:
            rejected.append({**record, "reason": problem[0], "stage": "c0"})
    return records, rejected


def write_jsonl(path: str | Path, records: Iterable[Record]) -> Path:
    def write(f):
        for r in records:
            f.write(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))
    return atomic_write_stream(path, write)


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write_text(path, text)
