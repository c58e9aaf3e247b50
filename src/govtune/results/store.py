"""The results store: one SQLite file per study (`OUT/results.sqlite`, one row per run and metric with its
95% interval, the training curves and the per-example test predictions, what curation did, and the study's
config: everything the report reads) and `OUT/results.json`, both rebuilt from the finished runs (paths:
govtune.results.layout).

SQLite because the report (and anyone with `sqlite3`) can query across runs without loading every run
directory; each run's own `result.json` stays the source of truth, so a lost database can be rebuilt."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any, Iterable

from govtune.atomic import atomic_write_json
from govtune.results.layout import RunLayout, StudyLayout

# Every function takes the study as its StudyLayout or its output directory.
Where = StudyLayout | str | Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, method TEXT, seed INTEGER, shots INTEGER, curation TEXT,
    tasks TEXT, model TEXT, settings_hash TEXT, finished_at TEXT, footprint TEXT, lam_final TEXT);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT, task TEXT, metric TEXT, value REAL, ci_low REAL, ci_high REAL,
    PRIMARY KEY (run_id, task, metric));
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT, curve TEXT, x REAL, value REAL, PRIMARY KEY (run_id, curve, x));
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT, task TEXT, unit TEXT, position INTEGER, example_id TEXT, language TEXT, gold TEXT,
    predicted TEXT, probs TEXT, perturbation TEXT, perturbed_predicted TEXT, hypothesis TEXT, reference TEXT,
    PRIMARY KEY (run_id, task, unit, position));
CREATE TABLE IF NOT EXISTS curations (
    curation TEXT PRIMARY KEY, stage TEXT, steps TEXT, input INTEGER, kept INTEGER, dropped INTEGER, notes TEXT);
CREATE TABLE IF NOT EXISTS curation_counts (
    curation TEXT, stage TEXT, language TEXT, kind TEXT, reason TEXT, n INTEGER,
    PRIMARY KEY (curation, stage, language, kind, reason));
CREATE TABLE IF NOT EXISTS curation_examples (
    curation TEXT, reason TEXT, position INTEGER, language TEXT, example_id TEXT, text TEXT,
    PRIMARY KEY (curation, reason, position));
CREATE TABLE IF NOT EXISTS curation_shots (
    curation TEXT, reference TEXT, shots INTEGER, seed INTEGER, language TEXT, stage TEXT, reason TEXT,
    n INTEGER, PRIMARY KEY (curation, reference, shots, seed, language, stage, reason));
CREATE TABLE IF NOT EXISTS study (name TEXT, model TEXT, settings_hash TEXT, config TEXT);
CREATE TABLE IF NOT EXISTS scaled_predictions (
    run_id TEXT, task TEXT, unit TEXT, position INTEGER, probs_ts TEXT, PRIMARY KEY (run_id, task, unit, position));
"""
# `study`: one row, the study's name, model, settings hash and config (as in study.json, which --resume
# checks), so the report reads the database alone. `scaled_predictions`: an XNLI example's probabilities
# after its run's temperature scaling (JSON, per label), keyed like its `predictions` row; runs without
# calibration have none.
# The curation tables: `curations` one row per curated pool (name, stage, the steps it ran); `curation_counts`
# records per curation, stage and language, kind "input" and "kept" (reason "") or "dropped" (per reason), and
# "changed" (kept rewritten by PII redaction: reason "" the records, or an entity type and its count);
# `curation_examples` the curation report's dropped examples; `curation_shots` the governance ledger's
# "would have been drawn" counts: of the k-shot draw (shots, seed) from the `reference` pool, how many
# records `curation` removes, per language, stage and reason (0 rows included for every reason it drops).
CURATION_TABLES = ("curations", "curation_counts", "curation_examples", "curation_shots")


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"languages": {"en": {"accuracy": 50.0}}, "macro": 40.0} -> {"languages.en.accuracy": 50.0, ...};
    non-numeric leaves (the task name) are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, (int, float)):
            out[name] = float(value)
    return out


def connect(where: Where) -> sqlite3.Connection:
    path = StudyLayout.of(where).database
    con = sqlite3.connect(path, timeout=30)
    con.executescript(SCHEMA)
    old = _columns(con)
    differ = sorted(t for t in _SCHEMA_COLUMNS if old.get(t) != _SCHEMA_COLUMNS[t])
    if differ:  # no migrations: the database is created fresh per study
        con.close()
        raise RuntimeError(f"{path} was written by an older govtune (tables {', '.join(differ)} "
                           f"have other columns); run the study into a new --out directory")
    return con


def _columns(con: sqlite3.Connection) -> dict[str, list[str]]:
    tables = [name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [row[1] for row in con.execute(f"PRAGMA table_info({t})")] for t in tables}


with closing(sqlite3.connect(":memory:")) as _con:
    _con.executescript(SCHEMA)
    _SCHEMA_COLUMNS = _columns(_con)


