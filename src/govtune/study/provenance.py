"""What went into a study, for its manifest (govtune.results.manifest): the config it ran with, and per task
a content hash of the rows it read (pool and test sets: the same rows hash the same whether they came from
the shipped files, a local copy or a hub dataset) and the sha256 of the task file and the local data files
it names."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from govtune.results.manifest import sha256_file, sha256_rows


def _local_files(spec) -> list[Path]:
    """The task file and the local data files it names (relative paths are relative to the task file)."""
    if spec.source is None:
        return []
    base = Path(spec.source).parent
    named = [spec.data_files] if isinstance(spec.data_files, (str, Path)) else spec.data_files or []
    if isinstance(named, dict):
        named = list(named.values())
    named = [*named, *(v for v in spec.splits.values() if isinstance(v, (str, Path, list)))]
    flat = [p for entry in named for p in (entry if isinstance(entry, list) else [entry])]
    files = [Path(spec.source)] + [(base / p) if not Path(p).is_absolute() else Path(p) for p in flat]
    return [p for p in dict.fromkeys(files) if p.is_file()]


def study_inputs(config_dict: dict[str, Any], tasks: dict[str, Any]) -> dict[str, Any]:
    """{"config": sha of the settings as run, "tasks": {name: {"rows": {...}, "files": {path: sha}}}}."""
    out: dict[str, Any] = {"config": hashlib.sha256(json.dumps(config_dict, sort_keys=True, default=str)
                                                    .encode()).hexdigest(), "tasks": {}}
    for name, task in tasks.items():
        rows = {"test": sha256_rows(r for unit, rs in sorted(task.test_sets().items()) for r in rs)}
        if task.curates:
            rows["pool"] = sha256_rows(task.pool())
        out["tasks"][name] = {"rows": rows,
                              "files": {str(p.resolve()): sha256_file(p) for p in _local_files(task.spec)}}
    return out
