"""JSON-lines files of a dataset directory, plain or compressed: `en.dev.jsonl`, `en.dev.jsonl.xz` or
`en.dev.jsonl.gz` are the same file to every loader. The shipped data is xz-compressed (the wheel carries 15
XNLI and 410 SIB-200 files); a user's `--data` directory may hold either form."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import orjson

# Tried in this order: a plain file a user unpacked or edited wins over the compressed one beside it.
COMPRESSIONS = {"": open, ".xz": lzma.open, ".gz": gzip.open}


def find(path: str | Path) -> Path | None:
    """The existing file among `path`, `path.xz` and `path.gz` (in that order), or None."""
    path = Path(path)
    for suffix in COMPRESSIONS:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def listing(folder: Path) -> list[str]:
    """The JSON-lines files of `folder` by their plain names (for error messages: what a directory has)."""
    if not folder.is_dir():
        return []
    names = {p.name.removesuffix(s) for p in folder.iterdir() for s in COMPRESSIONS if s and p.name.endswith(s)}
    names |= {p.name for p in folder.glob("*.jsonl")}
    return sorted(n for n in names if n.endswith(".jsonl"))


def read_jsonl(path: Path) -> list[dict]:
    """Every non-empty line of a (possibly compressed) JSON-lines file, parsed."""
    opener = COMPRESSIONS.get(path.suffix if path.suffix in (".xz", ".gz") else "", open)
    with opener(path, "rb") as f:
        data = f.read()  # one read: a compressed stream read line by line costs twice the time
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]
