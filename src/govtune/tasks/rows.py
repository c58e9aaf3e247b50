"""A task's rows: read through HF `datasets` (JSONL, CSV, Parquet, or a hub dataset), renamed by the task's
`columns`, checked row by row (every error names the file, the row and the value, and the fix)."""

from __future__ import annotations

import csv
from pathlib import Path

from govtune.languages import normalize_or_keep
from govtune.tasks.spec import REQUIRED, TaskSpec

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


def _files(spec: TaskSpec, value) -> list[str]:
    files = [value] if isinstance(value, str) else list(value)
    out = [spec.resolve_path(f) for f in files]
    for f in out:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{spec.where('data_files')}: file {f!r} not found; paths are relative to the "
                                    f"task file")
    return out


def check_csv(path: str) -> None:
    """Refuse a ragged CSV row. By hand: `datasets` (pandas) fills a short row with nulls without a word, so
    a missing field would become an empty text or a null label far from its cause."""
    delimiter = "\t" if path.endswith(".tsv") else ","
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"CSV file {path} is empty: it needs a header row and data rows")
        for row in reader:
            if row and len(row) != len(header):
                raise ValueError(f"CSV file {path} line {reader.line_num}: {len(row)} fields where the header has "
                                 f"{len(header)} ({', '.join(header)}); quote fields that hold a comma, or fix "
                                 f"the row")


def read_table(spec: TaskSpec, source) -> list[dict]:
    """Raw rows of one source: file path(s) or a hub split name (with `dataset:`)."""
    import datasets  # pyarrow and pandas: only when a user's task is read

    if spec.dataset:  # `source` is a split of the hub dataset
        try:
            ds = datasets.load_dataset(spec.dataset, spec.dataset_config, split=source or "train")
        except (ConnectionError, OSError, ValueError) as e:
            raise FileNotFoundError(f"{spec.where('dataset')}: cannot load {spec.dataset!r} split {source!r}: "
                                    f"{e}; without a hub, point `data_files` at local files") from e
        return [dict(r) for r in ds]
    files = _files(spec, source)
    kinds = {BUILDERS.get(Path(f).suffix.lower()) for f in files}
    if None in kinds or len(kinds) != 1:
        raise ValueError(f"{spec.where('data_files')}: {files} must all be one of .jsonl, .csv, .tsv, .parquet")
    kind = kinds.pop()
    kwargs = {}
    if kind == "csv":
        for f in files:
            check_csv(f)
        if any(f.endswith(".tsv") for f in files):
            kwargs["delimiter"] = "\t"
    ds = datasets.load_dataset(kind, data_files=files, split="train", **kwargs)
    return [dict(r) for r in ds]


def to_rows(spec: TaskSpec, raw: list[dict], what: str) -> list[dict]:
    """Raw rows -> task rows: renamed by `columns`, `lang` from the row or the file, checked."""
    if not raw:
        raise ValueError(f"{what} of task {spec.name!r} has no rows")
    mapping = {ours: spec.columns.get(ours, ours) for ours in (*REQUIRED[spec.type], "text_pair", "lang", "id")}
    have = set(raw[0])
    for ours in REQUIRED[spec.type]:
        if mapping[ours] not in have:
            raise ValueError(f"{spec.where('columns')}: the {ours} field reads column {mapping[ours]!r}, which "
                             f"{what} does not have (its columns: {', '.join(sorted(have))}); set "
                             f"`columns: {{{ours}: <your column>}}`")
    for ours in ("text_pair", "lang", "id"):
        if ours in spec.columns and spec.columns[ours] not in have:
            raise ValueError(f"{spec.where('columns')}: `columns.{ours}: {spec.columns[ours]}` names a column "
                             f"{what} does not have (its columns: {', '.join(sorted(have))})")
    if mapping["lang"] not in have and not spec.lang:
        raise ValueError(f"{what} of task {spec.name!r} has no language column {mapping['lang']!r}: map one with "
                         f"`columns: {{lang: <your column>}}`, or set a file-level `lang: en`")
    rows = []
    for i, r in enumerate(raw):
        row = {ours: r[col] for ours, col in mapping.items() if col in r and r[col] is not None}
        row.setdefault("lang", spec.lang)
        if isinstance(row["lang"], str):  # internal form (govtune.languages); a code it does not know stays
            row["lang"] = normalize_or_keep(row["lang"])
        row["id"] = str(row.get("id", f"{spec.name}-{i}"))
        _check_row(spec, row, f"{what} row {i} (id {row['id']})")
        rows.append(row)
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise ValueError(f"{what} of task {spec.name!r}: id {dup!r} is on more than one row; ids must be unique")
    return rows


def _check_row(spec: TaskSpec, row: dict, where: str) -> None:
    lang = row.get("lang")
    if not isinstance(lang, str) or not lang.strip():
        raise ValueError(f"{where}: empty language {lang!r}; fill the language column or set a file-level `lang:`")
    if spec.languages and lang not in spec.languages:
        return
    if spec.type == "classification":
        if not str(row.get("text", "")).strip():
            raise ValueError(f"{where}: empty text; fill it or remove the row")
        label = row["label"]
        if isinstance(label, int) and not isinstance(label, bool) and str(label) not in spec.labels \
                and 0 <= label < len(spec.labels):
            label = spec.labels[label]  # lm-eval convention: an integer target indexes doc_to_choice
        if str(label) not in spec.labels:
            raise ValueError(f"{where}: label {row['label']!r} is not in `labels` {spec.labels}; add it to "
                             f"`labels` or fix the row")
        row["label"] = str(label)
    elif spec.type == "completion":
        if not str(row.get("prompt", "")).strip():
            raise ValueError(f"{where}: empty prompt; fill it or remove the row")
        if not str(row.get("completion", "")).strip():
            raise ValueError(f"{where}: empty completion; every completion row needs the text the model "
                             f"should produce (fill it or remove the row)")
    else:
        _check_messages(row.get("messages"), where)


def _check_messages(messages, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: `messages` must be a list of {{role, content}} turns (TRL's conversational "
                         f"format)")
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise ValueError(f"{where}: turn {k} must be {{role: system|user|assistant, content: text}}, got {m!r}")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: no assistant turn; a chat row needs at least one assistant reply (the "
                         f"loss and the evaluation are on assistant turns)")
    if messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
        raise ValueError(f"{where}: the last turn must be a non-empty assistant reply (it is what the model is "
                         f"evaluated on)")