def read_predictions(run: RunLayout) -> dict[str, list[dict]]:
    """A run's evaluator records per task, from its prediction files (the tasks it has, in the order its
    result lists them)."""
    out = {}
    tasks = list(json.loads(run.result.read_text())["metrics"]) if run.result.exists() else []
    tasks += sorted(p.stem for p in run.predictions("_").parent.glob("*.jsonl") if p.stem not in tasks)
    for task in tasks:
        path = run.predictions(task)
        if path.exists():
            out[task] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return out


def _prediction_rows(run_id: str, task: str, records: list[dict]) -> list[tuple]:
    """One row per clean example; a perturbed XNLI copy (robustness) goes into its clean example's row as
    `perturbation` and `perturbed_predicted`. unit is the language (XNLI) or the direction (FLORES), position
    the example's place in its unit's evaluation."""
    def key(r):
        return r.get("id") if r.get("id") is not None else r.get("index")

    perturbed = {(r["language"], key(r)): r for r in records if r.get("perturbation") is not None}
    rows, seen = [], defaultdict(int)
    for r in records:
        if r.get("perturbation") is not None:
            continue
        unit = r.get("pair", r["language"])  # a FLORES direction, else the language
        ex_id = key(r)
        if "hypothesis" in r:  # generated text (FLORES, completion and chat tasks)
            row = (None, None, None, None, None, r["hypothesis"], r["reference"])
        else:
            p = perturbed.get((r["language"], ex_id), {})
            row = (r["gold"], r["prediction"], json.dumps(r["probs"]), p.get("perturbation"), p.get("prediction"),
                   None, None)
        rows.append((run_id, task, unit, seen[unit], None if ex_id is None else str(ex_id), r["language"], *row))
        seen[unit] += 1
    return rows


def _scaled_rows(run_id: str, task: str, records: list[dict]) -> list[tuple]:
    """`scaled_predictions` rows of the clean classification records that carry `probs_ts`, keyed (unit, position) as
    `_prediction_rows` keys them."""
    rows, seen = [], defaultdict(int)
    for r in records:
        if r.get("perturbation") is not None:
            continue
        if "probs_ts" in r:
            rows.append((run_id, task, r["language"], seen[r["language"]], json.dumps(r["probs_ts"])))
        seen[r["language"]] += 1
    return rows


def record_run(where: Where, result: dict[str, Any], curves: dict[str, list[tuple[float, float]]],
               predictions: dict[str, list[dict]] | None = None) -> None:
    """Insert (or replace) one finished run in one transaction: a run half-recorded is never visible.
    predictions: task -> the evaluator's records (`read_predictions`), for paired comparisons."""
    run_id = result["run_id"]
    with closing(connect(where)) as con, con:
        con.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM curves WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM predictions WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM scaled_predictions WHERE run_id = ?", (run_id,))
        con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
            run_id, result["method"], result["seed"], result["shots"], result["curation"],
            ",".join(result["metrics"]), result.get("model"), result.get("settings_hash"), result.get("finished_at"),
            json.dumps(result["footprint"]), json.dumps(result.get("lam_final"))))
        rows = []
        for task, metrics in result["metrics"].items():
            ci = result.get("ci95", {}).get(task, {})
            rows += [(run_id, task, k, v, *ci.get(k, (None, None))) for k, v in flatten(metrics).items()]
        rows += [(run_id, "footprint", k, v, None, None) for k, v in flatten(result["footprint"]).items()
                 if v is not None]
        con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?)", rows)
        for task, records in (predictions or {}).items():
            con.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            _prediction_rows(run_id, task, records))
        for task, records in (predictions or {}).items():
            con.executemany("INSERT INTO scaled_predictions VALUES (?,?,?,?,?)", _scaled_rows(run_id, task, records))
        con.executemany("INSERT INTO curves VALUES (?,?,?,?)",
                        [(run_id, name, float(x), float(y)) for name, pts in curves.items()
                         for x, y in pts if y is not None and math.isfinite(y)])


def write_results_json(where: Where, results: Iterable[dict[str, Any]]) -> Path:
    """`results.json`: one entry per finished run and task, {"method", "seed", "shots", "task", "curation",
    "metrics" (that task's metrics.json dict), "ci95" ({SQLite metric name: [low, high]}), "footprint",
    "lam_final" (hybrid only)}, in grid order."""
    entries = []
    for r in results:
        for task, metrics in r["metrics"].items():
            entry = {"method": r["method"], "seed": r["seed"], "shots": r["shots"], "task": task,
                     "curation": r["curation"], "metrics": metrics, "footprint": r["footprint"]}
            if task in r.get("ci95", {}):
                entry["ci95"] = r["ci95"][task]
            if r.get("lam_final"):
                entry["lam_final"] = r["lam_final"]
            entries.append(entry)
    return atomic_write_json(StudyLayout.of(where).results_json, entries)


