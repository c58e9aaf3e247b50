"""Atomic writes, used for every result, report, figure, adapter and checkpoint govtune writes: a reader (or
a resumed study) sees either the old file or the new one, never half of one.

Write to a temporary file in the same directory (same filesystem, so the rename is atomic), then
`os.replace` over the target. mkstemp/mkdtemp create owner-only files; the result gets the ordinary mode
the process's umask gives, as a plain `open(path, "w")` would."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable

import orjson


def _ordinary_mode(path: str | os.PathLike, directory: bool = False) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write incrementally (a streamed curation's kept rows): its content replaces `path`
    (fsync, then rename) when the block ends; an exception leaves `path` as it was and removes the
    temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _ordinary_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_stream(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """`write(f)` into a binary file object, fsync, then rename over `path`."""
    with atomic_open(path) as f:
        write(f)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write_stream(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# Every JSON and JSON-lines file goes through orjson with these options: NaN and infinities (an undefined sd
# or p-value) become null, because they are not JSON and strict readers (jq, JavaScript) reject them; numpy
# scalars and arrays are numbers; non-string keys become strings; anything else JSON lacks (a Path) its str.
_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """One JSON document, indented by two spaces."""
    return atomic_write_bytes(path, orjson.dumps(obj, option=_JSON | orjson.OPT_INDENT_2, default=str))


def jsonl_line(row: Any) -> bytes:
    """One JSON-lines line (newline included), with the options every JSON file here uses."""
    return orjson.dumps(row, option=_JSON, default=str)


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    """One JSON value per line."""
    def write(f: BinaryIO) -> None:
        for row in rows:
            f.write(jsonl_line(row))
    return atomic_write_stream(path, write)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """For writers that want a path (torch.save, savefig, safetensors): `write(tmp_path)`, then rename over
    `path`. The temporary name keeps `path`'s suffix, so writers that infer a format from it still can."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        _ordinary_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Fill a fresh temporary directory with `write(tmp_dir)`, then move it to `path` (which must not be in
    use by a reader: directories cannot be swapped atomically, so callers version their names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        _ordinary_mode(tmp, directory=True)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
