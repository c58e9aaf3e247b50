"""Where a task reads from: a local directory (the shipped data by default) or a Hugging Face dataset.

Both paths return plain lists, so the loaders above them are one code path. A `data_dir` that is an
existing directory (or None) is local; any other string is a dataset name for `datasets.load_dataset`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from govtune.data import DATA_DIR

# Our split names follow the files (`dev`); the hub datasets call the same split `validation` (XNLI) or
# keep `dev` (FLORES). Tried in order.
HUB_SPLITS = {"dev": ("validation", "dev"), "validation": ("validation", "dev"), "devtest": ("devtest", "test"),
              "test": ("test", "devtest"), "train": ("train",)}


def resolve(data_dir: str | Path | None) -> Path | str:
    """Local directory (Path) or hub dataset name (str)."""
    if data_dir is None:
        return DATA_DIR
    path = Path(data_dir).expanduser()
    if path.is_dir():
        return path
    if isinstance(data_dir, Path) or str(data_dir).startswith((".", "/", "~")) or str(data_dir).count("/") > 1:
        raise FileNotFoundError(f"data directory {str(data_dir)!r} does not exist: pass a directory laid out as "
                                f"DIR/xnli/{{lang}}.{{split}}.jsonl and DIR/flores/{{code}}.{{split}}, or a "
                                f"Hugging Face dataset name such as 'facebook/xnli'")
    return str(data_dir)


def load_hub(name: str, config: str, split: str):
    """`datasets.load_dataset(name, config, split=...)`, trying our split's hub aliases in order."""
    import datasets  # heavy (pyarrow, pandas): loaded only for a hub dataset, never for the shipped data

    last: Exception | None = None
    for hub_split in HUB_SPLITS.get(split, (split,)):
        try:
            return datasets.load_dataset(name, config, split=hub_split)
        except ValueError as e:  # unknown split: try the next alias
            last = e
        except (ConnectionError, OSError, FileNotFoundError) as e:
            raise FileNotFoundError(
                f"cannot load {name!r} (config {config!r}) from the Hugging Face hub: {e}. Without a hub, "
                f"use local files: --data DIR (default: the data shipped with govtune)") from e
    raise ValueError(f"dataset {name!r} config {config!r} has no split {split!r}: {last}")


def select(n_total: int, rows: Iterable[int] | None, limit: int | None, what: str) -> list[int]:
    """Row indices to keep: `rows` (default all) then the first `limit` of them."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}: pass a positive number of examples (or no limit)")
    idx = list(range(n_total)) if rows is None else list(rows)
    bad = [i for i in idx if not 0 <= i < n_total]
    if bad:
        raise ValueError(f"{what} has {n_total} rows but rows {bad[:3]}{'...' if len(bad) > 3 else ''} were "
                         f"asked for: pass rows within range({n_total})")
    return idx[:limit] if limit is not None else idx