def load_runs(where: Where) -> list[dict[str, Any]]:
    """Every run in the database with its metrics nested back per task:
    {"run_id", "method", "seed", "shots", "curation", "footprint", "lam_final", "metrics": {task: {flat}},
    "ci95": {task: {metric: (low, high)}}} (ci95 only for metrics that have an interval)."""
    layout = StudyLayout.of(where)
    if not layout.database.exists():
        raise FileNotFoundError(f"{layout.database} not found: `govtune run CONFIG --out {layout.root}` writes it")
    with closing(connect(layout)) as con:
        con.row_factory = sqlite3.Row
        runs = {}
        for row in con.execute("SELECT * FROM runs ORDER BY method, shots, curation, seed"):
            run = dict(row)
            run["footprint"] = json.loads(run["footprint"])
            run["lam_final"] = json.loads(run["lam_final"]) if run["lam_final"] else None
            run["metrics"] = {}
            run["curves"] = {}
            run["ci95"] = {}
            runs[run["run_id"]] = run
        for row in con.execute("SELECT run_id, task, metric, value, ci_low, ci_high FROM metrics"):
            if row["run_id"] in runs:
                runs[row["run_id"]]["metrics"].setdefault(row["task"], {})[row["metric"]] = row["value"]
                if row["ci_low"] is not None:
                    runs[row["run_id"]]["ci95"].setdefault(row["task"], {})[row["metric"]] = (
                        row["ci_low"], row["ci_high"])
        for row in con.execute("SELECT run_id, curve, x, value FROM curves ORDER BY x"):
            if row["run_id"] in runs:
                runs[row["run_id"]]["curves"].setdefault(row["curve"], []).append((row["x"], row["value"]))
    return list(runs.values())


def load_predictions(where: Where, run_id: str, task: str) -> list[dict]:
    """One run's test predictions for a task, as evaluator records (what `bootstrap.xnli_units` and
    `bootstrap.flores_units` read): the clean ones in evaluation order, then a perturbed XNLI record (label
    only, no probabilities) per example its perturbation changed; [] when the store has none."""
    with closing(connect(where)) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM predictions WHERE run_id = ? AND task = ? ORDER BY rowid",
                           (run_id, task)).fetchall()
    if rows and rows[0]["hypothesis"] is not None:  # generated text: FLORES directions or a task's languages
        return [{**({"pair": r["unit"]} if r["unit"] != r["language"] else {}), "language": r["language"],
                 "id": r["example_id"], "perturbation": None, "hypothesis": r["hypothesis"],
                 "reference": r["reference"]} for r in rows]
    clean = [{"language": r["language"], "id": r["example_id"], "perturbation": None, "gold": r["gold"],
              "prediction": r["predicted"], "probs": json.loads(r["probs"])} for r in rows]
    return clean + [{"language": r["language"], "id": r["example_id"], "perturbation": r["perturbation"],
                     "gold": r["gold"], "prediction": r["perturbed_predicted"]} for r in rows if r["perturbation"]]


def record_curation(where: Where, rows: dict[str, list[tuple]]) -> None:
    """Replace the curation tables' contents with `rows` (table -> rows), in one transaction: they are
    rebuilt from OUT/curation/ whenever the study runs."""
    with closing(connect(where)) as con, con:
        for table in CURATION_TABLES:
            con.execute(f"DELETE FROM {table}")
            if rows.get(table):
                marks = ",".join("?" * len(rows[table][0]))
                con.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])


def load_curation(where: Where) -> dict[str, list[dict]]:
    """The curation tables as lists of row dicts (empty lists for a study that curated nothing)."""
    layout = StudyLayout.of(where)
    if not layout.database.exists():
        return {t: [] for t in CURATION_TABLES}
    with closing(connect(layout)) as con:
        con.row_factory = sqlite3.Row
        return {t: [dict(r) for r in con.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in CURATION_TABLES}


def load_scaled_predictions(where: Where, run_id: str, task: str) -> list[dict]:
    """One run's clean predictions of a classification task in evaluation order, each with `probs_ts` (its probabilities after
    the run's temperature scaling) when the run was calibrated: what a reliability diagram draws."""
    with closing(connect(where)) as con:
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT p.*, s.probs_ts FROM predictions p LEFT JOIN scaled_predictions s "
                           "USING (run_id, task, unit, position) WHERE p.run_id = ? AND p.task = ? "
                           "ORDER BY p.rowid", (run_id, task)).fetchall()
    return [{"language": r["language"], "id": r["example_id"], "perturbation": None, "gold": r["gold"],
             "prediction": r["predicted"], "probs": json.loads(r["probs"]),
             **({"probs_ts": json.loads(r["probs_ts"])} if r["probs_ts"] else {})} for r in rows]


def record_study(where: Where, name: str, model: str, settings_hash: str, config: dict[str, Any]) -> None:
    """The study's identity and config (`StudyConfig.to_dict()`), replacing what an earlier run of the
    study recorded: the grid records it when the study starts, beside study.json."""
    with closing(connect(where)) as con, con:
        con.execute("DELETE FROM study")
        con.execute("INSERT INTO study VALUES (?,?,?,?)", (name, model, settings_hash, json.dumps(config, default=str)))


def load_study(where: Where) -> dict[str, Any]:
    """{"name", "model", "settings_hash", "config"} as `record_study` stored them; {} when none was."""
    with closing(connect(where)) as con:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM study").fetchone()
    return {} if row is None else {**dict(row), "config": json.loads(row["config"])}
