"""Is a study directory's every file readable? Checked before the report reads the store and before
`--resume` continues a study, so that a file cut short (a full disk, a copy interrupted, a crash outside
govtune's atomic writes) is named with its fix instead of failing as a traceback deep in a reader.

Each finished run's own files are the source of truth (`result.json`, `history.json`, its predictions, and
its checkpoint's safetensors); `results.sqlite` and `results.json` are rebuilt from them. So `--resume`
repairs what it can: it redoes a run whose files are damaged, moves a damaged database aside and rebuilds
it, rewrites results.json. Only a damaged `study.json` (which study the directory holds) stops it."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from govtune.results.layout import RunLayout, StudyLayout


class CorruptStore(ValueError):
    """A file of a study directory cannot be read; the message names it and the fix."""


@dataclass(frozen=True)
class Damage:
    path: Path
    problem: str
    run_id: str | None = None  # the finished run the file belongs to, None for the study's own files


def _json_problem(path: Path, lines: bool = False) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
        for line in (text.splitlines() if lines else [text]):
            if line.strip() or not lines:
                json.loads(line)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"cut short or not JSON ({e})"
    return None


def _database_problem(path: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e):  # busy, not damaged
            return None
        return f"not a readable SQLite database ({e})"
    except sqlite3.DatabaseError as e:  # "file is not a database", "database disk image is malformed"
        return f"not a readable SQLite database ({e})"
    return None if verdict == "ok" else f"a damaged SQLite database ({verdict})"


def _safetensors_problem(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="numpy"):  # reads the header; checks the data covers it
            pass
    except Exception as e:  # safetensors raises its own SafetensorError (not an OSError subclass)
        return f"cut short or not a safetensors file ({e})"
    return None


def run_damage(run: RunLayout) -> list[Damage]:
    """The unreadable files of one finished run."""
    found = []
    checks = [(run.result, _json_problem(run.result))]
    if run.history.exists():
        checks.append((run.history, _json_problem(run.history)))
    checks += [(p, _json_problem(p, lines=True)) for p in sorted((run.dir / "predictions").glob("*.jsonl"))]
    checks += [(p, _safetensors_problem(p)) for p in sorted(run.checkpoint.rglob("*.safetensors"))]
    for path, problem in checks:
        if problem:
            found.append(Damage(path, problem, run.dir.name))
    return found


def study_damage(layout: StudyLayout) -> list[Damage]:
    """Every unreadable file of the study: its own (study.json, results.json, results.sqlite) and its
    finished runs'."""
    found = []
    for path in (layout.study, layout.results_json):
        if path.exists() and (problem := _json_problem(path)):
            found.append(Damage(path, problem))
    if layout.database.exists() and (problem := _database_problem(layout.database)):
        found.append(Damage(layout.database, problem))
    for run in layout.finished_runs():
        found += run_damage(run)
    return found


def check_study(layout: StudyLayout) -> None:
    """Raise CorruptStore naming every unreadable file and how to rebuild it (the report's check)."""
    found = study_damage(layout)
    if not found:
        return
    check_study_file(layout)
    lines = [f"- {d.path}: {d.problem}" for d in found]
    fix = (f"`govtune run CONFIG --out {layout.root} --resume` (CONFIG: the study's config) rebuilds them from "
           f"the runs' own files, redoing only the runs whose files are damaged")
    raise CorruptStore(f"{layout.root} has files that cannot be read:\n" + "\n".join(lines) + f"\n{fix}")


def check_study_file(layout: StudyLayout) -> None:
    """study.json, which --resume compares with the config, must be readable: nothing can rebuild it."""
    if layout.study.exists() and (problem := _json_problem(layout.study)):
        raise CorruptStore(f"{layout.study} is {problem}. It says which study {layout.root} holds, and nothing can "
                           f"rebuild it: restore it from a copy, or run the study into a new --out directory")


def repair_study(layout: StudyLayout) -> list[str]:
    """Before --resume continues a study: move a damaged database aside (it is rebuilt from the runs), drop
    a damaged results.json (rewritten), and mark every finished run with a damaged file unfinished, so
    that it runs again (its damaged checkpoint removed). Returns what it did, one line each; raises
    CorruptStore for a damaged study.json, which nothing can rebuild."""
    check_study_file(layout)
    found = study_damage(layout)
    done = []
    for d in found:
        if d.path == layout.database:
            aside = d.path.with_name(f"{d.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
            d.path.rename(aside)
            done.append(f"{d.path} is {d.problem}: moved to {aside.name}, rebuilt from the runs' files")
        elif d.path == layout.results_json:
            d.path.unlink()
            done.append(f"{d.path} is {d.problem}: rewritten from the runs' files")
    for run_id in dict.fromkeys(d.run_id for d in found if d.run_id is not None):
        run = layout.run(run_id)
        run.done.unlink(missing_ok=True)
        if any(d.run_id == run_id and d.path.suffix == ".safetensors" for d in found):
            shutil.rmtree(run.checkpoint, ignore_errors=True)  # unusable to resume from
        bad = ", ".join(d.path.name for d in found if d.run_id == run_id)
        done.append(f"run {run_id}: {bad} cannot be read; the run is redone")
    for line in done:
        warnings.warn(line, stacklevel=2)
    return done
