"""Reading pools row by row: JSON lines, CSV, Parquet (in pyarrow record batches), a directory saved by
`datasets`' save_to_disk, or a hub dataset (streamed). Memory does not grow with the file.

`iter_pool` yields usable records (fields mapped through `columns`, XNLI labels as class names) and, with
`skip_invalid`, `Rejected` records (the row plus `reason` and `stage`) in file order; without it the first
unusable row raises ValueError naming the file, the line or row, and the fix.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import orjson

from govtune.governance.columns import ColumnError, map_columns
from govtune.governance.records import XNLI_LABELS, LABEL_FIELD, Labels, Record, invalid_reason, with_label_name

CSV_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")


class Rejected(dict):
    """A row that cannot be curated, with `reason` and `stage` ("c0"): written to the dropped rows as is."""


def iter_pool(source: str | Path, langs: Sequence[str] | None = None, *, labels: Labels = XNLI_LABELS,
              columns: Mapping[str, str] | None = None, skip_invalid: bool = False, split: str = "train",
              batch_rows: int = 8192, langid: str | None = "lingua") -> Iterator[Record]:
    """Records (and `Rejected` rows) of a pool file or dataset, read lazily; see the module docstring.
    `langid`: the language-ID settings or backend (`lang` must be a code govtune.languages knows; records
    come out with it normalised), None when language ID is off."""
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in CSV_SUFFIXES:
            rows = _csv_rows(path, skip_invalid)
        elif suffix in PARQUET_SUFFIXES:
            rows = _parquet_rows(path, batch_rows)
        else:
            rows = _jsonl_rows(path, skip_invalid)
        unit = "line" if suffix not in PARQUET_SUFFIXES else "row"
    else:
        rows, unit = _dataset_rows(source, split, (columns or {}).get("label", LABEL_FIELD)), "row"
    count = 0
    for where, row in rows:
        count += 1
        if isinstance(row, Rejected):
            yield row
            continue
        try:
            record = map_columns(row, columns or {}, f"{path}, {unit} {where}")
        except ColumnError as e:
            if not skip_invalid:
                raise
            yield Rejected({**row, "reason": "missing_field", "stage": "c0", "problem": str(e)})
            continue
        problem = invalid_reason(record, langs, labels, langid)
        if problem is None:
            yield with_label_name(record, labels)
        elif skip_invalid:
            yield Rejected({**record, "reason": problem[0], "stage": "c0"})
        else:
            raise ValueError(f"{path}, {unit} {where}: {problem[1]}. Fix the {unit}, or pass --skip-invalid "
                             f"(skip_invalid=True) to drop such {unit}s with reason {problem[0]!r}")
    if count == 0:
        raise ValueError(f"{path} holds no records (the file is empty or has only blank lines): give a file "
                         f"with one record per line or row")


def _reject(line_no: int, reason: str, message: str, record: Record, path: Path, skip_invalid: bool) -> Rejected:
    if not skip_invalid:
        raise ValueError(f"{path}, line {line_no}: {message}. Fix the line, or pass --skip-invalid "
                         f"(skip_invalid=True) to drop such lines with reason {reason!r}")
    return Rejected({**record, "reason": reason, "stage": "c0"})


def _jsonl_rows(path: Path, skip_invalid: bool) -> Iterator[tuple[int, Record]]:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue  # blank lines are not records
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, _reject(line_no, "undecodable", f"bytes that are not UTF-8 at column {e.start + 1}",
                                       {"line": line_no, "raw": raw.decode("utf-8", errors="replace").rstrip("\r\n")},
                                       path, skip_invalid)
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                yield line_no, _reject(line_no, "invalid_json", f"invalid JSON ({e})",
                                       {"line": line_no, "raw": text.rstrip("\r\n")}, path, skip_invalid)
                continue
            if not isinstance(record, dict):
                yield line_no, _reject(line_no, "missing_text", f"a record must be a JSON object, got "
                                       f"{type(record).__name__}", {"line": line_no, "raw": text.rstrip("\r\n")},
                                       path, skip_invalid)
                continue
            yield line_no, record


def _csv_rows(path: Path, skip_invalid: bool) -> Iterator[tuple[int, Record]]:
    """Rows of a CSV (or TSV) file with a header line; every value is a string. A row with more or fewer
    cells than the header is an error naming its line (csv's DictReader would silently pad it or put the
    extra cells under a None key)."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        for cells in reader:
            line_no = reader.line_num  # the line the row ends on (a quoted cell may span lines)
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                yield line_no, _reject(line_no, "ragged_row", f"{len(cells)} cells where the header has "
                                       f"{len(header)} ({', '.join(header)}): quote cells that contain "
                                       f"{delimiter!r}, or add the missing cells",
                                       {"line": line_no, "raw": delimiter.join(cells)}, path, skip_invalid)
                continue
            yield line_no, dict(zip(header, cells))


def _parquet_rows(path: Path, batch_rows: int) -> Iterator[tuple[int, Record]]:
    import pyarrow.parquet as pq  # pyarrow comes with `datasets`

    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _dataset_rows(source: str | Path, split: str, label_field: str) -> Iterator[tuple[int, Record]]:
    """Rows of a saved `datasets` directory (memory-mapped) or a hub dataset (streamed), ClassLabel
    integers given as their class names."""
    import datasets  # heavy (pyarrow, pandas): only for a saved or hub dataset

    path = Path(source)
    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
    elif str(source).endswith((".jsonl", ".json", ".csv", ".parquet")) or str(source).startswith(("/", ".", "~")):
        raise FileNotFoundError(f"no pool at {source}: check the path (a JSON-lines, CSV or Parquet file, or a "
                                f"directory written by datasets' save_to_disk)")
    else:
        ds = datasets.load_dataset(str(source), split=split, streaming=True)
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise ValueError(f"dataset {source} has splits {list(ds)}, not {split!r}: choose one with --split")
        ds = ds[split]
    if isinstance(ds, datasets.Dataset) and len(ds) == 0:
        raise ValueError(f"dataset {source} (split {split!r}) has no rows: give a pool with records")
    feature = (ds.features or {}).get(label_field)
    # A ClassLabel's integers mean its own names, in its order (not necessarily XNLI's); -1 stays as is.
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    for i, row in enumerate(ds):
        value = row.get(label_field)
        if names is not None and isinstance(value, int) and 0 <= value < len(names):
            row = {**row, label_field: names[value]}
        yield i, row
